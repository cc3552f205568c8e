//! ArgoCD's REST API over reqwest (rustls, aws-lc-rs), authenticated with a bearer token.
//!
//! Every call is traced and every failure typed, so callers can say *why* ArgoCD could not be
//! asked. ArgoCD answers 403 both for an app that does not exist and for one the token may not
//! see (it does not leak which apps exist); [`ArgoError::Forbidden`] says so.

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, instrument};
use url::Url;

use super::model::{
    Application, ApplicationList, ManagedResourcesResponse, ManifestResponse, RuntimeError,
    SyncRequest,
};

/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Why an ArgoCD call failed.
#[derive(Debug, thiserror::Error)]
pub enum ArgoError {
    /// No HTTP answer at all: connection refused, DNS, TLS or timeout.
    #[error("ArgoCD at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    /// 401: the token is missing, wrong or expired.
    #[error("{what}: ArgoCD rejected the token (401 Unauthorized)")]
    Unauthorized { what: String },
    /// 403: the app does not exist or the token may not see or act on it.
    #[error(
        "{what}: missing or forbidden (403; ArgoCD answers 403 for both an unknown app and one the token may not access)"
    )]
    Forbidden { what: String },
    #[error("{what}: not found (404): {message}")]
    NotFound { what: String, message: String },
    /// Any other non-2xx answer, with ArgoCD's own message.
    #[error("{what}: ArgoCD answered {status}: {message}")]
    Status {
        what: String,
        status: u16,
        message: String,
    },
    /// A 2xx answer that is not the documented shape.
    #[error("{what}: unexpected response from ArgoCD: {reason}")]
    Decode { what: String, reason: String },
    /// The client could not be built (bad URL, unreadable CA file).
    #[error("ArgoCD client: {0}")]
    Config(String),
}

impl ArgoError {
    /// The HTTP status, when ArgoCD answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ArgoError::Unauthorized { .. } => Some(401),
            ArgoError::Forbidden { .. } => Some(403),
            ArgoError::NotFound { .. } => Some(404),
            ArgoError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Where ArgoCD is and how to reach it. `Debug` leaves the token out.
#[derive(Clone)]
pub struct ArgoConfig {
    /// The server's base URL (`https://argocd.example.com`, or with a path prefix such as
    /// `https://example.com/argocd`).
    pub url: Url,
    pub token: String,
    pub timeout: Duration,
    /// Extra CA certificate (PEM) to trust, for an ArgoCD behind a private CA.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for ArgoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArgoConfig")
            .field("url", &self.url.as_str())
            .field("token", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .finish()
    }
}

impl ArgoConfig {
    pub fn new(url: Url, token: impl Into<String>) -> Self {
        ArgoConfig {
            url,
            token: token.into(),
            timeout: DEFAULT_TIMEOUT,
            ca_pem: None,
        }
    }

    /// Trust the PEM certificate(s) in `path` in addition to the web roots.
    pub fn with_ca_file(mut self, path: &Path) -> Result<Self, ArgoError> {
        let pem = std::fs::read(path)
            .map_err(|e| ArgoError::Config(format!("reading CA file {}: {e}", path.display())))?;
        self.ca_pem = Some(pem);
        Ok(self)
    }
}

/// Which revision(s) of an app's sources to render or sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revision {
    /// A single-source app: `revision=<sha>`.
    Single(String),
    /// A multi-source app: `revisions[i]` applies to the 1-based source `positions[i]`.
    Multi {
        revisions: Vec<String>,
        positions: Vec<u32>,
    },
}

impl Revision {
    fn query(&self) -> Vec<(&'static str, String)> {
        match self {
            Revision::Single(r) => vec![("revision", r.clone())],
            Revision::Multi {
                revisions,
                positions,
            } => revisions
                .iter()
                .map(|r| ("revisions", r.clone()))
                .chain(positions.iter().map(|p| ("sourcePositions", p.to_string())))
                .collect(),
        }
    }

    /// Puts the revision(s) into a sync request.
    pub fn apply(&self, req: &mut SyncRequest) {
        match self {
            Revision::Single(r) => req.revision = Some(r.clone()),
            Revision::Multi {
                revisions,
                positions,
            } => {
                req.revisions = revisions.clone();
                req.source_positions = positions.iter().map(u32::to_string).collect();
            }
        }
    }
}

/// A client for one ArgoCD server.
#[derive(Clone)]
pub struct ArgoClient {
    http: reqwest::Client,
    base: Url,
    token: String,
}

impl std::fmt::Debug for ArgoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArgoClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl ArgoClient {
    pub fn new(cfg: &ArgoConfig) -> Result<ArgoClient, ArgoError> {
        crate::forge::github::install_crypto_provider();
        let mut base = cfg.url.clone();
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ArgoError::Config(format!(
                "{base}: expected an http(s) URL"
            )));
        }
        // Joining relative paths needs the trailing slash, or a path prefix loses its last segment.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("capstan/", env!("CARGO_PKG_VERSION")))
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            // A redirect would carry the token to wherever it points.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &cfg.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ArgoError::Config(format!("CA file: {e}")))?;
            if certs.is_empty() {
                return Err(ArgoError::Config("CA file holds no certificate".into()));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ArgoError::Config(format!("building the HTTP client: {e}")))?;
        Ok(ArgoClient {
            http,
            base,
            token: cfg.token.clone(),
        })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// `GET /api/v1/applications/{name}`.
    pub async fn application(&self, name: &str) -> Result<Application, ArgoError> {
        self.call::<(), _>(
            Method::GET,
            &["api", "v1", "applications", name],
            &[],
            None,
            &format!("application {name}"),
        )
        .await
    }

    /// `GET /api/v1/applications`: every Application the token may see.
    pub async fn list_applications(&self) -> Result<Vec<Application>, ArgoError> {
        let list: ApplicationList = self
            .call::<(), _>(
                Method::GET,
                &["api", "v1", "applications"],
                &[],
                None,
                "list of applications",
            )
            .await?;
        Ok(list.items)
    }

    /// `GET /api/v1/applications/{name}/manifests` at `revision`.
    pub async fn manifests(
        &self,
        name: &str,
        revision: &Revision,
    ) -> Result<ManifestResponse, ArgoError> {
        self.call::<(), _>(
            Method::GET,
            &["api", "v1", "applications", name, "manifests"],
            &revision.query(),
            None,
            &format!("manifests of {name}"),
        )
        .await
    }

    /// `GET /api/v1/applications/{name}/managed-resources`.
    pub async fn managed_resources(
        &self,
        name: &str,
    ) -> Result<ManagedResourcesResponse, ArgoError> {
        self.call::<(), _>(
            Method::GET,
            &["api", "v1", "applications", name, "managed-resources"],
            &[],
            None,
            &format!("managed resources of {name}"),
        )
        .await
    }

    /// `POST /api/v1/applications/{name}/sync`.
    pub async fn sync(&self, req: &SyncRequest) -> Result<Application, ArgoError> {
        let what = if req.dry_run {
            format!("dry-run sync of {}", req.name)
        } else {
            format!("sync of {}", req.name)
        };
        self.call(
            Method::POST,
            &["api", "v1", "applications", &req.name, "sync"],
            &[],
            Some(req),
            &what,
        )
        .await
    }

    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Url, ArgoError> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|_| ArgoError::Config(format!("{}: cannot be a base", self.base)))?;
            path.pop_if_empty();
            // Each segment is percent-encoded on its own, so an app name cannot add path parts.
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    #[instrument(name = "argocd", skip_all, fields(method = %method, what = %what, status))]
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&B>,
        what: &str,
    ) -> Result<T, ArgoError> {
        let url = self.url(segments, query)?;
        let mut req = self
            .http
            .request(method, url.clone())
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| ArgoError::Unreachable {
            url: self.base.to_string(),
            reason: error_chain(&e),
        })?;
        let status = resp.status();
        tracing::Span::current().record("status", status.as_u16());
        let bytes = resp.bytes().await.map_err(|e| ArgoError::Unreachable {
            url: self.base.to_string(),
            reason: format!("reading the response: {}", error_chain(&e)),
        })?;
        debug!(
            path = url.path(),
            status = status.as_u16(),
            bytes = bytes.len(),
            "argocd answered"
        );
        let what = what.to_string();
        if !status.is_success() {
            let message = serde_json::from_slice::<RuntimeError>(&bytes)
                .ok()
                .and_then(|e| e.message.or(e.error))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect());
            return Err(match status {
                StatusCode::UNAUTHORIZED => ArgoError::Unauthorized { what },
                StatusCode::FORBIDDEN => ArgoError::Forbidden { what },
                StatusCode::NOT_FOUND => ArgoError::NotFound { what, message },
                s => ArgoError::Status {
                    what,
                    status: s.as_u16(),
                    message,
                },
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ArgoError::Decode {
            what,
            reason: e.to_string(),
        })
    }
}

/// reqwest's error plus its sources ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
