//! The repository's own GitOps tree: `capstan apps` finds every Application it defines (including
//! ApplicationSet-generated ones), and every app renders exactly as `kubectl kustomize` does.
//!
//! The tree is read from the repository these tests run in (the parent of this crate), or from
//! `CAPSTAN_GITOPS_TREE` when set. When the tree's folders are absent the tests print one
//! "skipped:" line and return.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use capstan_tests::repo_root;
use capstan_worker::apps::{DiscoveryConfig, RenderedApp, Snapshot};
use capstan_worker::render::{RenderConfig, Renderer, SourceKind};
use capstan_worker::repo_fs::DirFs;
use serde_json::Value;

fn tree() -> Option<PathBuf> {
    let root = std::env::var_os("CAPSTAN_GITOPS_TREE")
        .map(PathBuf::from)
        .unwrap_or_else(repo_root);
    if root.join("argocd").is_dir() && root.join("applications").is_dir() {
        Some(root)
    } else {
        println!(
            "skipped: no GitOps tree (argocd/, applications/) in {}",
            root.display()
        );
        None
    }
}

fn config(root: &Path) -> DiscoveryConfig {
    capstan_tests::gitops_discovery_config(root)
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "node_modules" {
                yaml_files(&path, out);
            }
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push(path);
        }
    }
}

fn glob(p: &str) -> globset::GlobMatcher {
    globset::GlobBuilder::new(p)
        .literal_separator(true)
        .build()
        .unwrap()
        .compile_matcher()
}

fn rel_dirs(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() && !name.starts_with('.') && name != "target" {
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            rel_dirs(root, &p, out);
        }
    }
}

/// How many Applications a generator yields, computed here independently of the discovery code.
fn generator_count(root: &Path, g: &Value) -> usize {
    if let Some(children) = g["matrix"]["generators"].as_array() {
        return children.iter().map(|c| generator_count(root, c)).product();
    }
    if let Some(list) = g.get("list") {
        return list["elements"].as_array().map_or(0, Vec::len);
    }
    if let Some(clusters) = g.get("clusters") {
        // The declared clusters whose labels include every matchLabels pair.
        let want = clusters["selector"]["matchLabels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let m = glob(capstan_worker::apps::CLUSTER_FILES);
        let mut files = Vec::new();
        yaml_files(root, &mut files);
        return files
            .iter()
            .filter(|p| m.is_match(p.strip_prefix(root).unwrap().to_string_lossy().as_ref()))
            .filter(|p| {
                let text = std::fs::read_to_string(p).unwrap();
                let doc = capstan_worker::yaml::parse_documents(&text, "cluster").unwrap();
                want.iter().all(|(k, v)| doc[0]["labels"][k] == *v)
            })
            .count();
    }
    let git = &g["git"];
    let mut dirs = Vec::new();
    rel_dirs(root, root, &mut dirs);
    let mut n = 0;
    if let Some(ds) = git["directories"].as_array() {
        let inc: Vec<_> = ds
            .iter()
            .filter(|d| d["exclude"] != true)
            .map(|d| glob(d["path"].as_str().unwrap()))
            .collect();
        let exc: Vec<_> = ds
            .iter()
            .filter(|d| d["exclude"] == true)
            .map(|d| glob(d["path"].as_str().unwrap()))
            .collect();
        n += dirs
            .iter()
            .filter(|d| {
                inc.iter().any(|g| g.is_match(d.as_str()))
                    && !exc.iter().any(|g| g.is_match(d.as_str()))
            })
            .count();
    }
    if let Some(fs) = git["files"].as_array() {
        let mut files = Vec::new();
        yaml_files(root, &mut files);
        for f in fs {
            let m = glob(f["path"].as_str().unwrap());
            n += files
                .iter()
                .filter(|p| m.is_match(p.strip_prefix(root).unwrap().to_string_lossy().as_ref()))
                .count();
        }
    }
    n
}

/// `kubectl kustomize DIR`, which must succeed.
fn kubectl_kustomize(root: &Path, dir: &str, app: &str) -> std::process::Output {
    let o = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(root.join(dir))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{app}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

#[test]
fn apps_lists_every_application_the_tree_defines() {
    let Some(root) = tree() else { return };
    let fs = DirFs::new(&root).unwrap();
    let renderer = Renderer::new(RenderConfig::default());
    let snap = Snapshot::build(&fs, &config(&root), &renderer);
    assert!(
        snap.discovery.errors.is_empty(),
        "{:?}",
        snap.discovery.errors
    );
    assert!(
        snap.discovery.unsupported.is_empty(),
        "{:?}",
        snap.discovery.unsupported
    );

    // The GitOps tree is these folders (DESIGN.md §7); fixtures elsewhere are excluded from
    // discovery by .capstan.yaml, so the independent count reads only the tree.
    let mut files = Vec::new();
    for dir in ["bootstrap", "argocd", "infrastructure", "applications"] {
        if root.join(dir).is_dir() {
            yaml_files(&root.join(dir), &mut files);
        }
    }
    let mut expected_plain = BTreeMap::new();
    let mut generated_expected = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        if !text.contains("argoproj.io") {
            continue;
        }
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for doc in capstan_worker::yaml::parse_documents(&text, &rel).unwrap() {
            match doc["kind"].as_str() {
                Some("Application") => {
                    let name = doc["metadata"]["name"].as_str().unwrap().to_string();
                    let path = doc["spec"]["source"]["path"].as_str().map(str::to_string);
                    expected_plain.insert(name, (rel.clone(), path));
                }
                Some("ApplicationSet") => {
                    let set = doc["metadata"]["name"].as_str().unwrap();
                    let want: usize = doc["spec"]["generators"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|g| generator_count(&root, g))
                        .sum();
                    let got = snap
                        .discovery
                        .apps
                        .iter()
                        .filter(|a| a.generated_by.as_deref() == Some(set))
                        .count();
                    assert_eq!(got, want, "ApplicationSet {set} in {rel}");
                    assert!(want > 0, "ApplicationSet {set} generates nothing");
                    generated_expected += want;
                }
                _ => {}
            }
        }
    }
    for (name, (file, path)) in &expected_plain {
        let app = snap
            .app(name)
            .unwrap_or_else(|| panic!("{name} from {file} not listed"));
        assert_eq!(&app.sources[0].path, path, "{name}");
        if let Some(p) = path {
            assert!(
                root.join(p).is_dir(),
                "{name}: source path {p} does not exist"
            );
        }
    }
    assert_eq!(
        snap.discovery.apps.len(),
        expected_plain.len() + generated_expected,
        "{:?}",
        snap.discovery
            .apps
            .iter()
            .map(|a| &a.name)
            .collect::<Vec<_>>()
    );
    // Every app rendered from this repository has a computable input graph.
    for (name, inputs) in &snap.inputs {
        assert!(inputs.is_ok(), "{name}: {inputs:?}");
    }
    println!("{} apps listed", snap.discovery.apps.len());
}

#[test]
fn render_of_every_app_equals_kubectl_kustomize() {
    let Some(root) = tree() else { return };
    if capstan_worker::render::exec::which("kubectl").is_none() {
        println!("skipped: kubectl is not on PATH");
        return;
    }
    let fs = DirFs::new(&root).unwrap();
    let renderer = Renderer::new(RenderConfig::default());
    let snap = Snapshot::build(&fs, &config(&root), &renderer);
    let mut compared = 0;
    for app in &snap.discovery.apps {
        let sources: Vec<_> = app.local_sources().collect();
        if sources.is_empty() {
            println!("not rendered locally (listed with reason): {}", app.name);
            continue;
        }
        // kubectl kustomize is the oracle for kustomize sources as they are in the repository;
        // other source types and Application-level kustomize options are reported, not compared.
        let plain = sources
            .iter()
            .all(|s| matches!(&s.kind, SourceKind::Kustomize(o) if o.is_empty()));
        if !plain {
            println!(
                "not compared with kubectl kustomize ({} source or Application options): {}",
                sources
                    .iter()
                    .map(|s| s.kind.name())
                    .collect::<Vec<_>>()
                    .join("+"),
                app.name
            );
            continue;
        }
        let r = snap.render(&renderer, &app.name).unwrap();
        let RenderedApp::Rendered(out) = &r.outcome else {
            panic!("{}: {:?}", app.name, r.outcome);
        };
        let mut expected = String::new();
        for s in &sources {
            let o = kubectl_kustomize(&root, s.path.as_str(), &app.name);
            if !expected.is_empty() {
                expected.push_str("---\n");
            }
            expected.push_str(&String::from_utf8(o.stdout).unwrap());
        }
        assert_eq!(&*out.yaml, expected, "{}", app.name);
        compared += 1;
    }
    assert!(compared > 0);
    println!("{compared} apps render exactly as kubectl kustomize");
}

/// Every per-cluster app is listed once per managed cluster, named for it, with the cluster it
/// targets as `capstan apps` names it and the source its labels choose; every generated app's
/// source builds with kustomize.
#[test]
fn apps_lists_each_per_cluster_app_once_per_managed_cluster() {
    let Some(root) = tree() else { return };
    let fs = DirFs::new(&root).unwrap();
    let renderer = Renderer::new(RenderConfig::default());
    let snap = Snapshot::build(&fs, &config(&root), &renderer);
    let declared = capstan_worker::apps::declared_clusters(&fs).unwrap();
    let managed: Vec<_> = declared
        .iter()
        .filter(|c| c.labels.get("capstan.dev/managed") == Some(&Value::from("true")))
        .collect();
    assert!(managed.len() >= 2, "{declared:?}");
    let per_cluster = ["security", "storage", "rbac", "ingress", "monitoring"];
    for c in &managed {
        for area in per_cluster {
            let name = format!("{area}-{}", c.name);
            let apps: Vec<_> = snap
                .discovery
                .apps
                .iter()
                .filter(|a| a.name == name)
                .collect();
            assert_eq!(apps.len(), 1, "{name}");
            assert_eq!(apps[0].cluster_name(&declared), c.name, "{name}");
        }
        let ingress = snap.app(&format!("ingress-{}", c.name)).unwrap();
        let overlay = c.labels["ingressOverlay"].as_str().unwrap();
        assert_eq!(
            ingress.sources[0].path.as_deref(),
            Some(format!("infrastructure/overlays/{overlay}/ingress").as_str())
        );
        let ops: Vec<_> = snap
            .discovery
            .apps
            .iter()
            .filter(|a| a.generated_by.as_deref() == Some("operators"))
            .filter(|a| a.cluster_name(&declared) == c.name)
            .collect();
        assert!(ops.len() >= 3, "{}: {ops:?}", c.name);
        assert!(
            ops.iter()
                .all(|a| a.name.ends_with(&format!("-{}", c.name)))
        );
    }
    for unmanaged in declared.iter().filter(|c| !managed.contains(c)) {
        assert!(
            snap.discovery
                .apps
                .iter()
                .all(|a| a.cluster_name(&declared) != unmanaged.name),
            "{} is not managed",
            unmanaged.name
        );
    }
    // Every generated app's kustomize source in this repository builds with kustomize (chart
    // sources come from chart repositories: render_gitops_charts.rs covers them).
    let mut built = 0;
    for app in snap
        .discovery
        .apps
        .iter()
        .filter(|a| a.generated_by.is_some())
    {
        for s in app
            .local_sources()
            .filter(|s| matches!(s.kind, SourceKind::Kustomize(_)))
        {
            built += 1;
            kubectl_kustomize(&root, s.path.as_str(), &app.name);
        }
    }
    assert!(built >= managed.len() * per_cluster.len(), "{built}");
}

/// The high-availability overlay (`applications/system/capstan-ha`): two replicas rolled one at
/// a time, PostgreSQL from a Secret instead of the SQLite volume, secrets every replica must
/// share required rather than generated per replica, a disruption budget that matches the pods,
/// and the tree's own policies pass on what it renders.
#[test]
fn the_ha_overlay_runs_two_replicas_on_postgres_and_passes_the_policies() {
    use capstan_worker::policy::findings::Severity;
    use capstan_worker::policy::{AppInput, PolicyEngine, PolicySources};
    use capstan_worker::render::{KustomizeOptions, RenderSource};
    use capstan_worker::repo_fs::RepoPath;
    let root = repo_root();
    let fs = DirFs::new(&root).unwrap();
    let out = Renderer::new(RenderConfig::default())
        .render(
            &fs,
            &RenderSource {
                path: RepoPath::new("applications/system/capstan-ha").unwrap(),
                kind: SourceKind::Kustomize(KustomizeOptions::default()),
                namespace: Some("capstan".into()),
                release_name: "capstan".into(),
            },
        )
        .unwrap();
    let of_kind = |k: &str| -> Vec<&Value> {
        out.objects
            .iter()
            .filter(|o| o.id.kind == k)
            .map(|o| &o.value)
            .collect()
    };
    assert!(
        of_kind("PersistentVolumeClaim").is_empty(),
        "no SQLite volume"
    );
    let deploy = of_kind("Deployment")[0];
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(
        deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    let env = deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    let var = |name: &str| env.iter().find(|e| e["name"] == name).unwrap();
    let db = var("CAPSTAN_DATABASE_URL");
    assert!(db.get("value").is_none(), "{db}");
    assert_eq!(db["valueFrom"]["secretKeyRef"]["name"], "capstan-database");
    for shared in ["CAPSTAN_WEBHOOK_SECRET", "CAPSTAN_DASHBOARD_TOKEN"] {
        assert_eq!(
            var(shared)["valueFrom"]["secretKeyRef"]["optional"],
            false,
            "{shared}"
        );
    }
    // Readiness fails while draining, and the drain fits in the termination grace period.
    let drain: u64 = var("CAPSTAN_DRAIN_DELAY_SECS")["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(drain > 0);
    let probe = &deploy["spec"]["template"]["spec"]["containers"][0]["readinessProbe"];
    assert_eq!(probe["httpGet"]["path"], "/readyz");
    assert!(probe["periodSeconds"].as_u64().unwrap() < drain, "{probe}");
    let grace = deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        grace > drain + 30,
        "drain {drain} s + shutdown grace 30 s within {grace} s"
    );
    let volumes = deploy["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let data = volumes.iter().find(|v| v["name"] == "data").unwrap();
    assert!(data.get("persistentVolumeClaim").is_none() && data.get("emptyDir").is_some());
    let pdb = of_kind("PodDisruptionBudget")[0];
    let pods = &deploy["spec"]["template"]["metadata"]["labels"];
    for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&pods[k], v, "the budget selects the pods");
    }

    let engine = PolicyEngine::new(&PolicySources::read(&fs).unwrap()).unwrap();
    let report = engine
        .check(&[AppInput {
            name: "capstan-ha".into(),
            objects: out.objects.clone(),
            destination_namespace: Some("capstan".into()),
            ..AppInput::default()
        }])
        .unwrap();
    let denies: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Deny)
        // Checked alone, no app creates the namespace: the security app does in the tree.
        .filter(|f| f.rule != "namespace-not-created")
        .map(|f| format!("{} {}", f.rule, f.message))
        .collect();
    assert!(denies.is_empty(), "{denies:#?}");
}
