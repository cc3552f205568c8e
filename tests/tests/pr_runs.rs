//! Runs that read like what happened (issue 19, item 4): one run per pull-request head however
//! many jobs or attempts checked it, each attempt listed inside the run, and the base the diff
//! actually compared recorded once the fetch is done. A worker of the test's own on both
//! databases, the fake GitHub and a real git repository.
#![allow(clippy::unwrap_used)]

use capstan_tests::backend::Backend;
use capstan_tests::pr_harness::{Harness, REPO, fanout_tree};
use capstan_tests::pr_worker::{Worker, pr_check};
use capstan_worker::queue::JobState;
use capstan_worker::store::RunStore;
use capstan_worker::store::runs::{RunFilter, RunRecord, RunStatus};

capstan_tests::both_backends!(
    a_retried_job_leaves_one_run_with_two_attempts,
    two_checks_of_one_head_make_one_run_and_a_new_head_a_new_run,
    a_check_run_that_cannot_be_restarted_is_replaced_not_lost,
);

/// A pull request `pr` whose head was checked once, successfully, by a worker on `b`.
async fn checked_once(b: &Backend, pr: u64) -> (Harness, Worker, String, i64) {
    let h = Harness::without_service(&fanout_tree(1)).await;
    let head = h.push_level("feature", "debug");
    h.open_pull(pr, "feature");
    let w = Worker::start_on_queue(
        &h,
        vec![],
        capstan_worker::limits::Limits::default(),
        b.queue.clone(),
    )
    .await;
    let first = w.check(pr, &head).await;
    assert_eq!(w.finished(first).await, JobState::Succeeded);
    (h, w, head, first)
}

/// The runs of PR `pr`, newest first.
async fn runs_of(w: &Worker, pr: u64) -> Vec<RunRecord> {
    w.runs()
        .list_runs(&RunFilter {
            repo: Some(REPO.into()),
            pr: Some(pr),
            ..RunFilter::default()
        })
        .await
        .unwrap()
}

/// A check whose first attempt meets a GitHub blip (creating the check run answers 500) is
/// retried by the queue; the head has one run, the blip and the success are its two attempts.
async fn a_retried_job_leaves_one_run_with_two_attempts(b: &Backend) {
    let h = Harness::without_service(&fanout_tree(1)).await;
    let head = h.push_level("feature", "debug");
    h.open_pull(30, "feature");
    h.fake
        .fail_route_times("POST", "/repos/acme/gitops/check-runs", 500, 1);
    let w = Worker::start_retrying_fast(&h, b.queue.clone()).await;
    let job = w.check(30, &head).await;
    assert_eq!(w.finished(job).await, JobState::Succeeded);

    let runs = runs_of(&w, 30).await;
    assert_eq!(runs.len(), 1, "one run per head: {runs:#?}");
    let run = &runs[0];
    assert_eq!(run.head_sha, head);
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    assert_eq!(run.error, None, "the run reads as its latest attempt");
    assert_eq!(run.attempts, 2);
    let full = w.runs().run(run.id).await.unwrap().unwrap();
    let attempts = &full.attempt_history;
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(attempts[0].status, RunStatus::Error);
    let why = attempts[0].error.as_deref().unwrap_or_default();
    assert!(why.contains("500"), "the first attempt says why: {why}");
    assert!(attempts[0].finished_at.is_some());
    assert_eq!(attempts[1].status, RunStatus::Success);
    assert_eq!(attempts[1].error, None);
    assert!(attempts.iter().all(|a| a.job_id == Some(job)));
    assert!(attempts.iter().all(|a| a.trigger == "pull_request.opened"));
    // The report and the check run are the successful attempt's.
    assert!(full.report.is_some());
    assert_eq!(h.check_runs_for(&head).len(), 1);
    assert_eq!(
        full.check_run_id,
        h.check_runs_for(&head)[0]["id"].as_u64(),
        "the run links the check run its latest attempt posted"
    );
    w.stop().await;
    h.stop().await;
}

/// A second job for a head already checked (a `/capstan diff`, a redelivery under a new GUID,
/// missed-event recovery) reopens its run as a new attempt; a new push gets a run of its own.
/// Each run records the base branch tip it fetched and the merge base its diff used.
async fn two_checks_of_one_head_make_one_run_and_a_new_head_a_new_run(b: &Backend) {
    let (h, w, head, first) = checked_once(b, 31).await;
    let second = w
        .enqueue(pr_check(31, &head, "command.diff", Some("alice")))
        .await;
    assert_eq!(w.finished(second).await, JobState::Succeeded);

    let runs = runs_of(&w, 31).await;
    assert_eq!(runs.len(), 1, "one run per head: {runs:#?}");
    let run = &runs[0];
    assert_eq!(run.attempts, 2);
    assert_eq!(run.trigger, "command.diff", "the latest attempt's trigger");
    assert_eq!(run.job_id, Some(second));
    // One check run per head and name: the second attempt restarted and completed the first's.
    let checks = h.check_runs_for(&head);
    assert_eq!(checks.len(), 1, "{checks:#?}");
    assert_eq!(checks[0]["status"], "completed");
    let full = w.runs().run(run.id).await.unwrap().unwrap();
    assert_eq!(full.check_run_id, checks[0]["id"].as_u64());
    let seen: Vec<(i64, Option<i64>, &str)> = full
        .attempt_history
        .iter()
        .map(|a| (a.attempt, a.job_id, a.trigger.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, Some(first), "pull_request.opened"),
            (2, Some(second), "command.diff")
        ]
    );
    // The feature branch starts at main's tip: that is both the base and the merge base.
    let main = h.main_tip().to_string();
    assert_eq!(run.base_sha.as_deref(), Some(main.as_str()));
    assert_eq!(run.merge_base.as_deref(), Some(main.as_str()));

    // main moves on, then the PR gets a new head: a new run, whose base is the new tip while
    // the diff still compares against where the branch forked.
    let fork_point = main.clone();
    let moved = h.push_level("other", "info");
    h.origin
        .set_ref("refs/heads/main", h.branch_tip("other"))
        .unwrap();
    let head2 = h.push_level("feature", "warn");
    h.open_pull(31, "feature");
    let third = w.check(31, &head2).await;
    assert_eq!(w.finished(third).await, JobState::Succeeded);
    let runs = runs_of(&w, 31).await;
    assert_eq!(runs.len(), 2, "a new head is a new run: {runs:#?}");
    let newest = runs.iter().find(|r| r.head_sha == head2).unwrap();
    assert_eq!(newest.attempts, 1);
    assert_ne!(newest.id, run.id);
    assert_eq!(newest.base_sha.as_deref(), Some(moved.as_str()));
    assert_eq!(newest.merge_base.as_deref(), Some(fork_point.as_str()));
    w.stop().await;
    h.stop().await;
}

/// When GitHub refuses to restart the earlier check run (deleted, or a 422), the attempt creates
/// a new one, as every attempt did before reuse: the check is never lost for the sake of reuse.
async fn a_check_run_that_cannot_be_restarted_is_replaced_not_lost(b: &Backend) {
    let (h, w, head, _) = checked_once(b, 32).await;
    let id = h.check_runs_for(&head)[0]["id"].as_u64().unwrap();
    h.fake.fail_route_times(
        "PATCH",
        &format!("/repos/acme/gitops/check-runs/{id}"),
        422,
        1,
    );
    let second = w
        .enqueue(pr_check(32, &head, "command.diff", Some("alice")))
        .await;
    assert_eq!(w.finished(second).await, JobState::Succeeded);
    let checks = h.check_runs_for(&head);
    assert_eq!(checks.len(), 2, "{checks:#?}");
    assert!(
        checks.iter().all(|c| c["status"] == "completed"),
        "{checks:#?}"
    );
    let run = &runs_of(&w, 32).await[0];
    let newest = checks.iter().filter_map(|c| c["id"].as_u64()).max();
    assert_eq!(
        run.check_run_id, newest,
        "the run links the check run it completed"
    );
    w.stop().await;
    h.stop().await;
}
