//! Affected-app rendering in a generated monorepo of 200 apps (override with CAPSTAN_BENCH_APPS).
//!
//! Four shared bases, each included by a quarter of the apps; the change under test edits one
//! shared base. Measured, in one run:
//! - capstan, cold cache: discover apps at base and head, find the affected apps, render them at
//!   both commits;
//! - capstan, warm cache: the same again with the cache a previous run left on disk;
//! - `kubectl kustomize` on every app at both commits (what "render everything" costs), on the
//!   same number of threads.
//!
//! Run: `cargo bench -p capstan-worker --bench render_fanout`. It measures and prints; it asserts
//! nothing about time.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use capstan_worker::apps::affected::affected_apps;
use capstan_worker::apps::{DiscoveryConfig, Snapshot};
use capstan_worker::git::GitRepo;
use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::render::{RenderConfig, Renderer};

const URL: &str = "https://example.com/monorepo.git";
const TIERS: usize = 4;

fn base_files(tier: usize, image_tag: &str) -> Vec<(String, String)> {
    vec![
        (
            format!("shared/tier-{tier}/kustomization.yaml"),
            "resources:\n- deployment.yaml\n- service.yaml\nlabels:\n- pairs:\n    tier: shared\n"
                .to_string(),
        ),
        (
            format!("shared/tier-{tier}/deployment.yaml"),
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: registry.local/web:{image_tag}\n        ports:\n        - containerPort: 8080\n        resources:\n          requests: {{cpu: 10m, memory: 32Mi}}\n"
            ),
        ),
        (
            format!("shared/tier-{tier}/service.yaml"),
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports:\n  - port: 80\n    targetPort: 8080\n"
                .to_string(),
        ),
    ]
}

fn app_files(i: usize) -> Vec<(String, String)> {
    let tier = i % TIERS;
    vec![
        (
            format!("apps/app-{i:03}/kustomization.yaml"),
            format!(
                "namespace: app-{i:03}\nnamePrefix: app-{i:03}-\nresources:\n- ../../shared/tier-{tier}\npatches:\n- path: replicas.yaml\nconfigMapGenerator:\n- name: settings\n  literals:\n  - APP=app-{i:03}\n"
            ),
        ),
        (
            format!("apps/app-{i:03}/replicas.yaml"),
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {}\n",
                1 + i % 3
            ),
        ),
    ]
}

const APPSET: &str = "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata:\n  name: apps\nspec:\n  goTemplate: true\n  generators:\n  - git:\n      repoURL: https://example.com/monorepo.git\n      revision: HEAD\n      directories:\n      - path: apps/*\n  template:\n    metadata:\n      name: '{{.path.basename}}'\n    spec:\n      project: default\n      source:\n        repoURL: https://example.com/monorepo.git\n        targetRevision: HEAD\n        path: '{{.path.path}}'\n      destination:\n        namespace: '{{.path.basename}}'\n";

fn write_checkout(dir: &Path, files: &[(String, String)]) {
    for (p, c) in files {
        let path = dir.join(p);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).ok();
        }
        std::fs::write(path, c).ok();
    }
}

fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `kubectl kustomize` on every app folder of a checkout, on `threads()` threads.
fn kubectl_all(checkout: &Path, apps: usize) -> usize {
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads() {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= apps {
                        break;
                    }
                    let ok = Command::new("kubectl")
                        .arg("kustomize")
                        .arg(checkout.join(format!("apps/app-{i:03}")))
                        .output()
                        .map(|o| o.status.success())
                        .unwrap_or(false);
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    failures.into_inner()
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

fn main() {
    let apps: usize = std::env::var("CAPSTAN_BENCH_APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("no temp dir: {e}");
            return;
        }
    };
    let repo_dir = tmp.path().join("repo");
    let Ok(builder) = RepoBuilder::init(&repo_dir) else {
        eprintln!("cannot create the repository");
        return;
    };
    let mut base_tree: Vec<(String, String)> =
        vec![("argocd/apps.yaml".to_string(), APPSET.to_string())];
    for t in 0..TIERS {
        base_tree.extend(base_files(t, "1.0.0"));
    }
    for i in 0..apps {
        base_tree.extend(app_files(i));
    }
    let changes: Vec<Change<'_>> = base_tree
        .iter()
        .map(|(p, c)| Change::Write(p, c.as_bytes()))
        .collect();
    let (Ok(base), Ok(head)) = (builder.commit("base", &changes), {
        let changed = base_files(0, "1.1.0");
        let (p, c) = &changed[1];
        builder
            .commit("bump shared base", &[Change::Write(p, c.as_bytes())])
            .ok()
            .ok_or(())
    }) else {
        eprintln!("cannot write commits");
        return;
    };
    let mut head_tree = base_tree.clone();
    for (p, c) in base_files(0, "1.1.0") {
        if let Some(e) = head_tree.iter_mut().find(|(q, _)| *q == p) {
            e.1 = c;
        }
    }
    let Ok(repo) = GitRepo::open(&repo_dir) else {
        eprintln!("cannot open the repository");
        return;
    };
    let cfg = DiscoveryConfig {
        repo_urls: vec![URL.into()],
        default_branch: "main".into(),
        ..Default::default()
    };
    let cache = tmp.path().join("cache");

    let capstan_run = |label: &str| -> Duration {
        let started = Instant::now();
        let renderer = Renderer::new(RenderConfig {
            cache_dir: Some(cache.clone()),
            ..RenderConfig::default()
        });
        let (Ok(bfs), Ok(hfs)) = (repo.tree_fs(base), repo.tree_fs(head)) else {
            eprintln!("cannot read commits");
            return Duration::ZERO;
        };
        let b = Snapshot::build(&bfs, &cfg, &renderer);
        let h = Snapshot::build(&hfs, &cfg, &renderer);
        let affected: Vec<String> = affected_apps(&b, &h).into_iter().map(|a| a.name).collect();
        let before = b.render_many(&renderer, &affected);
        let after = h.render_many(&renderer, &affected);
        let elapsed = started.elapsed();
        let failed = before
            .iter()
            .chain(after.iter())
            .flatten()
            .filter(|r| r.objects().is_empty())
            .count();
        println!(
            "capstan {label:<5}: {} apps discovered, {} affected, {} backend runs, {} cache hits, {failed} failed: {}",
            h.discovery.apps.len(),
            affected.len(),
            renderer.stats.backend_runs.load(Ordering::Relaxed),
            renderer.stats.cache_hits.load(Ordering::Relaxed),
            secs(elapsed)
        );
        elapsed
    };

    println!(
        "monorepo: {apps} apps, {TIERS} shared bases; change: one shared base (image tag); {} threads",
        threads()
    );
    let cold = capstan_run("cold");
    let warm = capstan_run("warm");

    let base_checkout = tmp.path().join("checkout-base");
    let head_checkout = tmp.path().join("checkout-head");
    write_checkout(&base_checkout, &base_tree);
    write_checkout(&head_checkout, &head_tree);
    let started = Instant::now();
    let failures = kubectl_all(&base_checkout, apps) + kubectl_all(&head_checkout, apps);
    let all = started.elapsed();
    println!(
        "kubectl kustomize, every app at base and head: {} renders, {failures} failed: {}",
        2 * apps,
        secs(all)
    );
    let ratio = |d: Duration| all.as_secs_f64() / d.as_secs_f64().max(1e-9);
    println!(
        "ratio (kubectl every app / capstan): cold {:.1}x, warm {:.1}x",
        ratio(cold),
        ratio(warm)
    );
}
