//! `POST /webhooks/github` driven in-process, on both backends: signatures, headers, size and
//! depth limits, the allowlist, every payload GitHub publishes plus our own, deduplication, and a
//! store outage.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use capstan_server::app::{AppState, router};
use capstan_tests::backend::Backend;
use capstan_tests::both_backends;
use capstan_tests::flaky::Flaky;
use capstan_tests::webhook::{SECRET, pr_opened, send, signed};
use capstan_worker::queue::{Finish, JobState, Queue};
use capstan_worker::runner::{
    Handler, JobContext, JobError, Metrics, Registry, Runner, RunnerConfig,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

both_backends!(
    githubs_test_vector_passes_the_signature_check,
    bad_signatures_are_refused_before_anything_is_stored,
    every_published_payload_maps_to_its_documented_jobs,
    our_own_payloads_map_to_their_documented_jobs,
    a_redelivery_in_sequence_adds_no_job,
    ten_concurrent_duplicates_make_one_job,
    oversized_bodies_get_413_while_streaming,
    deeply_nested_json_is_refused,
    event_and_delivery_headers_are_required,
    repositories_outside_the_allowlist_get_403,
    incomplete_payloads_are_recorded_as_rejected,
    store_outage_gives_503_and_the_redelivery_runs_once,
    health_readiness_and_metrics,
);

fn app_with(
    queue: Arc<dyn Queue>,
    tweak: impl FnOnce(AppState) -> AppState,
) -> (Router, Arc<Metrics>) {
    let state = tweak(AppState::new(queue, vec![SECRET.to_string()]));
    let metrics = state.metrics().clone();
    (router(Arc::new(state), true), metrics)
}

fn app(b: &Backend) -> Router {
    app_with(b.queue.clone(), |s| s).0
}

async fn assert_store_empty(q: &Arc<dyn Queue>, delivery: &str) {
    assert!(q.delivery(delivery).await.unwrap().is_none());
    assert!(q.depth().await.unwrap().is_empty(), "no job may be stored");
}

async fn githubs_test_vector_passes_the_signature_check(b: &Backend) {
    let (app, _) = app_with(b.queue.clone(), |s| {
        s.with_secrets(vec!["It's a Secret to Everybody".into()])
    });
    let req = Request::post("/webhooks/github")
        .header("x-github-event", "push")
        .header("x-github-delivery", "vector")
        .header(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )
        .body(Body::from("Hello, World!"))
        .unwrap();
    let (status, body) = send(&app, req).await;
    // Past the signature check; refused only because the body is not JSON.
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("JSON"), "{body}");
}

async fn bad_signatures_are_refused_before_anything_is_stored(b: &Backend) {
    let app = app(b);
    let body = pr_opened(1, "1111111111111111111111111111111111111111");

    let mut flipped = body.clone();
    let i = flipped.len() / 2;
    flipped[i] ^= 0x01;
    let mut req = signed("pull_request", "flip", &body, SECRET);
    *req.body_mut() = Body::from(flipped);
    assert_eq!(send(&app, req).await.0, StatusCode::UNAUTHORIZED);
    assert_store_empty(&b.queue, "flip").await;

    let mut req = signed("pull_request", "nosig", &body, SECRET);
    req.headers_mut().remove("x-hub-signature-256");
    let (status, msg) = send(&app, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        msg["error"]
            .as_str()
            .unwrap()
            .contains("X-Hub-Signature-256")
    );
    assert_store_empty(&b.queue, "nosig").await;

    let mut req = signed("pull_request", "sha1", &body, SECRET);
    req.headers_mut().remove("x-hub-signature-256");
    req.headers_mut()
        .insert("x-hub-signature", "sha1=0123456789abcdef".parse().unwrap());
    let (status, msg) = send(&app, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(msg["error"].as_str().unwrap().contains("SHA-1"));
    assert_store_empty(&b.queue, "sha1").await;

    // Same JSON, different bytes: the signature covers bytes, not meaning.
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let pretty = serde_json::to_vec_pretty(&value).unwrap();
    assert_ne!(pretty, body);
    let mut req = signed("pull_request", "reser", &body, SECRET);
    *req.body_mut() = Body::from(pretty);
    assert_eq!(send(&app, req).await.0, StatusCode::UNAUTHORIZED);
    assert_store_empty(&b.queue, "reser").await;

    let req = signed("pull_request", "wrongkey", &body, "not-the-secret");
    assert_eq!(send(&app, req).await.0, StatusCode::UNAUTHORIZED);
    assert_store_empty(&b.queue, "wrongkey").await;

    // Rotation: an old and a new secret both verify.
    let (rotating, _) = app_with(b.queue.clone(), |s| {
        s.with_secrets(vec!["new-secret".into(), SECRET.into()])
    });
    let req = signed("pull_request", "rotated", &body, SECRET);
    assert_eq!(send(&rotating, req).await.0, StatusCode::ACCEPTED);
    let req = signed(
        "pull_request",
        "rotated-2",
        &pr_opened(2, "2222222222222222222222222222222222222222"),
        "new-secret",
    );
    assert_eq!(send(&rotating, req).await.0, StatusCode::ACCEPTED);
}

/// Job kinds a delivery produced, or `["ignored"]`.
async fn outcome_of(
    app: &Router,
    q: &Arc<dyn Queue>,
    event: &str,
    id: &str,
    body: &[u8],
) -> Vec<String> {
    let (status, resp) = send(app, signed(event, id, body, SECRET)).await;
    let expected_status = if event == "ping" {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    assert_eq!(status, expected_status, "{event} {id}: {resp}");
    let record = q.delivery(id).await.unwrap().unwrap();
    let jobs = q.jobs_for_delivery(id).await.unwrap();
    if record.outcome == "ignored" {
        assert!(jobs.is_empty());
        assert!(record.detail.is_some(), "an ignored delivery says why");
        return vec!["ignored".into()];
    }
    assert_eq!(record.outcome, "accepted", "{id}: {record:?}");
    // Run them (trivially), so the next example for the same PR head is not deduplicated
    // against a job still queued.
    let all_kinds: Vec<String> = [
        "pr_check",
        "pr_merged",
        "default_branch_push",
        "command",
        "ping",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    while let Some(c) = q
        .claim("drain", &all_kinds, Duration::from_secs(30))
        .await
        .unwrap()
    {
        q.finish(c.job.id, "drain", c.job.attempts, &Finish::Succeeded)
            .await
            .unwrap();
    }
    jobs.into_iter().map(|j| j.kind).collect()
}

async fn every_published_payload_maps_to_its_documented_jobs(b: &Backend) {
    let Some(fixtures) = capstan_tests::shared_fixtures() else {
        return;
    };
    let dir = fixtures.join("github/payloads");
    // The job-producing examples; every other published example is recorded as ignored.
    let producing: BTreeMap<&str, &str> = [
        ("pull_request/opened", "pr_check"),
        ("pull_request/synchronize", "pr_check"),
        ("pull_request/reopened", "pr_check"),
        ("pull_request/ready_for_review", "pr_check"),
        ("check_suite/rerequested", "pr_check"),
        ("ping/payload", "ping"),
    ]
    .into_iter()
    .collect();
    let app = app(b);
    let mut seen = 0;
    let mut files: Vec<_> = walk(&dir);
    files.sort();
    for path in files {
        let rel = path.strip_prefix(&dir).unwrap();
        let event = rel.parent().unwrap().to_str().unwrap().to_string();
        let stem = rel
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(".json")
            .trim_end_matches(".payload")
            .to_string();
        let key = format!("{event}/{stem}");
        let body = std::fs::read(&path).unwrap();
        let id = format!("fixture-{}", key.replace('/', "-"));
        let got = outcome_of(&app, &b.queue, &event, &id, &body).await;
        let want = producing.get(key.as_str()).copied().unwrap_or("ignored");
        assert_eq!(got, vec![want.to_string()], "{key}");
        seen += 1;
    }
    assert!(seen >= 30, "expected GitHub's examples, found {seen}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out
}

async fn our_own_payloads_map_to_their_documented_jobs(b: &Backend) {
    let dir = capstan_tests::own_fixtures().join("github");
    let app = app(b);
    for (file, event, want) in [
        (
            "pull_request/closed-merged.json",
            "pull_request",
            "pr_merged",
        ),
        (
            "issue_comment/created-on-pr-command.json",
            "issue_comment",
            "command",
        ),
        (
            "issue_comment/created-by-capstan-bot.json",
            "issue_comment",
            "ignored",
        ),
        ("push/default-branch.json", "push", "default_branch_push"),
        (
            "merge_group/checks_requested.json",
            "merge_group",
            "merge_group_check",
        ),
    ] {
        let body = std::fs::read(dir.join(file)).unwrap();
        let id = format!("own-{}", file.replace(['/', '.'], "-"));
        let got = outcome_of(&app, &b.queue, event, &id, &body).await;
        assert_eq!(got, vec![want.to_string()], "{file}");
    }
    let jobs = b
        .queue
        .jobs_for_delivery("own-issue_comment-created-on-pr-command-json")
        .await
        .unwrap();
    assert_eq!(
        jobs[0].payload["lines"],
        json!(["/capstan promote production web"])
    );
    assert_eq!(jobs[0].payload["author"], json!("carol"));
    let queued = b
        .queue
        .jobs_for_delivery("own-merge_group-checks_requested-json")
        .await
        .unwrap();
    assert_eq!(
        queued[0].payload["head_sha"],
        json!("8d1b2a7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b")
    );
    assert_eq!(queued[0].payload["base_ref"], json!("main"));
    let merged = b
        .queue
        .jobs_for_delivery("own-pull_request-closed-merged-json")
        .await
        .unwrap();
    assert_eq!(
        merged[0].payload["merge_commit_sha"],
        json!("5f0c6a1e9b2d4c3a8e7f6b5a4c3d2e1f0a9b8c7d")
    );
}

async fn a_redelivery_in_sequence_adds_no_job(b: &Backend) {
    let app = app(b);
    let body = pr_opened(5, "5555555555555555555555555555555555555555");
    let (s1, r1) = send(&app, signed("pull_request", "same-guid", &body, SECRET)).await;
    assert_eq!(s1, StatusCode::ACCEPTED);
    assert_eq!(r1["delivery"], "same-guid");
    assert_eq!(r1["jobs"].as_array().unwrap().len(), 1);
    let (s2, r2) = send(&app, signed("pull_request", "same-guid", &body, SECRET)).await;
    assert_eq!(s2, StatusCode::OK);
    assert_eq!(r2["outcome"], "duplicate");
    assert_eq!(
        b.queue.jobs_for_delivery("same-guid").await.unwrap().len(),
        1
    );
}

async fn ten_concurrent_duplicates_make_one_job(b: &Backend) {
    let app = app(b);
    let body = pr_opened(6, "6666666666666666666666666666666666666666");
    let sends = (0..10).map(|_| {
        let app = app.clone();
        let body = body.clone();
        tokio::spawn(
            async move { send(&app, signed("pull_request", "burst", &body, SECRET)).await },
        )
    });
    let results = futures::future::join_all(sends).await;
    let mut accepted = 0;
    for r in results {
        let (status, resp) = r.unwrap();
        assert!(status.is_success(), "{status} {resp}");
        if status == StatusCode::ACCEPTED {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(b.queue.jobs_for_delivery("burst").await.unwrap().len(), 1);
}

async fn oversized_bodies_get_413_while_streaming(b: &Backend) {
    let app = app(b);
    const CHUNK: usize = 64 * 1024;
    let thirty_mib = 30 * 1024 * 1024;
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let stream = futures::stream::iter(0..thirty_mib / CHUNK).map(move |_| {
        counter.fetch_add(CHUNK, Ordering::SeqCst);
        Ok::<_, std::convert::Infallible>(Bytes::from(vec![b' '; CHUNK]))
    });
    let req = Request::post("/webhooks/github")
        .header("x-github-event", "push")
        .header("x-github-delivery", "huge")
        .header("x-hub-signature-256", "sha256=00")
        .body(Body::from_stream(stream))
        .unwrap();
    let (status, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let read = pulled.load(Ordering::SeqCst);
    assert!(
        read <= 25 * 1024 * 1024 + 2 * CHUNK,
        "read {read} bytes of 30 MiB"
    );
    assert!(read < thirty_mib);

    // A declared length over the cap is refused before reading anything.
    let req = Request::post("/webhooks/github")
        .header("x-github-event", "push")
        .header("x-github-delivery", "huge2")
        .header("content-length", (thirty_mib).to_string())
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert_store_empty(&b.queue, "huge").await;
}

use futures::StreamExt as _;

async fn deeply_nested_json_is_refused(b: &Backend) {
    let app = app(b);
    let depth = 10_000;
    for (i, body) in [
        format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        format!(
            r#"{{"action":"opened","x":{}{}}}"#,
            "{\"a\":".repeat(depth),
            "}".repeat(depth)
        ),
    ]
    .iter()
    .enumerate()
    {
        for event in ["pull_request", "ping", "star"] {
            let id = format!("deep-{i}-{event}");
            let (status, resp) = send(&app, signed(event, &id, body.as_bytes(), SECRET)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{event}: {resp}");
            assert_store_empty(&b.queue, &id).await;
        }
    }
}

async fn event_and_delivery_headers_are_required(b: &Backend) {
    let app = app(b);
    let body = pr_opened(7, "7777777777777777777777777777777777777777");
    for missing in ["x-github-event", "x-github-delivery"] {
        let mut req = signed("pull_request", "hdr", &body, SECRET);
        req.headers_mut().remove(missing);
        let (status, resp) = send(&app, req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{missing}: {resp}");
    }
    let req = signed("pull_request", "bad id with spaces", &body, SECRET);
    assert_eq!(send(&app, req).await.0, StatusCode::BAD_REQUEST);
    assert_store_empty(&b.queue, "hdr").await;
}

async fn repositories_outside_the_allowlist_get_403(b: &Backend) {
    let (app, _) = app_with(b.queue.clone(), |s| {
        s.with_allowlist(
            capstan_server::config::build_allowlist(&["acme/*".into(), "other/one".into()])
                .unwrap(),
        )
    });
    let allowed = pr_opened(8, "8888888888888888888888888888888888888888");
    assert_eq!(
        send(&app, signed("pull_request", "ok", &allowed, SECRET))
            .await
            .0,
        StatusCode::ACCEPTED
    );
    let foreign = String::from_utf8(allowed)
        .unwrap()
        .replace("acme/gitops", "evil/gitops");
    let (status, resp) = send(
        &app,
        signed("pull_request", "no", foreign.as_bytes(), SECRET),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{resp}");
    assert!(b.queue.delivery("no").await.unwrap().is_none());
}

async fn incomplete_payloads_are_recorded_as_rejected(b: &Backend) {
    let app = app(b);
    let body = br#"{"action":"opened","repository":{"full_name":"acme/gitops"}}"#;
    let (status, resp) = send(&app, signed("pull_request", "partial", body, SECRET)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{resp}");
    let rec = b.queue.delivery("partial").await.unwrap().unwrap();
    assert_eq!(rec.outcome, "rejected");
    assert!(rec.detail.unwrap().contains("pull_request"));
    assert!(
        b.queue
            .jobs_for_delivery("partial")
            .await
            .unwrap()
            .is_empty()
    );
}

struct Count(Arc<AtomicUsize>);

#[async_trait]
impl Handler for Count {
    async fn run(&self, _ctx: JobContext) -> Result<(), JobError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn store_outage_gives_503_and_the_redelivery_runs_once(b: &Backend) {
    let flaky = Flaky::new(b.queue.clone());
    let queue: Arc<dyn Queue> = flaky.clone();
    let (app, _) = app_with(queue.clone(), |s| s);
    let body = pr_opened(11, "abababababababababababababababababababab");

    flaky.set_down(true);
    let (status, _) = send(&app, signed("pull_request", "outage", &body, SECRET)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (ready, _) = send(&app, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE);
    flaky.set_down(false);
    assert_store_empty(&b.queue, "outage").await;

    // GitHub's "Redeliver" sends the same GUID again.
    let (status, _) = send(&app, signed("pull_request", "outage", &body, SECRET)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = send(&app, signed("pull_request", "outage", &body, SECRET)).await;
    assert_eq!(status, StatusCode::OK);

    let runs = Arc::new(AtomicUsize::new(0));
    let mut reg = Registry::new();
    reg.register_raw("pr_check", Count(runs.clone()));
    let cfg = RunnerConfig {
        workers: 2,
        poll_interval: Duration::from_millis(20),
        ..RunnerConfig::default()
    };
    let stop = CancellationToken::new();
    let handle = tokio::spawn(
        Runner::new(queue.clone(), reg, cfg, Arc::new(Metrics::new())).run(stop.clone()),
    );
    let job = b.queue.jobs_for_delivery("outage").await.unwrap()[0].id;
    for _ in 0..500 {
        if b.queue.job(job).await.unwrap().unwrap().state == JobState::Succeeded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    handle.await.unwrap();
    assert_eq!(
        b.queue.job(job).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(b.queue.job_runs(job).await.unwrap().len(), 1);
}

async fn health_readiness_and_metrics(b: &Backend) {
    let (app, _) = app_with(b.queue.clone(), |s| s);
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    assert_eq!(send(&app, get("/healthz")).await.0, StatusCode::OK);
    assert_eq!(send(&app, get("/readyz")).await.0, StatusCode::OK);
    send(
        &app,
        signed(
            "pull_request",
            "m1",
            &pr_opened(12, "1212121212121212121212121212121212121212"),
            SECRET,
        ),
    )
    .await;
    send(
        &app,
        signed(
            "pull_request",
            "m1",
            &pr_opened(12, "1212121212121212121212121212121212121212"),
            SECRET,
        ),
    )
    .await;
    let mut bad = signed("pull_request", "m2", b"{}", SECRET);
    bad.headers_mut().remove("x-hub-signature-256");
    send(&app, bad).await;
    let (status, text) = send(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap().to_string();
    for line in [
        "capstan_webhook_deliveries_total{event=\"pull_request\",outcome=\"accepted\"} 1",
        "capstan_webhook_deliveries_total{event=\"pull_request\",outcome=\"duplicate\"} 1",
        "capstan_webhook_deliveries_total{event=\"-\",outcome=\"unauthorized\"} 1",
        "capstan_queue_jobs{kind=\"pr_check\",state=\"queued\"} 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    // The worker role serves health and metrics but no intake.
    let worker_only = router(Arc::new(AppState::new(b.queue.clone(), vec![])), false);
    let (status, _) = send(&worker_only, signed("ping", "w", b"{}", SECRET)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The HTTP layers in front of the handler (`app::router`): load shedding and the body cap's
/// early refusal. SQLite only: they act before the store.
mod layers {
    use super::*;
    use axum::http::header;
    use tower::ServiceExt as _;

    /// With every slot taken by a delivery still sending its body, the next one is shed at
    /// once with 503 and `Retry-After`, stores nothing, and is counted; the slow one then
    /// completes normally.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_delivery_past_the_concurrency_limit_is_shed_with_retry_after() {
        let b = Backend::sqlite().await;
        let (app, metrics) = app_with(b.queue.clone(), |s| s.with_webhook_concurrency(1));

        // The first delivery holds the only slot: its body arrives in two parts and the test
        // sends the second one only after the shed request was answered.
        let body = pr_opened(31, "3131313131313131313131313131313131313131");
        let (head, tail) = body.split_at(10);
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let (rest_tx, rest_rx) = tokio::sync::oneshot::channel::<Bytes>();
        let first = Bytes::copy_from_slice(head);
        let stream = futures::stream::unfold(
            (Some(first), Some(started_tx), Some(rest_rx)),
            |(first, started, rest)| async move {
                if let Some(first) = first {
                    if let Some(tx) = started {
                        let _ = tx.send(());
                    }
                    return Some((Ok::<_, std::io::Error>(first), (None, None, rest)));
                }
                let chunk = rest?.await.ok()?;
                Some((Ok(chunk), (None, None, None)))
            },
        );
        let mut slow = signed("pull_request", "slow", &body, SECRET);
        *slow.body_mut() = Body::from_stream(stream);
        slow.headers_mut().remove(header::CONTENT_LENGTH);
        let app2 = app.clone();
        let slow = tokio::spawn(async move { send(&app2, slow).await });
        started_rx.await.unwrap();

        let resp = app
            .clone()
            .oneshot(signed(
                "pull_request",
                "shed",
                &pr_opened(32, "3232323232323232323232323232323232323232"),
                SECRET,
            ))
            .await
            .unwrap_or_else(|e| match e {});
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let retry = resp.headers().get(header::RETRY_AFTER).unwrap();
        assert!(retry.to_str().unwrap().parse::<u64>().unwrap() > 0);
        assert!(b.queue.delivery("shed").await.unwrap().is_none());
        assert_eq!(metrics.deliveries("-", "overloaded"), 1);

        rest_tx.send(Bytes::copy_from_slice(tail)).unwrap();
        let (status, resp) = slow.await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{resp}");
        // The slot is free again: the shed delivery, redelivered, is accepted.
        let (status, _) = send(
            &app,
            signed(
                "pull_request",
                "shed",
                &pr_opened(32, "3232323232323232323232323232323232323232"),
                SECRET,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        b.cleanup().await;
    }

    /// A store that stalls does not hold the request past its deadline: 503 with `Retry-After`,
    /// counted, and the same delivery goes through once the store answers again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_delivery_the_store_stalls_on_gets_503_at_its_deadline() {
        let b = Backend::sqlite().await;
        let flaky = Flaky::new(b.queue.clone());
        let (app, metrics) = app_with(flaky.clone(), |s| {
            s.with_body_timeout(Duration::from_millis(100))
                .with_handling_budget(Duration::from_millis(100))
        });
        flaky.set_hanging(true);
        let resp = app
            .clone()
            .oneshot(signed(
                "pull_request",
                "stalled",
                &pr_opened(41, "4141414141414141414141414141414141414141"),
                SECRET,
            ))
            .await
            .unwrap_or_else(|e| match e {});
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(resp.headers().contains_key(header::RETRY_AFTER));
        assert_eq!(metrics.deliveries("-", "deadline"), 1);

        flaky.set_hanging(false);
        let (status, _) = send(
            &app,
            signed(
                "pull_request",
                "stalled",
                &pr_opened(41, "4141414141414141414141414141414141414141"),
                SECRET,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(b.queue.jobs_for_delivery("stalled").await.unwrap().len(), 1);
        b.cleanup().await;
    }

    /// A declared length over the cap is refused by the body-limit layer before the handler
    /// runs; the answer still has the intake's JSON shape and is counted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_declared_length_over_the_cap_is_refused_as_json_and_counted() {
        let b = Backend::sqlite().await;
        let (app, metrics) = app_with(b.queue.clone(), |s| s.with_max_body_bytes(1024));
        let mut req = signed("pull_request", "declared", b"{}", SECRET);
        req.headers_mut()
            .insert(header::CONTENT_LENGTH, 4096.into());
        let (status, body) = send(&app, req).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["error"], "body exceeds 1024 bytes");
        assert_eq!(metrics.deliveries("-", "too_large"), 1);
        b.cleanup().await;
    }
}
