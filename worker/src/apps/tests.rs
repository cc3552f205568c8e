#![allow(clippy::unwrap_used)]

use super::*;
use crate::render::{RenderConfig, Renderer};
use crate::repo_fs::MemFs;

const URL: &str = "https://github.com/example/gitops";

fn cfg() -> DiscoveryConfig {
    DiscoveryConfig {
        repo_urls: vec![format!("{URL}.git")],
        default_branch: "main".into(),
        ..Default::default()
    }
}

fn app_yaml(name: &str, url: &str, rev: &str, path: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\nspec:\n  project: p\n  source:\n    repoURL: {url}\n    targetRevision: {rev}\n    path: {path}\n  destination:\n    namespace: ns-{name}\n"
    )
}

#[test]
fn repo_urls_are_compared_normalised() {
    for u in [
        "https://github.com/Example/GitOps.git",
        "git@github.com:example/gitops.git",
        "ssh://git@github.com/example/gitops",
        "https://github.com/example/gitops/",
    ] {
        assert_eq!(normalize_repo_url(u), "github.com/example/gitops", "{u}");
    }
    assert!(!cfg().is_this_repo("https://github.com/example/gitops-other"));
}

#[test]
fn external_sources_and_other_revisions_are_listed_not_rendered() {
    let fs = MemFs::new()
        .with("a/kustomization.yaml", "resources: []\n")
        .with(
            "argocd/apps.yaml",
            [
                app_yaml("local", URL, "main", "a"),
                app_yaml("elsewhere", "https://github.com/other/repo", "HEAD", "a"),
                app_yaml("pinned", URL, "v1.2.0", "a"),
                app_yaml("missing", URL, "HEAD", "does/not/exist"),
            ]
            .join("---\n"),
        );
    let d = discover(&fs, &cfg());
    let status = |n: &str| d.get(n).unwrap().sources[0].status.clone();
    assert_eq!(status("local"), SourceStatus::Local);
    assert_eq!(
        d.get("local").unwrap().sources[0].kind.as_deref(),
        Some("kustomize")
    );
    assert!(
        matches!(status("elsewhere"), SourceStatus::NotRendered(r) if r.contains("not this repository"))
    );
    assert!(
        matches!(status("pinned"), SourceStatus::NotRendered(r) if r.contains("v1.2.0 is not the default branch"))
    );
    assert!(matches!(status("missing"), SourceStatus::Error(r) if r.contains("does/not/exist")));
}

#[test]
fn application_sets_expand_list_git_directories_and_files() {
    let set = format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: workloads
spec:
  goTemplate: true
  generators:
  - git:
      repoURL: {URL}
      revision: main
      directories:
      - path: apps/*/overlays/*
      - path: apps/skip/overlays/*
        exclude: true
  template:
    metadata:
      name: '{{{{index .path.segments 1}}}}-{{{{.path.basename}}}}'
    spec:
      project: workloads
      source:
        repoURL: {URL}
        targetRevision: main
        path: '{{{{.path.path}}}}'
      destination:
        namespace: '{{{{.path.basename | upper | lower}}}}'
---
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: listed
spec:
  generators:
  - list:
      elements:
      - cluster: east
      - cluster: west
  template:
    metadata:
      name: 'guestbook-{{{{cluster}}}}'
    spec:
      project: default
      source:
        repoURL: {URL}
        path: apps/web/overlays/staging
      destination:
        namespace: '{{{{ cluster }}}}'
---
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: operators
spec:
  goTemplate: true
  generators:
  - git:
      repoURL: {URL}
      revision: HEAD
      files:
      - path: ops/*/operator.yaml
  template:
    metadata:
      name: '{{{{.name}}}}'
    spec:
      project: platform
      source:
        repoURL: '{{{{.chart.repository}}}}'
        chart: '{{{{.chart.name}}}}'
        targetRevision: '{{{{.chart.version}}}}'
        helm:
          values: '{{{{toYaml .values}}}}'
      destination:
        namespace: '{{{{.name}}}}'
---
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: clusters
spec:
  generators:
  - clusters: {{}}
  template:
    metadata:
      name: x
    spec:
      source:
        repoURL: {URL}
        path: a
"#
    );
    let fs = MemFs::new()
        .with("argocd/sets.yaml", set)
        .with("apps/web/overlays/staging/kustomization.yaml", "resources: []\n")
        .with("apps/web/overlays/production/kustomization.yaml", "resources: []\n")
        .with("apps/web/base/kustomization.yaml", "resources: []\n")
        .with("apps/skip/overlays/dev/kustomization.yaml", "resources: []\n")
        .with(
            "ops/cert-manager/operator.yaml",
            "name: cert-manager\nchart:\n  repository: https://charts.jetstack.io\n  name: cert-manager\n  version: v1.19.1\nvalues:\n  crds:\n    enabled: true\n",
        );
    let d = discover(&fs, &cfg());
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let names: Vec<&str> = d.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "cert-manager",
            "guestbook-east",
            "guestbook-west",
            "web-production",
            "web-staging"
        ]
    );
    let staging = d.get("web-staging").unwrap();
    assert_eq!(staging.generated_by.as_deref(), Some("workloads"));
    assert_eq!(
        staging.sources[0].path.as_deref(),
        Some("apps/web/overlays/staging")
    );
    assert_eq!(staging.destination.namespace.as_deref(), Some("staging"));
    assert_eq!(
        d.get("guestbook-west")
            .unwrap()
            .destination
            .namespace
            .as_deref(),
        Some("west")
    );
    let cm = d.get("cert-manager").unwrap();
    // A chart from an HTTP Helm repository is a helm source fetched at render time (issue 17).
    let render = cm.sources[0].render.as_ref().unwrap();
    assert_eq!(
        render.label(),
        "chart cert-manager v1.19.1 from https://charts.jetstack.io"
    );
    assert_eq!(cm.sources[0].kind.as_deref(), Some("helm"));
    assert_eq!(cm.sources[0].chart.as_deref(), Some("cert-manager"));
    assert_eq!(d.unsupported.len(), 1);
    // No cluster is declared in this tree, so the clusters generator cannot be evaluated.
    assert_eq!(
        d.unsupported[0].what,
        "clusters generator, and no cluster is declared in argocd/clusters/*/cluster.yaml"
    );
    assert_eq!(d.unsupported[0].object, "ApplicationSet clusters");
}

#[test]
fn app_of_apps_children_are_taken_from_the_parent_render() {
    // The parent is a plain directory of Applications; one child exists only in the parent's
    // folder, the other is also linked by its defining file.
    let fs = MemFs::new()
        .with("root.yaml", app_yaml("root", URL, "HEAD", "apps"))
        .with("apps/child.yaml", app_yaml("child", URL, "HEAD", "web"))
        .with(
            "web/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
        );
    let renderer = Renderer::new(RenderConfig::default());
    let snap = Snapshot::build(&fs, &cfg(), &renderer);
    let child = snap.app("child").unwrap();
    assert_eq!(child.parent.as_deref(), Some("root"));
    assert_eq!(snap.app("root").unwrap().parent, None);
    let out = snap.render(&renderer, "child").unwrap();
    assert_eq!(out.objects().len(), 1);
    assert_eq!(out.objects()[0].id.name, "c");
}

#[test]
fn matrix_and_merge_generators_combine_their_children() {
    let set = format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: envs
spec:
  goTemplate: true
  generators:
  - matrix:
      generators:
      - git:
          repoURL: {URL}
          revision: HEAD
          directories:
          - path: apps/*
      - list:
          elements:
          - env: staging
          - env: production
  template:
    metadata:
      name: '{{{{.path.basename}}}}-{{{{.env}}}}'
    spec:
      source:
        repoURL: {URL}
        path: '{{{{.path.path}}}}'
      destination:
        namespace: '{{{{.env}}}}'
---
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: merged
spec:
  generators:
  - merge:
      mergeKeys: [name]
      generators:
      - list:
          elements:
          - name: a
            ns: one
          - name: b
            ns: one
      - list:
          elements:
          - name: b
            ns: two
  template:
    metadata:
      name: 'm-{{{{name}}}}'
    spec:
      source:
        repoURL: {URL}
        path: apps/web
      destination:
        namespace: '{{{{ns}}}}'
---
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: dependent
spec:
  generators:
  - matrix:
      generators:
      - list:
          elements:
          - dir: apps/web
      - git:
          repoURL: {URL}
          files:
          - path: '{{{{dir}}}}/config.json'
  template:
    metadata:
      name: x
    spec:
      source:
        repoURL: {URL}
        path: apps/web
"#
    );
    let fs = MemFs::new()
        .with("argocd/sets.yaml", set)
        .with("apps/web/kustomization.yaml", "resources: []\n")
        .with("apps/api/kustomization.yaml", "resources: []\n");
    let d = discover(&fs, &cfg());
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let names: Vec<(&str, Option<&str>)> = d
        .apps
        .iter()
        .map(|a| (a.name.as_str(), a.destination.namespace.as_deref()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("api-production", Some("production")),
            ("api-staging", Some("staging")),
            ("m-a", Some("one")),
            ("m-b", Some("two")),
            ("web-production", Some("production")),
            ("web-staging", Some("staging")),
        ]
    );
    assert_eq!(d.unsupported.len(), 1);
    assert_eq!(
        d.unsupported[0].what,
        "matrix generator with parameterised child generators"
    );
}

#[test]
fn destination_helpers_read_the_application() {
    let text = app_yaml("a", URL, "HEAD", "x").replace(
        "  destination:\n",
        "  syncPolicy:\n    syncOptions: [CreateNamespace=true]\n  destination:\n    server: https://kubernetes.default.svc\n",
    );
    let fs = MemFs::new()
        .with("a.yaml", text)
        .with("x/cm.yaml", "a: 1\n");
    let d = discover(&fs, &cfg());
    let a = d.get("a").unwrap();
    assert!(a.creates_namespace());
    assert_eq!(a.cluster(), None);
    let text = app_yaml("b", URL, "HEAD", "x")
        .replace("  destination:\n", "  destination:\n    name: edge\n");
    let fs = MemFs::new()
        .with("b.yaml", text)
        .with("x/cm.yaml", "a: 1\n");
    let d = discover(&fs, &cfg());
    let b = d.get("b").unwrap();
    assert!(!b.creates_namespace());
    assert_eq!(b.cluster().as_deref(), Some("edge"));
}

#[test]
fn excluded_folders_are_not_searched_by_component() {
    let fs = MemFs::new()
        .with("argocd/web.yaml", app_yaml("web", URL, "main", "apps/web"))
        .with(
            "fixtures/ghost.yaml",
            app_yaml("ghost", URL, "main", "apps/ghost"),
        )
        .with(
            "fixtures-live/live.yaml",
            app_yaml("live", URL, "main", "apps/live"),
        );
    let names = |c: &DiscoveryConfig| -> Vec<String> {
        discover(&fs, c).apps.into_iter().map(|a| a.name).collect()
    };
    assert_eq!(names(&cfg()), vec!["ghost", "live", "web"]);
    let excluding = DiscoveryConfig {
        exclude: vec![RepoPath::new("fixtures").unwrap()],
        ..cfg()
    };
    // `fixtures-live` shares a string prefix with `fixtures` but is another folder.
    assert_eq!(names(&excluding), vec!["live", "web"]);
}

#[test]
fn exclusions_are_read_from_the_settings_file() {
    let fs = MemFs::new().with(
        ".capstan.yaml",
        "discovery:\n  exclude: [worker/tests, ../outside, tests/fixtures]\n",
    );
    let got = crate::settings::RepoSettings::from_tree(&fs)
        .unwrap()
        .0
        .discovery_exclude();
    let got: Vec<&str> = got.iter().map(RepoPath::as_str).collect();
    assert_eq!(got, vec!["worker/tests", "tests/fixtures"]);
}

const CLUSTERS_SET: &str = "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata:\n  name: ingress\nspec:\n  goTemplate: true\n  generators:\n    - clusters:\n        selector:\n          matchLabels:\n            managed: \"true\"\n  template:\n    metadata:\n      name: 'ingress-{{.name}}'\n    spec:\n      project: p\n      source:\n        repoURL: https://github.com/example/gitops\n        targetRevision: HEAD\n        path: 'overlays/{{.metadata.labels.overlay}}'\n      destination:\n        server: '{{.server}}'\n        namespace: kube-system\n";

fn cluster_file(name: &str, server: &str, managed: bool, overlay: &str) -> String {
    format!(
        "name: {name}\nserver: {server}\nlabels:\n  managed: \"{managed}\"\n  overlay: {overlay}\n"
    )
}

/// `fs` with two managed clusters declared: `in-cluster` (overlay prod) and `edge` (staging).
fn two_managed_clusters(fs: MemFs) -> MemFs {
    fs.with(
        "argocd/clusters/in-cluster/cluster.yaml",
        cluster_file("in-cluster", "https://kubernetes.default.svc", true, "prod"),
    )
    .with(
        "argocd/clusters/edge/cluster.yaml",
        cluster_file("edge", "https://edge.example.com:6443", true, "staging"),
    )
}

#[test]
fn a_clusters_generator_expands_over_the_declared_clusters_it_selects() {
    let fs = two_managed_clusters(
        MemFs::new()
            .with("set.yaml", CLUSTERS_SET)
            .with("overlays/prod/cm.yaml", "a: 1\n")
            .with("overlays/staging/cm.yaml", "a: 1\n"),
    )
    .with(
        "argocd/clusters/lab/cluster.yaml",
        cluster_file("lab", "https://lab.example.com:6443", false, "prod"),
    );
    let d = discover(&fs, &cfg());
    assert!(d.unsupported.is_empty(), "{:?}", d.unsupported);
    let names: Vec<&str> = d.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["ingress-edge", "ingress-in-cluster"]);
    let declared = declared_clusters(&fs).unwrap();
    let edge = d.get("ingress-edge").unwrap();
    assert_eq!(edge.sources[0].path.as_deref(), Some("overlays/staging"));
    // The server a generated app targets is named as declared; ArgoCD's own cluster is in-cluster.
    assert_eq!(edge.cluster_name(&declared), "edge");
    assert_eq!(
        d.get("ingress-in-cluster").unwrap().cluster_name(&declared),
        "in-cluster"
    );
}

#[test]
fn a_clusters_generator_without_declarations_or_with_expressions_is_unsupported() {
    let fs = MemFs::new().with("set.yaml", CLUSTERS_SET);
    let d = discover(&fs, &cfg());
    assert!(d.apps.is_empty());
    assert!(
        d.unsupported[0].what.contains("no cluster is declared"),
        "{:?}",
        d.unsupported
    );
    let set = CLUSTERS_SET.replace(
        "          matchLabels:\n            managed: \"true\"\n",
        "          matchExpressions:\n            - {key: managed, operator: Exists}\n",
    );
    let fs = MemFs::new().with("set.yaml", set).with(
        "argocd/clusters/a/cluster.yaml",
        cluster_file("a", "https://a:6443", true, "prod"),
    );
    let d = discover(&fs, &cfg());
    assert!(d.apps.is_empty());
    assert!(d.unsupported[0].what.contains("matchExpressions"));
    // A declaration missing its server is an error, not a cluster silently left out.
    let fs = MemFs::new()
        .with("set.yaml", CLUSTERS_SET)
        .with("argocd/clusters/a/cluster.yaml", "name: a\n");
    let d = discover(&fs, &cfg());
    assert!(d.apps.is_empty());
    assert!(
        d.unsupported[0].what.contains("without `server`"),
        "{:?}",
        d.unsupported
    );
}

/// A matrix of a git files generator and a clusters generator where both produce `name` and
/// `values`: ArgoCD keeps the first child's value of a parameter both produce (goTemplate) and
/// refuses the set when they differ (fasttemplate), so discovery must do the same.
#[test]
fn a_matrix_keeps_the_first_childs_value_of_a_shared_parameter() {
    let set = |go: bool, name: &str, chart: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata:\n  name: ops\nspec:\n  goTemplate: {go}\n  generators:\n    - matrix:\n        generators:\n          - git:\n              repoURL: {URL}\n              revision: HEAD\n              files:\n                - path: ops/*/operator.yaml\n          - clusters:\n              selector:\n                matchLabels:\n                  managed: \"true\"\n  template:\n    metadata:\n      name: '{name}'\n    spec:\n      project: p\n      source:\n        repoURL: https://charts.example.com\n        chart: {chart}\n        targetRevision: 1.0.0\n      destination:\n        server: '{{{{.server}}}}'\n        namespace: ns\n"
        )
    };
    let tree = |set: String| {
        two_managed_clusters(
            MemFs::new()
                .with("set.yaml", set)
                .with("ops/cm/operator.yaml", "name: cm\nvalues:\n  replicas: 2\n"),
        )
    };
    let fs = tree(set(
        true,
        "{{.name}}-{{.nameNormalized}}",
        "'{{.name}}-{{.values.replicas}}'",
    ));
    let d = discover(&fs, &cfg());
    assert!(d.unsupported.is_empty(), "{:?}", d.unsupported);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let got: Vec<(&str, Option<&str>, Option<&str>)> = d
        .apps
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                a.sources[0].chart.as_deref(),
                a.destination.server.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "cm-edge",
                Some("cm-2"),
                Some("https://edge.example.com:6443")
            ),
            (
                "cm-in-cluster",
                Some("cm-2"),
                Some("https://kubernetes.default.svc")
            ),
        ]
    );

    // fasttemplate: ArgoCD refuses parameters that differ between the children.
    let fs = tree(set(false, "{{name}}", "c"));
    let d = discover(&fs, &cfg());
    assert!(d.apps.is_empty(), "{:?}", d.apps);
    assert!(
        d.unsupported.iter().any(|u| u
            .what
            .contains("parameter name differs between its child generators")),
        "{:?}",
        d.unsupported
    );
}
