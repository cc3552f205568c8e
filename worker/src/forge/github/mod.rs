//! Every forge role over GitHub's REST API (github.com or Enterprise Server via a configurable
//! base URL), authenticated by a personal token or as a GitHub App.
//!
//! - `transport.rs`: octocrab over Capstan's reqwest client, with the tower layer that waits out
//!   rate limits within a bound and reports longer ones.
//! - `model.rs`: GitHub's objects as typed serde models, shared with the fake GitHub of `tests/`.
//! - `auth.rs`: the token or App key from the settings.
//!
//! What stays here, on purpose, is what octocrab does differently from what Capstan promises:
//! installation tokens are bought per repository (`repositories` in the request, so a token that
//! leaks from one job reaches one repository), cached against Capstan's clock with a refresh
//! margin, bought once when calls race, and replaced once when GitHub revokes one early; `Link`
//! pagination is octocrab's `Page`, but a `next` link is followed only on the configured API host
//! (octocrab would send it without the token; Capstan refuses it instead); and every body Capstan
//! writes is scrubbed of secrets before it leaves.

mod auth;
pub mod model;
mod transport;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use octocrab::{AuthState, FromResponse, Octocrab, OctocrabBuilder, Page};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Mutex;
use tower::ServiceBuilder;
use tracing::{debug, info, warn};
use url::Url;

pub use auth::install_crypto_provider;
pub use auth::{AppKey, GitHubAuth, KeyError, SettingsError, api_url_from_setting};

use super::{
    Access, Annotation, ChangedFile, CheckRun, Checks, Comments, CommitStatus, ForgeError,
    Identity, Inventory, IssueComment, NewPullRequest, OpenPullRequest, Permission, Permissions,
    PullRequest, PullRequestState, PullSummary, PullUpdate, Pulls, Reaction,
};
use transport::{RateLimitLayer, Reqwest, RetryPolicy};

/// What GitHub allows per page.
pub const MAX_PER_PAGE: usize = 100;
/// Check-run annotations GitHub accepts per request.
pub const ANNOTATIONS_PER_REQUEST: usize = 50;
const NO_REPO: &str = "(installation)";

/// The clock used for token expiry and rate-limit resets; tests substitute one they can advance.
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

/// GitHub over REST, through octocrab.
pub struct GitHubForge {
    cfg: GitHubConfig,
    http: reqwest::Client,
    /// Built on first use: octocrab's request buffer needs the async runtime, and the forge is
    /// configured before one may be running.
    octo: OnceLock<Octocrab>,
    app: Mutex<AppState>,
    /// Held while buying an installation token, so concurrent calls wait for one instead of
    /// each fetching their own.
    token_fetch: Mutex<()>,
}

/// Who a request authenticates as.
#[derive(Clone, Copy)]
enum As<'a> {
    /// The App itself (JWT): `/app/...` endpoints. With token auth, the token.
    App,
    /// The installation owning `owner` (App) or the token (token auth).
    Owner(&'a str),
    /// A known installation.
    Installation(u64),
}

impl GitHubForge {
    pub fn new(cfg: GitHubConfig) -> Result<GitHubForge, ForgeError> {
        install_crypto_provider();
        let mut api_url = cfg.api_url.clone();
        if !api_url.path().ends_with('/') {
            let path = format!("{}/", api_url.path());
            api_url.set_path(&path);
        }
        let http = super::rest::http_client(cfg.user_agent.clone(), cfg.timeout)?;
        // Checked now, so a bad base URL fails start-up rather than the first request.
        base_uri(&api_url)?;
        Ok(GitHubForge {
            cfg: GitHubConfig { api_url, ..cfg },
            http,
            octo: OnceLock::new(),
            app: Mutex::new(AppState::default()),
            token_fetch: Mutex::new(()),
        })
    }

    /// The configured API base (with a trailing slash).
    pub fn api_url(&self) -> &Url {
        &self.cfg.api_url
    }

    /// The unauthenticated client; each call adds its credential with `user_access_token`,
    /// which shares the same service stack.
    fn octo(&self) -> Result<&Octocrab, ForgeError> {
        if let Some(o) = self.octo.get() {
            return Ok(o);
        }
        let base = base_uri(&self.cfg.api_url)?;
        let stack = ServiceBuilder::new()
            .layer(RateLimitLayer(Arc::new(RetryPolicy {
                max_wait: self.cfg.max_rate_limit_wait,
                max_retries: self.cfg.max_retries,
                clock: self.cfg.clock.clone(),
            })))
            .layer(octocrab::service::middleware::base_uri::BaseUriLayer::new(
                base,
            ))
            .service(Reqwest {
                client: self.http.clone(),
            });
        let built = OctocrabBuilder::new_empty()
            .with_service(stack)
            .with_auth(AuthState::None)
            .build()
            .unwrap_or_else(|never| match never {});
        Ok(self.octo.get_or_init(|| built))
    }

    fn now(&self) -> SystemTime {
        (self.cfg.clock)()
    }

    fn is_app(&self) -> bool {
        matches!(self.cfg.auth, GitHubAuth::App { .. })
    }

    /// The bearer credential for `who`.
    async fn credential(&self, who: As<'_>, repo: &str) -> Result<String, ForgeError> {
        match (&self.cfg.auth, who) {
            (GitHubAuth::Token(t), _) => Ok(t.clone()),
            (GitHubAuth::App { app_id, key }, As::App) => key.jwt(*app_id),
            // Boxed: buying a token is itself a request (as the App), so the futures nest.
            (GitHubAuth::App { .. }, As::Installation(id)) => {
                Box::pin(self.installation_token(id, repo)).await
            }
            (GitHubAuth::App { .. }, As::Owner(owner)) => {
                let id = Box::pin(self.installation_for(owner, repo)).await?;
                Box::pin(self.installation_token(id, repo)).await
            }
        }
    }

    async fn installation_for(&self, owner: &str, repo: &str) -> Result<u64, ForgeError> {
        let key = owner.to_ascii_lowercase();
        if let Some(id) = self.app.lock().await.installations.get(&key) {
            return Ok(*id);
        }
        let path = if repo.contains('/') && repo != NO_REPO {
            format!("/repos/{repo}/installation")
        } else {
            format!("/users/{owner}/installation")
        };
        let inst: model::Installation = self
            .send(Method::GET, &path, As::App, repo, None::<&()>)
            .await?;
        self.app.lock().await.installations.insert(key, inst.id);
        Ok(inst.id)
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
        let body = scope.as_ref().map(|name| model::AccessTokenRequest {
            repositories: Some(vec![name.clone()]),
        });
        let token: model::InstallationToken = self
            .send(
                Method::POST,
                &format!("/app/installations/{id}/access_tokens"),
                As::App,
                repo,
                body.as_ref(),
            )
            .await?;
        if token.token.is_empty() {
            return Err(ForgeError::Other {
                repo: repo.into(),
                message: "installation token response with an empty token".into(),
            });
        }
        let expires_at = time::OffsetDateTime::parse(
            &token.expires_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map(|t| UNIX_EPOCH + Duration::from_secs(t.unix_timestamp().max(0) as u64))
        // GitHub documents one hour; assume less if the time is unreadable.
        .unwrap_or(now + Duration::from_secs(1800));
        info!(
            installation = id,
            scope = scope.as_deref().unwrap_or("(installation)"),
            "fetched a GitHub App installation token"
        );
        self.app.lock().await.tokens.insert(
            key,
            CachedToken {
                token: token.token.clone(),
                expires_at,
            },
        );
        Ok(token.token)
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

    /// One request and its typed answer, mapped to [`ForgeError`]. An installation token GitHub
    /// refuses (revoked before it expired: App reinstalled, key rotated) is replaced once.
    async fn send<B: Serialize + Sync + ?Sized, R: FromResponse>(
        &self,
        method: Method,
        path_and_query: &str,
        who: As<'_>,
        repo: &str,
        body: Option<&B>,
    ) -> Result<R, ForgeError> {
        let resp = self
            .send_raw(method.clone(), path_and_query, who, repo, body)
            .await?;
        R::from_response(resp)
            .await
            .map_err(|e| self.map_error(&method, path_and_query, repo, e))
    }

    async fn send_raw<B: Serialize + Sync + ?Sized>(
        &self,
        method: Method,
        path_and_query: &str,
        who: As<'_>,
        repo: &str,
        body: Option<&B>,
    ) -> Result<http::Response<BoxBody<Bytes, octocrab::Error>>, ForgeError> {
        let uri: Uri = path_and_query.parse().map_err(|e| ForgeError::Other {
            repo: repo.into(),
            message: format!("bad API path {path_and_query}: {e}"),
        })?;
        let mut retried_auth = false;
        loop {
            let credential = self.credential(who, repo).await?;
            let crab = self
                .octo()?
                .user_access_token(credential)
                .map_err(|e| self.map_error(&method, path_and_query, repo, e))?;
            let sent = match method {
                Method::GET => crab._get(uri.clone()).await,
                Method::POST => crab._post(uri.clone(), body).await,
                Method::PATCH => crab._patch(uri.clone(), body).await,
                Method::DELETE => crab._delete(uri.clone(), body).await,
                _ => crab._put(uri.clone(), body).await,
            };
            let checked = match sent {
                Ok(resp) => {
                    debug!(%method, path = uri.path(), status = resp.status().as_u16(), "GitHub request");
                    octocrab::map_github_error(resp).await
                }
                Err(e) => Err(e),
            };
            match checked {
                Ok(resp) => return Ok(resp),
                Err(octocrab::Error::GitHub { source, .. })
                    if source.status_code == StatusCode::UNAUTHORIZED
                        && self.is_app()
                        && !matches!(who, As::App)
                        && !retried_auth =>
                {
                    warn!(%method, path = uri.path(), "installation token refused; fetching a new one");
                    self.app.lock().await.tokens.clear();
                    retried_auth = true;
                }
                Err(e) => return Err(self.map_error(&method, path_and_query, repo, e)),
            }
        }
    }

    fn map_error(&self, method: &Method, path: &str, repo: &str, e: octocrab::Error) -> ForgeError {
        let path = path.split('?').next().unwrap_or(path);
        let repo = repo.to_string();
        match e {
            octocrab::Error::GitHub { source, .. } => {
                let message = error_message(&source);
                let headers = source.headers.clone().unwrap_or_default();
                let status = source.status_code;
                if let Some(wait) =
                    transport::rate_limit_wait(status, &headers, &message, self.now())
                {
                    warn!(%method, path, status = status.as_u16(), wait_ms = wait.as_millis() as u64, "GitHub rate limit beyond what Capstan waits");
                    return ForgeError::RateLimited {
                        repo,
                        retry_after: Some(wait),
                        message,
                    };
                }
                warn!(%method, path, status = status.as_u16(), %message, "GitHub refused the request");
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
            octocrab::Error::Json { source, .. } => ForgeError::Other {
                repo,
                message: format!(
                    "{method} {path}: the response is not what GitHub documents: {} at {}",
                    source.inner(),
                    source.path()
                ),
            },
            other => {
                warn!(%method, path, error = %other, "GitHub request failed");
                ForgeError::Other {
                    repo,
                    message: format!("{method} {path}: {}", first_line(&other.to_string())),
                }
            }
        }
    }

    /// Every page of a list, following `Link: rel="next"` on the configured host only.
    async fn get_all<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        who: As<'_>,
        repo: &str,
    ) -> Result<Vec<T>, ForgeError> {
        // Built in one expression: the serializer must not live across an await (it is not Sync).
        let mut next = format!(
            "{path}?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query)
                .append_pair("per_page", &MAX_PER_PAGE.to_string())
                .finish()
        );
        let mut out = Vec::new();
        for _ in 0..self.cfg.max_pages {
            let mut page: Page<T> = self
                .send(Method::GET, &next, who, repo, None::<&()>)
                .await?;
            out.extend(page.take_items());
            match page.next {
                Some(uri) => next = self.same_host(path, repo, &uri)?,
                None => return Ok(out),
            }
        }
        Err(ForgeError::Other {
            repo: repo.into(),
            message: format!("{path}: more than {} pages", self.cfg.max_pages),
        })
    }

    /// The path and query of a `next` link, refused when it points off the configured API: the
    /// token only ever goes there.
    fn same_host(&self, path: &str, repo: &str, next: &Uri) -> Result<String, ForgeError> {
        let url = Url::parse(&next.to_string()).map_err(|e| ForgeError::Other {
            repo: repo.into(),
            message: format!("{path}: bad next link: {e}"),
        })?;
        if url.origin() != self.cfg.api_url.origin() {
            return Err(ForgeError::Other {
                repo: repo.into(),
                message: format!("{path}: next link leaves the API host: {url}"),
            });
        }
        Ok(match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        })
    }

    /// A request about `repo` as its installation (or the token), with the body Capstan writes
    /// scrubbed: every comment, check run, status and pull request passes here, the one place
    /// where upstream text quoted in a report is cleaned before GitHub shows it.
    async fn repo_call<B: Serialize + Sync, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        repo: &str,
        body: Option<&B>,
    ) -> Result<R, ForgeError> {
        let owner = owner_of(repo)?;
        let scrubbed = self.scrubbed(repo, body)?;
        self.send(method, path, As::Owner(owner), repo, scrubbed.as_ref())
            .await
    }

    /// As [`Self::repo_call`], for answers without a body Capstan reads (204, reactions).
    async fn repo_call_unit<B: Serialize + Sync>(
        &self,
        method: Method,
        path: &str,
        repo: &str,
        body: Option<&B>,
    ) -> Result<(), ForgeError> {
        let owner = owner_of(repo)?;
        let scrubbed = self.scrubbed(repo, body)?;
        self.send_raw(method, path, As::Owner(owner), repo, scrubbed.as_ref())
            .await
            .map(drop)
    }

    fn scrubbed<B: Serialize>(
        &self,
        repo: &str,
        body: Option<&B>,
    ) -> Result<Option<Value>, ForgeError> {
        body.map(|b| {
            let mut v = serde_json::to_value(b).map_err(|e| ForgeError::Other {
                repo: repo.into(),
                message: format!("encoding the request failed: {e}"),
            })?;
            crate::scrub::scrub_json(&mut v);
            Ok(v)
        })
        .transpose()
    }
}

/// The API base as octocrab's base-URI layer wants it (no trailing slash: it joins paths).
fn base_uri(api_url: &Url) -> Result<Uri, ForgeError> {
    api_url
        .as_str()
        .trim_end_matches('/')
        .parse()
        .map_err(|e| ForgeError::Other {
            repo: NO_REPO.into(),
            message: format!("the API URL {api_url} is not usable: {e}"),
        })
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// GitHub's `message`, with the `errors` details of a 422 appended (they say which field).
fn error_message(e: &octocrab::GitHubError) -> String {
    let details: Vec<String> = e
        .errors
        .iter()
        .flatten()
        .filter_map(|d| {
            d["message"]
                .as_str()
                .map(str::to_string)
                .or_else(|| d.as_str().map(str::to_string))
                .or_else(|| {
                    d["code"]
                        .as_str()
                        .map(|c| format!("{} {}", d["field"].as_str().unwrap_or(""), c))
                })
        })
        .collect();
    if details.is_empty() {
        e.message.clone()
    } else {
        format!("{}: {}", e.message, details.join("; "))
    }
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

fn not_a_sha(repo: &str, sha: &str) -> ForgeError {
    ForgeError::Validation {
        repo: repo.into(),
        message: format!("{sha:?} is not a full commit id"),
    }
}

fn state(s: model::PullState) -> PullRequestState {
    match s {
        model::PullState::Open => PullRequestState::Open,
        model::PullState::Closed => PullRequestState::Closed,
    }
}

fn summary(p: model::PullRequest) -> PullSummary {
    PullSummary {
        number: p.number,
        state: state(p.state),
        merged: p.is_merged(),
        title: p.title,
        body: p.body.unwrap_or_default(),
        head_ref: p.head.git_ref,
        head_sha: p.head.sha,
        base_ref: p.base.git_ref,
        merge_commit_sha: p.merge_commit_sha.filter(|s| valid_sha(s)),
        html_url: p.html_url,
    }
}

fn comment(c: model::IssueComment) -> IssueComment {
    IssueComment {
        id: c.id,
        body: c.body.unwrap_or_default(),
        author_is_bot: c.user.as_ref().is_some_and(model::SimpleUser::is_bot),
        // A deleted account shows as GitHub's `ghost`.
        author: c.user.map(|u| u.login).unwrap_or_else(|| "ghost".into()),
    }
}

fn check_run_body(run: &CheckRun, annotations: &[Annotation], create: bool) -> model::CheckRunBody {
    model::CheckRunBody {
        name: run.name.clone(),
        head_sha: create.then(|| run.head_sha.clone()),
        status: run.status,
        conclusion: run.conclusion,
        details_url: run.details_url.clone(),
        external_id: run.external_id.clone(),
        output: run.output.as_ref().map(|o| model::CheckRunOutputBody {
            title: o.title.clone(),
            summary: o.summary.clone(),
            text: o.text.clone(),
            annotations: annotations
                .iter()
                .map(|a| model::AnnotationBody {
                    path: a.path.clone(),
                    start_line: a.start_line,
                    end_line: a.end_line,
                    annotation_level: a.annotation_level,
                    message: a.message.clone(),
                    title: (!a.title.is_empty()).then(|| a.title.clone()),
                })
                .collect(),
        }),
    }
}

fn check_runs_need_an_app(repo: &str) -> ForgeError {
    ForgeError::Unsupported {
        repo: repo.into(),
        what: "check runs need GitHub App auth; use commit statuses".into(),
    }
}

#[async_trait]
impl Inventory for GitHubForge {
    async fn repositories(&self) -> Result<Vec<String>, ForgeError> {
        let names =
            |items: Vec<model::Repository>| items.into_iter().map(|r| r.full_name).collect();
        match &self.cfg.auth {
            GitHubAuth::Token(_) => {
                let items = self.get_all("/user/repos", &[], As::App, NO_REPO).await?;
                Ok(names(items))
            }
            GitHubAuth::App { .. } => {
                let installations: Vec<model::Installation> = self
                    .get_all("/app/installations", &[], As::App, NO_REPO)
                    .await?;
                let mut out = Vec::new();
                for inst in installations {
                    if let Some(login) = inst.account.as_ref().and_then(|a| a.login.as_deref()) {
                        self.app
                            .lock()
                            .await
                            .installations
                            .insert(login.to_ascii_lowercase(), inst.id);
                    }
                    // `Page` unwraps the `{"total_count", "repositories"}` object of this list.
                    let items = self
                        .get_all(
                            "/installation/repositories",
                            &[],
                            As::Installation(inst.id),
                            NO_REPO,
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
        let items: Vec<model::PullRequest> = self
            .get_all(
                &format!("/repos/{repo}/pulls"),
                &[("state", "open")],
                As::Owner(owner),
                repo,
            )
            .await?;
        Ok(items
            .into_iter()
            .map(|p| OpenPullRequest {
                repo: repo.to_string(),
                number: p.number,
                head_sha: p.head.sha,
                head_ref: p.head.git_ref,
                base_ref: p.base.git_ref,
            })
            .collect())
    }
}

#[async_trait]
impl Pulls for GitHubForge {
    async fn pull_request(&self, repo: &str, number: u64) -> Result<PullRequest, ForgeError> {
        let p: model::PullRequest = self
            .repo_call(
                Method::GET,
                &format!("/repos/{repo}/pulls/{number}"),
                repo,
                None::<&()>,
            )
            .await?;
        // These SHAs go to git; anything but a full hex id is refused here.
        if !valid_sha(&p.head.sha) || !valid_sha(&p.base.sha) {
            return Err(ForgeError::Other {
                repo: repo.into(),
                message: format!("pull request #{number}: head/base sha is not a full commit id"),
            });
        }
        Ok(PullRequest {
            repo: repo.to_string(),
            number,
            state: state(p.state),
            draft: p.draft,
            merged: p.is_merged(),
            title: p.title,
            author: p.user.login,
            head_sha: p.head.sha,
            head_ref: p.head.git_ref,
            base_sha: p.base.sha,
            base_ref: p.base.git_ref,
        })
    }

    async fn pull_summary(&self, repo: &str, number: u64) -> Result<PullSummary, ForgeError> {
        let p: model::PullRequest = self
            .repo_call(
                Method::GET,
                &format!("/repos/{repo}/pulls/{number}"),
                repo,
                None::<&()>,
            )
            .await?;
        Ok(summary(p))
    }

    async fn changed_files(&self, repo: &str, number: u64) -> Result<Vec<ChangedFile>, ForgeError> {
        let owner = owner_of(repo)?;
        let items: Vec<model::DiffEntry> = self
            .get_all(
                &format!("/repos/{repo}/pulls/{number}/files"),
                &[],
                As::Owner(owner),
                repo,
            )
            .await?;
        Ok(items
            .into_iter()
            .map(|f| ChangedFile {
                filename: f.filename,
                status: f.status,
                previous_filename: f.previous_filename,
                additions: f.additions,
                deletions: f.deletions,
            })
            .collect())
    }

    async fn create_pull_request(
        &self,
        repo: &str,
        pr: &NewPullRequest,
    ) -> Result<PullSummary, ForgeError> {
        let body = model::NewPull {
            title: pr.title.clone(),
            head: pr.head.clone(),
            base: pr.base.clone(),
            body: pr.body.clone(),
        };
        let p: model::PullRequest = self
            .repo_call(
                Method::POST,
                &format!("/repos/{repo}/pulls"),
                repo,
                Some(&body),
            )
            .await?;
        Ok(summary(p))
    }

    async fn pull_requests_by_head(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Vec<PullSummary>, ForgeError> {
        let owner = owner_of(repo)?;
        let head = format!("{owner}:{branch}");
        let items: Vec<model::PullRequest> = self
            .get_all(
                &format!("/repos/{repo}/pulls"),
                &[("head", &head), ("state", "open")],
                As::Owner(owner),
                repo,
            )
            .await?;
        Ok(items.into_iter().map(summary).collect())
    }

    async fn update_pull_request(
        &self,
        repo: &str,
        number: u64,
        update: &PullUpdate,
    ) -> Result<PullSummary, ForgeError> {
        let body = model::PullPatch {
            title: update.title.clone(),
            body: update.body.clone(),
            state: update.close.then_some(model::PullState::Closed),
        };
        let p: model::PullRequest = self
            .repo_call(
                Method::PATCH,
                &format!("/repos/{repo}/pulls/{number}"),
                repo,
                Some(&body),
            )
            .await?;
        Ok(summary(p))
    }

    async fn commit_pull_requests(
        &self,
        repo: &str,
        sha: &str,
    ) -> Result<Vec<PullSummary>, ForgeError> {
        if !valid_sha(sha) {
            return Err(not_a_sha(repo, sha));
        }
        let owner = owner_of(repo)?;
        let items: Vec<model::PullRequest> = self
            .get_all(
                &format!("/repos/{repo}/commits/{sha}/pulls"),
                &[],
                As::Owner(owner),
                repo,
            )
            .await?;
        Ok(items.into_iter().map(summary).collect())
    }
}

#[async_trait]
impl Comments for GitHubForge {
    async fn comments(&self, repo: &str, number: u64) -> Result<Vec<IssueComment>, ForgeError> {
        let owner = owner_of(repo)?;
        let items: Vec<model::IssueComment> = self
            .get_all(
                &format!("/repos/{repo}/issues/{number}/comments"),
                &[],
                As::Owner(owner),
                repo,
            )
            .await?;
        Ok(items.into_iter().map(comment).collect())
    }

    async fn create_comment(
        &self,
        repo: &str,
        number: u64,
        body: &str,
    ) -> Result<IssueComment, ForgeError> {
        let c: model::IssueComment = self
            .repo_call(
                Method::POST,
                &format!("/repos/{repo}/issues/{number}/comments"),
                repo,
                Some(&model::CommentBody { body: body.into() }),
            )
            .await?;
        Ok(comment(c))
    }

    async fn update_comment(
        &self,
        repo: &str,
        _number: u64,
        comment_id: u64,
        body: &str,
    ) -> Result<IssueComment, ForgeError> {
        let c: model::IssueComment = self
            .repo_call(
                Method::PATCH,
                &format!("/repos/{repo}/issues/comments/{comment_id}"),
                repo,
                Some(&model::CommentBody { body: body.into() }),
            )
            .await?;
        Ok(comment(c))
    }

    async fn delete_comment(
        &self,
        repo: &str,
        _number: u64,
        comment_id: u64,
    ) -> Result<(), ForgeError> {
        self.repo_call_unit(
            Method::DELETE,
            &format!("/repos/{repo}/issues/comments/{comment_id}"),
            repo,
            None::<&()>,
        )
        .await
    }

    async fn add_reaction(
        &self,
        repo: &str,
        _number: u64,
        comment_id: u64,
        reaction: Reaction,
    ) -> Result<(), ForgeError> {
        let _: model::ReactionResponse = self
            .repo_call(
                Method::POST,
                &format!("/repos/{repo}/issues/comments/{comment_id}/reactions"),
                repo,
                Some(&model::NewReaction { content: reaction }),
            )
            .await?;
        Ok(())
    }

    fn comment_limit(&self) -> usize {
        crate::report::COMMENT_LIMIT
    }
}

#[async_trait]
impl Checks for GitHubForge {
    async fn create_check_run(&self, repo: &str, run: &CheckRun) -> Result<u64, ForgeError> {
        if !self.is_app() {
            return Err(check_runs_need_an_app(repo));
        }
        let annotations = run
            .output
            .as_ref()
            .map(|o| o.annotations.as_slice())
            .unwrap_or(&[]);
        let mut batches = annotations.chunks(ANNOTATIONS_PER_REQUEST);
        let first = batches.next().unwrap_or(&[]);
        let created: model::CheckRun = self
            .repo_call(
                Method::POST,
                &format!("/repos/{repo}/check-runs"),
                repo,
                Some(&check_run_body(run, first, true)),
            )
            .await?;
        for batch in batches {
            let _: model::CheckRun = self
                .repo_call(
                    Method::PATCH,
                    &format!("/repos/{repo}/check-runs/{}", created.id),
                    repo,
                    Some(&check_run_body(run, batch, false)),
                )
                .await?;
        }
        Ok(created.id)
    }

    async fn update_check_run(
        &self,
        repo: &str,
        id: u64,
        run: &CheckRun,
    ) -> Result<(), ForgeError> {
        if !self.is_app() {
            return Err(check_runs_need_an_app(repo));
        }
        let annotations = run
            .output
            .as_ref()
            .map(|o| o.annotations.as_slice())
            .unwrap_or(&[]);
        // GitHub appends annotations across updates, so each batch is sent once.
        let batches: Vec<&[Annotation]> = if annotations.is_empty() {
            vec![&[]]
        } else {
            annotations.chunks(ANNOTATIONS_PER_REQUEST).collect()
        };
        for batch in batches {
            let _: model::CheckRun = self
                .repo_call(
                    Method::PATCH,
                    &format!("/repos/{repo}/check-runs/{id}"),
                    repo,
                    Some(&check_run_body(run, batch, false)),
                )
                .await?;
        }
        Ok(())
    }

    async fn find_check_run(
        &self,
        repo: &str,
        head_sha: &str,
        name: &str,
    ) -> Result<Option<u64>, ForgeError> {
        let GitHubAuth::App { app_id, .. } = &self.cfg.auth else {
            return Ok(None);
        };
        if !valid_sha(head_sha) {
            return Err(not_a_sha(repo, head_sha));
        }
        // `app_id` keeps other Apps' runs of the same name out; `filter=all` includes runs
        // older than the latest. One page: Capstan makes a handful of runs per head at most.
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("check_name", name)
            .append_pair("app_id", &app_id.to_string())
            .append_pair("filter", "all")
            .append_pair("per_page", &MAX_PER_PAGE.to_string())
            .finish();
        let list: model::CheckRunList = self
            .repo_call(
                Method::GET,
                &format!("/repos/{repo}/commits/{head_sha}/check-runs?{query}"),
                repo,
                None::<&()>,
            )
            .await?;
        Ok(list
            .check_runs
            .iter()
            .filter(|r| r.name == name && r.head_sha.eq_ignore_ascii_case(head_sha))
            .map(|r| r.id)
            .min())
    }

    async fn create_commit_status(
        &self,
        repo: &str,
        sha: &str,
        status: &CommitStatus,
    ) -> Result<(), ForgeError> {
        if !valid_sha(sha) {
            return Err(not_a_sha(repo, sha));
        }
        let body = model::StatusBody {
            state: status.state,
            context: status.context.clone(),
            // GitHub keeps only the first 140 characters.
            description: status
                .description
                .as_ref()
                .map(|d| d.chars().take(140).collect()),
            target_url: status.target_url.clone(),
        };
        let _: model::Status = self
            .repo_call(
                Method::POST,
                &format!("/repos/{repo}/statuses/{sha}"),
                repo,
                Some(&body),
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Permissions for GitHubForge {
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
        let v: model::CollaboratorPermission = self
            .repo_call(
                Method::GET,
                &format!("/repos/{repo}/collaborators/{user}/permission"),
                repo,
                None::<&()>,
            )
            .await?;
        // `role_name` carries maintain/triage; `permission` folds them into write/read. A custom
        // role name falls back to its base permission.
        v.role_name
            .as_deref()
            .and_then(Permission::parse)
            .or_else(|| Permission::parse(&v.permission))
            .ok_or_else(|| ForgeError::Other {
                repo: repo.into(),
                message: format!(
                    "unknown permission for {user}: {} / {:?}",
                    v.permission, v.role_name
                ),
            })
    }
}

#[async_trait]
impl Access for GitHubForge {
    async fn identity(&self) -> Result<Identity, ForgeError> {
        if self.is_app() {
            let app: model::App = self
                .send(Method::GET, "/app", As::App, NO_REPO, None::<&()>)
                .await?;
            Ok(Identity {
                login: format!("{}[bot]", app.slug),
                app_slug: Some(app.slug),
                can_create_check_runs: true,
            })
        } else {
            let me: model::SimpleUser = self
                .send(Method::GET, "/user", As::App, NO_REPO, None::<&()>)
                .await?;
            Ok(Identity {
                login: me.login,
                app_slug: None,
                can_create_check_runs: false,
            })
        }
    }

    async fn git_token(&self, repo: &str) -> Result<Option<String>, ForgeError> {
        let owner = repo.split_once('/').map_or(repo, |(o, _)| o);
        Ok(Some(self.credential(As::Owner(owner), repo).await?))
    }
}

#[cfg(test)]
mod tests;
