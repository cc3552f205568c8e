//! 50 Helm apps re-rendered on a values change, end to end, with the chart cache warm (issue 17).
//!
//! Each app is a multi-source Application: the chart `web` 1.0.0 from an HTTP chart repository
//! served on loopback, value files `$values/values/common.yaml` and `$values/values/app-NN.yaml`
//! from this repository. The base commit is rendered first (that fills the chart cache and the
//! render cache); the change edits `values/common.yaml`. Measured: discovery of the head commit,
//! the affected apps (all 50, by their `$values` input) and their head renders, through the
//! tests' helm (a real `helm` on `PATH`, else Helm v4's engine behind `tests/support/helm`).
//!
//! Run: `cargo bench --bench helm_values` (CAPSTAN_BENCH_APPS overrides 50). It measures and
//! prints; it asserts only that every app rendered and that the chart was fetched once.
#![allow(clippy::unwrap_used)]

#[path = "../tests/chart_support/mod.rs"]
mod chart_support;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use capstan_worker::apps::affected::affected_apps;
use capstan_worker::apps::{DiscoveryConfig, RenderedApp, Snapshot};
use capstan_worker::git::GitRepo;
use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::render::charts::ChartSettings;
use capstan_worker::render::{RenderConfig, Renderer};
use sha2::Digest;

const URL: &str = "https://example.com/monorepo.git";

fn main() {
    let n: usize = std::env::var("CAPSTAN_BENCH_APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let tmp = tempfile::tempdir().unwrap();
    let tgz = chart_support::archive(
        tmp.path(),
        "web",
        &[
            ("Chart.yaml", "apiVersion: v2\nname: web\nversion: 1.0.0\n"),
            ("values.yaml", "replicas: 1\nimage: web:1\n"),
            (
                "templates/deploy.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  \
                 replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels: {app: {{ .Release.Name }}}\n  \
                 template:\n    metadata:\n      labels: {app: {{ .Release.Name }}}\n    spec:\n      \
                 containers:\n      - name: web\n        image: {{ .Values.image }}\n",
            ),
        ],
    );
    let index = format!(
        "apiVersion: v1\nentries:\n  web:\n  - name: web\n    version: 1.0.0\n    urls: [web-1.0.0.tgz]\n    digest: {}\n",
        hex::encode(sha2::Sha256::digest(&tgz))
    );
    let server = chart_support::serve(BTreeMap::from([
        ("index.yaml".to_string(), index.into_bytes()),
        ("web-1.0.0.tgz".to_string(), tgz),
    ]));

    let dir = tmp.path().join("repo");
    let b = RepoBuilder::init(&dir).unwrap();
    let mut files: Vec<(String, String)> =
        vec![("values/common.yaml".into(), "image: web:1\n".into())];
    for i in 0..n {
        files.push((
            format!("apps/app-{i:02}.yaml"),
            format!(
                "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: app-{i:02}\nspec:\n  \
                 sources:\n  - repoURL: {}\n    chart: web\n    targetRevision: 1.0.0\n    helm:\n      \
                 valueFiles: [$values/values/common.yaml, $values/values/app-{i:02}.yaml]\n  \
                 - repoURL: {URL}\n    ref: values\n  destination:\n    namespace: app-{i:02}\n",
                server.url
            ),
        ));
        files.push((
            format!("values/app-{i:02}.yaml"),
            format!("replicas: {}\n", 1 + i % 3),
        ));
    }
    let changes: Vec<Change<'_>> = files
        .iter()
        .map(|(p, c)| Change::Write(p, c.as_bytes()))
        .collect();
    let base = b.commit("apps", &changes).unwrap();
    let head = b
        .commit(
            "new image",
            &[Change::Write("values/common.yaml", b"image: web:2\n")],
        )
        .unwrap();
    let git = GitRepo::open(&dir).unwrap();
    let cfg = DiscoveryConfig {
        repo_urls: vec![URL.into()],
        ..DiscoveryConfig::default()
    };
    let r = Renderer::new(RenderConfig {
        helm_binary: Some(capstan_worker::render::helm::test_binary().unwrap()),
        charts: ChartSettings {
            repositories: vec![server.url.clone()],
            cache_dir: Some(tmp.path().join("charts")),
            ..ChartSettings::default()
        },
        ..RenderConfig::default()
    });

    // Warm-up: the base commit, as the previous push of the pull request left it.
    let bfs = git.tree_fs(base).unwrap();
    let warm = Instant::now();
    let bs = Snapshot::build(&bfs, &cfg, &r);
    let base_renders = bs.render_all(&r);
    assert!(
        base_renders
            .iter()
            .all(|a| matches!(a.outcome, RenderedApp::Rendered(_)))
    );
    println!(
        "base: {n} apps discovered and rendered (cold) in {:?}",
        warm.elapsed()
    );

    let hfs = git.tree_fs(head).unwrap();
    let t = Instant::now();
    let hs = Snapshot::build(&hfs, &cfg, &r);
    let affected: Vec<String> = affected_apps(&bs, &hs)
        .into_iter()
        .map(|a| a.name)
        .collect();
    let renders = hs.render_many(&r, &affected);
    let took = t.elapsed();
    assert_eq!(affected.len(), n, "every app reads values/common.yaml");
    assert!(
        renders
            .iter()
            .flatten()
            .all(|a| matches!(a.outcome, RenderedApp::Rendered(_)))
    );
    println!(
        "head: {} affected apps found and re-rendered in {took:?} ({:?} per app); chart requests in all: {}",
        affected.len(),
        took / n as u32,
        server.hits.load(Ordering::SeqCst)
    );
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        2,
        "index and archive, once"
    );
}
