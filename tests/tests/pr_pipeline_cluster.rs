//! The `pr_check` handler with cluster-side checkers (a fake checker, and the real ArgoCD check
//! against the fake ArgoCD): verdicts and live diffs are rendered per app, an unreachable or
//! forbidden ArgoCD is reported per app and the check still completes.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use capstan_tests::pr_harness::{Harness, INSTALLATION, REPO, fanout_tree};
use capstan_tests::pr_worker::Worker;
use capstan_worker::jobs::PrCheck;
use capstan_worker::queue::JobState;
use capstan_worker::report::ArgoStatus;
use capstan_worker::services::{ClusterCheck, ClusterCheckRequest, ClusterFindings};
use capstan_worker::store::RunStore;
use capstan_worker::store::runs::{RunFilter, RunStatus};
use tokio::sync::Notify;

/// One request as the fake saw it: app, head object count, changed objects, head sha.
type Asked = (String, usize, Vec<String>, String);

/// Answers like ArgoCD for `app-000` and like an unreachable ArgoCD for every other app;
/// records what it was asked.
struct FakeArgo {
    asked: Mutex<Vec<Asked>>,
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

/// Holds every cluster check until released, so a test can push while a run is in flight.
struct Gate {
    entered: Notify,
    release: Notify,
}

#[async_trait]
impl ClusterCheck for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }

    async fn check_app(&self, _req: &ClusterCheckRequest<'_>) -> ClusterFindings {
        self.entered.notify_one();
        self.release.notified().await;
        ClusterFindings::default()
    }
}

/// A push while a run is in flight: the run notices before posting, posts no results for the
/// old head, closes its check run as cancelled and is recorded as superseded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_overtaken_by_a_push_posts_nothing_for_its_head() {
    let h = Harness::without_service(&fanout_tree(1)).await;
    let old = h.push_level("feature", "debug");
    h.open_pull(9, "feature");
    let gate = Arc::new(Gate {
        entered: Notify::new(),
        release: Notify::new(),
    });
    let w = Worker::start(&h, vec![gate.clone()]).await;
    w.check(9, &old).await;
    tokio::time::timeout(Duration::from_secs(120), gate.entered.notified())
        .await
        .unwrap();
    let started = h.check_runs_for(&old);
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["status"], "in_progress");

    // A new push lands while the old head's run is between steps.
    h.push_level("feature", "warn");
    h.open_pull(9, "feature");
    gate.release.notify_one();

    let store = w.runs();
    let start = std::time::Instant::now();
    let run = loop {
        let runs = store
            .list_runs(&RunFilter {
                pr: Some(9),
                ..RunFilter::default()
            })
            .await
            .unwrap();
        if let Some(r) = runs.into_iter().find(|r| r.status != RunStatus::Running) {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the run never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    w.stop().await;
    assert_eq!(run.status, RunStatus::Superseded);
    assert_eq!(run.error.as_deref(), Some("superseded by a newer push"));
    assert!(run.comment_ids.is_empty());
    assert!(
        h.report_comments(9).is_empty(),
        "results were posted for the old head"
    );
    let closed = h.check_runs_for(&old);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0]["status"], "completed");
    assert_eq!(closed[0]["conclusion"], "cancelled");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argocd_verdicts_and_unreachable_argocd_are_reported_per_app() {
    let h = Harness::without_service(&fanout_tree(2)).await;
    let head = h.push_level("feature", "debug");
    h.open_pull(8, "feature");

    let argo = Arc::new(FakeArgo {
        asked: Mutex::new(Vec::new()),
    });
    let w = Worker::start(&h, vec![argo.clone()]).await;
    w.check(8, &head).await;
    h.wait_for("the check run", Duration::from_secs(120), |h| {
        h.check_runs_for(&head)
            .iter()
            .any(|r| r["status"] == "completed")
    })
    .await;
    w.stop().await;

    let run = h.check_runs_for(&head).remove(0);
    assert_eq!(
        run["conclusion"], "success",
        "an unreachable ArgoCD does not fail the check"
    );
    let body = h.report_comments(8).remove(0).body;
    assert!(
        body.contains("OutOfSync") && body.contains("Healthy"),
        "{body}"
    );
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

/// Bad input is refused for good, before anything reaches GitHub or the mirror.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_jobs_fail_permanently_and_post_nothing() {
    let h = Harness::without_service(&fanout_tree(1)).await;
    let head = h.push_level("feature", "debug");
    h.open_pull(11, "feature");
    let w = Worker::start(&h, Vec::new()).await;
    let good = PrCheck {
        repo: REPO.into(),
        number: 11,
        head_sha: head.clone(),
        head_ref: Some("feature".into()),
        base_ref: Some("main".into()),
        installation_id: Some(INSTALLATION),
        trigger: "test".into(),
        sender: None,
    };
    let bad = [
        PrCheck {
            head_sha: "feature".into(),
            ..good.clone()
        },
        PrCheck {
            head_sha: head[..12].to_string(),
            ..good.clone()
        },
        PrCheck {
            repo: "acme/../etc".into(),
            ..good.clone()
        },
    ];
    for job in bad {
        let id = w.enqueue(job.clone()).await;
        assert_eq!(w.finished(id).await, JobState::Failed, "{job:?}");
    }
    w.stop().await;
    assert!(
        h.fake
            .calls()
            .iter()
            .all(|c| c.method == "GET" || c.path.starts_with("/app")),
        "a refused job wrote to GitHub: {:#?}",
        h.fake.calls()
    );
    assert!(h.fake.check_runs(REPO).is_empty());
    assert!(h.report_comments(11).is_empty());
}

/// A job for a head the pull request no longer points at does nothing (the newer head's own job
/// reports).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_for_an_old_head_posts_nothing() {
    let h = Harness::without_service(&fanout_tree(1)).await;
    let old = h.push_level("feature", "debug");
    let newest = h.push_level("feature", "warn");
    h.open_pull(12, "feature");
    let w = Worker::start(&h, Vec::new()).await;
    let id = w.check(12, &old).await;
    assert_eq!(w.finished(id).await, JobState::Succeeded);
    // Finding the pull request moved on, the old head's job queued a check of the newest head,
    // which had none; only that one reports, and only about its own head.
    h.completed_check(&newest, Duration::from_secs(60)).await;
    w.stop().await;
    assert!(h.check_runs_for(&old).is_empty());
    let comments = h.report_comments(12);
    assert_eq!(comments.len(), 1);
    assert!(
        !comments[0].body.contains(&old[..7]),
        "{}",
        comments[0].body
    );
    assert!(
        comments[0].body.contains(&newest[..7]),
        "{}",
        comments[0].body
    );
}

fn settings_object(app: &str, level: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": app},
        "data": {"LOG_LEVEL": level},
    })
}

/// The real ArgoCD check against the fake ArgoCD, end to end through the handler: `app-000` is
/// known to ArgoCD (live diff and an opted-in dry-run sync), `app-001` is not (403).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_argocd_check_reports_live_diff_dry_run_and_forbidden_apps_per_app() {
    use capstan_tests::fake_argocd::{FakeApp, FakeArgoCd};
    use capstan_worker::argocd::{ArgoCdCheck, ArgoClient, ArgoConfig, DryRunOptions};

    let h = Harness::without_service(&fanout_tree(2)).await;
    let head = h.push_level("feature", "debug");
    h.open_pull(13, "feature");

    let argo = FakeArgoCd::start("argo-token").await;
    argo.add_app(
        FakeApp::new(
            "app-000",
            "https://github.com/acme/gitops.git",
            "apps/app-000",
        )
        .with_status("OutOfSync", "Healthy")
        // Someone changed the live object by hand: the cluster says "warn", git says "info".
        .with_live(vec![settings_object("app-000", "warn")])
        .with_manifests(&head, vec![settings_object("app-000", "debug")]),
    );
    let mut cfg = ArgoConfig::new(argo.url().parse().unwrap(), "argo-token");
    cfg.timeout = Duration::from_secs(5);
    let check = ArgoCdCheck::new(
        ArgoClient::new(&cfg).unwrap(),
        &["app-000".to_string()],
        DryRunOptions {
            poll_interval: Duration::from_millis(10),
            timeout: Duration::from_secs(20),
            prune: true,
        },
    )
    .unwrap();
    let w = Worker::start(&h, vec![Arc::new(check)]).await;
    w.check(13, &head).await;
    h.wait_for("the check run", Duration::from_secs(120), |h| {
        h.check_runs_for(&head)
            .iter()
            .any(|r| r["status"] == "completed")
    })
    .await;
    w.stop().await;

    let run = h.check_runs_for(&head).remove(0);
    assert_eq!(run["conclusion"], "success", "{run:#}");
    let body = h.report_comments(13).remove(0).body;
    assert!(body.contains("OutOfSync"), "{body}");
    // The live diff goes from what the cluster has (warn) to the head (debug), not from git's base.
    let live = body
        .find("**Against the live cluster**")
        .unwrap_or_else(|| panic!("no live section: {body}"));
    let live_part = &body[live..];
    assert!(live_part.contains("-  LOG_LEVEL: warn"), "{live_part}");
    assert!(live_part.contains("+  LOG_LEVEL: debug"), "{live_part}");
    assert!(body.contains("missing or forbidden"), "{body}");

    let sync = argo.calls_to("POST", "/api/v1/applications/app-000/sync");
    assert_eq!(sync.len(), 1, "one dry-run sync for the opted-in app");
    let req = sync[0].body.clone().unwrap();
    assert_eq!(req["dryRun"], true);
    assert_eq!(req["revision"], head.as_str());
    assert!(
        argo.calls_to("POST", "/api/v1/applications/app-001/sync")
            .is_empty()
    );
    let manifests = argo.calls_to("GET", "/api/v1/applications/app-000/manifests");
    assert_eq!(manifests[0].query_values("revision"), vec![head.clone()]);
    h.stop().await;
}
