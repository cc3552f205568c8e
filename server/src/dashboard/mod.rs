//! Capstan's web UI on the service port: recent runs and deliveries, the full report of a run,
//! apps × environments from the default branch, the promotion audit trail, the application
//! registry and cluster health. Server-rendered HTML, every page also as JSON under `/api/`.
//!
//! Everything here reads; the pipeline, the promotion engine and the intake write. Parts that
//! need outside systems degrade on their own: without Kubernetes access the registry and cluster
//! pages say so, without ArgoCD the sync columns say "not configured", and the rest works from the
//! store and the repository.

pub mod apps;
pub mod argocd;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod fidelity;
pub mod layout;
pub mod overview;
pub mod prefix;
pub mod probe;
pub mod promotions;
pub mod registry;
pub mod runs;
pub mod services;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use capstan_worker::queue::Queue;
use capstan_worker::store::activity::ActivityStore;
use capstan_worker::store::{FidelityStore, PromotionStore, RunStore, StoreError};
use serde::Serialize;

pub use auth::Auth;
pub use config::DashboardConfig;

/// What the dashboard reads, built once by `serve` (or a test).
pub struct Dashboard {
    pub(crate) config: DashboardConfig,
    pub(crate) runs: Arc<dyn RunStore>,
    /// `None` when this build records no promotions (the page says so).
    pub(crate) promotions: Option<Arc<dyn PromotionStore>>,
    /// Render verification records (`/fidelity`); `None`: the page says nothing is recorded.
    pub(crate) fidelity: Option<Arc<dyn FidelityStore>>,
    pub(crate) activity: ActivityStore,
    pub(crate) queue: Arc<dyn Queue>,
    /// The GitOps checkout whose default branch the environments page reads.
    pub(crate) repo: Option<PathBuf>,
    pub(crate) environments: Arc<apps::EnvironmentsCache>,
    /// Static links always; Kubernetes-discovered entries when a client is available.
    pub(crate) registry: Arc<registry::Registry>,
    /// Cluster health; `Err` says why there is no Kubernetes access.
    pub(crate) cluster: Result<Arc<cluster::ClusterView>, String>,
    /// ArgoCD application status, when a client is plugged in.
    pub(crate) argocd: Option<Arc<dyn argocd::ArgoApps>>,
    pub(crate) auth: Arc<Auth>,
    /// The path the dashboard is served under when a request names none in
    /// `X-Forwarded-Prefix`: the path of `public_url` (see [`prefix`]).
    pub(crate) prefix: prefix::Prefix,
    /// The forge's web address (`https://github.com`), to link a run's check run and comments;
    /// `None`: no forge, the page shows their ids only.
    pub(crate) forge_web: Option<String>,
    /// Which forge `forge_web` is, for the shape of its links.
    pub(crate) forge_kind: capstan_worker::forge::ForgeKind,
}

impl Dashboard {
    /// A dashboard over the store with defaults for everything optional.
    pub fn new(runs: Arc<dyn RunStore>, queue: Arc<dyn Queue>) -> Self {
        Dashboard {
            config: DashboardConfig::default(),
            activity: ActivityStore::new(queue.db()),
            runs,
            promotions: None,
            fidelity: None,
            queue,
            repo: None,
            environments: Arc::default(),
            registry: Arc::new(registry::Registry::new(
                None,
                &DashboardConfig::default(),
                registry::ProbeSettings::default(),
            )),
            cluster: Err("no Kubernetes client was configured".into()),
            argocd: None,
            auth: Arc::new(Auth::none()),
            prefix: prefix::Prefix::none(),
            forge_web: None,
            forge_kind: capstan_worker::forge::ForgeKind::GitHub,
        }
    }

    /// Link runs' check runs and comments on GitHub at `url` (`https://github.com`).
    pub fn with_forge_web(self, url: String) -> Self {
        self.with_forge(capstan_worker::forge::ForgeKind::GitHub, url)
    }

    /// Link runs' checks and comments on a forge of `kind` whose web pages are under `url`.
    pub fn with_forge(mut self, kind: capstan_worker::forge::ForgeKind, url: String) -> Self {
        self.forge_web = Some(url.trim_end_matches('/').to_string());
        self.forge_kind = kind;
        self
    }

    pub fn with_config(mut self, config: DashboardConfig) -> Self {
        self.config = config;
        self
    }

    pub fn with_promotions(mut self, store: Arc<dyn PromotionStore>) -> Self {
        self.promotions = Some(store);
        self
    }

    pub fn with_fidelity(mut self, store: Arc<dyn FidelityStore>) -> Self {
        self.fidelity = Some(store);
        self
    }

    /// The GitOps checkout whose default branch the environments page reads.
    pub fn with_repo(mut self, repo: PathBuf) -> Self {
        self.repo = Some(repo);
        self
    }

    pub fn with_registry(mut self, registry: Arc<registry::Registry>) -> Self {
        self.registry = registry;
        self
    }

    /// Cluster health from this view; without one the page says there is no Kubernetes access.
    pub fn with_cluster(mut self, cluster: Arc<cluster::ClusterView>) -> Self {
        self.cluster = Ok(cluster);
        self
    }

    /// Why there is no cluster view (shown on the page).
    pub fn without_cluster(mut self, why: String) -> Self {
        self.cluster = Err(why);
        self
    }

    pub fn with_argocd(mut self, argocd: Arc<dyn argocd::ArgoApps>) -> Self {
        self.argocd = Some(argocd);
        self
    }

    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = Arc::new(auth);
        self
    }

    pub fn with_prefix(mut self, prefix: prefix::Prefix) -> Self {
        self.prefix = prefix;
        self
    }
}

/// A Kubernetes client for the API server at `url` without credentials (a local proxy such as
/// `kubectl proxy`, or a test's fake API server).
pub fn kube_client_for(url: &str) -> Result<kube::Client, String> {
    capstan_worker::forge::github::install_crypto_provider();
    let uri: axum::http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    kube::Client::try_from(kube::Config::new(uri)).map_err(|e| e.to_string())
}

/// Why a page could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("bad request: {0}")]
    BadRequest(String),
}

impl PageError {
    fn status(&self) -> StatusCode {
        match self {
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn html(&self, d: &Dashboard) -> Response {
        if let PageError::Store(e) = self {
            tracing::warn!(error = %e, "dashboard page failed");
        }
        let body = maud::html! {
            h1 { (self.status()) }
            p { (capstan_worker::scrub::scrub_string(&self.to_string())) }
        };
        (
            self.status(),
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            layout::page(&d.config, "Error", "", None, body).into_string(),
        )
            .into_response()
    }

    fn json(&self) -> Response {
        let error = capstan_worker::scrub::scrub_string(&self.to_string());
        let body = serde_json::json!({ "error": error }).to_string();
        (
            self.status(),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// Every page and API answer is scrubbed as it leaves: pages quote stored runs, promotions and
/// live ArgoCD and cluster state, any of which can carry upstream text.
fn html_response(html: maud::Markup) -> Response {
    let html = capstan_worker::scrub::scrub_string(&html.into_string());
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

fn json_response<T: Serialize>(v: &T) -> Response {
    // Scrubbed as a value, so the answer stays valid JSON.
    let scrubbed = serde_json::to_value(v).map(|mut v| {
        capstan_worker::scrub::scrub_json(&mut v);
        v
    });
    match scrubbed.and_then(|v| serde_json::to_string(&v)) {
        Ok(s) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            s,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

type D = State<Arc<Dashboard>>;
type Who = Option<axum::Extension<auth::Viewer>>;

fn viewer(who: &Who) -> Option<&str> {
    who.as_ref().and_then(|axum::Extension(v)| v.0.as_deref())
}

/// Declares the HTML and JSON handler of a page built by `$build` and drawn by `$render`.
macro_rules! page_handlers {
    ($html:ident, $json:ident, $build:path, $render:path, $q:ty) => {
        async fn $html(State(d): D, who: Who, Query(q): Query<$q>) -> Response {
            match $build(&d, &q).await {
                Ok(v) => html_response($render(&d, &v, viewer(&who))),
                Err(e) => e.html(&d),
            }
        }
        async fn $json(State(d): D, Query(q): Query<$q>) -> Response {
            match $build(&d, &q).await {
                Ok(v) => json_response(&v),
                Err(e) => e.json(),
            }
        }
    };
}

page_handlers!(
    overview_html,
    overview_json,
    overview::build,
    overview::render,
    overview::Params
);
page_handlers!(
    apps_html,
    apps_json,
    apps::build,
    apps::render,
    apps::Params
);
page_handlers!(
    promotions_html,
    promotions_json,
    promotions::build,
    promotions::render,
    promotions::Params
);
page_handlers!(
    fidelity_html,
    fidelity_json,
    fidelity::build,
    fidelity::render,
    fidelity::Params
);
page_handlers!(
    services_html,
    services_json,
    services::build,
    services::render,
    services::Params
);
page_handlers!(
    cluster_html,
    cluster_json,
    cluster::build,
    cluster::render,
    cluster::Params
);
page_handlers!(
    runs_html,
    runs_json,
    runs::build_list,
    runs::render_list,
    runs::ListParams
);

async fn run_html(State(d): D, who: Who, Path(id): Path<String>) -> Response {
    match runs::build(&d, &id).await {
        Ok(v) => html_response(runs::render(&d, &v, viewer(&who))),
        Err(e) => e.html(&d),
    }
}

async fn run_json(State(d): D, Path(id): Path<String>) -> Response {
    match runs::build(&d, &id).await {
        Ok(v) => json_response(&v),
        Err(e) => e.json(),
    }
}

/// The dashboard's routes, all behind the access-control layer (`/login` excepted).
pub fn routes(d: Arc<Dashboard>) -> Router {
    let auth = d.auth.clone();
    let default_prefix = d.prefix.clone();
    let login = Router::new()
        .route("/login", get(auth::login_form).post(auth::login))
        .with_state(auth.clone());
    Router::new()
        .route("/", get(overview_html))
        .route("/api/overview", get(overview_json))
        .route("/runs", get(runs_html))
        .route("/api/runs", get(runs_json))
        .route("/runs/{id}", get(run_html))
        .route("/api/runs/{id}", get(run_json))
        .route("/apps", get(apps_html))
        .route("/api/apps", get(apps_json))
        .route("/promotions", get(promotions_html))
        .route("/api/promotions", get(promotions_json))
        .route("/fidelity", get(fidelity_html))
        .route("/api/fidelity", get(fidelity_json))
        .route("/services", get(services_html))
        .route("/api/services", get(services_json))
        .route("/cluster", get(cluster_html))
        .route("/api/cluster", get(cluster_json))
        .with_state(d)
        .merge(login)
        .layer(axum::middleware::from_fn_with_state(auth, auth::require))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            PAGE_TIMEOUT,
        ))
        // Behind a path-stripping proxy: links, forms, redirects and the cookie path get the
        // prefix. Outside access control (its sign-in page and redirects too), inside
        // compression (it rewrites plain HTML).
        .layer(axum::middleware::from_fn_with_state(
            default_prefix,
            prefix::layer,
        ))
        // Pages and their JSON are text that shrinks five- to tenfold (a run with full diffs is
        // megabytes); only for clients that ask, and never for tiny answers.
        .layer(tower_http::compression::CompressionLayer::new())
}

/// A page still being built after this (a hung store, Kubernetes or ArgoCD call) is answered
/// 503 rather than holding the browser's connection.
pub const PAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
