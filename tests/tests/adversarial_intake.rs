//! Issue 13's adversarial suite, intake surface: what an anonymous sender on the internet (or a
//! replayer holding an old delivery) can throw at `POST /webhooks/github`. Every case asserts
//! the refusal and that what was accepted before it is still there, untouched, on both backends.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode};
use capstan_server::app::{AppState, router};
use capstan_tests::backend::Backend;
use capstan_tests::both_backends;
use capstan_tests::webhook::{SECRET, pr_opened, send, sign, signed};
use serde_json::{Value, json};

both_backends!(
    signatures_for_another_body_secret_or_scheme_are_refused,
    a_replayed_delivery_id_with_another_body_changes_nothing,
    form_encoded_payloads_get_415_and_are_not_stored,
    bodies_over_the_cap_are_refused_whatever_the_declared_length,
    an_event_header_that_contradicts_the_payload_queues_nothing,
    non_ascii_and_oversized_headers_are_refused,
    unsigned_garbage_is_refused_before_parsing,
    deep_json_in_a_signed_pull_request_is_refused,
);

fn app(b: &Backend, max_body: Option<usize>) -> Router {
    let mut st = AppState::new(b.queue.clone(), vec![SECRET.to_string()]);
    if let Some(m) = max_body {
        st = st.with_max_body_bytes(m);
    }
    router(Arc::new(st), true)
}

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// Delivers one legitimate PR event and returns its delivery id: the "accepted" the hostile
/// requests that follow must not lose.
async fn accepted(app: &Router) -> &'static str {
    let id = "legit-1";
    let (status, body) = send(
        app,
        signed("pull_request", id, &pr_opened(1, SHA_A), SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    id
}

/// The legitimate delivery is intact (one job, its own head) and no other job exists.
async fn nothing_lost(b: &Backend, id: &str) {
    let jobs = b.queue.jobs_for_delivery(id).await.unwrap();
    assert_eq!(jobs.len(), 1, "the accepted delivery keeps its job");
    let payload = serde_json::to_string(&jobs[0].payload).unwrap();
    assert!(payload.contains(SHA_A), "{payload}");
    let total: i64 = b
        .queue
        .depth()
        .await
        .unwrap()
        .iter()
        .map(|(_, _, n)| n)
        .sum();
    assert_eq!(total, 1, "no job was added by a refused request");
}

async fn refused_and_absent(
    b: &Backend,
    app: &Router,
    req: Request<Body>,
    want: StatusCode,
) -> Value {
    let id = req
        .headers()
        .get("x-github-delivery")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (status, body) = send(app, req).await;
    assert_eq!(status, want, "{body}");
    if let Some(id) = id {
        assert!(
            b.queue.delivery(&id).await.unwrap().is_none(),
            "{id} stored"
        );
    }
    body
}

async fn signatures_for_another_body_secret_or_scheme_are_refused(b: &Backend) {
    let app = app(b, None);
    let id = accepted(&app).await;
    let body = pr_opened(2, SHA_B);
    let variants: Vec<(&str, String)> = vec![
        ("signature of an empty body", sign(SECRET.as_bytes(), b"")),
        ("another secret", sign(b"not-the-secret", &body)),
        ("empty digest", "sha256=".into()),
        (
            "no scheme",
            sign(SECRET.as_bytes(), &body).replace("sha256=", ""),
        ),
        (
            "sha1 scheme",
            sign(SECRET.as_bytes(), &body).replace("sha256=", "sha1="),
        ),
        (
            "truncated digest",
            sign(SECRET.as_bytes(), &body)[..40].to_string(),
        ),
        ("not hex", format!("sha256={}", "zz".repeat(32))),
    ];
    for (i, (what, sig)) in variants.into_iter().enumerate() {
        let mut req = signed("pull_request", &format!("sig-{i}"), &body, SECRET);
        req.headers_mut()
            .insert("x-hub-signature-256", HeaderValue::from_str(&sig).unwrap());
        let (status, resp) = send(&app, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {resp}");
        assert!(
            b.queue
                .delivery(&format!("sig-{i}"))
                .await
                .unwrap()
                .is_none()
        );
    }
    // A wrong first signature header is not rescued by a right second one.
    let mut req = signed("pull_request", "sig-two", &body, SECRET);
    let right = req.headers()["x-hub-signature-256"].clone();
    req.headers_mut().insert(
        "x-hub-signature-256",
        HeaderValue::from_str(&sign(b"wrong", &body)).unwrap(),
    );
    req.headers_mut().append("x-hub-signature-256", right);
    refused_and_absent(b, &app, req, StatusCode::UNAUTHORIZED).await;
    nothing_lost(b, id).await;
}

async fn a_replayed_delivery_id_with_another_body_changes_nothing(b: &Backend) {
    let app = app(b, None);
    let id = accepted(&app).await;
    // Same delivery id, another (validly signed) body: the first delivery stands.
    let (status, resp) = send(
        &app,
        signed("pull_request", id, &pr_opened(1, SHA_B), SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["outcome"], "duplicate");
    let push = serde_json::to_vec(&json!({
        "ref": "refs/heads/main", "before": SHA_A, "after": SHA_B,
        "repository": {"full_name": "acme/gitops", "default_branch": "main"}
    }))
    .unwrap();
    let (status, resp) = send(&app, signed("push", id, &push, SECRET)).await;
    assert!(
        resp["outcome"] == "duplicate" || status.is_client_error(),
        "another event under the same id: {status} {resp}"
    );
    let record = b.queue.delivery(id).await.unwrap().unwrap();
    assert_eq!(record.event, "pull_request");
    nothing_lost(b, id).await;
}

async fn form_encoded_payloads_get_415_and_are_not_stored(b: &Backend) {
    let app = app(b, None);
    let id = accepted(&app).await;
    let json = String::from_utf8(pr_opened(3, SHA_B)).unwrap();
    let form = format!(
        "payload={}",
        url::form_urlencoded::byte_serialize(json.as_bytes()).collect::<String>()
    );
    for ct in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/jsonp",
        "multipart/form-data; boundary=x",
    ] {
        let mut req = signed("pull_request", "form-1", form.as_bytes(), SECRET);
        req.headers_mut()
            .insert("content-type", HeaderValue::from_str(ct).unwrap());
        let resp = refused_and_absent(b, &app, req, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        assert!(
            resp["error"].as_str().unwrap().contains("application/json"),
            "{ct}: the refusal says what to set: {resp}"
        );
    }
    // Parameters on the right type are fine.
    let mut req = signed("pull_request", "json-charset", &pr_opened(4, SHA_B), SECRET);
    req.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    assert_eq!(send(&app, req).await.0, StatusCode::ACCEPTED);
    b.queue.delivery("json-charset").await.unwrap().unwrap();
    assert_eq!(b.queue.jobs_for_delivery(id).await.unwrap().len(), 1);
}

async fn bodies_over_the_cap_are_refused_whatever_the_declared_length(b: &Backend) {
    let app = app(b, Some(4096));
    let id = accepted(&app).await;
    let mut big = pr_opened(5, SHA_B);
    big.truncate(big.len() - 1);
    big.extend_from_slice(format!(",\"pad\":\"{}\"}}", "x".repeat(8192)).as_bytes());
    // Declared short, sent long: the stream is cut at the cap, not trusted.
    let mut req = signed("pull_request", "lying-length", &big, SECRET);
    req.headers_mut()
        .insert("content-length", HeaderValue::from_static("100"));
    refused_and_absent(b, &app, req, StatusCode::PAYLOAD_TOO_LARGE).await;
    // Declared long: refused before reading.
    let mut req = signed("pull_request", "declared-long", b"{}", SECRET);
    req.headers_mut()
        .insert("content-length", HeaderValue::from_static("99999999999"));
    refused_and_absent(b, &app, req, StatusCode::PAYLOAD_TOO_LARGE).await;
    nothing_lost(b, id).await;
}

async fn an_event_header_that_contradicts_the_payload_queues_nothing(b: &Backend) {
    let app = app(b, None);
    let id = accepted(&app).await;
    let comment = serde_json::to_vec(&json!({
        "action": "created",
        "issue": {"number": 9, "pull_request": {"url": "x"}},
        "comment": {"id": 1, "body": "/capstan promote production", "user": {"login": "mallory", "type": "User"},
                    "created_at": "2026-12-01T00:00:00Z", "updated_at": "2026-12-01T00:00:00Z"},
        "sender": {"login": "mallory", "type": "User"},
        "repository": {"full_name": "acme/gitops", "default_branch": "main"}
    }))
    .unwrap();
    // An issue comment announced as a pull_request event, a PR announced as a push, a PR as a
    // comment: none may become a job of the announced (or the real) kind.
    for (i, (event, body)) in [
        ("pull_request", comment.clone()),
        ("push", pr_opened(6, SHA_B)),
        ("issue_comment", pr_opened(7, SHA_B)),
    ]
    .into_iter()
    .enumerate()
    {
        let delivery = format!("mismatch-{i}");
        let (status, resp) = send(&app, signed(event, &delivery, &body, SECRET)).await;
        assert!(
            status.is_client_error() || resp["jobs"].as_array().is_some_and(Vec::is_empty),
            "{event}: {status} {resp}"
        );
        assert!(
            b.queue
                .jobs_for_delivery(&delivery)
                .await
                .unwrap()
                .is_empty(),
            "{event}: no job from a contradicting payload"
        );
    }
    nothing_lost(b, id).await;
}

async fn non_ascii_and_oversized_headers_are_refused(b: &Backend) {
    let app = app(b, None);
    let id = accepted(&app).await;
    let body = pr_opened(8, SHA_B);
    let cases: Vec<(&str, HeaderValue)> = vec![
        (
            "x-github-delivery",
            HeaderValue::from_bytes("d\u{e9}livery".as_bytes()).unwrap(),
        ),
        (
            "x-github-delivery",
            HeaderValue::from_static("../../etc/passwd"),
        ),
        (
            "x-github-delivery",
            HeaderValue::from_str(&"a".repeat(129)).unwrap(),
        ),
        (
            "x-github-delivery",
            HeaderValue::from_static("id\u{0009}with-tab"),
        ),
        (
            "x-github-event",
            HeaderValue::from_bytes("pull_request\u{202e}".as_bytes()).unwrap(),
        ),
        (
            "x-github-event",
            HeaderValue::from_str(&"e".repeat(65)).unwrap(),
        ),
    ];
    for (i, (name, value)) in cases.into_iter().enumerate() {
        let mut req = signed("pull_request", &format!("hdr-{i}"), &body, SECRET);
        req.headers_mut().insert(name, value.clone());
        let (status, resp) = send(&app, req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}={value:?}: {resp}");
    }
    nothing_lost(b, id).await;
}

async fn unsigned_garbage_is_refused_before_parsing(b: &Backend) {
    let app = app(b, None);
    let id = accepted(&app).await;
    for body in [&b"{not json"[..], &b""[..], &[0xff, 0xfe, 0x00][..]] {
        let mut req = signed("pull_request", "garbage", body, SECRET);
        req.headers_mut().remove("x-hub-signature-256");
        // 401, not 400: nothing of the body is looked at without a signature.
        refused_and_absent(b, &app, req, StatusCode::UNAUTHORIZED).await;
    }
    nothing_lost(b, id).await;
}

async fn deep_json_in_a_signed_pull_request_is_refused(b: &Backend) {
    let app = app(b, None);
    let id = accepted(&app).await;
    let depth = 5_000;
    let mut v: Value = serde_json::from_slice(&pr_opened(9, SHA_B)).unwrap();
    v["pull_request"]["title"] = json!("x");
    let text = serde_json::to_string(&v).unwrap().replace(
        "\"title\":\"x\"",
        &format!("\"title\":{}1{}", "[".repeat(depth), "]".repeat(depth)),
    );
    let req = signed("pull_request", "deep-pr", text.as_bytes(), SECRET);
    refused_and_absent(b, &app, req, StatusCode::BAD_REQUEST).await;
    nothing_lost(b, id).await;
}
