//! `POST /webhooks/gitea` (`--forge gitea`) driven in-process on both backends: Gitea's and
//! Forgejo's headers and bare-hex signature, the same adversarial cases as GitHub's intake, and
//! Gitea's payloads (written here from the field names of Gitea's webhook structs) mapped to the
//! same jobs as GitHub's.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode};
use capstan_tests::backend::Backend;
use capstan_tests::both_backends;
use capstan_tests::webhook::{
    self, SECRET, assert_nothing_stored, assert_replays_change_nothing, forge_router, send, sign,
    signed, signed_gitea, stored_as,
};
use capstan_worker::forge::ForgeKind;
use capstan_worker::queue::Queue;
use serde_json::{Value, json};

both_backends!(
    gitea_payloads_map_to_the_same_jobs_as_githubs,
    bad_gitea_signatures_are_refused_before_anything_is_stored,
    other_event_headers_are_not_taken_for_giteas,
    a_replayed_gitea_delivery_id_changes_nothing,
    only_the_configured_forges_route_is_served,
);

const FORGE: ForgeKind = ForgeKind::Gitea;

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
const BASE: &str = "2222222222222222222222222222222222222222";

fn repository() -> Value {
    json!({"id": 3, "name": "gitops", "full_name": "acme/gitops", "default_branch": "main",
           "owner": {"id": 2, "login": "acme", "username": "acme"}})
}

fn user(login: &str) -> Value {
    json!({"id": 7, "login": login, "username": login, "full_name": "", "email": "x@example.invalid"})
}

fn pull_request(action: &str, merged: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "action": action,
        "number": 4,
        "pull_request": {
            "id": 40, "number": 4, "state": if action == "closed" { "closed" } else { "open" },
            "title": "Raise the log level", "user": user("alice"),
            "head": {"label": "feature", "ref": "feature", "sha": HEAD, "repo_id": 3},
            "base": {"label": "main", "ref": "main", "sha": BASE, "repo_id": 3},
            "merged": merged,
            "merge_commit_sha": if merged { Value::from("3333333333333333333333333333333333333333") } else { Value::Null },
            "merged_by": if merged { user("bob") } else { Value::Null },
        },
        "repository": repository(),
        "sender": user("alice"),
        "commit_id": "",
    }))
    .unwrap()
}

fn push(git_ref: &str, after: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ref": git_ref, "before": BASE, "after": after,
        "compare_url": "", "commits": [], "total_commits": 0, "head_commit": null,
        "repository": repository(), "pusher": user("alice"), "sender": user("alice"),
    }))
    .unwrap()
}

fn comment(id: u64, body: &str, on_pull: bool, author: &str, sender: &str) -> Vec<u8> {
    let pull = if on_pull {
        json!({"merged": false, "merged_at": null})
    } else {
        Value::Null
    };
    serde_json::to_vec(&json!({
        "action": "created",
        "issue": {"id": 41, "number": 4, "title": "t", "user": user("alice"), "pull_request": pull},
        "comment": {"id": id, "body": body, "user": user(author),
                    "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z"},
        "repository": repository(),
        "sender": user(sender),
        "is_pull": on_pull,
    }))
    .unwrap()
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

async fn gitea_payloads_map_to_the_same_jobs_as_githubs(b: &Backend) {
    let app = app(b);
    let q = &b.queue;
    assert_eq!(
        kinds_of(
            &app,
            q,
            "pull_request",
            "opened",
            &pull_request("opened", false)
        )
        .await,
        ["pr_check"]
    );
    // Gitea says `synchronized`; the job is the one GitHub's `synchronize` makes, so the trust
    // rules for a pusher apply to it too.
    let (status, _) = send(
        &app,
        signed_gitea(
            "pull_request",
            "sync",
            &pull_request("synchronized", false),
            SECRET,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let sync = q.jobs_for_delivery(&stored("sync")).await.unwrap();
    // Same head as `opened`: deduplicated against the queued job, so no new one, and accepted.
    assert!(
        sync.is_empty() || sync[0].payload["trigger"] == "pull_request.synchronize",
        "{sync:?}"
    );
    assert_eq!(
        kinds_of(
            &app,
            q,
            "pull_request",
            "merged",
            &pull_request("closed", true)
        )
        .await,
        ["pr_merged"]
    );
    let merged = q.jobs_for_delivery(&stored("merged")).await.unwrap();
    assert_eq!(merged[0].payload["merged_by"], "bob");
    assert_eq!(
        kinds_of(
            &app,
            q,
            "pull_request",
            "closed",
            &pull_request("closed", false)
        )
        .await,
        ["ignored"]
    );
    assert_eq!(
        kinds_of(
            &app,
            q,
            "pull_request",
            "labels",
            &pull_request("label_updated", false)
        )
        .await,
        ["ignored"]
    );

    assert_eq!(
        kinds_of(&app, q, "push", "push-main", &push("refs/heads/main", HEAD)).await,
        ["default_branch_push"]
    );
    assert_eq!(
        kinds_of(
            &app,
            q,
            "push",
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
            "push",
            "push-delete",
            &push("refs/heads/main", zero)
        )
        .await,
        ["ignored"]
    );

    let cmd = comment(501, "/capstan diff", true, "alice", "alice");
    assert_eq!(
        kinds_of(&app, q, "issue_comment", "cmd", &cmd).await,
        ["command"]
    );
    let job = &q.jobs_for_delivery(&stored("cmd")).await.unwrap()[0];
    assert_eq!(job.payload["lines"], json!(["/capstan diff"]));
    assert_eq!(
        (job.payload["author"].clone(), job.payload["number"].clone()),
        (json!("alice"), json!(4))
    );
    let other = comment(502, "/capstan sync web", true, "alice", "mallory");
    assert_eq!(
        kinds_of(&app, q, "issue_comment", "cmd-edited-by-other", &other).await,
        ["ignored"]
    );
    let on_issue = comment(503, "/capstan diff", false, "alice", "alice");
    assert_eq!(
        kinds_of(&app, q, "issue_comment", "on-issue", &on_issue).await,
        ["ignored"]
    );
    let by_type = comment(504, "/capstan validate", true, "alice", "alice");
    assert_eq!(
        kinds_of(&app, q, "pull_request_comment", "by-type", &by_type).await,
        ["command"]
    );

    assert_eq!(
        kinds_of(
            &app,
            q,
            "release",
            "release",
            br#"{"action":"published","repository":{"full_name":"acme/gitops"}}"#
        )
        .await,
        ["ignored"]
    );
}

async fn bad_gitea_signatures_are_refused_before_anything_is_stored(b: &Backend) {
    let app = app(b);
    let body = pull_request("opened", false);
    let good = sign(SECRET.as_bytes(), &body)
        .trim_start_matches("sha256=")
        .to_string();
    let with_sig = |id: &str, name: &str, sig: &str| {
        let mut req = signed_gitea("pull_request", id, &body, SECRET);
        req.headers_mut().remove("x-gitea-signature");
        if !name.is_empty() {
            req.headers_mut().insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(sig).unwrap(),
            );
        }
        req
    };
    let cases: Vec<(&str, Request<Body>, &str)> = vec![
        (
            "missing",
            with_sig("missing", "", ""),
            "missing X-Gitea-Signature",
        ),
        (
            "wrong-secret",
            signed_gitea("pull_request", "wrong-secret", &body, "not-the-secret"),
            "does not match",
        ),
        (
            "truncated",
            with_sig("truncated", "x-gitea-signature", &good[..good.len() - 2]),
            "does not match",
        ),
        (
            "odd-length",
            with_sig("odd-length", "x-gitea-signature", &good[..good.len() - 1]),
            "does not match",
        ),
        (
            "github-prefix",
            with_sig(
                "github-prefix",
                "x-gitea-signature",
                &format!("sha256={good}"),
            ),
            "does not match",
        ),
        (
            "not-hex",
            with_sig("not-hex", "x-gitea-signature", &"z".repeat(64)),
            "does not match",
        ),
        // GitHub's header alone is not Gitea's signature, even when it is right.
        (
            "hub-only",
            with_sig("hub-only", "x-hub-signature-256", &format!("sha256={good}")),
            "missing X-Gitea-Signature",
        ),
    ];
    for (id, req, want) in cases {
        let (status, msg) = send(&app, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{id}: {msg}");
        assert!(msg["error"].as_str().unwrap().contains(want), "{id}: {msg}");
        assert_store_empty(&b.queue, id).await;
    }

    // The body changed after signing, by one bit or by re-serializing the same JSON.
    let mut flipped = body.clone();
    let i = flipped.len() / 2;
    flipped[i] ^= 0x01;
    let value: Value = serde_json::from_slice(&body).unwrap();
    for (id, other) in [
        ("flipped", flipped),
        ("pretty", serde_json::to_vec_pretty(&value).unwrap()),
    ] {
        let mut req = signed_gitea("pull_request", id, &body, SECRET);
        *req.body_mut() = Body::from(other);
        assert_eq!(send(&app, req).await.0, StatusCode::UNAUTHORIZED, "{id}");
        assert_store_empty(&b.queue, id).await;
    }

    // Forgejo sends both names: both must verify.
    let mut both_bad = signed_gitea("pull_request", "one-bad", &body, SECRET);
    both_bad.headers_mut().insert(
        "x-forgejo-signature",
        HeaderValue::from_str(&"0".repeat(64)).unwrap(),
    );
    assert_eq!(send(&app, both_bad).await.0, StatusCode::UNAUTHORIZED);
    assert_store_empty(&b.queue, "one-bad").await;

    // Forgejo's own names alone are accepted.
    let mut forgejo = with_sig("forgejo", "x-forgejo-signature", &good);
    for (name, v) in [
        ("x-gitea-event", None),
        ("x-gitea-delivery", None),
        ("x-forgejo-event", Some("pull_request")),
        ("x-forgejo-delivery", Some("forgejo")),
    ] {
        forgejo.headers_mut().remove(name);
        if let Some(v) = v {
            forgejo
                .headers_mut()
                .insert(name, HeaderValue::from_static(v));
        }
    }
    let (status, msg) = send(&app, forgejo).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{msg}");
    assert_eq!(
        b.queue
            .jobs_for_delivery(&stored("forgejo"))
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn other_event_headers_are_not_taken_for_giteas(b: &Backend) {
    let app = app(b);
    let body = pull_request("opened", false);
    // GitHub's event and delivery headers (Gitea sends them too) are not read on this route.
    let mut github_names = signed_gitea("pull_request", "gh-names", &body, SECRET);
    for name in ["x-gitea-event", "x-gitea-delivery"] {
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
        msg["error"].as_str().unwrap().contains("X-Gitea-Event"),
        "{msg}"
    );
    assert_store_empty(&b.queue, "gh-names").await;

    // Gitea's and Forgejo's event names disagree: neither is believed.
    let mut split = signed_gitea("pull_request", "split", &body, SECRET);
    split
        .headers_mut()
        .insert("x-forgejo-event", HeaderValue::from_static("push"));
    let (status, msg) = send(&app, split).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{msg}");
    assert!(msg["error"].as_str().unwrap().contains("disagree"), "{msg}");
    assert_store_empty(&b.queue, "split").await;

    // A pull_request body sent as a push: no push job (the ref is missing: recorded, rejected).
    let (status, _) = send(&app, signed_gitea("push", "as-push", &body, SECRET)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        b.queue
            .jobs_for_delivery(&stored("as-push"))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_replayed_gitea_delivery_id_changes_nothing(b: &Backend) {
    let first = pull_request("opened", false);
    // The same id again, once as it was and once with another validly signed body.
    let replays = [
        ("push", first.clone()),
        ("push", push("refs/heads/main", HEAD)),
    ];
    assert_replays_change_nothing(
        &app(b),
        &b.queue,
        FORGE,
        "same-id",
        ("pull_request", &first),
        &replays,
    )
    .await;
}

async fn only_the_configured_forges_route_is_served(b: &Backend) {
    let body = pull_request("opened", false);
    // Gitea's route does not take GitHub's deliveries, and GitHub's route is not there.
    let gitea = app(b);
    let (status, _) = send(&gitea, signed("pull_request", "to-github", &body, SECRET)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // GitHub (the default) serves no Gitea route.
    let github = forge_router(b.queue.clone(), ForgeKind::GitHub);
    let (status, _) = send(
        &github,
        signed_gitea("pull_request", "to-gitea", &body, SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(b.queue.depth().await.unwrap().is_empty());
}
