//! An in-process fake of GitHub's REST API for the endpoints Capstan uses, on an ephemeral
//! 127.0.0.1 port. It keeps GitHub's paths, status codes, payload shapes and limits (Link
//! pagination with `per_page` ≤ 100, 65,536-character comments, 50 annotations per check-run
//! request, 401 for bad credentials, 404 for unknown repositories and pull requests), verifies App
//! JWTs (RS256) before issuing installation tokens, and records every call so tests assert on
//! behaviour.
//!
//! Every response body is one of the client's own typed models (`capstan_worker::forge::github::
//! model`), and the bodies Capstan sends are read with the same request models, so the fake and
//! the client cannot drift apart; the models themselves are checked against GitHub's example
//! payloads in `tests/tests/forge_github.rs`.
//!
//! Simplifications, on purpose: the JWT's `iat`/`exp` are checked against each other (≤ 10
//! minutes apart) but not against the wall clock, so tests may run the client on a shifted clock;
//! a user missing from a repository's collaborators has permission `none`.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use capstan_worker::forge::github::model;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::fake_forge::{FakeServer, page_params, page_window, query_pairs};

#[path = "fake_github_pulls.rs"]
mod pulls;
pub use pulls::MergeMethod;

/// GitHub's comment body limit, in characters.
pub const MAX_COMMENT_CHARS: usize = 65_536;
const DOCS: &str = "https://docs.github.com/rest";

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    /// The path without the configured prefix (e.g. `/repos/acme/gitops/pulls`).
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub body: Option<Value>,
    pub status: u16,
}

/// The GitHub App the fake knows.
#[derive(Clone, Debug)]
pub struct FakeApp {
    pub app_id: u64,
    pub slug: String,
    /// DER `RSAPublicKey` that App JWTs must verify against.
    pub public_key_der: Vec<u8>,
    /// Installation id → account (owner) login.
    pub installations: Vec<(u64, String)>,
}

#[derive(Clone, Debug, Default)]
pub struct FakePull {
    pub number: u64,
    pub state: String,
    pub draft: bool,
    pub merged: bool,
    pub title: String,
    pub author: String,
    pub head_sha: String,
    pub head_ref: String,
    pub base_sha: String,
    pub base_ref: String,
}

#[derive(Clone, Debug)]
pub struct FakeComment {
    pub id: u64,
    pub issue: u64,
    pub body: String,
    pub login: String,
    pub is_bot: bool,
}

#[derive(Default)]
struct Repo {
    pulls: BTreeMap<u64, FakePull>,
    files: HashMap<u64, Vec<model::DiffEntry>>,
    comments: Vec<FakeComment>,
    reactions: Vec<(u64, String)>,
    check_runs: BTreeMap<u64, Value>,
    statuses: Vec<(String, Value)>,
    collaborators: HashMap<String, String>,
    /// Promotion support (`fake_github_pulls.rs`): the backing bare repository and what the
    /// `FakePull` fields leave out.
    git_dir: Option<std::path::PathBuf>,
    pull_extra: HashMap<u64, pulls::PullExtra>,
}

struct Inner {
    prefix: String,
    token: String,
    user_login: String,
    app: Option<FakeApp>,
    token_lifetime: Duration,
    /// Added to the wall clock, so tests can let time pass.
    clock_offset: Duration,
    /// Installation token → (installation id, expiry, repository names it is scoped to).
    issued: HashMap<String, (u64, SystemTime, Option<Vec<String>>)>,
    repos: BTreeMap<String, Repo>,
    next_id: u64,
    /// Responses to force before normal handling: (status, retry-after seconds).
    forced: VecDeque<(u16, Option<u64>)>,
    /// Endpoints that fail: (method, path without prefix, status, failures left; `None` = until
    /// cleared).
    failing: Vec<(String, String, u16, Option<usize>)>,
    /// Endpoints that answer only after this long: (method, path without prefix, delay).
    stalled: Vec<(String, String, Duration)>,
    calls: Vec<Call>,
}

/// Who a request authenticated as.
enum Principal {
    User,
    App,
    /// An installation token, with the repository names it was scoped to (`None`: all).
    Installation(u64, Option<Vec<String>>),
}

/// A running fake; the server stops when this is dropped.
pub struct FakeGitHub {
    server: FakeServer<Inner>,
}

impl FakeGitHub {
    /// Starts the fake. `token` is the personal token it accepts; `prefix` is the API path prefix
    /// (`""` for github.com, `"/api/v3"` for Enterprise Server).
    pub async fn start(token: &str, prefix: &str, app: Option<FakeApp>) -> FakeGitHub {
        let server = FakeServer::start(
            Inner {
                prefix: prefix.trim_end_matches('/').to_string(),
                token: token.to_string(),
                user_login: "capstan-user".into(),
                app,
                token_lifetime: Duration::from_secs(3600),
                clock_offset: Duration::ZERO,
                issued: HashMap::new(),
                repos: BTreeMap::new(),
                next_id: 1000,
                forced: VecDeque::new(),
                failing: Vec::new(),
                stalled: Vec::new(),
                calls: Vec::new(),
            },
            |shared| Router::new().fallback(handle).with_state(shared),
        )
        .await;
        FakeGitHub { server }
    }

    /// The API base URL to configure the client with.
    pub fn api_url(&self) -> String {
        let prefix = self.server.state().prefix.clone();
        format!("{}{prefix}", self.server.base_url())
    }

    pub fn add_repo(&self, full_name: &str) {
        self.server
            .state()
            .repos
            .entry(full_name.to_string())
            .or_default();
    }

    pub fn add_pull(&self, repo: &str, pull: FakePull) {
        let mut g = self.server.state();
        g.repos
            .entry(repo.to_string())
            .or_default()
            .pulls
            .insert(pull.number, pull);
    }

    /// Sets the changed files of a pull request (GitHub's file objects are generated).
    pub fn set_files(&self, repo: &str, number: u64, names: &[&str]) {
        let files = names
            .iter()
            .map(|n| model::DiffEntry {
                sha: Some("0".repeat(40)),
                filename: n.to_string(),
                status: "modified".into(),
                additions: 1,
                deletions: 0,
                changes: 1,
                previous_filename: None,
            })
            .collect();
        let mut g = self.server.state();
        g.repos
            .entry(repo.to_string())
            .or_default()
            .files
            .insert(number, files);
    }

    /// Adds a comment as if `login` had written it; returns its id.
    pub fn add_comment(
        &self,
        repo: &str,
        issue: u64,
        login: &str,
        is_bot: bool,
        body: &str,
    ) -> u64 {
        let mut g = self.server.state();
        g.next_id += 1;
        let id = g.next_id;
        g.repos
            .entry(repo.to_string())
            .or_default()
            .comments
            .push(FakeComment {
                id,
                issue,
                body: body.to_string(),
                login: login.to_string(),
                is_bot,
            });
        id
    }

    pub fn set_permission(&self, repo: &str, user: &str, role: &str) {
        let mut g = self.server.state();
        g.repos
            .entry(repo.to_string())
            .or_default()
            .collaborators
            .insert(user.to_string(), role.to_string());
    }

    /// The next `n` requests get `status` (403 or 429) with an optional `retry-after`.
    pub fn force_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        let mut g = self.server.state();
        for _ in 0..n {
            g.forced.push_back((status, retry_after));
        }
    }

    /// Every `method` request to `path` (without the API prefix) answers `status` with GitHub's
    /// error body until the test says otherwise, as an endpoint in an outage does.
    pub fn fail_route(&self, method: &str, path: &str, status: u16) {
        self.server
            .state()
            .failing
            .push((method.to_string(), path.to_string(), status, None));
    }

    /// The next `times` `method` requests to `path` answer `status`, then the endpoint works
    /// again (a blip: what a retried job meets).
    pub fn fail_route_times(&self, method: &str, path: &str, status: u16, times: usize) {
        self.server.state().failing.push((
            method.to_string(),
            path.to_string(),
            status,
            Some(times),
        ));
    }

    /// Every `method` request to `path` (without the API prefix) answers only after `delay`, as
    /// a hung endpoint does; clients with a shorter timeout give up first.
    pub fn stall_route(&self, method: &str, path: &str, delay: Duration) {
        self.server
            .state()
            .stalled
            .push((method.to_string(), path.to_string(), delay));
    }

    /// Ends every failure set by [`FakeGitHub::fail_route`].
    pub fn clear_failures(&self) {
        self.server.state().failing.clear();
    }

    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.server.state().token_lifetime = lifetime;
    }

    /// Revokes every installation token issued so far (as reinstalling the App does).
    pub fn revoke_installation_tokens(&self) {
        self.server.state().issued.clear();
    }

    /// Lets `by` pass on the fake's clock (token issue and expiry).
    pub fn advance_clock(&self, by: Duration) {
        self.server.state().clock_offset += by;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.server.state().calls.clone()
    }

    /// Calls whose method and path match.
    pub fn calls_to(&self, method: &str, path: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method && c.path == path)
            .collect()
    }

    pub fn comments(&self, repo: &str, issue: u64) -> Vec<FakeComment> {
        let g = self.server.state();
        g.repos
            .get(repo)
            .map(|r| {
                r.comments
                    .iter()
                    .filter(|c| c.issue == issue)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn reactions(&self, repo: &str) -> Vec<(u64, String)> {
        let g = self.server.state();
        g.repos
            .get(repo)
            .map(|r| r.reactions.clone())
            .unwrap_or_default()
    }

    pub fn check_runs(&self, repo: &str) -> Vec<Value> {
        let g = self.server.state();
        g.repos
            .get(repo)
            .map(|r| r.check_runs.values().cloned().collect())
            .unwrap_or_default()
    }

    /// (sha, status body) in the order they were created.
    pub fn statuses(&self, repo: &str) -> Vec<(String, Value)> {
        let g = self.server.state();
        g.repos
            .get(repo)
            .map(|r| r.statuses.clone())
            .unwrap_or_default()
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    ok(
        status,
        model::ErrorBody {
            message: message.into(),
            documentation_url: DOCS.into(),
            errors: Vec::new(),
            status: status.as_u16().to_string(),
        },
    )
}

fn validation(resource: &str, field: &str, message: &str) -> Response {
    ok(
        StatusCode::UNPROCESSABLE_ENTITY,
        model::ErrorBody {
            message: "Validation Failed".into(),
            documentation_url: DOCS.into(),
            errors: vec![model::ErrorDetail {
                resource: resource.into(),
                code: "custom".into(),
                field: field.into(),
                message: Some(message.into()),
            }],
            status: "422".into(),
        },
    )
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not Found")
}

fn ok<T: Serialize>(status: StatusCode, v: T) -> Response {
    (status, axum::Json(v)).into_response()
}

/// A request body read as the client's request model; GitHub answers a body it cannot read
/// with 422 (or 400 for JSON that is not JSON), which is what a client bug would meet.
#[allow(clippy::result_large_err)]
fn read<T: DeserializeOwned>(body: Option<&Value>, resource: &str) -> Result<T, Response> {
    let Some(b) = body else {
        return Err(error(StatusCode::BAD_REQUEST, "Problems parsing JSON"));
    };
    serde_json::from_value(b.clone()).map_err(|e| validation(resource, "", &e.to_string()))
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let stall = {
        let g = inner.lock().unwrap();
        let p = uri.path();
        let p = p.strip_prefix(g.prefix.as_str()).unwrap_or(p);
        g.stalled
            .iter()
            .find(|(m, sp, _)| m == method.as_str() && sp == p)
            .map(|(_, _, d)| *d)
    };
    if let Some(delay) = stall {
        tokio::time::sleep(delay).await;
    }
    let mut g = inner.lock().unwrap();
    let full_path = uri.path().to_string();
    let path = full_path
        .strip_prefix(g.prefix.as_str())
        .unwrap_or(&full_path)
        .to_string();
    let query = uri.query().unwrap_or("").to_string();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let json_body: Option<Value> = serde_json::from_slice(&body).ok();
    let resp = route(
        &mut g,
        &method,
        &full_path,
        &path,
        &query,
        authorization.as_deref(),
        json_body.as_ref(),
    );
    let mut resp = resp;
    // Link targets are absolute URLs on the host the client used.
    if let Some(link) = resp.headers().get("link").and_then(|v| v.to_str().ok()) {
        let host = headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("127.0.0.1");
        if let Ok(v) =
            HeaderValue::from_str(&link.replace("http://HOST", &format!("http://{host}")))
        {
            resp.headers_mut().insert("link", v);
        }
    }
    g.calls.push(Call {
        method: method.to_string(),
        path,
        query,
        authorization,
        body: json_body,
        status: resp.status().as_u16(),
    });
    resp
}

// A test server: the refusal is the response itself, boxing it would only add noise.
#[allow(clippy::result_large_err)]
fn authenticate(g: &Inner, authorization: Option<&str>) -> Result<Principal, Response> {
    let bad = || error(StatusCode::UNAUTHORIZED, "Bad credentials");
    let cred = authorization
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("token "))
        })
        .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "Requires authentication"))?;
    if cred == g.token {
        return Ok(Principal::User);
    }
    if let Some((id, expires, scope)) = g.issued.get(cred) {
        return if *expires > SystemTime::now() + g.clock_offset {
            Ok(Principal::Installation(*id, scope.clone()))
        } else {
            Err(bad())
        };
    }
    if cred.split('.').count() == 3 {
        return verify_jwt(g, cred).map(|()| Principal::App).map_err(|m| {
            error(
                StatusCode::UNAUTHORIZED,
                &format!("A JSON web token could not be decoded: {m}"),
            )
        });
    }
    Err(bad())
}

fn verify_jwt(g: &Inner, jwt: &str) -> Result<(), String> {
    let app = g.app.as_ref().ok_or("no App configured")?;
    let mut parts = jwt.split('.');
    let (h, c, s) = match (parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(c), Some(s)) => (h, c, s),
        _ => return Err("malformed".into()),
    };
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).map_err(|e| e.to_string());
    let header: Value = serde_json::from_slice(&decode(h)?).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" {
        return Err("alg must be RS256".into());
    }
    let sig = decode(s)?;
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &app.public_key_der)
        .verify(format!("{h}.{c}").as_bytes(), &sig)
        .map_err(|_| "signature does not verify".to_string())?;
    let claims: Value = serde_json::from_slice(&decode(c)?).map_err(|e| e.to_string())?;
    if claims["iss"].as_str() != Some(app.app_id.to_string().as_str())
        && claims["iss"].as_u64() != Some(app.app_id)
    {
        return Err("iss is not the App id".into());
    }
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    match (iat, exp) {
        (Some(iat), Some(exp)) if exp > iat && exp - iat <= 600 => Ok(()),
        _ => Err("'Expiration time' claim ('exp') is too far in the future".into()),
    }
}

/// Page `items` per GitHub: `per_page` (default 30, max 100), `page` (1-based), Link header.
fn paginate<T: Serialize>(
    full_path: &str,
    query: &str,
    items: Vec<T>,
    wrap: Option<&str>,
) -> Response {
    let params: Vec<(String, String)> = url_pairs(query);
    let (page, per_page) = page_params(&query_pairs(query), "per_page", 30, 100);
    let total = items.len();
    let (slice, last) = page_window(items, page, per_page);
    let link_to = |p: usize| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params
            .iter()
            .filter(|(k, _)| k != "page" && k != "per_page")
        {
            q.append_pair(k, v);
        }
        q.append_pair("per_page", &per_page.to_string());
        q.append_pair("page", &p.to_string());
        format!("<http://HOST{full_path}?{}>", q.finish())
    };
    let mut links = Vec::new();
    if page < last {
        links.push(format!("{}; rel=\"next\"", link_to(page + 1)));
        links.push(format!("{}; rel=\"last\"", link_to(last)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", link_to(1)));
        links.push(format!("{}; rel=\"prev\"", link_to(page - 1)));
    }
    let body = match wrap {
        Some(key) => json!({"total_count": total, key: slice}),
        None => json!(slice),
    };
    let mut resp = ok(StatusCode::OK, body);
    if !links.is_empty()
        && let Ok(v) = HeaderValue::from_str(&links.join(", "))
    {
        resp.headers_mut().insert("link", v);
    }
    resp
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn user(login: &str, is_bot: bool) -> model::SimpleUser {
    model::SimpleUser {
        login: login.into(),
        id: 1,
        kind: if is_bot { "Bot" } else { "User" }.into(),
    }
}

fn comment_model(repo: &str, c: &FakeComment) -> model::IssueComment {
    model::IssueComment {
        id: c.id,
        html_url: format!(
            "https://github.com/{repo}/pull/{}#issuecomment-{}",
            c.issue, c.id
        ),
        body: Some(c.body.clone()),
        user: Some(user(&c.login, c.is_bot)),
    }
}

fn installation(id: u64, login: &str) -> model::Installation {
    model::Installation {
        id,
        account: Some(model::InstallationAccount {
            login: Some(login.into()),
        }),
    }
}

fn repo_model(full: &str) -> model::Repository {
    let name = full.split_once('/').map_or(full, |(_, n)| n);
    model::Repository {
        id: 1,
        name: name.into(),
        full_name: full.into(),
        private: true,
    }
}

#[allow(clippy::too_many_arguments)]
fn route(
    g: &mut Inner,
    method: &Method,
    full_path: &str,
    path: &str,
    query: &str,
    authorization: Option<&str>,
    body: Option<&Value>,
) -> Response {
    if let Some(i) = g
        .failing
        .iter()
        .position(|(m, p, _, left)| m == method.as_str() && p == path && left != &Some(0))
    {
        let status = g.failing[i].2;
        if let Some(left) = g.failing[i].3.as_mut() {
            *left -= 1;
        }
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = if code == StatusCode::NOT_FOUND {
            "Not Found"
        } else {
            "Server Error"
        };
        return error(code, message);
    }
    if let Some((status, retry_after)) = g.forced.pop_front() {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
        let mut resp = error(
            code,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        );
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        return resp;
    }
    let who = match authenticate(g, authorization) {
        Ok(w) => w,
        Err(resp) => return resp,
    };
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let m = method.as_str();
    // App (JWT) endpoints.
    if segs.first() == Some(&"app") || (segs.len() == 3 && segs[2] == "installation") {
        let Principal::App = who else {
            return error(
                StatusCode::UNAUTHORIZED,
                "A JSON web token could not be decoded",
            );
        };
        let Some(app) = g.app.clone() else {
            return not_found();
        };
        return match (m, segs.as_slice()) {
            ("GET", ["app"]) => ok(
                StatusCode::OK,
                model::App {
                    id: app.app_id,
                    slug: app.slug.clone(),
                    name: app.slug.clone(),
                },
            ),
            ("GET", ["app", "installations"]) => {
                let items = app
                    .installations
                    .iter()
                    .map(|(id, login)| model::Installation {
                        id: *id,
                        account: Some(model::InstallationAccount {
                            login: Some(login.clone()),
                        }),
                    })
                    .collect();
                paginate(full_path, query, items, None)
            }
            ("POST", ["app", "installations", id, "access_tokens"]) => {
                let Some(id) = id
                    .parse::<u64>()
                    .ok()
                    .filter(|id| app.installations.iter().any(|(i, _)| i == id))
                else {
                    return not_found();
                };
                // `repositories` scopes the token to those names of the installation's owner;
                // a name the installation does not cover is a 422, as on GitHub.
                // No body at all is allowed: a token for the whole installation.
                let request: model::AccessTokenRequest = match body {
                    None => model::AccessTokenRequest::default(),
                    Some(_) => match read(body, "InstallationToken") {
                        Ok(r) => r,
                        Err(resp) => return resp,
                    },
                };
                let scope: Option<Vec<String>> = request
                    .repositories
                    .map(|names| names.iter().map(|n| n.to_ascii_lowercase()).collect());
                if let Some(names) = &scope {
                    let owner = app
                        .installations
                        .iter()
                        .find(|(i, _)| *i == id)
                        .map(|(_, l)| l.clone())
                        .unwrap_or_default();
                    if names
                        .iter()
                        .any(|n| !g.repos.contains_key(&format!("{owner}/{n}")))
                    {
                        return error(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "There is at least one repository that does not exist or is not accessible to the parent installation.",
                        );
                    }
                }
                g.next_id += 1;
                // Longer than 40 characters, as GitHub's newer tokens are.
                let token = format!("ghs_{:0>60}", g.next_id);
                let expires = SystemTime::now() + g.clock_offset + g.token_lifetime;
                let scope_given = scope.is_some();
                g.issued.insert(token.clone(), (id, expires, scope));
                let secs = expires
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                let expires_at = time_rfc3339(secs);
                ok(
                    StatusCode::CREATED,
                    model::InstallationToken {
                        token,
                        expires_at,
                        permissions: Default::default(),
                        repository_selection: Some(
                            if scope_given { "selected" } else { "all" }.into(),
                        ),
                    },
                )
            }
            ("GET", [kind, who_, "installation"]) if *kind == "users" || *kind == "orgs" => {
                match app.installations.iter().find(|(_, l)| l == who_) {
                    Some((id, login)) => ok(StatusCode::OK, installation(*id, login)),
                    None => not_found(),
                }
            }
            _ => not_found(),
        };
    }
    if segs.len() == 4 && segs[0] == "repos" && segs[3] == "installation" {
        let Principal::App = who else {
            return error(
                StatusCode::UNAUTHORIZED,
                "A JSON web token could not be decoded",
            );
        };
        let Some(app) = g.app.clone() else {
            return not_found();
        };
        let full = format!("{}/{}", segs[1], segs[2]);
        if !g.repos.contains_key(&full) {
            return not_found();
        }
        return match app.installations.iter().find(|(_, l)| l == segs[1]) {
            Some((id, login)) => ok(StatusCode::OK, installation(*id, login)),
            None => not_found(),
        };
    }
    if let Principal::App = who {
        return error(
            StatusCode::FORBIDDEN,
            "A JSON web token cannot be used for this endpoint; use an installation token",
        );
    }
    let installation_owner = match &who {
        Principal::Installation(id, _) => g
            .app
            .as_ref()
            .and_then(|a| a.installations.iter().find(|(i, _)| i == id))
            .map(|(_, l)| l.clone()),
        _ => None,
    };
    let (author, author_is_bot) = match (&who, &g.app) {
        (Principal::Installation(..), Some(app)) => (format!("{}[bot]", app.slug), true),
        _ => (g.user_login.clone(), false),
    };
    match (m, segs.as_slice()) {
        ("GET", ["user"]) => return ok(StatusCode::OK, user(&g.user_login, false)),
        ("GET", ["user", "repos"]) => {
            let items: Vec<model::Repository> = g.repos.keys().map(|r| repo_model(r)).collect();
            return paginate(full_path, query, items, None);
        }
        ("GET", ["installation", "repositories"]) => {
            let Some(owner) = installation_owner else {
                return error(
                    StatusCode::FORBIDDEN,
                    "Resource not accessible by integration",
                );
            };
            let items: Vec<model::Repository> = g
                .repos
                .keys()
                .filter(|r| r.split('/').next() == Some(owner.as_str()))
                .map(|r| repo_model(r))
                .collect();
            return paginate(full_path, query, items, Some("repositories"));
        }
        _ => {}
    }
    if segs.len() < 4 || segs[0] != "repos" {
        return not_found();
    }
    let full = format!("{}/{}", segs[1], segs[2]);
    if let Some(owner) = &installation_owner
        && owner != segs[1]
    {
        return not_found();
    }
    // A token scoped to other repositories does not see this one.
    if let Principal::Installation(_, Some(names)) = &who
        && !names.iter().any(|n| n.eq_ignore_ascii_case(segs[2]))
    {
        return not_found();
    }
    let is_app_installation = installation_owner.is_some();
    let app_id = g.app.as_ref().map(|a| a.app_id);
    g.next_id += 1;
    let new_id = g.next_id;
    let Some(repo) = g.repos.get_mut(&full) else {
        return not_found();
    };
    if let Some(resp) = pulls::route(repo, &full, m, &segs[3..], query, body, &author, full_path) {
        return resp;
    }
    match (m, &segs[3..]) {
        ("GET", ["pulls"]) => {
            let state = url_pairs(query)
                .into_iter()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v)
                .unwrap_or_else(|| "open".into());
            let items: Vec<model::PullRequest> = repo
                .pulls
                .values()
                .filter(|p| state == "all" || p.state == state)
                .map(|p| pulls::pull_model(&full, p, repo.pull_extra.get(&p.number)))
                .collect();
            paginate(full_path, query, items, None)
        }
        ("GET", ["pulls", n, "files"]) => {
            let Some(n) = n.parse::<u64>().ok().filter(|n| repo.pulls.contains_key(n)) else {
                return not_found();
            };
            // GitHub lists at most 3000 files.
            let files: Vec<model::DiffEntry> = repo
                .files
                .get(&n)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .take(3000)
                .collect();
            paginate(full_path, query, files, None)
        }
        ("GET", ["issues", n, "comments"]) => {
            let Some(n) = n.parse::<u64>().ok().filter(|n| repo.pulls.contains_key(n)) else {
                return not_found();
            };
            let items: Vec<model::IssueComment> = repo
                .comments
                .iter()
                .filter(|c| c.issue == n)
                .map(|c| comment_model(&full, c))
                .collect();
            paginate(full_path, query, items, None)
        }
        ("POST", ["issues", n, "comments"]) => {
            let Some(n) = n.parse::<u64>().ok().filter(|n| repo.pulls.contains_key(n)) else {
                return not_found();
            };
            let Ok(model::CommentBody { body: text }) = read(body, "IssueComment") else {
                return validation("IssueComment", "body", "body wasn't supplied.");
            };
            if text.chars().count() > MAX_COMMENT_CHARS {
                return validation(
                    "IssueComment",
                    "body",
                    "Body is too long (maximum is 65536 characters)",
                );
            }
            let c = FakeComment {
                id: new_id,
                issue: n,
                body: text,
                login: author,
                is_bot: author_is_bot,
            };
            let v = comment_model(&full, &c);
            repo.comments.push(c);
            ok(StatusCode::CREATED, v)
        }
        (m @ ("GET" | "PATCH" | "DELETE"), ["issues", "comments", id]) => {
            let Some(pos) = id
                .parse::<u64>()
                .ok()
                .and_then(|id| repo.comments.iter().position(|c| c.id == id))
            else {
                return not_found();
            };
            match m {
                "GET" => ok(StatusCode::OK, comment_model(&full, &repo.comments[pos])),
                "DELETE" => {
                    repo.comments.remove(pos);
                    StatusCode::NO_CONTENT.into_response()
                }
                _ => {
                    let Ok(model::CommentBody { body: text }) = read(body, "IssueComment") else {
                        return validation("IssueComment", "body", "body wasn't supplied.");
                    };
                    if text.chars().count() > MAX_COMMENT_CHARS {
                        return validation(
                            "IssueComment",
                            "body",
                            "Body is too long (maximum is 65536 characters)",
                        );
                    }
                    if repo.comments[pos].login != author {
                        return error(
                            StatusCode::FORBIDDEN,
                            "Resource not accessible by integration",
                        );
                    }
                    repo.comments[pos].body = text;
                    ok(StatusCode::OK, comment_model(&full, &repo.comments[pos]))
                }
            }
        }
        ("POST", ["issues", "comments", id, "reactions"]) => {
            let Some(id) = id
                .parse::<u64>()
                .ok()
                .filter(|id| repo.comments.iter().any(|c| c.id == *id))
            else {
                return not_found();
            };
            // The model's enum is GitHub's list of reactions: anything else does not parse.
            let Ok(model::NewReaction { content: reaction }) = read(body, "Reaction") else {
                return validation("Reaction", "content", "content is not included in the list");
            };
            let content = reaction.as_str().to_string();
            let existed = repo
                .reactions
                .iter()
                .any(|(i, c)| *i == id && *c == content);
            if !existed {
                repo.reactions.push((id, content.clone()));
            }
            ok(
                if existed {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                },
                model::ReactionResponse {
                    id: new_id,
                    content: reaction,
                    user: Some(user(&author, author_is_bot)),
                },
            )
        }
        ("POST", ["check-runs"]) | ("PATCH", ["check-runs", _]) => {
            if !is_app_installation {
                return error(
                    StatusCode::FORBIDDEN,
                    "You must authenticate via a GitHub App.",
                );
            }
            let b = body.cloned().unwrap_or(Value::Null);
            if let Some(resp) = check_run_limits(&b) {
                return resp;
            }
            let request: model::CheckRunBody = match read(body, "CheckRun") {
                Ok(r) => r,
                Err(resp) => return resp,
            };
            if m == "POST" {
                if request.head_sha.is_none() {
                    return validation("CheckRun", "head_sha", "name and head_sha are required");
                }
                let mut run = b.clone();
                run["id"] = json!(new_id);
                // GitHub records which App created the run (`app.id`); the list filters on it.
                run["app"] = json!({ "id": app_id });
                repo.check_runs.insert(new_id, run.clone());
                ok(StatusCode::CREATED, check_run_model(new_id, &run))
            } else {
                let Some(run) = segs[4]
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| repo.check_runs.get_mut(&id))
                else {
                    return not_found();
                };
                merge_check_run(run, &b);
                let id = run["id"].as_u64().unwrap_or_default();
                ok(StatusCode::OK, check_run_model(id, run))
            }
        }
        ("GET", ["commits", reference, "check-runs"]) => {
            // GitHub's "List check runs for a Git reference": `check_name`, `status`, `app_id`
            // and `filter` (`latest`, the default: only the most recent run of each name; or
            // `all`), paginated, wrapped in `{total_count, check_runs}`. The fake resolves only
            // full commit ids, not branch or tag names.
            let params = url_pairs(query);
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let (name, status, app) = (get("check_name"), get("status"), get("app_id"));
            let latest = get("filter").is_none_or(|f| f != "all");
            let mut runs: Vec<(u64, &Value)> = repo
                .check_runs
                .iter()
                .filter(|(_, r)| r["head_sha"].as_str() == Some(*reference))
                .filter(|(_, r)| name.as_deref().is_none_or(|n| r["name"] == n))
                .filter(|(_, r)| status.as_deref().is_none_or(|st| r["status"] == st))
                .filter(|(_, r)| {
                    app.as_deref()
                        .is_none_or(|a| a.parse::<u64>().ok() == r["app"]["id"].as_u64())
                })
                .map(|(id, r)| (*id, r))
                .collect();
            if latest {
                let mut newest: BTreeMap<String, (u64, &Value)> = BTreeMap::new();
                for (id, r) in runs {
                    newest.insert(r["name"].as_str().unwrap_or_default().to_string(), (id, r));
                }
                runs = newest.into_values().collect();
            }
            // Newest first, as GitHub lists them.
            runs.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
            let items: Vec<model::CheckRun> =
                runs.iter().map(|(id, r)| check_run_model(*id, r)).collect();
            paginate(full_path, query, items, Some("check_runs"))
        }
        ("POST", ["statuses", sha]) => {
            let Ok(status) = read::<model::StatusBody>(body, "Status") else {
                return validation("Status", "state", "state is not included in the list");
            };
            let mut v = body.cloned().unwrap_or(Value::Null);
            v["id"] = json!(new_id);
            repo.statuses.push((sha.to_string(), v));
            ok(
                StatusCode::CREATED,
                model::Status {
                    id: new_id,
                    state: status.state,
                    context: status.context,
                    description: status.description,
                    target_url: status.target_url,
                },
            )
        }
        ("GET", ["collaborators", login, "permission"]) => {
            let role = repo
                .collaborators
                .get(*login)
                .cloned()
                .unwrap_or_else(|| "none".into());
            let permission = match role.as_str() {
                "maintain" => "write",
                "triage" => "read",
                other => other,
            };
            ok(
                StatusCode::OK,
                model::CollaboratorPermission {
                    permission: permission.into(),
                    role_name: Some(role.clone()),
                    user: Some(self::user(login, false)),
                },
            )
        }
        _ => not_found(),
    }
}

/// A stored check run as GitHub answers it: the annotations are counted, not returned.
fn check_run_model(id: u64, run: &Value) -> model::CheckRun {
    let s = |k: &str| run[k].as_str().map(str::to_string);
    let o = &run["output"];
    model::CheckRun {
        id,
        name: s("name").unwrap_or_default(),
        head_sha: s("head_sha").unwrap_or_default(),
        status: serde_json::from_value(run["status"].clone())
            .unwrap_or(capstan_worker::forge::CheckStatus::Queued),
        conclusion: serde_json::from_value(run["conclusion"].clone()).ok(),
        details_url: s("details_url"),
        external_id: s("external_id"),
        output: model::CheckRunOutput {
            title: o["title"].as_str().map(str::to_string),
            summary: o["summary"].as_str().map(str::to_string),
            text: o["text"].as_str().map(str::to_string),
            annotations_count: o["annotations"].as_array().map_or(0, Vec::len) as u64,
        },
    }
}

/// GitHub's limits on a check-run request.
fn check_run_limits(b: &Value) -> Option<Response> {
    let output = &b["output"];
    if output.is_null() {
        return None;
    }
    if output["summary"].as_str().map(|s| s.chars().count()) > Some(65_535) {
        return Some(validation(
            "CheckRun",
            "summary",
            "Only 65535 characters are allowed; 65536 were supplied.",
        ));
    }
    if output["annotations"].as_array().map(Vec::len) > Some(50) {
        return Some(validation(
            "CheckRun",
            "annotations",
            "Only 50 annotations may be sent per request",
        ));
    }
    None
}

/// A PATCH replaces fields and appends annotations, as GitHub does.
fn merge_check_run(run: &mut Value, patch: &Value) {
    let Some(obj) = patch.as_object() else {
        return;
    };
    for (k, v) in obj {
        if k == "output" {
            let mut annotations = run["output"]["annotations"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            annotations.extend(v["annotations"].as_array().cloned().unwrap_or_default());
            let mut out = v.clone();
            out["annotations"] = Value::Array(annotations);
            run["output"] = out;
        } else {
            run[k] = v.clone();
        }
    }
}

/// Seconds since the epoch as GitHub's `2026-11-26T10:00:00Z`.
fn time_rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
