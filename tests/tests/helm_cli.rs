//! `capstan apps / render / diff` on Helm apps with a real Helm engine on `PATH` (issue 17): an
//! app-of-apps written as a chart lists its children, a chart app renders and diffs, and so does a
//! kustomization with `helmCharts` (a values-file change marks only that app affected).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use capstan_worker::git::fixture::{Change, RepoBuilder};

const URL: &str = "https://example.com/gitops.git";

/// `capstan ARGS --repo REPO` with the tests' helm first on `PATH`.
fn run(repo: &Path, args: &[&str]) -> Output {
    let helm = capstan_worker::render::helm::test_binary().expect("a helm for the tests");
    let mut path = vec![helm.parent().unwrap().to_path_buf()];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    Command::new(capstan_tests::capstan_binary())
        .args(args)
        .args(["--repo", repo.to_str().unwrap(), "--repo-url", URL])
        .env("PATH", std::env::join_paths(path).unwrap())
        .env_remove("CAPSTAN_REPO_URLS")
        .env_remove("CAPSTAN_RENDER_CACHE")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `root` renders the chart `argocd/apps`, which produces the Application `web`, itself a chart
/// whose replica count comes from `values/web.yaml` through `$values`. Tags `base` and `main`.
fn repo(tmp: &Path) -> PathBuf {
    let dir = tmp.join("repo");
    let b = RepoBuilder::init(&dir).unwrap();
    let root = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: root\nspec:\n  \
         source:\n    repoURL: {URL}\n    path: argocd/apps\n  destination:\n    namespace: argocd\n"
    );
    let child = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {{{{ .Values.name }}}}\n\
         spec:\n  sources:\n  - repoURL: {URL}\n    path: charts/web\n    helm:\n      \
         valueFiles: [$values/values/web.yaml]\n  - repoURL: {URL}\n    ref: values\n  \
         destination:\n    namespace: web\n"
    );
    let base = b
        .commit(
            "base",
            &[
                Change::Write("argocd/root.yaml", root.as_bytes()),
                Change::Write(
                    "argocd/apps/Chart.yaml",
                    b"apiVersion: v2\nname: apps\nversion: 0.1.0\n",
                ),
                Change::Write("argocd/apps/values.yaml", b"name: web\n"),
                Change::Write("argocd/apps/templates/web.yaml", child.as_bytes()),
                Change::Write(
                    "charts/web/Chart.yaml",
                    b"apiVersion: v2\nname: web\nversion: 0.1.0\n",
                ),
                Change::Write(
                    "charts/web/templates/cm.yaml",
                    b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  replicas: {{ .Values.replicas | quote }}\n",
                ),
                Change::Write("values/web.yaml", b"replicas: 1\n"),
            ],
        )
        .unwrap();
    b.set_ref("refs/tags/base", base).unwrap();
    b.commit(
        "more replicas",
        &[Change::Write("values/web.yaml", b"replicas: 3\n")],
    )
    .unwrap();
    dir
}

#[test]
fn apps_lists_the_children_of_an_app_of_apps_chart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = repo(tmp.path());
    let out = run(&dir, &["apps", "--ref", "main", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["root", "web"], "{v:#}");
    let all = format!("{v}{}", text(&out.stderr));
    assert!(!all.contains("did not find expected"), "{all}");
    let table = text(&run(&dir, &["apps", "--ref", "main"]).stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("web ") && l.contains(" rendered [child of root]")),
        "{table}"
    );
    // The `ref` source lends values; it is not an unchecked part of the app.
    assert!(!table.contains("not checked"), "{table}");
    assert!(table.contains("values for $values"), "{table}");
}

#[test]
fn render_and_diff_work_for_a_helm_app() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = repo(tmp.path());
    let out = run(&dir, &["render", "web", "--ref", "main"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(yaml.contains("kind: ConfigMap"), "{yaml}");
    assert!(yaml.contains("replicas: \"3\""), "{yaml}");

    let diff = run(&dir, &["diff", "--base", "base", "--head", "main"]);
    let shown = text(&diff.stdout);
    // Exit 1: a diff. Only `web` reads values/web.yaml.
    assert_eq!(diff.status.code(), Some(1), "{shown}{}", text(&diff.stderr));
    assert!(shown.contains("web"), "{shown}");
    assert!(shown.contains("replicas"), "{shown}");
    assert!(!shown.contains("root"), "{shown}");
}

fn path_app(name: &str, path: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\nspec:\n  \
         project: default\n  source:\n    repoURL: {URL}\n    targetRevision: HEAD\n    path: {path}\n  \
         destination:\n    namespace: {name}\n"
    )
}

/// `helmCharts:` in a kustomization: `shop` inflates `apps/shop/charts/web` with `values/prod.yaml`; `plain` is an ordinary
/// kustomization. The head (`main`) changes only the values file (tag `base` before).
fn kustomize_repo(tmp: &Path) -> PathBuf {
    let dir = tmp.join("repo");
    let b = RepoBuilder::init(&dir).unwrap();
    let shop = path_app("shop", "apps/shop");
    let plain = path_app("plain", "apps/plain");
    let files: Vec<(&str, String)> = vec![
        ("argocd/shop.yaml", shop),
        ("argocd/plain.yaml", plain),
        (
            "apps/shop/kustomization.yaml",
            "namePrefix: prod-\nhelmCharts:\n- name: web\n  releaseName: shop\n  valuesFile: values/prod.yaml\n  valuesInline:\n    tier: gold\n".into(),
        ),
        (
            "apps/shop/charts/web/Chart.yaml",
            "apiVersion: v2\nname: web\nversion: 0.1.0\n".into(),
        ),
        ("apps/shop/charts/web/values.yaml", "replicas: 1\ntier: free\n".into()),
        (
            "apps/shop/charts/web/templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-web\ndata:\n  replicas: {{ .Values.replicas | quote }}\n  tier: {{ .Values.tier }}\n".into(),
        ),
        ("apps/shop/values/prod.yaml", "replicas: 2\n".into()),
        ("apps/plain/kustomization.yaml", "resources: [cm.yaml]\n".into()),
        (
            "apps/plain/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\ndata:\n  k: v\n".into(),
        ),
    ];
    let changes: Vec<Change> = files
        .iter()
        .map(|(p, c)| Change::Write(p, c.as_bytes()))
        .collect();
    let base = b.commit("base", &changes).unwrap();
    b.set_ref("refs/tags/base", base).unwrap();
    let head = b
        .commit(
            "more replicas",
            &[Change::Write(
                "apps/shop/values/prod.yaml",
                b"replicas: 5\n",
            )],
        )
        .unwrap();
    b.set_ref("refs/heads/main", head).unwrap();
    dir
}

#[test]
fn render_and_diff_work_for_a_kustomization_with_helm_charts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = kustomize_repo(tmp.path());
    for target in ["shop", "apps/shop"] {
        let out = run(&dir, &["render", target, "--ref", "main"]);
        assert!(out.status.success(), "{target}: {}", text(&out.stderr));
        let yaml = text(&out.stdout);
        assert!(yaml.contains("name: prod-shop-web"), "{yaml}");
        assert!(yaml.contains("replicas: \"5\""), "{yaml}");
        assert!(yaml.contains("tier: gold"), "{yaml}");
    }

    let diff = run(&dir, &["diff", "--base", "base", "--head", "main"]);
    let shown = text(&diff.stdout);
    assert_eq!(diff.status.code(), Some(1), "{shown}{}", text(&diff.stderr));
    assert!(shown.contains("shop"), "{shown}");
    assert!(shown.contains("replicas"), "{shown}");
    assert!(
        !shown.contains("plain"),
        "only shop reads the values file: {shown}"
    );
    assert!(!shown.contains("not checked"), "{shown}");
}
