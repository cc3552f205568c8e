//! Who may read the dashboard. The pages show private diffs, so only three modes exist:
//! - `none`: the config allows it only on a loopback listen address;
//! - `token`: a bearer header, or the session cookie `/login` sets. The cookie never holds the
//!   token: it is a signed, expiring session (`v1.<expiry>.<nonce>.<HMAC-SHA256 under the
//!   token>`), so it is useless once expired and every session ends when the token is rotated.
//!   Wrong tokens are throttled per client and globally (429 with `Retry-After`);
//! - `proxy-header`: an authenticating proxy in front (oauth2-proxy) names the user in
//!   `X-Forwarded-User`/`X-Auth-Request-User` (or the `…-Email` twins). Believed only from the
//!   proxies' exact addresses and, when a proxy secret is configured, only with the secret in
//!   `X-Capstan-Proxy-Secret` (compared in constant time). See docs/security.md.
//!
//! The session cookie is `Secure` when `public_url` is https or a trusted proxy says the request
//! came over https (`X-Forwarded-Proto`). Webhooks, health and metrics are routed outside this
//! layer.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

/// Name of the session cookie `/login` sets in `token` mode.
pub const COOKIE: &str = "capstan_dashboard";
/// The header a proxy proves itself with when a proxy secret is configured.
pub const PROXY_SECRET_HEADER: &str = "x-capstan-proxy-secret";
/// Identity headers, in the order they are read: oauth2-proxy sets the `X-Forwarded-*` ones
/// with `--pass-user-headers` and the `X-Auth-Request-*` ones with `--set-xauthrequest`.
const IDENTITY_HEADERS: [&str; 4] = [
    "x-forwarded-user",
    "x-auth-request-user",
    "x-forwarded-email",
    "x-auth-request-email",
];
/// A session lasts this long unless configured otherwise.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// How the dashboard admits readers. Its `Debug` names the mode, never a secret.
#[derive(Clone)]
pub enum Mode {
    None,
    /// Any of these tokens (rotation); the first signs new sessions.
    Token(Vec<String>),
    /// Identity headers from the proxies; with `secret`, only when they also send it.
    ProxyHeader {
        secret: Option<String>,
    },
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::None => f.write_str("None"),
            Mode::Token(t) => write!(f, "Token({} tokens)", t.len()),
            Mode::ProxyHeader { secret } => {
                write!(
                    f,
                    "ProxyHeader {{ secret: {} }}",
                    if secret.is_some() { "set" } else { "none" }
                )
            }
        }
    }
}

/// The resolved access control.
#[derive(Debug)]
pub struct Auth {
    pub mode: Mode,
    /// Exact addresses of the proxies in front: only their `X-Forwarded-*` headers are
    /// believed (identity in `proxy-header` mode, client address and scheme in every mode).
    pub proxies: Vec<IpAddr>,
    /// `public_url` is https: the session cookie is always `Secure`.
    pub https: bool,
    pub session_ttl: Duration,
    pub throttle: Throttle,
}

impl Auth {
    fn with_mode(mode: Mode) -> Self {
        Auth {
            mode,
            proxies: Vec::new(),
            https: false,
            session_ttl: SESSION_TTL,
            throttle: Throttle::default(),
        }
    }

    pub fn none() -> Self {
        Self::with_mode(Mode::None)
    }

    pub fn token(tokens: Vec<String>) -> Self {
        Self::with_mode(Mode::Token(tokens))
    }

    /// `proxies` may be empty only with a secret (the config enforces it).
    pub fn proxy_header(proxies: Vec<IpAddr>, secret: Option<String>) -> Self {
        Auth {
            proxies,
            ..Self::with_mode(Mode::ProxyHeader { secret })
        }
    }

    /// The proxies whose forwarding headers are believed.
    pub fn behind(mut self, proxies: Vec<IpAddr>) -> Self {
        self.proxies = proxies;
        self
    }

    /// Whether `public_url` is https.
    pub fn https(mut self, https: bool) -> Self {
        self.https = https;
        self
    }

    fn is_token(&self) -> bool {
        matches!(self.mode, Mode::Token(_))
    }

    fn is_trusted_proxy(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|p| self.proxies.contains(&canonical(p)))
    }

    /// The client the request is from: the peer, or what a trusted proxy says it forwarded for
    /// (the last `X-Forwarded-For` entry is the one the proxy itself appended).
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        if self.is_trusted_proxy(peer)
            && let Some(ip) = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .and_then(|s| s.trim().parse::<IpAddr>().ok())
        {
            return Some(canonical(ip));
        }
        peer.map(canonical)
    }

    /// Whether the browser reached us over https.
    fn secure(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
        self.https
            || (self.is_trusted_proxy(peer)
                && headers
                    .get("x-forwarded-proto")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(',').next())
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("https")))
    }

    /// A new session cookie value signed with the first token, valid for `session_ttl`.
    pub fn issue_session(&self, now: SystemTime) -> Option<String> {
        let Mode::Token(tokens) = &self.mode else {
            return None;
        };
        let key = tokens.first()?;
        let expiry = now
            .checked_add(self.session_ttl)?
            .duration_since(UNIX_EPOCH)
            .ok()?;
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        Some(session_value(key, expiry.as_secs(), &nonce))
    }

    /// Whether `value` is a session signed by one of the tokens and not expired at `now`.
    pub fn session_valid(&self, value: &str, now: SystemTime) -> bool {
        let Mode::Token(tokens) = &self.mode else {
            return false;
        };
        let mut parts = value.split('.');
        let (Some("v1"), Some(exp), Some(nonce), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return false;
        };
        let Ok(exp) = exp.parse::<u64>() else {
            return false;
        };
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        // A signed expiry beyond the longest session is not one this server issued.
        if exp <= now || exp > now.saturating_add(self.session_ttl.as_secs()) {
            return false;
        }
        crate::signature::verify(
            tokens,
            &format!("sha256={mac}"),
            session_payload(exp, nonce).as_bytes(),
        )
    }
}

/// What a session's MAC covers.
fn session_payload(exp: u64, nonce: &str) -> String {
    format!("capstan-dashboard-session:v1.{exp}.{nonce}")
}

/// The cookie value of a session expiring at `exp` (Unix seconds), signed with `token`.
pub fn session_value(token: &str, exp: u64, nonce: &str) -> String {
    let sig = crate::signature::sign(token.as_bytes(), session_payload(exp, nonce).as_bytes());
    format!("v1.{exp}.{nonce}.{}", sig.trim_start_matches("sha256="))
}

/// IPv4-mapped IPv6 peers (a dual-stack listener) compare as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Failed token attempts, per client and in total, over a sliding window. A client over its
/// limit, or everyone while the total is over the global limit, gets 429 until the oldest
/// failure leaves the window. Signed-in sessions are not affected: only token checks are.
#[derive(Debug)]
pub struct Throttle {
    pub per_client: usize,
    pub global: usize,
    pub window: Duration,
    state: Mutex<ThrottleState>,
}

#[derive(Debug, Default)]
struct ThrottleState {
    by_client: HashMap<IpAddr, VecDeque<Instant>>,
    all: VecDeque<Instant>,
}

/// Clients tracked at most; beyond it only the global limit protects (memory stays bounded).
const MAX_TRACKED_CLIENTS: usize = 10_000;

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(5, 50, Duration::from_secs(60))
    }
}

impl Throttle {
    pub fn new(per_client: usize, global: usize, window: Duration) -> Self {
        Throttle {
            per_client,
            global,
            window,
            state: Mutex::new(ThrottleState::default()),
        }
    }

    fn prune(q: &mut VecDeque<Instant>, window: Duration, now: Instant) {
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
    }

    /// How long `client` must wait before its next token attempt, `None` when it may try now.
    pub fn wait(&self, client: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let Ok(mut st) = self.state.lock() else {
            return Some(self.window);
        };
        let window = self.window;
        let until = |q: &VecDeque<Instant>| {
            q.front()
                .map(|t| window.saturating_sub(now.duration_since(*t)))
                .unwrap_or(window)
        };
        Self::prune(&mut st.all, window, now);
        let mut wait = None;
        if st.all.len() >= self.global {
            wait = Some(until(&st.all));
        }
        if let Some(ip) = client
            && let Some(q) = st.by_client.get_mut(&ip)
        {
            Self::prune(q, window, now);
            if q.len() >= self.per_client {
                let w = until(q);
                wait = Some(wait.map_or(w, |g: Duration| g.max(w)));
            }
        }
        wait
    }

    /// Records a failed attempt by `client`.
    pub fn failed(&self, client: Option<IpAddr>) {
        let now = Instant::now();
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let window = self.window;
        st.all.push_back(now);
        Self::prune(&mut st.all, window, now);
        if let Some(ip) = client {
            if st.by_client.len() >= MAX_TRACKED_CLIENTS {
                st.by_client.retain(|_, q| {
                    Self::prune(q, window, now);
                    !q.is_empty()
                });
            }
            if st.by_client.len() < MAX_TRACKED_CLIENTS || st.by_client.contains_key(&ip) {
                let q = st.by_client.entry(ip).or_default();
                q.push_back(now);
                Self::prune(q, window, now);
            }
        }
    }
}

/// The identity a request was admitted as, for the page header.
#[derive(Clone, Debug)]
pub struct Viewer(pub Option<String>);

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
fn same(a: &str, b: &str) -> bool {
    crate::signature::constant_time_eq(a, b)
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The single value of header `name`; `Err` when it is sent more than once (a proxy that
/// appends instead of replacing must not let the client's copy through).
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ()> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => v.to_str().map(Some).map_err(|_| ()),
        (Some(_), Some(_)) => Err(()),
    }
}

fn peer_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| canonical(a.ip()))
}

/// What the layer decided about a request.
enum Verdict {
    Admit(Viewer),
    Refuse,
    /// Too many wrong tokens: try again after this long.
    Throttled(Duration),
}

impl Auth {
    fn admit(&self, req: &Request) -> Verdict {
        let peer = peer_ip(req);
        let h = req.headers();
        match &self.mode {
            Mode::None => Verdict::Admit(Viewer(None)),
            Mode::Token(tokens) => {
                if session_cookie(h).is_some_and(|c| self.session_valid(&c, SystemTime::now())) {
                    return Verdict::Admit(Viewer(None));
                }
                let Some(t) = bearer(h) else {
                    return Verdict::Refuse;
                };
                let client = self.client_ip(peer, h);
                if let Some(wait) = self.throttle.wait(client) {
                    return Verdict::Throttled(wait);
                }
                if tokens.iter().fold(false, |ok, k| ok | same(k, &t)) {
                    // A shared token names nobody.
                    Verdict::Admit(Viewer(None))
                } else {
                    self.throttle.failed(client);
                    Verdict::Refuse
                }
            }
            Mode::ProxyHeader { secret } => {
                // Without a known peer (no ConnectInfo) nothing can be trusted.
                let Some(peer) = peer else {
                    return Verdict::Refuse;
                };
                if !self.proxies.is_empty() && !self.proxies.contains(&peer) {
                    return Verdict::Refuse;
                }
                if let Some(secret) = secret {
                    match single(h, PROXY_SECRET_HEADER) {
                        Ok(Some(sent)) if same(secret, sent) => {}
                        _ => return Verdict::Refuse,
                    }
                }
                for name in IDENTITY_HEADERS {
                    match single(h, name) {
                        Err(()) => return Verdict::Refuse,
                        Ok(Some(v)) => {
                            let v = v.trim();
                            if v.is_empty() {
                                continue;
                            }
                            if v.len() > 256 || v.chars().any(char::is_control) {
                                return Verdict::Refuse;
                            }
                            return Verdict::Admit(Viewer(Some(v.to_string())));
                        }
                        Ok(None) => {}
                    }
                }
                Verdict::Refuse
            }
        }
    }
}

/// The layer in front of every dashboard route.
pub async fn require(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    if req.uri().path() == "/login" {
        return next.run(req).await;
    }
    match auth.admit(&req) {
        Verdict::Admit(viewer) => {
            req.extensions_mut().insert(viewer);
            next.run(req).await
        }
        Verdict::Refuse => refuse(&auth, req.uri().path()),
        Verdict::Throttled(wait) => throttled(wait),
    }
}

fn throttled(wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, secs.to_string())],
        format!("too many wrong tokens; try again in {secs} s\n"),
    )
        .into_response()
}

fn refuse(auth: &Auth, path: &str) -> Response {
    let (status, text) = if auth.is_token() {
        (
            StatusCode::UNAUTHORIZED,
            "This dashboard needs a token: send Authorization: Bearer <token>, or sign in at /login.",
        )
    } else {
        (
            StatusCode::FORBIDDEN,
            "This dashboard is served behind an authenticating proxy; sign in through it.",
        )
    };
    if path.starts_with("/api/") {
        let body = serde_json::json!({ "error": text }).to_string();
        return (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    let page = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "Sign in" } link rel="icon" href="data:,"; }
            body { main {
                h1 { "Not signed in" }
                p { (text) }
                @if auth.is_token() { p { a href="/login" { "Sign in with a token" } } }
            } }
        }
    };
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response();
    if auth.is_token() {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"capstan\""),
        );
    }
    resp
}

const LOGIN_FORM: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>Sign in · Capstan</title>\
<link rel=\"icon\" href=\"data:,\"><style>body{font:15px system-ui,sans-serif;max-width:420px;margin:10vh auto;padding:0 16px}\
input,button{font:inherit;padding:6px;width:100%;margin:6px 0}</style></head><body><main><h1>Capstan dashboard</h1>\
<form method=\"post\" action=\"/login\"><label for=\"token\">Dashboard token</label>\
<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
<button type=\"submit\">Sign in</button></form>\
<p>The token is in <code>CAPSTAN_DASHBOARD_TOKEN</code> or the <code>dashboard-token</code> file in the data directory.</p>\
</main></body></html>";

pub async fn login_form() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        LOGIN_FORM,
    )
        .into_response()
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    token: String,
}

/// Checks the token and starts a session (an HttpOnly cookie, `Secure` over https); a wrong
/// token is refused and counted against the client.
pub async fn login(
    State(auth): State<Arc<Auth>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let Mode::Token(tokens) = &auth.mode else {
        return Redirect::to("/").into_response();
    };
    let peer = peer.map(|axum::Extension(ConnectInfo(a))| canonical(a.ip()));
    let client = auth.client_ip(peer, &headers);
    if let Some(wait) = auth.throttle.wait(client) {
        return throttled(wait);
    }
    let t = form.token.trim();
    if !tokens.iter().fold(false, |ok, k| ok | same(k, t)) {
        auth.throttle.failed(client);
        return (StatusCode::UNAUTHORIZED, "wrong token\n").into_response();
    }
    let Some(session) = auth.issue_session(SystemTime::now()) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot start a session\n",
        )
            .into_response();
    };
    let secure = if auth.secure(peer, &headers) {
        "; Secure"
    } else {
        ""
    };
    let mut resp = Redirect::to("/").into_response();
    if let Ok(v) = header::HeaderValue::from_str(&format!(
        "{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        auth.session_ttl.as_secs()
    )) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn constant_time_comparison_is_still_equality() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert!(!same("", "a"));
    }

    #[test]
    fn sessions_are_signed_expire_and_end_with_the_token() {
        let now = SystemTime::now();
        let auth = Auth::token(vec!["new".into(), "old".into()]);
        let s = auth.issue_session(now).unwrap();
        assert!(!s.contains("new"), "the cookie does not carry the token");
        assert!(auth.session_valid(&s, now));
        assert!(!auth.session_valid(&s, now + SESSION_TTL + Duration::from_secs(1)));
        // Any change to the signed parts breaks it.
        let parts: Vec<&str> = s.split('.').collect();
        let later = format!(
            "v1.{}.{}.{}",
            parts[1].parse::<u64>().unwrap() + 60,
            parts[2],
            parts[3]
        );
        assert!(!auth.session_valid(&later, now));
        assert!(!auth.session_valid("new", now));
        // Rotation: a session signed by a token still listed works, one by a dropped token not.
        let by_old = session_value("old", parts[1].parse().unwrap(), "n");
        assert!(auth.session_valid(&by_old, now));
        let rotated = Auth::token(vec!["newer".into()]);
        assert!(!rotated.session_valid(&s, now));
    }

    #[test]
    fn the_throttle_counts_per_client_and_in_total() {
        let t = Throttle::new(2, 3, Duration::from_secs(60));
        let a = Some("10.0.0.1".parse().unwrap());
        let b = Some("10.0.0.2".parse().unwrap());
        assert!(t.wait(a).is_none());
        t.failed(a);
        t.failed(a);
        assert!(t.wait(a).is_some());
        assert!(t.wait(b).is_none(), "another client may still try");
        t.failed(b);
        assert!(t.wait(b).is_some(), "the global limit is reached");
    }
}
