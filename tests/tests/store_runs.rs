//! The run and hold store, on SQLite and PostgreSQL alike.
#![allow(clippy::unwrap_used)]

use capstan_tests::backend::Backend;
use capstan_tests::both_backends;
use capstan_worker::diff::AppDiff;
use capstan_worker::report::{AppSection, ReportFinding, RunReport, Severity};
use capstan_worker::store::runs::SqlRunStore;
use capstan_worker::store::{NewRun, RunFilter, RunOutcome, RunStatus, RunStore};

both_backends!(
    run_lifecycle_keeps_the_report,
    listings_filter_and_omit_reports,
    holds_keep_their_first_holder,
    stored_runs_are_scrubbed,
);

fn new_run(pr: u64, sha: &str) -> NewRun {
    NewRun {
        repo: "acme/gitops".into(),
        pr,
        head_sha: sha.into(),
        base_sha: Some("b".repeat(40)),
        trigger: "pull_request.opened".into(),
        job_id: Some(7),
    }
}

fn report(sha: &str) -> RunReport {
    RunReport {
        repo: "acme/gitops".into(),
        pr: 1,
        head_sha: sha.into(),
        run_url: "http://localhost:8080/runs/1".into(),
        held_by: None,
        limits: Vec::new(),
        apps: vec![AppSection {
            name: "web-staging".into(),
            environment: Some("staging".into()),
            diff: AppDiff {
                app: "web-staging".into(),
                reasons: vec!["inputs changed: web/base/deployment.yaml".into()],
                changes: vec![],
                problems: vec![],
                notes: vec![],
            },
            findings: vec![ReportFinding {
                rule_id: "pss-run-as-non-root".into(),
                severity: Severity::Deny,
                object: "apps/Deployment web/web".into(),
                file: Some("web/base/deployment.yaml".into()),
                line: Some(12),
                message: "runs as root".into(),
            }],
            preexisting: Vec::new(),
            argocd: None,
            render_error: None,
            live_diff: None,
        }],
    }
}

async fn run_lifecycle_keeps_the_report(b: &Backend) {
    let store = SqlRunStore::new(b.queue.db());
    let sha = "a".repeat(40);
    let id = store.create_run(&new_run(1, &sha)).await.unwrap();
    let running = store.run(id).await.unwrap().unwrap();
    assert_eq!(running.status, RunStatus::Running);
    assert!(running.finished_at.is_none() && running.report.is_none());

    store.set_check_run(id, 4_000_000_001).await.unwrap();
    store
        .finish_run(
            id,
            &RunOutcome {
                status: RunStatus::Failure,
                error: None,
                report: Some(report(&sha)),
                comment_ids: vec![11, 12],
            },
        )
        .await
        .unwrap();
    let done = store.run(id).await.unwrap().unwrap();
    assert_eq!(done.status, RunStatus::Failure);
    assert_eq!(done.check_run_id, Some(4_000_000_001));
    assert_eq!(done.comment_ids, [11, 12]);
    assert_eq!((done.apps, done.denies, done.warns), (1, 1, 0));
    let back = done.report.unwrap();
    assert_eq!(back.apps[0].findings[0].line, Some(12));
    assert_eq!(back.apps[0].diff.reasons.len(), 1);
    assert!(store.run(id + 1000).await.unwrap().is_none());

    let posted = store
        .last_posted_run("acme/gitops", 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(posted.id, id);
    assert!(
        store
            .last_posted_run("acme/gitops", 2)
            .await
            .unwrap()
            .is_none()
    );
}

/// Issue 13, finding 11: upstream text quoted in a run (tool stderr in a render error, an
/// ArgoCD message in the run error) is scrubbed before the dashboard can show it.
async fn stored_runs_are_scrubbed(b: &Backend) {
    let store = SqlRunStore::new(b.queue.db());
    let sha = "a".repeat(40);
    let id = store.create_run(&new_run(1, &sha)).await.unwrap();
    let mut r = report(&sha);
    r.apps[0].render_error = Some(
        "kustomize build failed: fetching https://deploy:hunter2hunter2@git.example/x.git".into(),
    );
    store
        .finish_run(
            id,
            &RunOutcome {
                status: RunStatus::Error,
                error: Some("argocd: rpc error: Authorization: Bearer abcdefgh12345678".into()),
                report: Some(r),
                comment_ids: vec![],
            },
        )
        .await
        .unwrap();
    let done = store.run(id).await.unwrap().unwrap();
    let error = done.error.unwrap();
    assert!(!error.contains("abcdefgh12345678"), "{error}");
    assert!(
        error.contains("Authorization: Bearer [REDACTED]"),
        "{error}"
    );
    let render_error = done.report.unwrap().apps[0].render_error.clone().unwrap();
    assert!(!render_error.contains("hunter2hunter2"), "{render_error}");
    // The commit id is not a secret and survives.
    assert_eq!(done.head_sha, sha);
}

async fn listings_filter_and_omit_reports(b: &Backend) {
    let store = SqlRunStore::new(b.queue.db());
    let mut ids = vec![];
    for (pr, sha) in [(1, "1"), (2, "2"), (1, "3")] {
        let id = store
            .create_run(&new_run(pr, &sha.repeat(40)))
            .await
            .unwrap();
        ids.push(id);
    }
    store
        .finish_run(
            ids[0],
            &RunOutcome {
                status: RunStatus::Superseded,
                error: None,
                report: Some(report(&"1".repeat(40))),
                comment_ids: vec![],
            },
        )
        .await
        .unwrap();
    let all = store.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        [ids[2], ids[1], ids[0]]
    );
    assert!(all.iter().all(|r| r.report.is_none()));
    let pr1 = store
        .list_runs(&RunFilter {
            pr: Some(1),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(pr1.len(), 2);
    let superseded = store
        .list_runs(&RunFilter {
            status: Some(RunStatus::Superseded),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(superseded.len(), 1);
    assert_eq!(superseded[0].id, ids[0]);
    let limited = store
        .list_runs(&RunFilter {
            repo: Some("acme/gitops".into()),
            limit: 1,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    let other = store
        .list_runs(&RunFilter {
            repo: Some("acme/other".into()),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert!(other.is_empty());
}

async fn holds_keep_their_first_holder(b: &Backend) {
    let store = SqlRunStore::new(b.queue.db());
    assert!(store.hold("acme/gitops", 5).await.unwrap().is_none());
    let first = store.set_hold("acme/gitops", 5, "alice").await.unwrap();
    assert_eq!(first.held_by, "alice");
    let again = store.set_hold("acme/gitops", 5, "bob").await.unwrap();
    assert_eq!(again.held_by, "alice", "a second hold does not take over");
    assert!(store.hold("acme/gitops", 6).await.unwrap().is_none());
    assert!(store.clear_hold("acme/gitops", 5).await.unwrap());
    assert!(!store.clear_hold("acme/gitops", 5).await.unwrap());
    assert!(store.hold("acme/gitops", 5).await.unwrap().is_none());
}
