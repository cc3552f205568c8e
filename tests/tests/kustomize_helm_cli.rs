//! `capstan render` and `capstan diff` on a kustomization with `helmCharts` (issue 17), with the
//! tests' helm first on `PATH`: the chart renders through the native engine, and a change to its
//! values file marks exactly that app affected.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use capstan_worker::git::fixture::{Change, RepoBuilder};

const URL: &str = "https://example.com/gitops.git";

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

fn app(name: &str, path: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\nspec:\n  \
         project: default\n  source:\n    repoURL: {URL}\n    targetRevision: HEAD\n    path: {path}\n  \
         destination:\n    namespace: {name}\n"
    )
}

/// `shop` inflates `apps/shop/charts/web` with `values/prod.yaml`; `plain` is an ordinary
/// kustomization. The head (`main`) changes only the values file (tag `base` before).
fn repo(tmp: &Path) -> PathBuf {
    let dir = tmp.join("repo");
    let b = RepoBuilder::init(&dir).unwrap();
    let shop = app("shop", "apps/shop");
    let plain = app("plain", "apps/plain");
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
    let dir = repo(tmp.path());
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
