//! Building signed webhook requests the way GitHub sends them, and driving the router in-process.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

pub use capstan_server::signature::sign;

/// The secret the intake tests configure.
pub const SECRET: &str = "capstan-test-secret";

/// A POST to `/webhooks/github` with GitHub's headers, signed with `secret`.
pub fn signed(event: &str, delivery: &str, body: &[u8], secret: &str) -> Request<Body> {
    Request::post("/webhooks/github")
        .header("content-type", "application/json")
        .header("user-agent", "GitHub-Hookshot/test")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", sign(secret.as_bytes(), body))
        .body(Body::from(body.to_vec()))
        .unwrap_or_else(|e| panic!("building a request: {e}"))
}

/// POSTs `body` to the service at `base_url` as GitHub sends a delivery, signed with `secret`;
/// the status, or `None` when no answer came (the process died, the connection was refused).
pub async fn post_signed(
    http: &reqwest::Client,
    base_url: &str,
    event: &str,
    delivery: &str,
    body: &serde_json::Value,
    secret: &str,
) -> Option<u16> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    http.post(format!("{base_url}/webhooks/github"))
        .header("content-type", "application/json")
        .header("user-agent", "GitHub-Hookshot/test")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", sign(secret.as_bytes(), &bytes))
        .body(bytes)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// A signed-ready `pull_request` `opened` payload for PR `number` of `acme/gitops` at `sha`.
pub fn pr_opened(number: u64, sha: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "action": "opened",
        "number": number,
        "pull_request": {
            "number": number,
            "head": {"ref": "feature", "sha": sha},
            "base": {"ref": "main", "sha": "0000000000000000000000000000000000000000"},
            "merged": false
        },
        "repository": {"full_name": "acme/gitops", "default_branch": "main"},
        "installation": {"id": 1}
    }))
    .unwrap_or_default()
}

/// Send a request through the router; status and body (JSON when it parses).
pub async fn send(app: &Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let resp = app
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, json)
}

/// A POST to `/webhooks/gitea` with the headers Gitea sends (`X-Gitea-*`, a bare-hex
/// HMAC-SHA256 signature), signed with `secret`.
pub fn signed_gitea(event: &str, delivery: &str, body: &[u8], secret: &str) -> Request<Body> {
    let hex = sign(secret.as_bytes(), body)
        .trim_start_matches("sha256=")
        .to_string();
    Request::post("/webhooks/gitea")
        .header("content-type", "application/json")
        .header("x-gitea-event", event)
        .header("x-gitea-delivery", delivery)
        .header("x-gitea-signature", hex)
        .body(Body::from(body.to_vec()))
        .unwrap_or_else(|e| panic!("building a request: {e}"))
}

/// A POST to `/webhooks/gitlab` with the headers GitLab sends: the secret token itself in
/// `X-Gitlab-Token`, the event name and the event's UUID.
pub fn gitlab_request(event: &str, uuid: &str, body: &[u8], token: &str) -> Request<Body> {
    Request::post("/webhooks/gitlab")
        .header("content-type", "application/json")
        .header("x-gitlab-event", event)
        .header("x-gitlab-event-uuid", uuid)
        .header("x-gitlab-token", token)
        .body(Body::from(body.to_vec()))
        .unwrap_or_else(|e| panic!("building a request: {e}"))
}

/// Sends `req` (a delivery the intake stores as `stored_id`), expects 202, and returns the job
/// kinds it made, or `["ignored"]` when it was recorded as ignored (with its reason).
pub async fn accepted_kinds(
    app: &Router,
    q: &std::sync::Arc<dyn capstan_worker::queue::Queue>,
    req: Request<Body>,
    stored_id: &str,
) -> Vec<String> {
    let (status, resp) = send(app, req).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{stored_id}: {resp}");
    let record = q
        .delivery(stored_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("{stored_id} was not recorded"));
    let jobs = q
        .jobs_for_delivery(stored_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    if record.outcome == "ignored" {
        assert!(jobs.is_empty() && record.detail.is_some(), "{record:?}");
        return vec!["ignored".into()];
    }
    jobs.into_iter().map(|j| j.kind).collect()
}

/// Nothing was stored for the delivery `stored_id`, and no job at all.
pub async fn assert_nothing_stored(
    q: &std::sync::Arc<dyn capstan_worker::queue::Queue>,
    stored_id: &str,
) {
    let record = q
        .delivery(stored_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(record.is_none(), "{stored_id} was stored");
    let depth = q.depth().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(depth.is_empty(), "no job may be stored: {depth:?}");
}

// What the intake tests of every forge share: the service's router configured for one forge,
// the id its deliveries are stored under, a delivery as that forge sends it, and the checks that
// read the same whatever the forge.

/// The router of a service configured for `forge`, with [`SECRET`], over `queue`.
pub fn forge_router(
    queue: std::sync::Arc<dyn capstan_worker::queue::Queue>,
    forge: capstan_worker::forge::ForgeKind,
) -> Router {
    let state =
        capstan_server::app::AppState::new(queue, vec![SECRET.to_string()]).with_forge(forge);
    capstan_server::app::router(std::sync::Arc::new(state), true)
}

/// The id a delivery `id` of `forge` is stored under (`gitea:<id>`; GitHub's bare).
pub fn stored_as(forge: capstan_worker::forge::ForgeKind, id: &str) -> String {
    match forge {
        capstan_worker::forge::ForgeKind::GitHub => id.to_string(),
        other => format!("{}:{id}", other.as_str()),
    }
}

/// A delivery as `forge` sends it to its own route, authenticated with `secret`.
pub fn forge_request(
    forge: capstan_worker::forge::ForgeKind,
    event: &str,
    id: &str,
    body: &[u8],
    secret: &str,
) -> Request<Body> {
    use capstan_worker::forge::ForgeKind;
    match forge {
        ForgeKind::GitHub => signed(event, id, body, secret),
        ForgeKind::Gitea => signed_gitea(event, id, body, secret),
        ForgeKind::GitLab => gitlab_request(event, id, body, secret),
    }
}

/// The job kinds an authenticated delivery of `forge` produced (`ignored` when none), after a
/// 202.
pub async fn kinds_of(
    app: &Router,
    q: &std::sync::Arc<dyn capstan_worker::queue::Queue>,
    forge: capstan_worker::forge::ForgeKind,
    event: &str,
    id: &str,
    body: &[u8],
) -> Vec<String> {
    let req = forge_request(forge, event, id, body, SECRET);
    accepted_kinds(app, q, req, &stored_as(forge, id)).await
}

/// The delivery `id` of `forge` is accepted once with one job; sent again (`replays`: as it
/// was, or another valid body) it is a duplicate and the queue holds that one job only.
pub async fn assert_replays_change_nothing(
    app: &Router,
    q: &std::sync::Arc<dyn capstan_worker::queue::Queue>,
    forge: capstan_worker::forge::ForgeKind,
    id: &str,
    first: (&str, &[u8]),
    replays: &[(&str, Vec<u8>)],
) {
    let (status, resp) = send(app, forge_request(forge, first.0, id, first.1, SECRET)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{resp}");
    let stored = stored_as(forge, id);
    let jobs = q
        .jobs_for_delivery(&stored)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(jobs.len(), 1);
    for (event, body) in replays {
        let (status, resp) = send(app, forge_request(forge, event, id, body, SECRET)).await;
        assert_eq!(status, StatusCode::OK, "{resp}");
        assert_eq!(resp["outcome"], "duplicate");
    }
    let after = q
        .jobs_for_delivery(&stored)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        after.iter().map(|j| j.id).collect::<Vec<_>>(),
        jobs.iter().map(|j| j.id).collect::<Vec<_>>()
    );
    let depth: i64 = q
        .depth()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|(_, _, n)| *n)
        .sum();
    assert_eq!(depth, 1, "one job in all");
}
