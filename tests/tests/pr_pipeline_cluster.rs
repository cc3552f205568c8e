//! The `pr_check` handler with cluster-side checkers (a fake standing in for ArgoCD): verdicts
//! are rendered per app, an unreachable ArgoCD is reported per app and the check still completes.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use capstan_tests::pr_harness::{
    APP_ID, Auth, Harness, INSTALLATION, REPO, fanout_tree, settings_configmap,
};
use capstan_worker::forge::Forge;
use capstan_worker::forge::github::{AppKey, GitHubAuth, GitHubConfig, GitHubForge};
use capstan_worker::git::fixture::Change;
use capstan_worker::jobs::{PR_CHECK, PrCheck};
use capstan_worker::pipeline::PrCheckHandler;
use capstan_worker::render::{RenderConfig, Renderer};
use capstan_worker::report::ArgoStatus;
use capstan_worker::runner::{Metrics, Registry, Runner, RunnerConfig};
use capstan_worker::services::{
    ClusterCheck, ClusterCheckRequest, ClusterFindings, GitSource, Services,
};
use capstan_worker::store::runs::SqlRunStore;
use tokio_util::sync::CancellationToken;

/// Answers like ArgoCD for `app-000` and like an unreachable ArgoCD for every other app;
/// records what it was asked.
struct FakeArgo {
    asked: Mutex<Vec<(String, usize, Vec<String>, String)>>,
}

#[async_trait]
impl ClusterCheck for FakeArgo {
    fn name(&self) -> &'static str {
        "fake-argocd"
    }

    async fn check_app(&self, req: &ClusterCheckRequest<'_>) -> ClusterFindings {
        self.asked.lock().unwrap().push((
            req.app.to_string(),
            req.head_objects.len(),
            req.changed.iter().map(ToString::to_string).collect(),
            req.head_sha.to_string(),
        ));
        if req.app == "app-000" {
            ClusterFindings {
                argocd: Some(ArgoStatus::Reported {
                    sync: Some("OutOfSync".into()),
                    health: Some("Healthy".into()),
                    dry_run: Some("dry run: 1 synced, 0 failed".into()),
                }),
                notes: vec!["kube dry-run: 1 object accepted".into()],
                ..ClusterFindings::default()
            }
        } else {
            ClusterFindings {
                argocd: Some(ArgoStatus::Unreachable(
                    "GET /api/v1/applications/app-001: connection refused".into(),
                )),
                ..ClusterFindings::default()
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argocd_verdicts_and_unreachable_argocd_are_reported_per_app() {
    let h = Harness::start(Auth::App, &fanout_tree(2)).await;
    let head = h
        .push(
            "feature",
            &[Change::Write(
                "shared/base/settings.yaml",
                settings_configmap("debug").as_bytes(),
            )],
        )
        .to_string();
    h.open_pull(8, "feature");

    // A worker of our own, with the fake ArgoCD as its cluster checker.
    let dir = tempfile::tempdir().unwrap();
    let queue = capstan_worker::queue::open(&format!("sqlite://{}/q.db", dir.path().display()))
        .await
        .unwrap();
    let key = AppKey::from_file(
        &capstan_tests::own_fixtures().join("TEST-ONLY-github-app-key.pem"),
    )
    .unwrap();
    let forge: Arc<dyn Forge> = Arc::new(
        GitHubForge::new(GitHubConfig::new(
            h.fake.api_url().parse().unwrap(),
            GitHubAuth::App {
                app_id: APP_ID,
                key: Arc::new(key),
            },
        ))
        .unwrap(),
    );
    let argo = Arc::new(FakeArgo {
        asked: Mutex::new(Vec::new()),
    });
    let services = Arc::new(Services {
        runs: Arc::new(SqlRunStore::new(queue.db())),
        queue: queue.clone(),
        forge: Some(forge),
        git: GitSource::new(
            format!("file://{}/origin/{{owner}}/{{repo}}", h.dir.path().display()),
            "github.com",
            dir.path().join("mirrors"),
        ),
        public_url: "https://capstan.example".into(),
        cluster: vec![argo.clone()],
        sync: None,
        promoter: None,
    });
    let mut registry = Registry::new();
    registry.register(
        PR_CHECK,
        PrCheckHandler::new(
            services,
            Arc::new(Renderer::new(RenderConfig::default())),
        ),
    );
    queue
        .enqueue(
            &PrCheck {
                repo: REPO.into(),
                number: 8,
                head_sha: head.clone(),
                head_ref: Some("feature".into()),
                base_ref: Some("main".into()),
                installation_id: Some(INSTALLATION),
                trigger: "pull_request.opened".into(),
            }
            .into_job(),
        )
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let runner = tokio::spawn(
        Runner::new(
            queue.clone(),
            registry,
            RunnerConfig {
                workers: 1,
                poll_interval: Duration::from_millis(20),
                ..RunnerConfig::default()
            },
            Arc::new(Metrics::new()),
        )
        .run(stop.clone()),
    );
    h.wait_for("the check run", Duration::from_secs(120), |h| {
        h.check_runs_for(&head)
            .iter()
            .any(|r| r["status"] == "completed")
    })
    .await;
    stop.cancel();
    runner.await.unwrap();

    let run = h.check_runs_for(&head).remove(0);
    assert_eq!(run["conclusion"], "success", "an unreachable ArgoCD does not fail the check");
    let body = h.report_comments(8).remove(0).body;
    assert!(body.contains("OutOfSync") && body.contains("Healthy"), "{body}");
    assert!(body.contains("dry run: 1 synced, 0 failed"), "{body}");
    assert!(body.contains("kube dry-run: 1 object accepted"), "{body}");
    assert!(body.contains("connection refused"), "{body}");

    let mut asked = argo.asked.lock().unwrap().clone();
    asked.sort();
    assert_eq!(asked.len(), 2);
    for (i, (app, objects, changed, sha)) in asked.iter().enumerate() {
        assert_eq!(app, &format!("app-{i:03}"));
        assert_eq!(*objects, 1);
        assert_eq!(changed, &vec![format!("ConfigMap app-{i:03}/settings")]);
        assert_eq!(sha, &head);
    }
    h.stop().await;
}
