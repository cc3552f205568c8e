//! The HTTP side: shared state and the router. Thin by design — HTTP in, queue out.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::State;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use capstan_worker::jobs::MappingOptions;
use capstan_worker::queue::{GroupCommit, Queue};
use capstan_worker::runner::Metrics;
use globset::GlobSet;
use tokio::sync::Notify;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::intake;

/// Webhook bodies above this are refused with 413 while streaming (GitHub caps payloads at 25 MB).
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// Webhook requests one process works on at once; past it a request is shed at once with 503
/// and `Retry-After` instead of queueing in memory. GitHub records the failed delivery (to be
/// redelivered, and missed-event recovery finds the PR anyway), which beats every request
/// slowing down until GitHub's own 10 s timeout fails them all.
pub const WEBHOOK_CONCURRENCY: usize = 256;

/// Time a webhook request may take once its body is in (verify, parse, one transaction). A
/// store that hangs longer gets the request answered 503, so the sender retries later.
pub const WEBHOOK_HANDLING_BUDGET: Duration = Duration::from_secs(10);

/// Deliveries one intake transaction may hold at most (group commit); see [`GroupCommit`].
pub const INTAKE_BATCH_MAX: usize = 128;

/// Everything handlers need, built once.
pub struct AppState {
    pub(crate) queue: Arc<dyn Queue>,
    /// Where the webhook handler stores deliveries: batched into shared transactions.
    pub(crate) intake: GroupCommit,
    /// Any of these verifies a signature (rotation).
    pub(crate) secrets: Vec<String>,
    /// `None` = every repository.
    pub(crate) allowlist: Option<GlobSet>,
    pub(crate) mapping: MappingOptions,
    pub(crate) metrics: Arc<Metrics>,
    /// Wakes this process's idle workers after a delivery with jobs they run is committed.
    pub(crate) wake: Option<Arc<Notify>>,
    /// The job kinds this process's workers run.
    pub(crate) wake_kinds: Vec<String>,
    pub(crate) max_body_bytes: usize,
    /// Time allowed to receive a webhook body (a total, not an idle timeout).
    pub(crate) body_timeout: Duration,
    /// See [`WEBHOOK_CONCURRENCY`]; `0` sheds every webhook request (tests).
    pub(crate) webhook_concurrency: usize,
    /// See [`WEBHOOK_HANDLING_BUDGET`]; a webhook request gets `body_timeout` plus this.
    pub(crate) handling_budget: Duration,
    pub(crate) job_max_attempts: i32,
    /// The web UI; `None` serves no pages (a worker, or a test of the intake alone).
    pub(crate) dashboard: Option<Arc<crate::dashboard::Dashboard>>,
    /// `false` when `/metrics` has its own listener (`--metrics-listen`).
    pub(crate) serve_metrics: bool,
    /// The forge whose webhooks are taken (`/webhooks/<forge>`; only that one route).
    pub(crate) forge: capstan_worker::forge::ForgeKind,
    /// Set on SIGTERM: `/readyz` answers 503 from then on, while the listener stays open for the
    /// drain delay so the load balancer takes this replica out before connections are refused.
    pub(crate) draining: Arc<AtomicBool>,
}

impl AppState {
    /// State with the defaults; the `with_*` methods change them.
    pub fn new(queue: Arc<dyn Queue>, secrets: Vec<String>) -> Self {
        AppState {
            intake: GroupCommit::new(queue.clone(), INTAKE_BATCH_MAX),
            queue,
            secrets,
            allowlist: None,
            mapping: MappingOptions::default(),
            metrics: Arc::new(Metrics::new()),
            wake: None,
            wake_kinds: Vec::new(),
            max_body_bytes: MAX_BODY_BYTES,
            body_timeout: Duration::from_secs(30),
            webhook_concurrency: WEBHOOK_CONCURRENCY,
            handling_budget: WEBHOOK_HANDLING_BUDGET,
            job_max_attempts: capstan_worker::queue::NewJob::DEFAULT_MAX_ATTEMPTS,
            dashboard: None,
            serve_metrics: true,
            forge: capstan_worker::forge::ForgeKind::GitHub,
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Takes the webhooks of `forge` instead of GitHub's.
    pub fn with_forge(mut self, forge: capstan_worker::forge::ForgeKind) -> Self {
        self.forge = forge;
        self
    }

    /// Replaces the webhook secrets given to [`AppState::new`].
    pub fn with_secrets(mut self, secrets: Vec<String>) -> Self {
        self.secrets = secrets;
        self
    }

    /// Deliveries one intake transaction may hold; 1 gives each its own transaction.
    pub fn with_intake_batch_max(mut self, max: usize) -> Self {
        self.intake = GroupCommit::new(self.queue.clone(), max);
        self
    }

    /// Only repositories this matches are accepted.
    pub fn with_allowlist(mut self, allowlist: GlobSet) -> Self {
        self.allowlist = Some(allowlist);
        self
    }

    pub fn with_mapping(mut self, mapping: MappingOptions) -> Self {
        self.mapping = mapping;
        self
    }

    /// Shares the process's metrics (the default is a registry of this state's own).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Wakes this process's idle workers, which run `kinds`, when a delivery brings such jobs.
    pub fn with_wake(mut self, wake: Arc<Notify>, kinds: Vec<String>) -> Self {
        self.wake = Some(wake);
        self.wake_kinds = kinds;
        self
    }

    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Time allowed to receive a webhook body.
    pub fn with_body_timeout(mut self, body: Duration) -> Self {
        self.body_timeout = body;
        self
    }

    /// Time a webhook request gets on top of receiving its body.
    pub fn with_handling_budget(mut self, handling: Duration) -> Self {
        self.handling_budget = handling;
        self
    }

    pub fn with_webhook_concurrency(mut self, limit: usize) -> Self {
        self.webhook_concurrency = limit;
        self
    }

    pub fn with_job_max_attempts(mut self, attempts: i32) -> Self {
        self.job_max_attempts = attempts;
        self
    }

    pub fn with_dashboard(mut self, dashboard: Arc<crate::dashboard::Dashboard>) -> Self {
        self.dashboard = Some(dashboard);
        self
    }

    /// Marks the process as draining: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// `/metrics` is served on a listener of its own (`--metrics-listen`), not here.
    pub fn without_metrics_route(mut self) -> Self {
        self.serve_metrics = false;
        self
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
        use capstan_worker::forge::ForgeKind;
        // One forge's route only: Gitea also sends GitHub's header names, so a Gitea hook
        // pointed at `/webhooks/github` must find nothing there when Gitea is the forge.
        r = match state.forge {
            ForgeKind::GitHub => r.route(
                "/webhooks/github",
                webhook_route(&state, post(intake::webhook)),
            ),
            ForgeKind::Gitea => r.route(
                "/webhooks/gitea",
                webhook_route(&state, post(intake::webhook_gitea)),
            ),
            ForgeKind::GitLab => r.route(
                "/webhooks/gitlab",
                webhook_route(&state, post(intake::webhook_gitlab)),
            ),
        };
    }
    let dashboard = state.dashboard.clone().filter(|_| with_intake);
    let r = r.with_state(state);
    // The dashboard's access control wraps only its own routes: webhooks stay signature-checked,
    // health and metrics stay open to probes and Prometheus.
    let r = match dashboard {
        Some(d) => r.merge(crate::dashboard::routes(d)),
        None => r,
    };
    traced(r)
}

/// `POST /webhooks/<forge>` with its layers, outermost first: counting (every answer, including
/// the ones the layers give, lands in `capstan_webhook_deliveries_total`), load shedding past
/// [`AppState::webhook_concurrency`], the handling deadline, and the body cap (a declared
/// length over it is refused before reading; a longer stream is cut at the cap).
fn webhook_route(
    st: &Arc<AppState>,
    route: MethodRouter<Arc<AppState>>,
) -> MethodRouter<Arc<AppState>> {
    let handling = st.body_timeout + st.handling_budget;
    route
        .layer::<_, Infallible>(RequestBodyLimitLayer::new(st.max_body_bytes))
        .layer::<_, Infallible>(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(intake::unavailable))
                .load_shed()
                .concurrency_limit(st.webhook_concurrency)
                .timeout(handling),
        )
        .layer::<_, Infallible>(axum::middleware::map_response_with_state(
            st.clone(),
            intake::count,
        ))
}

/// One `request` span per HTTP request (method and path; never the query, which may carry a
/// token); handlers' spans (`delivery`, …) nest inside it. Responses and failures are logged at
/// debug level only: the handlers log what an operator needs, and an overload must not turn
/// every shed request into a log line.
fn traced(r: Router) -> Router {
    r.layer(
        TraceLayer::new_for_http()
            .make_span_with(|req: &Request<axum::body::Body>| {
                tracing::info_span!("request", method = %req.method(), path = req.uri().path())
            })
            .on_response(DefaultOnResponse::new().level(Level::DEBUG))
            .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
    )
}

/// `/metrics` and health on their own listener (`--metrics-listen`).
pub fn metrics_router(state: Arc<AppState>) -> Router {
    traced(
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(state),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    if st.draining.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response();
    }
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
            capstan_worker::runner::metrics::CONTENT_TYPE,
        )],
        body,
    )
        .into_response()
}
