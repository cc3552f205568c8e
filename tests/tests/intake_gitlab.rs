//! `POST /webhooks/gitlab` (`--forge gitlab`) driven in-process on both backends: GitLab's secret
//! token (compared in constant time), `X-Gitlab-Event`, `X-Gitlab-Event-UUID` for deduplication,
//! the same adversarial cases as GitHub's intake, and merge request, push and note hooks
//! (written here from the field names of GitLab's webhook documentation) mapped to the same
//! jobs as GitHub's events.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use capstan_server::app::{AppState, router};
use capstan_tests::backend::Backend;
use capstan_tests::both_backends;
use capstan_tests::webhook::{
    self, SECRET, assert_nothing_stored, assert_replays_change_nothing, forge_router,
    gitlab_request, send, signed, signed_gitea, stored_as,
};
use capstan_worker::forge::ForgeKind;
use capstan_worker::queue::Queue;
use serde_json::{Value, json};

both_backends!(
    gitlab_hooks_map_to_the_same_jobs_as_githubs,
    bad_gitlab_tokens_are_refused_before_anything_is_stored,
    other_event_headers_are_not_taken_for_gitlabs,
    a_replayed_gitlab_event_uuid_changes_nothing,
    only_gitlabs_route_is_served_for_gitlab,
    a_project_in_a_nested_group_is_refused_with_the_reason,
);

const FORGE: ForgeKind = ForgeKind::GitLab;

fn app(b: &Backend) -> Router {
    forge_router(b.queue.clone(), FORGE)
}

fn stored(id: &str) -> String {
    stored_as(FORGE, id)
}

async fn assert_store_empty(q: &Arc<dyn Queue>, id: &str) {
    assert_nothing_stored(q, &stored(id)).await;
}

const HEAD: &str = "1111111111111111111111111111111111111111";
const OLD: &str = "2222222222222222222222222222222222222222";

fn project() -> Value {
    json!({"id": 15, "name": "gitops", "path_with_namespace": "acme/gitops",
           "default_branch": "main", "web_url": "https://gitlab.example/acme/gitops"})
}

fn user(id: u64, username: &str) -> Value {
    json!({"id": id, "name": username, "username": username})
}

fn merge_request(action: &str, oldrev: Option<&str>, target: &str) -> Vec<u8> {
    let mut attrs = json!({
        "id": 99, "iid": 4, "title": "Raise the log level", "state": "opened",
        "action": action, "source_branch": "feature", "target_branch": target,
        "last_commit": {"id": HEAD, "message": "m"},
        "merge_commit_sha": if action == "merge" { Value::from("3333333333333333333333333333333333333333") } else { Value::Null },
    });
    if let Some(o) = oldrev {
        attrs["oldrev"] = json!(o);
    }
    serde_json::to_vec(&json!({
        "object_kind": "merge_request", "event_type": "merge_request",
        "user": user(7, "alice"), "project": project(), "object_attributes": attrs,
    }))
    .unwrap()
}

fn push(git_ref: &str, after: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object_kind": "push", "event_name": "push", "ref": git_ref, "before": OLD,
        "after": after, "user_username": "alice", "project": project(), "commits": [],
    }))
    .unwrap()
}

fn note(id: u64, text: &str, noteable: &str, author_id: u64, by: (u64, &str)) -> Vec<u8> {
    let mut body = json!({
        "object_kind": "note", "event_type": "note", "user": user(by.0, by.1),
        "project": project(),
        "object_attributes": {"id": id, "note": text, "noteable_type": noteable,
            "author_id": author_id, "action": "create",
            "created_at": "2026-12-01 11:00:00 UTC", "updated_at": "2026-12-01 11:00:00 UTC"},
    });
    if noteable == "MergeRequest" {
        body["merge_request"] =
            json!({"id": 99, "iid": 4, "source_branch": "feature", "target_branch": "main"});
    }
    serde_json::to_vec(&body).unwrap()
}

async fn kinds_of(
    app: &Router,
    q: &Arc<dyn Queue>,
    event: &str,
    id: &str,
    body: &[u8],
) -> Vec<String> {
    webhook::kinds_of(app, q, FORGE, event, id, body).await
}

async fn gitlab_hooks_map_to_the_same_jobs_as_githubs(b: &Backend) {
    let app = app(b);
    let q = &b.queue;
    let mr = "Merge Request Hook";
    assert_eq!(
        kinds_of(&app, q, mr, "open", &merge_request("open", None, "main")).await,
        ["pr_check"]
    );
    let job = &q.jobs_for_delivery(&stored("open")).await.unwrap()[0];
    assert_eq!(job.payload["trigger"], "pull_request.opened");
    assert_eq!(
        (
            job.payload["number"].clone(),
            job.payload["head_sha"].clone()
        ),
        (json!(4), json!(HEAD))
    );
    assert_eq!(job.payload["repo"], "acme/gitops");
    // An update with new commits is GitHub's `synchronize`; one without (a title edit) is not.
    let mut pushed = merge_request("update", Some(OLD), "main");
    pushed = String::from_utf8(pushed)
        .unwrap()
        .replace(HEAD, "4444444444444444444444444444444444444444")
        .into_bytes();
    assert_eq!(
        kinds_of(&app, q, mr, "update-commits", &pushed).await,
        ["pr_check"]
    );
    let job = &q
        .jobs_for_delivery(&stored("update-commits"))
        .await
        .unwrap()[0];
    assert_eq!(job.payload["trigger"], "pull_request.synchronize");
    assert_eq!(job.payload["sender"], "alice");
    assert_eq!(
        kinds_of(
            &app,
            q,
            mr,
            "update-title",
            &merge_request("update", None, "main")
        )
        .await,
        ["ignored"]
    );
    assert_eq!(
        kinds_of(&app, q, mr, "merge", &merge_request("merge", None, "main")).await,
        ["pr_merged"]
    );
    assert_eq!(
        kinds_of(
            &app,
            q,
            mr,
            "merge-release",
            &merge_request("merge", None, "release")
        )
        .await,
        ["ignored"]
    );
    assert_eq!(
        kinds_of(&app, q, mr, "close", &merge_request("close", None, "main")).await,
        ["ignored"]
    );

    assert_eq!(
        kinds_of(
            &app,
            q,
            "Push Hook",
            "push-main",
            &push("refs/heads/main", HEAD)
        )
        .await,
        ["default_branch_push"]
    );
    assert_eq!(
        kinds_of(
            &app,
            q,
            "Push Hook",
            "push-topic",
            &push("refs/heads/topic", HEAD)
        )
        .await,
        ["ignored"]
    );
    let zero = "0000000000000000000000000000000000000000";
    assert_eq!(
        kinds_of(
            &app,
            q,
            "Push Hook",
            "push-delete",
            &push("refs/heads/main", zero)
        )
        .await,
        ["ignored"]
    );

    let n = "Note Hook";
    assert_eq!(
        kinds_of(
            &app,
            q,
            n,
            "cmd",
            &note(501, "/capstan diff", "MergeRequest", 7, (7, "alice"))
        )
        .await,
        ["command"]
    );
    let job = &q.jobs_for_delivery(&stored("cmd")).await.unwrap()[0];
    assert_eq!(job.payload["lines"], json!(["/capstan diff"]));
    assert_eq!(
        (job.payload["author"].clone(), job.payload["number"].clone()),
        (json!("alice"), json!(4))
    );
    assert_eq!(job.payload["written_at"], json!(1_796_122_800_000_i64));
    assert_eq!(
        kinds_of(
            &app,
            q,
            n,
            "edited-by-other",
            &note(502, "/capstan sync web", "MergeRequest", 7, (9, "mallory"))
        )
        .await,
        ["ignored"]
    );
    assert_eq!(
        kinds_of(
            &app,
            q,
            n,
            "on-issue",
            &note(503, "/capstan diff", "Issue", 7, (7, "alice"))
        )
        .await,
        ["ignored"]
    );
    assert_eq!(
        kinds_of(
            &app,
            q,
            n,
            "by-token-bot",
            &note(
                504,
                "/capstan diff",
                "MergeRequest",
                8,
                (8, "project_15_bot_0a1b2c")
            )
        )
        .await,
        ["ignored"]
    );
    assert_eq!(
        kinds_of(
            &app,
            q,
            n,
            "marker",
            &note(
                505,
                "<!-- capstan:report -->\n/capstan diff",
                "MergeRequest",
                7,
                (7, "alice")
            )
        )
        .await,
        ["ignored"]
    );
    assert_eq!(
        kinds_of(
            &app,
            q,
            "Pipeline Hook",
            "pipeline",
            br#"{"object_kind":"pipeline","project":{"path_with_namespace":"acme/gitops"}}"#
        )
        .await,
        ["ignored"]
    );
}

async fn bad_gitlab_tokens_are_refused_before_anything_is_stored(b: &Backend) {
    let app = app(b);
    let body = merge_request("open", None, "main");
    let mut missing = gitlab_request("Merge Request Hook", "missing", &body, SECRET);
    missing.headers_mut().remove("x-gitlab-token");
    let cases = vec![
        ("missing", missing, "missing X-Gitlab-Token"),
        (
            "wrong",
            gitlab_request("Merge Request Hook", "wrong", &body, "not-the-secret"),
            "does not match",
        ),
        (
            "truncated",
            gitlab_request(
                "Merge Request Hook",
                "truncated",
                &body,
                &SECRET[..SECRET.len() - 1],
            ),
            "does not match",
        ),
        (
            "longer",
            gitlab_request("Merge Request Hook", "longer", &body, &format!("{SECRET}x")),
            "does not match",
        ),
        (
            "case",
            gitlab_request("Merge Request Hook", "case", &body, &SECRET.to_uppercase()),
            "does not match",
        ),
    ];
    for (id, req, want) in cases {
        let (status, msg) = send(&app, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{id}: {msg}");
        assert!(msg["error"].as_str().unwrap().contains(want), "{id}: {msg}");
        assert_store_empty(&b.queue, id).await;
    }
    // A GitHub or Gitea signature is not GitLab's token, however right it is.
    let mut github = signed("Merge Request Hook", "hub", &body, SECRET);
    *github.uri_mut() = "/webhooks/gitlab".parse().unwrap();
    github.headers_mut().insert(
        "x-gitlab-event",
        HeaderValue::from_static("Merge Request Hook"),
    );
    github
        .headers_mut()
        .insert("x-gitlab-event-uuid", HeaderValue::from_static("hub"));
    assert_eq!(send(&app, github).await.0, StatusCode::UNAUTHORIZED);
    assert_store_empty(&b.queue, "hub").await;
    // The token says nothing about the body: a changed body with the right token is accepted
    // as what it now says, which is why the token must stay secret (GitLab signs nothing).
    let mut changed = gitlab_request("Merge Request Hook", "changed", &body, SECRET);
    *changed.body_mut() = Body::from(merge_request("close", None, "main"));
    let (status, _) = send(&app, changed).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(
        b.queue
            .jobs_for_delivery(&stored("changed"))
            .await
            .unwrap()
            .is_empty()
    );
    // Rotation: any configured secret is accepted.
    let rotating = router(
        Arc::new(
            AppState::new(b.queue.clone(), vec!["new-secret".into(), SECRET.into()])
                .with_forge(ForgeKind::GitLab),
        ),
        true,
    );
    let req = gitlab_request("Merge Request Hook", "rotated", &body, "new-secret");
    assert_eq!(send(&rotating, req).await.0, StatusCode::ACCEPTED);
}

async fn other_event_headers_are_not_taken_for_gitlabs(b: &Backend) {
    let app = app(b);
    let body = merge_request("open", None, "main");
    let mut github_names = gitlab_request("Merge Request Hook", "gh-names", &body, SECRET);
    for name in ["x-gitlab-event", "x-gitlab-event-uuid"] {
        github_names.headers_mut().remove(name);
    }
    github_names
        .headers_mut()
        .insert("x-github-event", HeaderValue::from_static("pull_request"));
    github_names
        .headers_mut()
        .insert("x-github-delivery", HeaderValue::from_static("gh-names"));
    let (status, msg) = send(&app, github_names).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{msg}");
    assert!(
        msg["error"].as_str().unwrap().contains("X-Gitlab-Event"),
        "{msg}"
    );
    assert_store_empty(&b.queue, "gh-names").await;
    // A merge request body under the push event's name: nothing is pushed.
    let (status, _) = send(&app, gitlab_request("Push Hook", "as-push", &body, SECRET)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        b.queue
            .jobs_for_delivery(&stored("as-push"))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_replayed_gitlab_event_uuid_changes_nothing(b: &Backend) {
    let first = merge_request("open", None, "main");
    let replays = [
        ("Merge Request Hook", first.clone()),
        ("Push Hook", push("refs/heads/main", HEAD)),
    ];
    assert_replays_change_nothing(
        &app(b),
        &b.queue,
        FORGE,
        "same-uuid",
        ("Merge Request Hook", &first),
        &replays,
    )
    .await;
}

async fn only_gitlabs_route_is_served_for_gitlab(b: &Backend) {
    let app = app(b);
    let body = merge_request("open", None, "main");
    let (status, _) = send(&app, signed("pull_request", "to-github", &body, SECRET)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        &app,
        signed_gitea("pull_request", "to-gitea", &body, SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(b.queue.depth().await.unwrap().is_empty());
}

/// Capstan names repositories owner/name: a project in a subgroup is refused at intake, saying
/// why, and nothing is queued for a client that would refuse every call about it.
async fn a_project_in_a_nested_group_is_refused_with_the_reason(b: &Backend) {
    let app = app(b);
    let mut body: Value = serde_json::from_slice(&merge_request("open", None, "main")).unwrap();
    body["project"]["path_with_namespace"] = json!("acme/platform/gitops");
    let bytes = serde_json::to_vec(&body).unwrap();
    let (status, resp) = send(
        &app,
        gitlab_request("Merge Request Hook", "nested", &bytes, SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{resp}");
    let record = b.queue.delivery(&stored("nested")).await.unwrap().unwrap();
    assert!(
        record
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("nested groups")),
        "{record:?}"
    );
    assert!(b.queue.depth().await.unwrap().is_empty());
}
