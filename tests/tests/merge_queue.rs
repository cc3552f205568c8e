//! GitHub's merge queue end to end: a signed `merge_group` delivery makes Capstan check the merge
//! commit the queue built and complete one check run on it, with no comment anywhere, so Capstan
//! can be a required check of a branch that merges through the queue.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use capstan_tests::pr_harness::{Auth, Harness, REPO, fanout_tree};
use capstan_worker::git::fixture::Change;
use capstan_worker::store::RunStore;
use capstan_worker::store::runs::{RunFilter, RunStatus, SqlRunStore};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

/// No comment was written, read or edited on any pull request or issue.
fn assert_no_comment_calls(h: &Harness) {
    let touched: Vec<_> = h
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.path.contains("/comments"))
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();
    assert!(touched.is_empty(), "comment calls: {touched:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_group_gets_a_completed_check_on_its_merge_commit_and_no_comment() {
    let h = Harness::start(Auth::App, &fanout_tree(2)).await;
    let base = h.main_tip().to_string();
    // The queue's branch: the base with PR 1's change merged, as GitHub builds it.
    let queue = format!("gh-readonly-queue/main/pr-1-{}", &base[..40]);
    let head = h.push_level(&queue, "debug");

    h.merge_group_event(&queue, &head, &base).await;
    let run = h.completed_check(&head, WAIT).await;
    assert_eq!(run["name"], "capstan");
    assert_eq!(run["conclusion"], "success", "{run:#}");
    assert_eq!(run["head_sha"], head.as_str());
    let summary = run["output"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("app-000") && summary.contains("app-001"),
        "{summary}"
    );
    h.wait_idle().await;
    assert_no_comment_calls(&h);
    assert!(h.fake.comments(REPO, 1).is_empty());
    // Nothing asked the forge about a pull request: the event said everything.
    assert!(
        h.fake
            .calls_to("GET", "/repos/acme/gitops/pulls/1")
            .is_empty()
    );

    // The run is recorded under the pull request at the group's tip, on the merge commit.
    let q = capstan_worker::queue::open(&h.database_url).await.unwrap();
    let runs = SqlRunStore::new(q.db())
        .list_runs(&RunFilter {
            repo: Some(REPO.into()),
            pr: Some(1),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    let rec = runs.iter().find(|r| r.head_sha == head).unwrap();
    assert_eq!(rec.status, RunStatus::Success);
    assert_eq!(rec.trigger, "merge_group.checks_requested");
    assert_eq!(rec.base_sha.as_deref(), Some(base.as_str()));
    assert!(rec.comment_ids.is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_change_in_the_queue_fails_the_merge_commit_with_a_token_as_a_status() {
    let h = Harness::start(Auth::Token, &fanout_tree(1)).await;
    let base = h.main_tip().to_string();
    let queue = "gh-readonly-queue/main/pr-5-0a1b2c3d";
    let service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n  selector:\n    app: web\n  ports:\n    - port: 80\n";
    let kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: app-000\nresources:\n  - ../../shared/base\n  - service.yaml\n";
    let head = h
        .push(
            queue,
            &[
                Change::Write("apps/app-000/service.yaml", service.as_bytes()),
                Change::Write("apps/app-000/kustomization.yaml", kustomization.as_bytes()),
            ],
        )
        .to_string();

    h.merge_group_event(queue, &head, &base).await;
    // A personal token cannot create check runs: the verdict is the commit status.
    h.wait_for("the final status", WAIT, |h| {
        h.fake
            .statuses(REPO)
            .iter()
            .any(|(sha, s)| sha == &head && s["state"] != "pending")
    })
    .await;
    h.wait_idle().await;
    let statuses: Vec<Value> = h
        .fake
        .statuses(REPO)
        .into_iter()
        .filter(|(sha, _)| sha == &head)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        statuses.last().unwrap()["state"],
        "failure",
        "{statuses:#?}"
    );
    assert_eq!(statuses.last().unwrap()["context"], "capstan");
    assert_no_comment_calls(&h);
    h.stop().await;
}
