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
