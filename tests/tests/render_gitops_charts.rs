//! This repository's own Helm apps (issue 17 item 7): the operators the ApplicationSet makes of
//! `infrastructure/operators/*/operator.yaml`, and the k3s `HelmChart`s / `HelmChartConfig`s
//! (ArgoCD, Traefik), rendered with the real Helm engine from a chart cache filled by
//! `bootstrap/scripts/vendor-charts` (`CAPSTAN_CHART_CACHE_DIR`, default `target/chart-cache`), never
//! from the network. A chart the cache does not hold is listed "not rendered: chart not cached";
//! the list must name every Helm app of the tree, found here independently of discovery. What is
//! rendered goes through Capstan's Pod Security rules.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use capstan_tests::{gitops_discovery_config, repo_root};
use capstan_worker::apps::{DiscoveryConfig, RenderedApp, Snapshot};
use capstan_worker::policy::findings::Severity;
use capstan_worker::policy::{AppInput, PolicyEngine, PolicySources};
use capstan_worker::render::charts::ChartSettings;
use capstan_worker::render::source::HelmOptions;
use capstan_worker::render::{RenderConfig, RenderOutput, Renderer, SourceKind};
use capstan_worker::repo_fs::{DirFs, MemFs};
use serde_json::Value;

/// How one Helm app fared.
#[derive(Debug)]
enum Outcome {
    Rendered(Box<RenderOutput>),
    NotRendered(String),
}

fn cache_dir() -> PathBuf {
    std::env::var_os("CAPSTAN_CHART_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/chart-cache"))
}

fn yaml_docs(root: &Path, dirs: &[&str]) -> Vec<(String, Value)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    for d in dirs {
        if root.join(d).is_dir() {
            walk(&root.join(d), &mut files);
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&f).unwrap();
        if let Ok(docs) = capstan_worker::yaml::parse_documents(&text, &rel) {
            out.extend(docs.into_iter().map(|d| (rel.clone(), d)));
        }
    }
    out
}

/// The Helm apps of the tree by name, found from the files themselves: one per operator.yaml
/// with a `chart`, one per k3s HelmChart or HelmChartConfig.
fn helm_apps_in_files(root: &Path) -> Vec<String> {
    // Operators are deployed once per managed cluster (`<operator>-<cluster>`), as the cluster
    // declarations say.
    let managed: Vec<String> = yaml_docs(root, &["argocd/clusters"])
        .into_iter()
        .filter(|(rel, doc)| {
            rel.ends_with("/cluster.yaml") && doc["labels"]["capstan.dev/managed"] == "true"
        })
        .map(|(_, doc)| doc["name"].as_str().unwrap().to_string())
        .collect();
    assert!(!managed.is_empty(), "no managed cluster is declared");
    let mut names = Vec::new();
    for (rel, doc) in yaml_docs(root, &["infrastructure", "argocd", "bootstrap"]) {
        if rel.ends_with("/operator.yaml") && doc.get("chart").is_some() {
            let name = doc["name"].as_str().unwrap();
            names.extend(managed.iter().map(|c| format!("{name}-{c}")));
        }
        if matches!(doc["kind"].as_str(), Some("HelmChart" | "HelmChartConfig"))
            && doc["apiVersion"]
                .as_str()
                .is_some_and(|a| a.starts_with("helm.cattle.io/"))
        {
            names.push(format!("k3s:{}", doc["metadata"]["name"].as_str().unwrap()));
        }
    }
    names.sort();
    names
}

fn outcome(snap: &Snapshot<'_>, r: &Renderer, name: &str) -> Outcome {
    match snap.render(r, name).unwrap().outcome {
        RenderedApp::Rendered(out) => Outcome::Rendered(Box::new(out)),
        RenderedApp::NotChecked { reason } if reason.contains("not cached") => {
            Outcome::NotRendered("chart not cached".into())
        }
        other => panic!("{name}: neither rendered nor a chart missing from the cache: {other:?}"),
    }
}

/// A k3s HelmChart as the Application ArgoCD would make of the same chart and values.
fn k3s_application(doc: &Value) -> Option<String> {
    let spec = &doc["spec"];
    let (repo, chart, version) = (
        spec["repo"].as_str()?,
        spec["chart"].as_str()?,
        spec["version"].as_str()?,
    );
    let name = doc["metadata"]["name"].as_str()?;
    let values = serde_json::to_string(spec["valuesContent"].as_str().unwrap_or_default()).ok()?;
    let namespace = spec["targetNamespace"]
        .as_str()
        .or(doc["metadata"]["namespace"].as_str())?;
    Some(format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\nspec:\n  \
         source:\n    repoURL: {repo}\n    chart: {chart}\n    targetRevision: {version}\n    \
         helm:\n      values: {values}\n  destination:\n    namespace: {namespace}\n"
    ))
}

#[test]
fn every_helm_app_of_the_tree_is_rendered_from_the_cache_or_listed_as_not_cached() {
    let root = repo_root();
    let (table, problems) = helm_apps(&root, &cache_dir());
    assert_eq!(
        table.keys().cloned().collect::<Vec<_>>(),
        helm_apps_in_files(&root),
        "every Helm app of the tree, listed once"
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A cache holding, under cert-manager's pinned key, a chart whose pod has no security
/// context: the app is rendered from the cache and Pod Security refuses it.
#[test]
fn a_cached_chart_is_rendered_and_its_pods_judged() {
    let root = repo_root();
    let tmp = tempfile::tempdir().unwrap();
    let chart = tmp.path().join("pack/cert-manager");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: cert-manager\nversion: v1.19.1\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/deploy.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n  \
         namespace: {{ .Release.Namespace }}\nspec:\n  selector:\n    matchLabels: {app: x}\n  \
         template:\n    metadata:\n      labels: {app: x}\n    spec:\n      containers:\n      \
         - name: x\n        image: registry.example/x@sha256:{{ repeat 64 \"a\" }}\n",
    )
    .unwrap();
    let tgz = tmp.path().join("c.tgz");
    let ok = std::process::Command::new("tar")
        .arg("czf")
        .arg(&tgz)
        .arg("-C")
        .arg(tmp.path().join("pack"))
        .arg("cert-manager")
        .status()
        .unwrap();
    assert!(ok.success());
    let archive = std::fs::read(&tgz).unwrap();
    let hex = |b: &[u8]| -> String {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b)
            .as_ref()
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    // The layout vendor-charts writes and the chart fetcher reads.
    let cache = tmp.path().join("cache");
    let digest = hex(&archive);
    std::fs::create_dir_all(cache.join("sha256")).unwrap();
    std::fs::create_dir_all(cache.join("refs")).unwrap();
    std::fs::write(cache.join("sha256").join(format!("{digest}.tgz")), &archive).unwrap();
    std::fs::write(
        cache
            .join("refs")
            .join(hex(b"https://charts.jetstack.io\0cert-manager\0v1.19.1")),
        &digest,
    )
    .unwrap();
    let (table, problems) = helm_apps(&root, &cache);
    assert!(
        matches!(table["cert-manager-in-cluster"].0, Outcome::Rendered(_)),
        "{:?}",
        table["cert-manager-in-cluster"]
    );
    assert!(
        matches!(
            table["sealed-secrets-in-cluster"].0,
            Outcome::NotRendered(_)
        ),
        "{:?}",
        table["sealed-secrets-in-cluster"]
    );
    for rule in [
        "pss-run-as-non-root",
        "pss-privilege-escalation",
        "pss-seccomp",
    ] {
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("cert-manager-in-cluster: ") && p.contains(rule)),
            "{rule}: {problems:#?}"
        );
    }
}

type Table = BTreeMap<String, (Outcome, Option<String>)>;

/// Every Helm app of the tree at `root` rendered from the chart cache `cache` (or why not), and
/// the Pod Security denials of those rendered.
fn helm_apps(root: &Path, cache: &Path) -> (Table, Vec<String>) {
    let expected = helm_apps_in_files(root);
    for known in [
        "cert-manager",
        "kube-prometheus-stack",
        "sealed-secrets",
        "k3s:argo-cd",
        "k3s:traefik",
    ] {
        assert!(
            expected
                .iter()
                .any(|e| e == known || e.starts_with(&format!("{known}-"))),
            "{known} not found in {expected:?}"
        );
    }

    // Every chart repository the tree names may be read, from the cache only.
    let docs = yaml_docs(root, &["infrastructure", "argocd", "bootstrap"]);
    let mut repositories: Vec<String> = docs
        .iter()
        .filter_map(|(_, d)| {
            d.pointer("/chart/repository")
                .or(d.pointer("/spec/repo"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    repositories.sort();
    repositories.dedup();
    let renderer = Renderer::new(RenderConfig {
        helm_binary: Some(capstan_worker::render::helm::test_binary().unwrap()),
        charts: ChartSettings {
            repositories,
            cache_dir: Some(cache.to_path_buf()),
            offline: true,
            ..ChartSettings::default()
        },
        ..RenderConfig::default()
    });

    let mut table = Table::new();
    // ArgoCD apps with a chart source, as discovery finds them.
    let fs = DirFs::new(root).unwrap();
    let snap = Snapshot::build(&fs, &gitops_discovery_config(root), &renderer);
    for app in &snap.discovery.apps {
        let chart_source = app.sources.iter().any(|s| {
            matches!(
                s.render.as_ref().map(|r| &r.kind),
                Some(SourceKind::Helm(HelmOptions { chart: Some(_), .. }))
            )
        });
        if chart_source {
            table.insert(
                app.name.clone(),
                (
                    outcome(&snap, &renderer, &app.name),
                    app.destination.namespace.clone(),
                ),
            );
        }
    }
    // k3s charts: a HelmChart pins its chart; a HelmChartConfig overlays values on a chart k3s
    // bundles, whose version the tree does not name.
    for (_, doc) in &docs {
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        match doc["kind"].as_str() {
            Some("HelmChart") => {
                let app = k3s_application(doc).expect("a HelmChart with repo, chart and version");
                let mem = MemFs::new().with("app.yaml", &app);
                let cfg = DiscoveryConfig::default();
                let s = Snapshot::build(&mem, &cfg, &renderer);
                let ns = doc["spec"]["targetNamespace"].as_str().map(str::to_string);
                table.insert(format!("k3s:{name}"), (outcome(&s, &renderer, name), ns));
            }
            Some("HelmChartConfig") => {
                table.insert(
                    format!("k3s:{name}"),
                    (
                        Outcome::NotRendered(
                            "chart bundled with k3s (its version is not in the tree)".into(),
                        ),
                        None,
                    ),
                );
            }
            _ => {}
        }
    }

    // Pod Security over what was rendered, with the tree's own policies.
    let policies = PolicySources::read(&fs).unwrap();
    let engine = PolicyEngine::new(&policies).unwrap();
    let mut problems = Vec::new();
    for (name, (o, ns)) in &table {
        match o {
            Outcome::Rendered(out) => {
                let report = engine
                    .check(&[AppInput {
                        name: name.clone(),
                        objects: out.objects.clone(),
                        destination_namespace: ns.clone(),
                        ..AppInput::default()
                    }])
                    .unwrap();
                let pss: Vec<String> = report
                    .findings
                    .iter()
                    .filter(|f| f.rule.starts_with("pss-") && f.severity == Severity::Deny)
                    .map(|f| format!("{name}: {} {}", f.rule, f.message))
                    .collect();
                println!(
                    "{name}: rendered ({} objects), {} Pod Security denials",
                    out.objects.len(),
                    pss.len()
                );
                problems.extend(pss);
            }
            Outcome::NotRendered(why) => println!("{name}: not rendered: {why}"),
        }
    }
    (table, problems)
}
