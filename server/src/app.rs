//! The HTTP side: shared state and the router. Thin by design — HTTP in, queue out.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use capstan_worker::jobs::MappingOptions;
use capstan_worker::queue::Queue;
use capstan_worker::runner::Metrics;
use globset::GlobSet;
use tokio::sync::Notify;

use crate::intake;

/// Webhook bodies above this are refused with 413 while streaming (GitHub caps payloads at 25 MB).
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// Everything handlers need, built once.
pub struct AppState {
    pub queue: Arc<dyn Queue>,
    /// Any of these verifies a signature (rotation).
    pub secrets: Vec<String>,
    /// `None` = every repository.
    pub allowlist: Option<GlobSet>,
    pub mapping: MappingOptions,
    pub metrics: Arc<Metrics>,
    /// Wakes this process's idle workers after a delivery with jobs they run is committed.
    pub wake: Option<Arc<Notify>>,
    /// The job kinds this process's workers run.
    pub wake_kinds: Vec<String>,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
    pub job_max_attempts: i32,
    /// The web UI; `None` serves no pages (a worker, or a test of the intake alone).
    pub dashboard: Option<Arc<crate::dashboard::Dashboard>>,
    /// `false` when `/metrics` has its own listener (`--metrics-listen`).
    pub serve_metrics: bool,
}

impl AppState {
    /// State with the defaults; adjust fields as needed.
    pub fn new(queue: Arc<dyn Queue>, secrets: Vec<String>) -> Self {
        AppState {
            queue,
            secrets,
            allowlist: None,
            mapping: MappingOptions::default(),
            metrics: Arc::new(Metrics::new()),
            wake: None,
            wake_kinds: Vec::new(),
            max_body_bytes: MAX_BODY_BYTES,
            body_timeout: Duration::from_secs(30),
            job_max_attempts: capstan_worker::queue::NewJob::DEFAULT_MAX_ATTEMPTS,
            dashboard: None,
            serve_metrics: true,
        }
    }
}

/// The router. `with_intake` is false for `--role worker`, which serves health and metrics only.
pub fn router(state: Arc<AppState>, with_intake: bool) -> Router {
    let mut r = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if state.serve_metrics {
        r = r.route("/metrics", get(metrics));
    }
    if with_intake {
        r = r.route("/webhooks/github", post(intake::webhook));
    }
    let dashboard = state.dashboard.clone().filter(|_| with_intake);
    let r = r.with_state(state);
    // The dashboard's access control wraps only its own routes: webhooks stay signature-checked,
    // health and metrics stay open to probes and Prometheus.
    match dashboard {
        Some(d) => r.merge(crate::dashboard::routes(d)),
        None => r,
    }
}

/// `/metrics` and health on their own listener (`--metrics-listen`).
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    match st.queue.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let depth = st.queue.depth().await.ok();
    let body = st.metrics.render(depth.as_deref());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
