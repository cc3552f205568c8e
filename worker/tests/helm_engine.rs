//! Helm apps rendered by a real Helm engine (issue 17): every ArgoCD `spec.source.helm` option
//! on local charts, multi-source `$values`, and the affected-app graph for value files.
//!
//! The engine is [`capstan_worker::render::helm::test_binary`]: a real `helm` when one is on
//! `PATH`, else Helm v4's engine from `helm-python-sdk` behind `tests/support/helm`. Expected
//! values follow from Helm's rules (value precedence, `.Capabilities`, CRDs, hooks), so the same
//! assertions hold for either.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use capstan_worker::apps::{AppRender, DiscoveryConfig, RenderedApp, Snapshot, affected};
use capstan_worker::git::GitRepo;
use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::render::{RenderConfig, Renderer};
use capstan_worker::repo_fs::RepoPath;
use serde_json::Value;

const URL: &str = "https://example.com/gitops.git";

fn renderer() -> Renderer {
    let helm = capstan_worker::render::helm::test_binary().expect("a helm for the tests");
    Renderer::new(RenderConfig {
        helm_binary: Some(helm),
        ..RenderConfig::default()
    })
}

fn cfg() -> DiscoveryConfig {
    DiscoveryConfig {
        repo_urls: vec![URL.into()],
        ..DiscoveryConfig::default()
    }
}

/// The chart every app here renders: a ConfigMap echoing what helm gave the templates, a
/// ServiceMonitor only when the API is announced, a CRD and a test hook.
const CHART: &[(&str, &str)] = &[
    (
        "charts/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    ),
    (
        "charts/web/values.yaml",
        "replicas: 1\nteam: none\nimage:\n  tag: '1.0'\nscript: ''\n",
    ),
    ("charts/web/values-prod.yaml", "replicas: 2\n"),
    ("charts/web/files/run.sh", "echo hello, world\n"),
    (
        "charts/web/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\n  \
         namespace: {{ .Release.Namespace }}\ndata:\n  replicas: {{ .Values.replicas | quote }}\n  \
         team: {{ .Values.team | quote }}\n  tag: {{ .Values.image.tag | quote }}\n  \
         kube: {{ .Capabilities.KubeVersion.Version | quote }}\n  \
         script: {{ .Values.script | quote }}\n\
         {{- if .Capabilities.APIVersions.Has \"monitoring.coreos.com/v1/ServiceMonitor\" }}\n\
         ---\napiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  \
         name: {{ .Release.Name }}\nspec:\n  endpoints: []\n{{- end }}\n",
    ),
    (
        "charts/web/templates/tests/ping.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-ping\n  \
         annotations:\n    helm.sh/hook: test\nspec:\n  containers:\n  - name: ping\n    \
         image: busybox\n",
    ),
    (
        "charts/web/templates/_helpers.tpl",
        "{{- define \"web.x\" -}}x{{- end -}}\n",
    ),
    (
        "charts/web/crds/widget.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  \
         name: widgets.example.com\nspec:\n  group: example.com\n  names:\n    kind: Widget\n    \
         plural: widgets\n  scope: Namespaced\n  versions: []\n",
    ),
    (
        "charts/new/Chart.yaml",
        "apiVersion: v2\nname: new\nversion: 0.1.0\nkubeVersion: '>=1.30.0-0'\n",
    ),
    (
        "charts/new/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n",
    ),
    ("values/prod.yaml", "replicas: 4\nteam: platform\n"),
    ("values/other.yaml", "replicas: 9\n"),
];

/// An Application over `path` in this repository with `helm` (YAML under `helm:`, indented by
/// six spaces) and destination namespace `apps`.
fn app(name: &str, path: &str, helm: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\nspec:\n  \
         source:\n    repoURL: {URL}\n    targetRevision: HEAD\n    path: {path}\n    helm:\n{helm}\n  \
         destination:\n    namespace: apps\n"
    )
}

/// A multi-source Application: the chart from `charts/web` reading `$values/<file>`, and this
/// repository as the `values` ref.
fn multi_source(name: &str, file: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\nspec:\n  \
         sources:\n  - repoURL: {URL}\n    targetRevision: HEAD\n    path: charts/web\n    helm:\n      \
         valueFiles:\n      - $values/{file}\n  - repoURL: {URL}\n    targetRevision: HEAD\n    \
         ref: values\n  destination:\n    namespace: apps\n"
    )
}

fn repo(dir: &Path, apps: &[(&str, String)]) -> (RepoBuilder, GitRepo, git2::Oid) {
    let b = RepoBuilder::init(dir).unwrap();
    let mut changes: Vec<Change<'_>> = CHART
        .iter()
        .map(|(p, c)| Change::Write(p, c.as_bytes()))
        .collect();
    for (file, text) in apps {
        changes.push(Change::Write(file, text.as_bytes()));
    }
    let c = b.commit("apps", &changes).unwrap();
    (b, GitRepo::open(dir).unwrap(), c)
}

/// Objects of a rendered app by `Kind/name`.
fn objects(r: &AppRender) -> BTreeMap<String, Value> {
    match &r.outcome {
        RenderedApp::Rendered(out) => {
            assert!(out.not_checked.is_empty(), "{:?}", out.not_checked);
            out.objects
                .iter()
                .map(|o| (format!("{}/{}", o.id.kind, o.id.name), o.value.clone()))
                .collect()
        }
        other => panic!("{} not rendered: {other:?}", r.app.name),
    }
}

fn render(snap: &Snapshot<'_>, r: &Renderer, name: &str) -> AppRender {
    snap.render(r, name).unwrap()
}

fn data<'a>(objs: &'a BTreeMap<String, Value>, key: &str) -> &'a Value {
    &objs
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {:?}", objs.keys()))["data"]
}

#[test]
fn an_app_without_options_renders_like_argocd() {
    let tmp = tempfile::tempdir().unwrap();
    let (_b, repo, c) = repo(
        tmp.path(),
        &[("apps/plain.yaml", app("plain", "charts/web", "      {}"))],
    );
    let fs = repo.tree_fs(c).unwrap();
    let r = renderer();
    let snap = Snapshot::build(&fs, &cfg(), &r);
    let objs = objects(&render(&snap, &r, "plain"));
    // The release is named after the app; the namespace is the destination's.
    let cm = &objs["ConfigMap/plain-cfg"];
    assert_eq!(cm["metadata"]["namespace"], "apps");
    assert_eq!(cm["data"]["replicas"], "1");
    assert_eq!(cm["data"]["tag"], "1.0");
    // ArgoCD passes --include-crds; test hooks are part of `helm template`'s output; partials
    // are not manifests; no ServiceMonitor without the API announced.
    assert!(
        objs.contains_key("CustomResourceDefinition/widgets.example.com"),
        "{objs:?}"
    );
    assert!(objs.contains_key("Pod/plain-ping"), "{objs:?}");
    assert_eq!(objs.len(), 3, "{:?}", objs.keys());
}

#[test]
fn every_helm_option_reaches_the_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let helm = "      releaseName: web-prod\n      namespace: other\n      \
                valueFiles: [values-prod.yaml]\n      values: |\n        team: a\n      \
                parameters:\n      - name: image.tag\n        value: '2.0'\n      \
                fileParameters:\n      - name: script\n        path: files/run.sh\n      \
                skipCrds: true\n      skipTests: true\n      kubeVersion: v1.29.3+k3s1\n      \
                apiVersions: [monitoring.coreos.com/v1/ServiceMonitor]";
    let (_b, repo, c) = repo(
        tmp.path(),
        &[("apps/full.yaml", app("full", "charts/web", helm))],
    );
    let fs = repo.tree_fs(c).unwrap();
    let r = renderer();
    let snap = Snapshot::build(&fs, &cfg(), &r);
    let objs = objects(&render(&snap, &r, "full"));
    let cm = &objs["ConfigMap/web-prod-cfg"];
    assert_eq!(cm["metadata"]["namespace"], "other", "helm.namespace wins");
    let d = &cm["data"];
    assert_eq!(d["replicas"], "2", "value file");
    assert_eq!(d["team"], "a", "inline values");
    assert_eq!(d["tag"], "2.0", "parameter");
    assert_eq!(d["script"], "echo hello, world\n", "file parameter");
    assert_eq!(
        d["kube"], "v1.29.3",
        "kubeVersion without the distribution suffix"
    );
    assert!(
        objs.contains_key("ServiceMonitor/web-prod"),
        "apiVersions: {objs:?}"
    );
    // skipCrds and skipTests.
    assert_eq!(
        objs.keys().collect::<Vec<_>>(),
        vec!["ConfigMap/web-prod-cfg", "ServiceMonitor/web-prod"]
    );
    // The file parameter is an input: changing it affects the app.
    let inputs = snap.inputs["full"].as_ref().unwrap();
    assert!(inputs.contains_key(&RepoPath::new("charts/web/files/run.sh").unwrap()));
}

#[test]
fn value_precedence_follows_helm() {
    let tmp = tempfile::tempdir().unwrap();
    // valuesObject wins over values; inline values over value files; parameters over both.
    let helm = "      valueFiles: [values-prod.yaml]\n      values: 'team: from-string'\n      \
                valuesObject:\n        team: from-object\n        replicas: 3\n      \
                parameters:\n      - name: replicas\n        value: '7'\n      \
                - name: image.tag\n        value: '010'\n        forceString: true";
    let (_b, repo, c) = repo(
        tmp.path(),
        &[("apps/prec.yaml", app("prec", "charts/web", helm))],
    );
    let fs = repo.tree_fs(c).unwrap();
    let r = renderer();
    let snap = Snapshot::build(&fs, &cfg(), &r);
    let objs = objects(&render(&snap, &r, "prec"));
    let d = data(&objs, "ConfigMap/prec-cfg");
    assert_eq!(d["team"], "from-object");
    assert_eq!(d["replicas"], "7");
    assert_eq!(d["tag"], "010", "forceString keeps leading zeros");
}

#[test]
fn missing_value_files_fail_unless_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let (_b, repo, c) = repo(
        tmp.path(),
        &[
            (
                "apps/lenient.yaml",
                app(
                    "lenient",
                    "charts/web",
                    "      ignoreMissingValueFiles: true\n      valueFiles: [absent.yaml, values-prod.yaml]",
                ),
            ),
            (
                "apps/strict.yaml",
                app("strict", "charts/web", "      valueFiles: [absent.yaml]"),
            ),
        ],
    );
    let fs = repo.tree_fs(c).unwrap();
    let r = renderer();
    let snap = Snapshot::build(&fs, &cfg(), &r);
    let objs = objects(&render(&snap, &r, "lenient"));
    assert_eq!(data(&objs, "ConfigMap/lenient-cfg")["replicas"], "2");
    match render(&snap, &r, "strict").outcome {
        RenderedApp::Failed { error } => assert!(error.contains("absent.yaml"), "{error}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_chart_kube_version_constraint_is_checked_against_the_app_kube_version() {
    let tmp = tempfile::tempdir().unwrap();
    let (_b, repo, c) = repo(
        tmp.path(),
        &[
            (
                "apps/old.yaml",
                app("old", "charts/new", "      kubeVersion: '1.29.0'"),
            ),
            (
                "apps/cur.yaml",
                app("cur", "charts/new", "      kubeVersion: '1.31.2'"),
            ),
            (
                "apps/bad.yaml",
                app("bad", "charts/new", "      kubeVersion: latest"),
            ),
        ],
    );
    let fs = repo.tree_fs(c).unwrap();
    let r = renderer();
    let snap = Snapshot::build(&fs, &cfg(), &r);
    assert!(objects(&render(&snap, &r, "cur")).contains_key("ConfigMap/cur"));
    match render(&snap, &r, "old").outcome {
        RenderedApp::Failed { error } => {
            assert!(
                error.contains("kubeVersion") && error.contains("1.29.0"),
                "{error}"
            )
        }
        other => panic!("{other:?}"),
    }
    match render(&snap, &r, "bad").outcome {
        RenderedApp::Failed { error } => assert!(error.contains("helm kubeVersion"), "{error}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn multi_source_values_are_rendered_diffed_and_mark_exactly_their_readers() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, repo, base) = repo(
        tmp.path(),
        &[
            ("apps/prod.yaml", multi_source("prod", "values/prod.yaml")),
            (
                "apps/other.yaml",
                multi_source("other", "values/other.yaml"),
            ),
            ("apps/plain.yaml", app("plain", "charts/web", "      {}")),
        ],
    );
    let head = b
        .commit(
            "prod values",
            &[Change::Write(
                "values/prod.yaml",
                b"replicas: 5\nteam: platform\n",
            )],
        )
        .unwrap();
    let r = renderer();
    let (bfs, hfs) = (repo.tree_fs(base).unwrap(), repo.tree_fs(head).unwrap());
    let (bs, hs) = (
        Snapshot::build(&bfs, &cfg(), &r),
        Snapshot::build(&hfs, &cfg(), &r),
    );
    let before = render(&bs, &r, "prod");
    let objs = objects(&before);
    assert_eq!(data(&objs, "ConfigMap/prod-cfg")["replicas"], "4");
    assert_eq!(data(&objs, "ConfigMap/prod-cfg")["team"], "platform");
    assert_eq!(
        data(&objects(&render(&bs, &r, "other")), "ConfigMap/other-cfg")["replicas"],
        "9"
    );

    let changed: Vec<String> = affected::affected_apps(&bs, &hs)
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(changed, vec!["prod"]);

    let after = render(&hs, &r, "prod");
    assert_eq!(
        data(&objects(&after), "ConfigMap/prod-cfg")["replicas"],
        "5"
    );
    let diff = capstan_worker::diff::diff_app("prod", Some(&before), Some(&after));
    let ids: Vec<String> = diff.changes.iter().map(|c| c.id.name.clone()).collect();
    assert_eq!(ids, vec!["prod-cfg"], "{diff:?}");
    assert!(
        diff.changes[0].diff.contains("replicas"),
        "{}",
        diff.changes[0].diff
    );
}

/// An app-of-apps written as a chart: one Application per entry of `.Values.apps`.
const APP_OF_APPS: &[(&str, &str)] = &[
    (
        "argocd/root.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: root\nspec:\n  \
         source:\n    repoURL: https://example.com/gitops.git\n    path: argocd/apps\n  \
         destination:\n    namespace: argocd\n",
    ),
    (
        "argocd/apps/Chart.yaml",
        "apiVersion: v2\nname: apps\nversion: 0.1.0\n",
    ),
    ("argocd/apps/values.yaml", "apps: [alpha, beta]\n"),
    (
        "argocd/apps/templates/apps.yaml",
        "{{- range .Values.apps }}\n---\napiVersion: argoproj.io/v1alpha1\nkind: Application\n\
         metadata:\n  name: {{ . }}\nspec:\n  source:\n    repoURL: https://example.com/gitops.git\n    \
         path: workloads/{{ . }}\n  destination:\n    namespace: {{ . }}\n{{- end }}\n",
    ),
    (
        "workloads/alpha/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: alpha\n",
    ),
    (
        "workloads/beta/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: beta\n",
    ),
];

#[test]
fn an_app_of_apps_chart_is_rendered_to_find_its_children() {
    let tmp = tempfile::tempdir().unwrap();
    let b = RepoBuilder::init(tmp.path()).unwrap();
    let changes: Vec<Change<'_>> = APP_OF_APPS
        .iter()
        .map(|(p, c)| Change::Write(p, c.as_bytes()))
        .collect();
    let c = b.commit("apps", &changes).unwrap();
    let repo = GitRepo::open(tmp.path()).unwrap();
    let fs = repo.tree_fs(c).unwrap();
    let r = renderer();
    let snap = Snapshot::build(&fs, &cfg(), &r);
    // Chart templates are not manifests: reading them as YAML is an error no user made.
    assert!(
        snap.discovery.errors.is_empty(),
        "{:?}",
        snap.discovery.errors
    );
    let names: Vec<(&str, Option<&str>)> = snap
        .discovery
        .apps
        .iter()
        .map(|a| (a.name.as_str(), a.parent.as_deref()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("alpha", Some("root")),
            ("beta", Some("root")),
            ("root", None)
        ]
    );
    assert_eq!(
        objects(&render(&snap, &r, "beta"))
            .keys()
            .collect::<Vec<_>>(),
        vec!["ConfigMap/beta"]
    );
}
