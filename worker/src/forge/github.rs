//! The [`Forge`] over GitHub's REST API (github.com or Enterprise Server via a configurable base
//! URL), authenticated by a personal token or as a GitHub App.
//!
//! Built on reqwest (rustls + aws-lc-rs) rather than octocrab: the pipeline needs exact control
//! over what octocrab hides — `retry-after` and secondary rate limits with a bounded wait, Link
//! pagination that never follows a link off the configured host with our token, per-owner
//! installation tokens refreshed before expiry, and a 422's own message in the error. The JWT is
//! signed with aws-lc-rs directly, so there is one crypto stack.

use std::collections::HashMap;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tracing::{debug, info, warn};
use url::Url;

use super::{
    ChangedFile, CheckRun, CommitStatus, Forge, ForgeError, Identity, IssueComment,
    OpenPullRequest, Permission, PullRequest, PullRequestState, Reaction,
};
use super::{NewPullRequest, PullSummary, PullUpdate};

/// What GitHub allows per page.
pub const MAX_PER_PAGE: usize = 100;
/// Check-run annotations GitHub accepts per request.
pub const ANNOTATIONS_PER_REQUEST: usize = 50;
const NO_REPO: &str = "(installation)";

/// Installs aws-lc-rs as rustls' process-wide provider. reqwest is built without a provider of its
/// own, and any crate that enables a second one makes rustls refuse to pick; installing it
/// explicitly once keeps every TLS client in the process working. Safe to call repeatedly.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error means a provider is installed already, which is what we want.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// A GitHub App's private key, parsed once.
pub struct AppKey(RsaKeyPair);

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppKey(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{origin}: not a PEM private key (expected BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)"
    )]
    NotPem { origin: String },
    #[error("{origin}: the PEM body is not base64: {message}")]
    Base64 { origin: String, message: String },
    #[error("{origin}: not a usable RSA key: {message}")]
    Rsa { origin: String, message: String },
    #[error("{origin}: cannot read the key: {source}")]
    Io {
        origin: String,
        source: std::io::Error,
    },
}

impl AppKey {
    /// Parses the PEM GitHub hands out (PKCS#1, `BEGIN RSA PRIVATE KEY`) or a PKCS#8 one.
    /// `origin` names the key in errors (a file path, an env var).
    pub fn from_pem(pem: &str, origin: &str) -> Result<AppKey, KeyError> {
        let (label, body) = pem_body(pem).ok_or_else(|| KeyError::NotPem {
            origin: origin.into(),
        })?;
        let der = STANDARD.decode(body).map_err(|e| KeyError::Base64 {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        let pair = match label.as_str() {
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            _ => {
                return Err(KeyError::NotPem {
                    origin: origin.into(),
                });
            }
        }
        .map_err(|e| KeyError::Rsa {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        // The PEM is not kept, so this is the one chance to tell the scrubber about it.
        crate::scrub::register(pem);
        Ok(AppKey(pair))
    }

    pub fn from_file(path: &std::path::Path) -> Result<AppKey, KeyError> {
        let origin = path.display().to_string();
        let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            origin: origin.clone(),
            source,
        })?;
        AppKey::from_pem(&pem, &origin)
    }

    /// The public half (DER `RSAPublicKey`), e.g. for a test server verifying our JWTs.
    pub fn public_key_der(&self) -> Vec<u8> {
        use aws_lc_rs::signature::KeyPair as _;
        self.0.public_key().as_ref().to_vec()
    }

    /// The App JWT GitHub wants: RS256, `iss` = App id, issued 60 s in the past against clock
    /// drift, valid 9 minutes (GitHub's maximum is 10).
    pub fn jwt(&self, app_id: u64, now: SystemTime) -> Result<String, ForgeError> {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(
            json!({"iat": now.saturating_sub(60), "exp": now + 540, "iss": app_id.to_string()})
                .to_string(),
        );
        let signing_input = format!("{header}.{claims}");
        let mut sig = vec![0u8; self.0.public_modulus_len()];
        self.0
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|e| ForgeError::Other {
                repo: NO_REPO.into(),
                message: format!("signing the App JWT failed: {e}"),
            })?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

fn pem_body(pem: &str) -> Option<(String, String)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let end_marker = format!("-----END {label}-----");
    let body_start = label_end + 5;
    let body_end = rest.find(&end_marker)?;
    let body: String = rest
        .get(body_start..body_end)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    Some((label, body))
}

/// How Capstan authenticates.
#[derive(Clone, Debug)]
pub enum GitHubAuth {
    /// A personal (or fine-grained) token. Check runs are unavailable; use commit statuses.
    Token(String),
    /// A GitHub App: a JWT buys installation tokens, one per owner the App is installed on.
    App { app_id: u64, key: Arc<AppKey> },
}

/// Refusals of the GitHub settings (`CAPSTAN_GITHUB_*`), each naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "no GitHub credentials: set CAPSTAN_GITHUB_TOKEN, or CAPSTAN_GITHUB_APP_ID and CAPSTAN_GITHUB_APP_KEY_FILE"
    )]
    Missing,
    #[error(
        "both CAPSTAN_GITHUB_TOKEN and CAPSTAN_GITHUB_APP_ID are set; choose one way to authenticate"
    )]
    Ambiguous,
    #[error("CAPSTAN_GITHUB_APP_ID {0:?} is not a number")]
    AppId(String),
    #[error("CAPSTAN_GITHUB_APP_ID is set but CAPSTAN_GITHUB_APP_KEY_FILE is not")]
    MissingKeyFile,
    #[error("CAPSTAN_GITHUB_APP_KEY_FILE: {0}")]
    Key(#[from] KeyError),
    #[error("CAPSTAN_GITHUB_TOKEN is empty or contains whitespace")]
    Token,
    #[error("CAPSTAN_GITHUB_API_URL {url:?}: {message}")]
    ApiUrl { url: String, message: String },
}

impl GitHubAuth {
    /// Auth from the settings as given (env or flags): a token, or an App id plus key file.
    pub fn from_settings(
        token: Option<&str>,
        app_id: Option<&str>,
        key_file: Option<&std::path::Path>,
    ) -> Result<GitHubAuth, SettingsError> {
        match (token, app_id) {
            (Some(_), Some(_)) => Err(SettingsError::Ambiguous),
            (None, None) => Err(SettingsError::Missing),
            (Some(t), None) => {
                let t = t.trim();
                if t.is_empty() || t.chars().any(char::is_whitespace) {
                    return Err(SettingsError::Token);
                }
                Ok(GitHubAuth::Token(t.to_string()))
            }
            (None, Some(id)) => {
                let app_id = id
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| SettingsError::AppId(id.to_string()))?;
                let key = AppKey::from_file(key_file.ok_or(SettingsError::MissingKeyFile)?)?;
                Ok(GitHubAuth::App {
                    app_id,
                    key: Arc::new(key),
                })
            }
        }
    }
}

/// The API base: github.com's unless set (GitHub Enterprise Server: `https://<host>/api/v3`).
pub fn api_url_from_setting(url: Option<&str>) -> Result<Url, SettingsError> {
    let raw = url.unwrap_or("https://api.github.com");
    let parsed = Url::parse(raw).map_err(|e| SettingsError::ApiUrl {
        url: raw.into(),
        message: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
        return Err(SettingsError::ApiUrl {
            url: raw.into(),
            message: "must be an http(s) URL with a host".into(),
        });
    }
    if !parsed.username().is_empty() || parsed.password().is_some() || parsed.query().is_some() {
        return Err(SettingsError::ApiUrl {
            url: raw.into(),
            message: "must not carry credentials or a query".into(),
        });
    }
    Ok(parsed)
}

/// The clock used for the JWT and token expiry; tests substitute one they can advance.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

#[derive(Clone)]
pub struct GitHubConfig {
    /// `https://api.github.com` or `https://<ghes host>/api/v3`.
    pub api_url: Url,
    pub auth: GitHubAuth,
    pub user_agent: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The longest Capstan sleeps for a rate limit before giving up with `RateLimited`.
    pub max_rate_limit_wait: Duration,
    /// How often one request is retried after a rate limit or a 502/503/504.
    pub max_retries: u32,
    /// An installation token is replaced when it has less than this left.
    pub token_refresh_margin: Duration,
    /// Stop following `next` links after this many pages (a runaway guard).
    pub max_pages: usize,
    pub clock: Clock,
}

impl GitHubConfig {
    pub fn new(api_url: Url, auth: GitHubAuth) -> GitHubConfig {
        GitHubConfig {
            api_url,
            auth,
            user_agent: format!("capstan/{}", env!("CARGO_PKG_VERSION")),
            timeout: Duration::from_secs(30),
            max_rate_limit_wait: Duration::from_secs(60),
            max_retries: 3,
            token_refresh_margin: Duration::from_secs(300),
            max_pages: 1000,
            clock: Arc::new(SystemTime::now),
        }
    }
}

impl std::fmt::Debug for GitHubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubConfig")
            .field("api_url", &self.api_url.as_str())
            .field(
                "auth",
                &match self.auth {
                    GitHubAuth::Token(_) => "token",
                    GitHubAuth::App { .. } => "app",
                },
            )
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct CachedToken {
    token: String,
    expires_at: SystemTime,
}

#[derive(Default)]
struct AppState {
    /// owner (lower-case) → installation id.
    installations: HashMap<String, u64>,
    /// (installation id, repository name it is scoped to) → token.
    tokens: HashMap<(u64, Option<String>), CachedToken>,
}

/// GitHub over REST.
pub struct GitHubForge {
    cfg: GitHubConfig,
    http: reqwest::Client,
    app: Mutex<AppState>,
    /// Held while buying an installation token, so concurrent calls wait for one instead of
    /// each fetching their own.
    token_fetch: Mutex<()>,
}

/// Who a request authenticates as.
#[derive(Clone, Copy)]
enum As<'a> {
    /// The App itself (JWT): `/app/...` endpoints.
    App,
    /// The installation owning `owner` (App) or the token (token auth).
    Owner(&'a str),
    /// A known installation.
    Installation(u64),
}

struct Response {
    headers: HeaderMap,
    body: Value,
}

impl GitHubForge {
    pub fn new(cfg: GitHubConfig) -> Result<GitHubForge, ForgeError> {
        install_crypto_provider();
        let mut api_url = cfg.api_url.clone();
        // Joining relative paths needs the trailing slash, or `/api/v3` loses its last segment.
        if !api_url.path().ends_with('/') {
            let path = format!("{}/", api_url.path());
            api_url.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .user_agent(cfg.user_agent.clone())
            .timeout(cfg.timeout)
            // Redirects would carry our token to wherever GitHub points; 3xx is reported instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ForgeError::Other {
                repo: NO_REPO.into(),
                message: format!("building the HTTP client failed: {e}"),
            })?;
        Ok(GitHubForge {
            cfg: GitHubConfig { api_url, ..cfg },
            http,
            app: Mutex::new(AppState::default()),
            token_fetch: Mutex::new(()),
        })
    }

    fn url(&self, path: &str) -> Result<Url, ForgeError> {
        self.cfg
            .api_url
            .join(path.trim_start_matches('/'))
            .map_err(|e| ForgeError::Other {
                repo: NO_REPO.into(),
                message: format!("bad API path {path}: {e}"),
            })
    }

    fn now(&self) -> SystemTime {
        (self.cfg.clock)()
    }

    /// The `Authorization` header value for `who`.
    async fn authorization(&self, who: As<'_>, repo: &str) -> Result<String, ForgeError> {
        match (&self.cfg.auth, who) {
            (GitHubAuth::Token(t), _) => Ok(format!("Bearer {t}")),
            (GitHubAuth::App { app_id, key }, As::App) => {
                Ok(format!("Bearer {}", key.jwt(*app_id, self.now())?))
            }
            // Boxed: fetching a token is itself a request (as the App), so the futures nest.
            (GitHubAuth::App { .. }, As::Installation(id)) => Ok(format!(
                "Bearer {}",
                Box::pin(self.installation_token(id, repo)).await?
            )),
            (GitHubAuth::App { .. }, As::Owner(owner)) => {
                let id = Box::pin(self.installation_for(owner, repo)).await?;
                Ok(format!(
                    "Bearer {}",
                    Box::pin(self.installation_token(id, repo)).await?
                ))
            }
        }
    }

    async fn installation_for(&self, owner: &str, repo: &str) -> Result<u64, ForgeError> {
        let key = owner.to_ascii_lowercase();
        if let Some(id) = self.app.lock().await.installations.get(&key) {
            return Ok(*id);
        }
        let path = if repo.contains('/') && repo != NO_REPO {
            format!("repos/{repo}/installation")
        } else {
            format!("users/{owner}/installation")
        };
        let resp = self
            .send(Method::GET, self.url(&path)?, As::App, repo, None)
            .await?;
        let id = resp.body["id"].as_u64().ok_or_else(|| ForgeError::Other {
            repo: repo.into(),
            message: "installation response without an id".into(),
        })?;
        self.app.lock().await.installations.insert(key, id);
        Ok(id)
    }

    /// A token of installation `id`, scoped to `repo` when the call is about one repository:
    /// a token that leaks from one job (a git credential, an error) reaches only that repository,
    /// not every repository the App is installed on.
    async fn installation_token(&self, id: u64, repo: &str) -> Result<String, ForgeError> {
        let scope = repo
            .split_once('/')
            .filter(|_| repo != NO_REPO)
            .map(|(_, name)| name.to_ascii_lowercase());
        let key = (id, scope.clone());
        if let Some(t) = self.cached_token(&key).await {
            return Ok(t);
        }
        let _fetching = self.token_fetch.lock().await;
        // Another call may have bought one while this one waited.
        if let Some(t) = self.cached_token(&key).await {
            return Ok(t);
        }
        let now = self.now();
        let url = self.url(&format!("app/installations/{id}/access_tokens"))?;
        let body = scope
            .as_ref()
            .map(|name| serde_json::json!({ "repositories": [name] }));
        let resp = self
            .send(Method::POST, url, As::App, repo, body.as_ref())
            .await?;
        let token = resp.body["token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ForgeError::Other {
                repo: repo.into(),
                message: "installation token response without a token".into(),
            })?
            .to_string();
        let expires_at = resp.body["expires_at"]
            .as_str()
            .and_then(|s| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|t| UNIX_EPOCH + Duration::from_secs(t.unix_timestamp().max(0) as u64))
            // GitHub documents one hour; assume less if it does not say.
            .unwrap_or(now + Duration::from_secs(1800));
        info!(
            installation = id,
            scope = scope.as_deref().unwrap_or("(installation)"),
            "fetched a GitHub App installation token"
        );
        self.app.lock().await.tokens.insert(
            key,
            CachedToken {
                token: token.clone(),
                expires_at,
            },
        );
        Ok(token)
    }

    async fn cached_token(&self, key: &(u64, Option<String>)) -> Option<String> {
        let now = self.now();
        self.app
            .lock()
            .await
            .tokens
            .get(key)
            .filter(|t| t.expires_at > now + self.cfg.token_refresh_margin)
            .map(|t| t.token.clone())
    }

    /// One request with rate-limit retries, traced, mapped to [`ForgeError`].
    async fn send(
        &self,
        method: Method,
        url: Url,
        who: As<'_>,
        repo: &str,
        body: Option<&Value>,
    ) -> Result<Response, ForgeError> {
        let mut attempt = 0u32;
        let mut retried_auth = false;
        loop {
            let auth = self.authorization(who, repo).await?;
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .header(header::ACCEPT, "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
                .header(header::AUTHORIZATION, auth);
            if let Some(b) = body {
                req = req.json(b);
            }
            let started = Instant::now();
            let sent = req.send().await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    warn!(%method, path = url.path(), error = %e, "GitHub request failed");
                    return Err(ForgeError::Other {
                        repo: repo.into(),
                        message: format!("{method} {}: {e}", url.path()),
                    });
                }
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            let text = resp.text().await.unwrap_or_default();
            debug!(
                %method,
                path = url.path(),
                status = status.as_u16(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                attempt,
                "GitHub request"
            );
            if status.is_success() {
                let body = if text.trim().is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(&text).map_err(|e| ForgeError::Other {
                        repo: repo.into(),
                        message: format!("{method} {}: response is not JSON: {e}", url.path()),
                    })?
                };
                return Ok(Response { headers, body });
            }
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| error_message(&v))
                .unwrap_or_else(|| text.chars().take(200).collect());
            // An installation token can be revoked before it expires (App reinstalled, key
            // rotated): forget the cached ones and buy a fresh token, once.
            if status == StatusCode::UNAUTHORIZED
                && self.is_app()
                && !matches!(who, As::App)
                && !retried_auth
            {
                warn!(%method, path = url.path(), "installation token refused; fetching a new one");
                self.app.lock().await.tokens.clear();
                retried_auth = true;
                continue;
            }
            if let Some(wait) = self.rate_limit_wait(status, &headers, &message) {
                if attempt < self.cfg.max_retries && wait <= self.cfg.max_rate_limit_wait {
                    warn!(%method, path = url.path(), status = status.as_u16(), wait_ms = wait.as_millis() as u64, "GitHub rate limit; waiting");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    continue;
                }
                return Err(ForgeError::RateLimited {
                    repo: repo.into(),
                    retry_after: Some(wait),
                    message,
                });
            }
            if matches!(
                status,
                StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ) && attempt < self.cfg.max_retries
            {
                let wait = Duration::from_millis(200 << attempt);
                warn!(%method, path = url.path(), status = status.as_u16(), "GitHub unavailable; retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            warn!(%method, path = url.path(), status = status.as_u16(), %message, "GitHub refused the request");
            return Err(map_status(status, repo, message));
        }
    }

    /// How long GitHub asks us to wait, when the response is a rate limit.
    fn rate_limit_wait(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        message: &str,
    ) -> Option<Duration> {
        if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
            return None;
        }
        let header_str = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(secs) = header_str("retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
            return Some(Duration::from_secs(secs));
        }
        if header_str("x-ratelimit-remaining") == Some("0") {
            let reset = header_str("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok())?;
            let now = self
                .now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            return Some(Duration::from_secs(reset.saturating_sub(now).max(1)));
        }
        // GitHub's advice for a secondary limit without headers: wait at least a minute.
        if message
            .to_ascii_lowercase()
            .contains("secondary rate limit")
        {
            return Some(Duration::from_secs(60));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Some(Duration::from_secs(60));
        }
        None
    }

    /// GET every page of a list. `items` picks the array out of each page's body (GitHub wraps some
    /// lists in an object).
    async fn get_all(
        &self,
        path: &str,
        query: &[(&str, &str)],
        who: As<'_>,
        repo: &str,
        items: fn(&Value) -> Option<&Vec<Value>>,
    ) -> Result<Vec<Value>, ForgeError> {
        let mut url = self.url(path)?;
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
            q.append_pair("per_page", &MAX_PER_PAGE.to_string());
        }
        let mut out = Vec::new();
        for _ in 0..self.cfg.max_pages {
            let resp = self.send(Method::GET, url.clone(), who, repo, None).await?;
            let page = items(&resp.body).ok_or_else(|| ForgeError::Other {
                repo: repo.into(),
                message: format!("{path}: expected a list in the response"),
            })?;
            out.extend(page.iter().cloned());
            match next_link(&resp.headers) {
                Some(next) => {
                    let next = Url::parse(&next).map_err(|e| ForgeError::Other {
                        repo: repo.into(),
                        message: format!("{path}: bad next link: {e}"),
                    })?;
                    // Our token only ever goes to the configured API.
                    if next.origin() != self.cfg.api_url.origin() {
                        return Err(ForgeError::Other {
                            repo: repo.into(),
                            message: format!("{path}: next link leaves the API host: {next}"),
                        });
                    }
                    url = next;
                }
                None => return Ok(out),
            }
        }
        Err(ForgeError::Other {
            repo: repo.into(),
            message: format!("{path}: more than {} pages", self.cfg.max_pages),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        repo: &str,
        body: Option<&Value>,
    ) -> Result<Value, ForgeError> {
        let owner = owner_of(repo)?;
        // Every comment, check run, status and pull request Capstan writes passes here: the one
        // place where upstream text quoted in a report is scrubbed before GitHub shows it.
        let scrubbed = body.map(|b| {
            let mut b = b.clone();
            crate::scrub::scrub_json(&mut b);
            b
        });
        let resp = self
            .send(
                method,
                self.url(path)?,
                As::Owner(owner),
                repo,
                scrubbed.as_ref(),
            )
            .await?;
        Ok(resp.body)
    }

    fn is_app(&self) -> bool {
        matches!(self.cfg.auth, GitHubAuth::App { .. })
    }
}

fn error_message(v: &Value) -> Option<String> {
    let mut msg = v["message"].as_str()?.to_string();
    if let Some(errors) = v["errors"].as_array() {
        let details: Vec<String> = errors
            .iter()
            .filter_map(|e| {
                e["message"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| e.as_str().map(str::to_string))
                    .or_else(|| {
                        e["code"]
                            .as_str()
                            .map(|c| format!("{} {}", e["field"].as_str().unwrap_or(""), c))
                    })
            })
            .collect();
        if !details.is_empty() {
            msg = format!("{msg}: {}", details.join("; "));
        }
    }
    Some(msg)
}

fn map_status(status: StatusCode, repo: &str, message: String) -> ForgeError {
    let repo = repo.to_string();
    match status {
        StatusCode::UNAUTHORIZED => ForgeError::Unauthorized { repo, message },
        StatusCode::FORBIDDEN => ForgeError::Forbidden { repo, message },
        StatusCode::NOT_FOUND => ForgeError::NotFound { repo },
        StatusCode::UNPROCESSABLE_ENTITY => ForgeError::Validation { repo, message },
        _ => ForgeError::Other {
            repo,
            message: format!("HTTP {}: {message}", status.as_u16()),
        },
    }
}

/// The `rel="next"` target of a `Link` header.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        let target = target.trim();
        (is_next && target.starts_with('<') && target.ends_with('>'))
            .then(|| target[1..target.len() - 1].to_string())
    })
}

/// `owner` of `owner/name`, refusing anything that could leave the repository's API path.
fn owner_of(repo: &str) -> Result<&str, ForgeError> {
    let valid_part = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.len() <= 100
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match repo.split_once('/') {
        Some((owner, name)) if valid_part(owner) && valid_part(name) => Ok(owner),
        _ => Err(ForgeError::Validation {
            repo: repo.into(),
            message: "not an owner/name repository name".into(),
        }),
    }
}

fn valid_login(user: &str) -> bool {
    let base = user.strip_suffix("[bot]").unwrap_or(user);
    !base.is_empty()
        && base.len() <= 39
        && base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_sha(sha: &str) -> bool {
    (sha.len() == 40 || sha.len() == 64) && sha.chars().all(|c| c.is_ascii_hexdigit())
}

fn str_field(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn missing(repo: &str, what: &str) -> ForgeError {
    ForgeError::Other {
        repo: repo.into(),
        message: format!("the response lacks {what}"),
    }
}

fn parse_pull_summary(repo: &str, v: &Value) -> Result<PullSummary, ForgeError> {
    let merge_commit_sha = v["merge_commit_sha"]
        .as_str()
        .filter(|s| valid_sha(s))
        .map(str::to_string);
    Ok(PullSummary {
        number: v["number"]
            .as_u64()
            .ok_or_else(|| missing(repo, "pull request number"))?,
        state: if v["state"].as_str() == Some("open") {
            PullRequestState::Open
        } else {
            PullRequestState::Closed
        },
        merged: v["merged"].as_bool().unwrap_or(false) || v["merged_at"].is_string(),
        title: str_field(v, "/title"),
        body: str_field(v, "/body"),
        head_ref: str_field(v, "/head/ref"),
        head_sha: str_field(v, "/head/sha"),
        base_ref: str_field(v, "/base/ref"),
        merge_commit_sha,
        html_url: str_field(v, "/html_url"),
    })
}

fn parse_comment(repo: &str, v: &Value) -> Result<IssueComment, ForgeError> {
    Ok(IssueComment {
        id: v["id"]
            .as_u64()
            .ok_or_else(|| missing(repo, "comment id"))?,
        body: str_field(v, "/body"),
        author: str_field(v, "/user/login"),
        author_is_bot: v.pointer("/user/type").and_then(Value::as_str) == Some("Bot"),
    })
}

fn check_run_body(run: &CheckRun, annotations: &[super::Annotation], create: bool) -> Value {
    let mut body = json!({
        "name": run.name,
        "status": run.status.as_str(),
    });
    if create {
        body["head_sha"] = json!(run.head_sha);
    }
    if let Some(c) = run.conclusion {
        body["conclusion"] = json!(c.as_str());
    }
    if let Some(u) = &run.details_url {
        body["details_url"] = json!(u);
    }
    if let Some(x) = &run.external_id {
        body["external_id"] = json!(x);
    }
    if let Some(o) = &run.output {
        let mut output = json!({"title": o.title, "summary": o.summary});
        if let Some(t) = &o.text {
            output["text"] = json!(t);
        }
        output["annotations"] = Value::Array(
            annotations
                .iter()
                .map(|a| {
                    let mut v = json!({
                        "path": a.path,
                        "start_line": a.start_line,
                        "end_line": a.end_line,
                        "annotation_level": a.level.as_str(),
                        "message": a.message,
                    });
                    if let Some(t) = &a.title {
                        v["title"] = json!(t);
                    }
                    v
                })
                .collect(),
        );
        body["output"] = output;
    }
    body
}

#[async_trait]
impl Forge for GitHubForge {
    async fn repositories(&self) -> Result<Vec<String>, ForgeError> {
        let names = |items: Vec<Value>| -> Vec<String> {
            items
                .iter()
                .filter_map(|r| r["full_name"].as_str().map(str::to_string))
                .collect()
        };
        match &self.cfg.auth {
            GitHubAuth::Token(_) => {
                let items = self
                    .get_all("user/repos", &[], As::App, NO_REPO, Value::as_array)
                    .await?;
                Ok(names(items))
            }
            GitHubAuth::App { .. } => {
                let installations = self
                    .get_all("app/installations", &[], As::App, NO_REPO, Value::as_array)
                    .await?;
                let mut out = Vec::new();
                for inst in installations {
                    let id = inst["id"]
                        .as_u64()
                        .ok_or_else(|| missing(NO_REPO, "installation id"))?;
                    if let Some(login) = inst.pointer("/account/login").and_then(Value::as_str) {
                        self.app
                            .lock()
                            .await
                            .installations
                            .insert(login.to_ascii_lowercase(), id);
                    }
                    let items = self
                        .get_all(
                            "installation/repositories",
                            &[],
                            As::Installation(id),
                            NO_REPO,
                            |v| v["repositories"].as_array(),
                        )
                        .await?;
                    out.extend(names(items));
                }
                Ok(out)
            }
        }
    }

    async fn open_pull_requests(&self, repo: &str) -> Result<Vec<OpenPullRequest>, ForgeError> {
        let owner = owner_of(repo)?;
        let items = self
            .get_all(
                &format!("repos/{repo}/pulls"),
                &[("state", "open")],
                As::Owner(owner),
                repo,
                Value::as_array,
            )
            .await?;
        items
            .iter()
            .map(|p| {
                Ok(OpenPullRequest {
                    repo: repo.to_string(),
                    number: p["number"]
                        .as_u64()
                        .ok_or_else(|| missing(repo, "pull request number"))?,
                    head_sha: str_field(p, "/head/sha"),
                    head_ref: str_field(p, "/head/ref"),
                    base_ref: str_field(p, "/base/ref"),
                })
            })
            .collect()
    }

    async fn identity(&self) -> Result<Identity, ForgeError> {
        if self.is_app() {
            let resp = self
                .send(Method::GET, self.url("app")?, As::App, NO_REPO, None)
                .await?;
            let slug = resp.body["slug"]
                .as_str()
                .ok_or_else(|| missing(NO_REPO, "the App slug"))?
                .to_string();
            Ok(Identity {
                login: format!("{slug}[bot]"),
                app_slug: Some(slug),
                can_create_check_runs: true,
            })
        } else {
            let resp = self
                .send(Method::GET, self.url("user")?, As::App, NO_REPO, None)
                .await?;
            Ok(Identity {
                login: resp.body["login"]
                    .as_str()
                    .ok_or_else(|| missing(NO_REPO, "the user login"))?
                    .to_string(),
                app_slug: None,
                can_create_check_runs: false,
            })
        }
    }

    async fn pull_request(&self, repo: &str, number: u64) -> Result<PullRequest, ForgeError> {
        let p = self
            .call(
                Method::GET,
                &format!("repos/{repo}/pulls/{number}"),
                repo,
                None,
            )
            .await?;
        let head_sha = str_field(&p, "/head/sha");
        let base_sha = str_field(&p, "/base/sha");
        // These SHAs go to git; anything but a full hex id is refused here.
        if !valid_sha(&head_sha) || !valid_sha(&base_sha) {
            return Err(ForgeError::Other {
                repo: repo.into(),
                message: format!("pull request #{number}: head/base sha is not a full commit id"),
            });
        }
        Ok(PullRequest {
            repo: repo.to_string(),
            number,
            state: if p["state"].as_str() == Some("open") {
                PullRequestState::Open
            } else {
                PullRequestState::Closed
            },
            draft: p["draft"].as_bool().unwrap_or(false),
            merged: p["merged"].as_bool().unwrap_or(false),
            title: str_field(&p, "/title"),
            author: str_field(&p, "/user/login"),
            head_sha,
            head_ref: str_field(&p, "/head/ref"),
            base_sha,
            base_ref: str_field(&p, "/base/ref"),
        })
    }

    async fn changed_files(&self, repo: &str, number: u64) -> Result<Vec<ChangedFile>, ForgeError> {
        let owner = owner_of(repo)?;
        let items = self
            .get_all(
                &format!("repos/{repo}/pulls/{number}/files"),
                &[],
                As::Owner(owner),
                repo,
                Value::as_array,
            )
            .await?;
        Ok(items
            .iter()
            .map(|f| ChangedFile {
                filename: str_field(f, "/filename"),
                status: str_field(f, "/status"),
                previous_filename: f["previous_filename"].as_str().map(str::to_string),
                additions: f["additions"].as_u64().unwrap_or(0),
                deletions: f["deletions"].as_u64().unwrap_or(0),
            })
            .collect())
    }

    async fn comments(&self, repo: &str, number: u64) -> Result<Vec<IssueComment>, ForgeError> {
        let owner = owner_of(repo)?;
        let items = self
            .get_all(
                &format!("repos/{repo}/issues/{number}/comments"),
                &[],
                As::Owner(owner),
                repo,
                Value::as_array,
            )
            .await?;
        items.iter().map(|c| parse_comment(repo, c)).collect()
    }

    async fn create_comment(
        &self,
        repo: &str,
        number: u64,
        body: &str,
    ) -> Result<IssueComment, ForgeError> {
        let v = self
            .call(
                Method::POST,
                &format!("repos/{repo}/issues/{number}/comments"),
                repo,
                Some(&json!({ "body": body })),
            )
            .await?;
        parse_comment(repo, &v)
    }

    async fn update_comment(
        &self,
        repo: &str,
        comment_id: u64,
        body: &str,
    ) -> Result<IssueComment, ForgeError> {
        let v = self
            .call(
                Method::PATCH,
                &format!("repos/{repo}/issues/comments/{comment_id}"),
                repo,
                Some(&json!({ "body": body })),
            )
            .await?;
        parse_comment(repo, &v)
    }

    async fn delete_comment(&self, repo: &str, comment_id: u64) -> Result<(), ForgeError> {
        self.call(
            Method::DELETE,
            &format!("repos/{repo}/issues/comments/{comment_id}"),
            repo,
            None,
        )
        .await?;
        Ok(())
    }

    async fn add_reaction(
        &self,
        repo: &str,
        comment_id: u64,
        reaction: Reaction,
    ) -> Result<(), ForgeError> {
        self.call(
            Method::POST,
            &format!("repos/{repo}/issues/comments/{comment_id}/reactions"),
            repo,
            Some(&json!({ "content": reaction.as_str() })),
        )
        .await?;
        Ok(())
    }

    async fn create_check_run(&self, repo: &str, run: &CheckRun) -> Result<u64, ForgeError> {
        if !self.is_app() {
            return Err(ForgeError::Unsupported {
                repo: repo.into(),
                what: "check runs need GitHub App auth; use commit statuses".into(),
            });
        }
        let annotations = run
            .output
            .as_ref()
            .map(|o| o.annotations.as_slice())
            .unwrap_or(&[]);
        let mut batches = annotations.chunks(ANNOTATIONS_PER_REQUEST);
        let first = batches.next().unwrap_or(&[]);
        let v = self
            .call(
                Method::POST,
                &format!("repos/{repo}/check-runs"),
                repo,
                Some(&check_run_body(run, first, true)),
            )
            .await?;
        let id = v["id"]
            .as_u64()
            .ok_or_else(|| missing(repo, "check run id"))?;
        for batch in batches {
            self.call(
                Method::PATCH,
                &format!("repos/{repo}/check-runs/{id}"),
                repo,
                Some(&check_run_body(run, batch, false)),
            )
            .await?;
        }
        Ok(id)
    }

    async fn update_check_run(
        &self,
        repo: &str,
        id: u64,
        run: &CheckRun,
    ) -> Result<(), ForgeError> {
        if !self.is_app() {
            return Err(ForgeError::Unsupported {
                repo: repo.into(),
                what: "check runs need GitHub App auth; use commit statuses".into(),
            });
        }
        let annotations = run
            .output
            .as_ref()
            .map(|o| o.annotations.as_slice())
            .unwrap_or(&[]);
        // GitHub appends annotations across updates, so each batch is sent once.
        let batches: Vec<&[super::Annotation]> = if annotations.is_empty() {
            vec![&[]]
        } else {
            annotations.chunks(ANNOTATIONS_PER_REQUEST).collect()
        };
        for batch in batches {
            self.call(
                Method::PATCH,
                &format!("repos/{repo}/check-runs/{id}"),
                repo,
                Some(&check_run_body(run, batch, false)),
            )
            .await?;
        }
        Ok(())
    }

    async fn create_commit_status(
        &self,
        repo: &str,
        sha: &str,
        status: &CommitStatus,
    ) -> Result<(), ForgeError> {
        if !valid_sha(sha) {
            return Err(ForgeError::Validation {
                repo: repo.into(),
                message: format!("{sha:?} is not a full commit id"),
            });
        }
        let mut body = json!({"state": status.state.as_str(), "context": status.context});
        if let Some(d) = &status.description {
            body["description"] = json!(d.chars().take(140).collect::<String>());
        }
        if let Some(u) = &status.target_url {
            body["target_url"] = json!(u);
        }
        self.call(
            Method::POST,
            &format!("repos/{repo}/statuses/{sha}"),
            repo,
            Some(&body),
        )
        .await?;
        Ok(())
    }

    async fn pull_summary(&self, repo: &str, number: u64) -> Result<PullSummary, ForgeError> {
        let v = self
            .call(
                Method::GET,
                &format!("repos/{repo}/pulls/{number}"),
                repo,
                None,
            )
            .await?;
        parse_pull_summary(repo, &v)
    }

    async fn create_pull_request(
        &self,
        repo: &str,
        pr: &NewPullRequest,
    ) -> Result<PullSummary, ForgeError> {
        let body = serde_json::json!({
            "title": pr.title, "head": pr.head, "base": pr.base, "body": pr.body,
        });
        let v = self
            .call(
                Method::POST,
                &format!("repos/{repo}/pulls"),
                repo,
                Some(&body),
            )
            .await?;
        parse_pull_summary(repo, &v)
    }

    async fn pull_requests_by_head(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Vec<PullSummary>, ForgeError> {
        let owner = owner_of(repo)?;
        let head = format!("{owner}:{branch}");
        let items = self
            .get_all(
                &format!("repos/{repo}/pulls"),
                &[("head", &head), ("state", "open")],
                As::Owner(owner),
                repo,
                Value::as_array,
            )
            .await?;
        items.iter().map(|v| parse_pull_summary(repo, v)).collect()
    }

    async fn update_pull_request(
        &self,
        repo: &str,
        number: u64,
        update: &PullUpdate,
    ) -> Result<PullSummary, ForgeError> {
        let mut body = serde_json::Map::new();
        if let Some(t) = &update.title {
            body.insert("title".into(), t.clone().into());
        }
        if let Some(b) = &update.body {
            body.insert("body".into(), b.clone().into());
        }
        if update.close {
            body.insert("state".into(), "closed".into());
        }
        let v = self
            .call(
                Method::PATCH,
                &format!("repos/{repo}/pulls/{number}"),
                repo,
                Some(&Value::Object(body)),
            )
            .await?;
        parse_pull_summary(repo, &v)
    }

    async fn commit_pull_requests(
        &self,
        repo: &str,
        sha: &str,
    ) -> Result<Vec<PullSummary>, ForgeError> {
        if !valid_sha(sha) {
            return Err(ForgeError::Validation {
                repo: repo.into(),
                message: format!("{sha:?} is not a full commit id"),
            });
        }
        let owner = owner_of(repo)?;
        let items = self
            .get_all(
                &format!("repos/{repo}/commits/{sha}/pulls"),
                &[],
                As::Owner(owner),
                repo,
                Value::as_array,
            )
            .await?;
        items.iter().map(|v| parse_pull_summary(repo, v)).collect()
    }

    async fn git_token(&self, repo: &str) -> Result<Option<String>, ForgeError> {
        let owner = repo.split_once('/').map_or(repo, |(o, _)| o);
        let header = self.authorization(As::Owner(owner), repo).await?;
        Ok(header.strip_prefix("Bearer ").map(str::to_string))
    }

    async fn collaborator_permission(
        &self,
        repo: &str,
        user: &str,
    ) -> Result<Permission, ForgeError> {
        if !valid_login(user) {
            return Err(ForgeError::Validation {
                repo: repo.into(),
                message: format!("{user:?} is not a GitHub login"),
            });
        }
        let v = self
            .call(
                Method::GET,
                &format!("repos/{repo}/collaborators/{user}/permission"),
                repo,
                None,
            )
            .await?;
        // `role_name` carries maintain/triage; `permission` folds them into write/read. A custom
        // role name falls back to its base permission.
        v["role_name"]
            .as_str()
            .and_then(Permission::parse)
            .or_else(|| v["permission"].as_str().and_then(Permission::parse))
            .ok_or_else(|| ForgeError::Other {
                repo: repo.into(),
                message: format!("unknown permission for {user}: {v}"),
            })
    }
}

impl GitHubForge {
    /// The configured API base (with a trailing slash).
    pub fn api_url(&self) -> &Url {
        &self.cfg.api_url
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn next_link_is_found_among_the_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::LINK,
            "<https://api.github.com/x?page=1>; rel=\"prev\", <https://api.github.com/x?page=3>; rel=\"next\", <https://api.github.com/x?page=9>; rel=\"last\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/x?page=3")
        );
        h.insert(
            header::LINK,
            "<https://api.github.com/x?page=1>; rel=\"first\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn settings_refusals_name_the_setting() {
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a std::path::Path>,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (None, None, None, "no GitHub credentials"),
            (Some("t"), Some("1"), None, "choose one"),
            (None, Some("abc"), None, "not a number"),
            (None, Some("12"), None, "CAPSTAN_GITHUB_APP_KEY_FILE is not"),
            (
                None,
                Some("12"),
                Some(std::path::Path::new("/nonexistent/key.pem")),
                "/nonexistent/key.pem",
            ),
            (Some("  "), None, None, "CAPSTAN_GITHUB_TOKEN is empty"),
        ];
        for (token, app, key, want) in cases {
            let err = GitHubAuth::from_settings(token, app, key).unwrap_err();
            assert!(err.to_string().contains(want), "{err} lacks {want}");
        }
        assert!(matches!(
            GitHubAuth::from_settings(Some(&"t".repeat(120)), None, None).unwrap(),
            GitHubAuth::Token(t) if t.len() == 120
        ));
    }

    #[test]
    fn api_url_defaults_to_github_and_refuses_odd_urls() {
        assert_eq!(
            api_url_from_setting(None).unwrap().as_str(),
            "https://api.github.com/"
        );
        assert_eq!(
            api_url_from_setting(Some("https://ghe.example/api/v3"))
                .unwrap()
                .path(),
            "/api/v3"
        );
        for bad in [
            "ftp://ghe.example",
            "not a url",
            "https://user:pw@ghe.example/api/v3",
            "https://ghe.example/api?x=1",
        ] {
            assert!(api_url_from_setting(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        for repo in ["..", "a/..", "a/b/c", "a b/c", "/b", "a/"] {
            assert!(owner_of(repo).is_err(), "{repo}");
        }
        assert_eq!(owner_of("acme/gitops.io").unwrap(), "acme");
        assert!(valid_login("capstan[bot]"));
        assert!(!valid_login("../x"));
        assert!(valid_sha(&"a".repeat(40)));
        assert!(!valid_sha("HEAD"));
    }
}
