//! The PR pipeline under attack (issue 13, findings 4 and 10): pull requests by untrusted authors
//! (forks, strangers, an author whose permission cannot be read) never reach the cluster until an
//! authorized `ok-to-test` for their exact head, and a pull request that makes the job run past
//! its deadline gets a failing check that says so. Every case also shows that the legitimate
//! path (a trusted head, an approved head) still runs in full.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use capstan_tests::pr_harness::{Harness, REPO, fanout_tree};
use capstan_tests::pr_worker::{Worker, pr_check};
use capstan_worker::limits::Limits;
use capstan_worker::queue::JobState;
use capstan_worker::report::ArgoStatus;
use capstan_worker::services::{ClusterCheck, ClusterCheckRequest, ClusterFindings};
use capstan_worker::store::heads::OK_TO_TEST_TRIGGER;

/// A cluster checker that records the heads it was asked about and answers with live state a
/// stranger must never see.
#[derive(Default)]
struct Recorder {
    asked: Mutex<Vec<String>>,
}

const LIVE_SECRET: &str = "live-only: replicas 7 in the cluster";

#[async_trait]
impl ClusterCheck for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    async fn check_app(&self, req: &ClusterCheckRequest<'_>) -> ClusterFindings {
        self.asked.lock().unwrap().push(req.head_sha.to_string());
        ClusterFindings {
            argocd: Some(ArgoStatus::Reported {
                sync: Some("OutOfSync".into()),
                health: Some("Healthy".into()),
                dry_run: None,
            }),
            notes: vec![LIVE_SECRET.into()],
            ..ClusterFindings::default()
        }
    }
}

/// The newest report comment of PR `number` after job `id` finished.
async fn report_after(h: &Harness, w: &Worker, number: u64, id: i64) -> String {
    assert_eq!(w.finished(id).await, JobState::Succeeded);
    h.report_comments(number).pop().unwrap().body
}

/// Finding 4: a fork's (or stranger's) pull request gets the offline report and a line saying
/// the cluster checks were skipped; nothing is asked of the cluster and no live state is posted.
/// An authorized `ok-to-test` for the head runs them; a new push needs a new approval unless a
/// trusted person pushed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_heads_reach_the_cluster_only_after_ok_to_test() {
    let h = Harness::without_service(&fanout_tree(1)).await;
    h.fake.set_permission(REPO, "forker", "read");
    h.fake.set_permission(REPO, "writer", "write");
    let head = h.push_level("feature", "debug");
    h.open_pull_by(20, "feature", "forker");
    let rec = Arc::new(Recorder::default());
    let w = Worker::start(&h, vec![rec.clone()]).await;

    let id = w
        .enqueue(pr_check(20, &head, "pull_request.opened", Some("forker")))
        .await;
    let body = report_after(&h, &w, 20, id).await;
    assert!(
        rec.asked.lock().unwrap().is_empty(),
        "the cluster was asked"
    );
    assert!(
        body.contains("cluster checks") && body.contains("skipped") && body.contains("ok-to-test"),
        "{body}"
    );
    assert!(body.contains("forker has read permission"), "{body}");
    assert!(
        !body.contains(LIVE_SECRET) && !body.contains("OutOfSync"),
        "{body}"
    );
    // The offline report is still there: the app's diff.
    assert!(body.contains("app-000"), "{body}");

    // A pusher without write permission does not make the head trusted either.
    let id = w
        .enqueue(pr_check(
            20,
            &head,
            "pull_request.synchronize",
            Some("forker"),
        ))
        .await;
    report_after(&h, &w, 20, id).await;
    assert!(rec.asked.lock().unwrap().is_empty());

    // The approval (queued by the command handler after authorizing `writer`) runs them.
    let id = w
        .enqueue(pr_check(20, &head, OK_TO_TEST_TRIGGER, Some("writer")))
        .await;
    let body = report_after(&h, &w, 20, id).await;
    assert_eq!(*rec.asked.lock().unwrap(), vec![head.clone()]);
    assert!(body.contains(LIVE_SECRET), "{body}");

    // A new push by the fork's author: the approval was for the old head only.
    let newer = h.push_level("feature", "warn");
    h.open_pull_by(20, "feature", "forker");
    let id = w
        .enqueue(pr_check(
            20,
            &newer,
            "pull_request.synchronize",
            Some("forker"),
        ))
        .await;
    let body = report_after(&h, &w, 20, id).await;
    assert_eq!(
        rec.asked.lock().unwrap().len(),
        1,
        "the new head was not approved"
    );
    assert!(body.contains("skipped"), "{body}");

    // A writer pushing onto the fork's branch makes that head trusted.
    let by_writer = h.push_level("feature", "error");
    h.open_pull_by(20, "feature", "forker");
    let id = w
        .enqueue(pr_check(
            20,
            &by_writer,
            "pull_request.synchronize",
            Some("writer"),
        ))
        .await;
    report_after(&h, &w, 20, id).await;
    assert_eq!(rec.asked.lock().unwrap().last(), Some(&by_writer));
    w.stop().await;
    h.stop().await;
}

/// Finding 4: an author whose permission cannot be read (the API fails) is not trusted; a
/// trusted author's pull request reaches the cluster as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_permission_lookup_skips_the_cluster_and_trusted_authors_keep_it() {
    let h = Harness::without_service(&fanout_tree(1)).await;
    h.fake.set_permission(REPO, "mallory", "admin");
    h.fake.fail_route(
        "GET",
        "/repos/acme/gitops/collaborators/mallory/permission",
        500,
    );
    let head = h.push_level("feature", "debug");
    h.open_pull_by(21, "feature", "mallory");
    let rec = Arc::new(Recorder::default());
    let w = Worker::start(&h, vec![rec.clone()]).await;
    let id = w
        .enqueue(pr_check(21, &head, "pull_request.opened", None))
        .await;
    let body = report_after(&h, &w, 21, id).await;
    assert!(rec.asked.lock().unwrap().is_empty());
    assert!(body.contains("could not be checked"), "{body}");

    // Nothing accepted is lost: alice (write) gets the cluster checks.
    h.open_pull(22, "feature");
    let id = w
        .enqueue(pr_check(22, &head, "pull_request.opened", None))
        .await;
    let body = report_after(&h, &w, 22, id).await;
    assert_eq!(*rec.asked.lock().unwrap(), vec![head.clone()]);
    assert!(body.contains("OutOfSync"), "{body}");
    w.stop().await;
    h.stop().await;
}

/// A cluster checker that never answers: the job's work outlives any deadline.
struct Hang;

#[async_trait]
impl ClusterCheck for Hang {
    fn name(&self) -> &'static str {
        "hang"
    }

    async fn check_app(&self, _req: &ClusterCheckRequest<'_>) -> ClusterFindings {
        std::future::pending::<()>().await;
        ClusterFindings::default()
    }
}

/// Finding 10: a check that runs past `job_deadline_secs` ends, and its check run fails with a
/// "not checked: limit reached" line instead of hanging or passing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_deadline_fails_its_check_and_says_why() {
    let h = Harness::without_service(&fanout_tree(1)).await;
    let head = h.push_level("feature", "debug");
    h.open_pull(23, "feature");
    let limits = Limits {
        job_deadline: Duration::from_secs(3),
        ..Limits::default()
    };
    let w = Worker::start_with(&h, vec![Arc::new(Hang)], limits).await;
    let id = w
        .enqueue(pr_check(23, &head, "pull_request.opened", None))
        .await;
    let state = w.finished(id).await;
    assert_eq!(state, JobState::Failed, "a deadline is final, not retried");
    let run = h.check_runs_for(&head).remove(0);
    assert_eq!(run["status"], "completed");
    assert_eq!(run["conclusion"], "failure");
    let summary = run["output"]["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("not checked: limit job_deadline_secs (3) reached"),
        "{run}"
    );
    w.stop().await;
    h.stop().await;
}
