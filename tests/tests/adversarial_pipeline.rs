//! The PR pipeline under attack (issue 13, findings 4 and 10): pull requests by untrusted authors
//! (forks, strangers, an author whose permission cannot be read) never reach the cluster until an
//! authorized `ok-to-test` for their exact head, and a pull request that makes the job run past
//! its deadline gets a failing check that says so. Every case also shows that the legitimate
//! path (a trusted head, an approved head) still runs in full.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use capstan_tests::backend::Backend;
use capstan_tests::pr_harness::{Harness, REPO, fanout_tree};
use capstan_tests::pr_worker::{Worker, pr_check};
use capstan_worker::limits::Limits;
use capstan_worker::queue::JobState;
use capstan_worker::report::ArgoStatus;
use capstan_worker::services::{ClusterCheck, ClusterCheckRequest, ClusterFindings};
use capstan_worker::store::heads::OK_TO_TEST_TRIGGER;

capstan_tests::both_backends!(
    untrusted_heads_reach_the_cluster_only_after_ok_to_test,
    a_failed_permission_lookup_skips_the_cluster_and_trusted_authors_keep_it,
    a_job_past_its_deadline_fails_its_check_and_says_why,
    a_waiver_the_pull_request_adds_does_not_hide_its_own_finding,
    ignore_differences_the_pull_request_adds_do_not_hide_its_diff,
    a_pull_request_that_breaks_the_settings_fails_naming_key_line_and_suggestion,
);

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
async fn untrusted_heads_reach_the_cluster_only_after_ok_to_test(b: &Backend) {
    let h = Harness::without_service(&fanout_tree(1)).await;
    h.fake.set_permission(REPO, "forker", "read");
    h.fake.set_permission(REPO, "writer", "write");
    let head = h.push_level("feature", "debug");
    h.open_pull_by(20, "feature", "forker");
    let rec = Arc::new(Recorder::default());
    let w = Worker::start_on_queue(&h, vec![rec.clone()], Limits::default(), b.queue.clone()).await;

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
async fn a_failed_permission_lookup_skips_the_cluster_and_trusted_authors_keep_it(b: &Backend) {
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
    let w = Worker::start_on_queue(&h, vec![rec.clone()], Limits::default(), b.queue.clone()).await;
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
async fn a_job_past_its_deadline_fails_its_check_and_says_why(b: &Backend) {
    let h = Harness::without_service(&fanout_tree(1)).await;
    let head = h.push_level("feature", "debug");
    h.open_pull(23, "feature");
    let limits = Limits {
        job_deadline: Duration::from_secs(3),
        ..Limits::default()
    };
    let w = Worker::start_on_queue(&h, vec![Arc::new(Hang)], limits, b.queue.clone()).await;
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

/// A tree with one app that also holds Service `web`, as `svc` gives it, and `.capstan.yaml`
/// saying `service-exposure` may be waived by an annotation.
fn tree_with_service(svc: &str) -> Vec<(String, String)> {
    let mut files = fanout_tree(1);
    for (path, text) in &mut files {
        if path == ".capstan.yaml" {
            text.push_str("policy:\n  waivable: [service-exposure]\n");
        }
        if path == "apps/app-000/kustomization.yaml" {
            text.push_str("  - service.yaml\n");
        }
    }
    files.push(("apps/app-000/service.yaml".into(), svc.into()));
    files
}

fn service(kind: &str, waiver: bool) -> String {
    let annotations = if waiver {
        "  annotations:\n    capstan.io/ignore: service-exposure\n    capstan.io/ignore-reason: the public entry point\n"
    } else {
        ""
    };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n{annotations}spec:\n  type: {kind}\n  selector: {{app: web}}\n  ports: [{{port: 443}}]\n"
    )
}

/// Finding 7: a `capstan.io/ignore` annotation that the pull request itself adds does not hide
/// the finding it names (the check fails, the report lists the finding and the added waiver);
/// the same waiver already on the default branch still applies, so the legitimate path works.
async fn a_waiver_the_pull_request_adds_does_not_hide_its_own_finding(b: &Backend) {
    use capstan_worker::git::fixture::Change;
    for (pr, base_waiver, expect_applied) in [(30, false, false), (32, true, true)] {
        let h =
            Harness::without_service(&tree_with_service(&service("ClusterIP", base_waiver))).await;
        let svc = service("LoadBalancer", true);
        let head = h
            .push(
                "feature",
                &[Change::Write("apps/app-000/service.yaml", svc.as_bytes())],
            )
            .to_string();
        h.open_pull(pr, "feature");
        let w = Worker::start_on_queue(&h, vec![], Limits::default(), b.queue.clone()).await;
        let id = w
            .enqueue(pr_check(pr, &head, "pull_request.opened", None))
            .await;
        let body = report_after(&h, &w, pr, id).await;
        let run = h.check_runs_for(&head).remove(0);
        if expect_applied {
            assert_eq!(run["conclusion"], "success", "{run:#}\n{body}");
            assert!(!body.contains("waiver-added-by-change"), "{body}");
        } else {
            assert_eq!(run["conclusion"], "failure", "{run:#}\n{body}");
            assert!(body.contains("service-exposure"), "{body}");
            assert!(body.contains("waiver-added-by-change"), "{body}");
        }
        w.stop().await;
        h.stop().await;
    }
}

/// Finding 7: `ignoreDifferences` the pull request adds to its Application do not hide the
/// difference they name (the diff still shows it and a finding names the added rule); the same
/// rule on the default branch does hide it.
async fn ignore_differences_the_pull_request_adds_do_not_hide_its_diff(b: &Backend) {
    use capstan_worker::git::fixture::Change;
    let rule = "  ignoreDifferences:\n    - kind: ConfigMap\n      jsonPointers: [/data]\n";
    let with_rule = capstan_tests::pr_harness::application("app-000")
        .replace("  syncPolicy:", &format!("{rule}  syncPolicy:"));
    for (pr, base_rule) in [(31, false), (33, true)] {
        let mut files = fanout_tree(1);
        if base_rule {
            for (path, text) in &mut files {
                if path == "argocd/apps/app-000.yaml" {
                    *text = with_rule.clone();
                }
            }
        }
        let h = Harness::without_service(&files).await;
        let cm = capstan_tests::pr_harness::settings_configmap("debug");
        let head = h
            .push(
                "feature",
                &[
                    Change::Write("shared/base/settings.yaml", cm.as_bytes()),
                    Change::Write("argocd/apps/app-000.yaml", with_rule.as_bytes()),
                ],
            )
            .to_string();
        h.open_pull(pr, "feature");
        let w = Worker::start_on_queue(&h, vec![], Limits::default(), b.queue.clone()).await;
        let id = w
            .enqueue(pr_check(pr, &head, "pull_request.opened", None))
            .await;
        let body = report_after(&h, &w, pr, id).await;
        if base_rule {
            assert!(!body.contains("LOG_LEVEL: debug"), "{body}");
            assert!(!body.contains("ignore-differences-added"), "{body}");
        } else {
            assert!(body.contains("LOG_LEVEL: debug"), "{body}");
            assert!(body.contains("ignore-differences-added"), "{body}");
        }
        w.stop().await;
        h.stop().await;
    }
}

/// Issue 18 (and the settings half of finding 7): a pull request whose `.capstan.yaml` has a typo
/// (`promtion:`) is judged by the default branch's settings, and fails with the key, the line and
/// a suggestion instead of silently dropping the section.
async fn a_pull_request_that_breaks_the_settings_fails_naming_key_line_and_suggestion(b: &Backend) {
    use capstan_worker::git::fixture::Change;
    let h = Harness::without_service(&fanout_tree(1)).await;
    let head = h
        .push(
            "feature",
            &[Change::Write(
                ".capstan.yaml",
                b"repoURL: https://github.com/acme/gitops\npromtion:\n  mode: direct\n",
            )],
        )
        .to_string();
    h.open_pull(34, "feature");
    let w = Worker::start_on_queue(&h, vec![], Limits::default(), b.queue.clone()).await;
    let id = w
        .enqueue(pr_check(34, &head, "pull_request.opened", None))
        .await;
    let body = report_after(&h, &w, 34, id).await;
    let run = h.check_runs_for(&head).remove(0);
    assert_eq!(run["conclusion"], "failure", "{run:#}\n{body}");
    for part in [
        "capstan-settings-invalid",
        ".capstan.yaml:2",
        "promtion",
        // Markdown-escaped: GitHub shows it as "did you mean `promotion`?".
        "did you mean &#96;promotion&#96;?",
    ] {
        assert!(body.contains(part), "{part}: {body}");
    }
    w.stop().await;
    h.stop().await;
}
