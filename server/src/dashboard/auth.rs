//! Who may read the dashboard. The pages show private diffs, so only three modes exist:
//! `none` (the config allows it only on a loopback listen address), `token` (a bearer header or
//! the cookie set by `/login`) and `proxy-header` (an oauth2-proxy style proxy in front sets
//! `X-Forwarded-User`/`X-Forwarded-Email`; trusted only from the configured proxy networks).
//! Webhooks, health and metrics are routed outside this layer.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::layout::esc;

/// Name of the cookie `/login` sets in `token` mode.
pub const COOKIE: &str = "capstan_dashboard";

/// The resolved access control.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    /// Any of these tokens (rotation).
    Token(Vec<String>),
    ProxyHeader(Vec<ipnet::IpNet>),
}

/// The identity a request was admitted as, for the page header.
#[derive(Clone, Debug)]
pub struct Viewer(pub Option<String>);

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = v.strip_prefix("Bearer ")
    {
        return Some(t.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn peer_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
}

impl Auth {
    /// The viewer, or `None` when the request must be refused.
    fn admit(&self, req: &Request) -> Option<Viewer> {
        match self {
            Auth::None => Some(Viewer(None)),
            Auth::Token(tokens) => {
                let t = presented_token(req.headers())?;
                tokens
                    .iter()
                    .any(|k| same(k, &t))
                    // A shared token names nobody.
                    .then_some(Viewer(None))
            }
            Auth::ProxyHeader(nets) => {
                // Without a known peer (no ConnectInfo) nothing can be trusted.
                let ip = peer_ip(req)?;
                if !nets.iter().any(|n| n.contains(&ip)) {
                    return None;
                }
                let h = req.headers();
                ["x-forwarded-user", "x-forwarded-email"]
                    .iter()
                    .find_map(|k| h.get(*k).and_then(|v| v.to_str().ok()))
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| Viewer(Some(v.to_string())))
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
        Some(viewer) => {
            req.extensions_mut().insert(viewer);
            next.run(req).await
        }
        None => refuse(&auth, req.uri().path()),
    }
}

fn refuse(auth: &Auth, path: &str) -> Response {
    let (status, text) = match auth {
        Auth::Token(_) => (
            StatusCode::UNAUTHORIZED,
            "This dashboard needs a token: send Authorization: Bearer <token>, or sign in at /login.",
        ),
        _ => (
            StatusCode::FORBIDDEN,
            "This dashboard is served behind an authenticating proxy; sign in through it.",
        ),
    };
    if path.starts_with("/api/") {
        let body = serde_json::json!({ "error": text }).to_string();
        return (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    let login = if matches!(auth, Auth::Token(_)) {
        "<p><a href=\"/login\">Sign in with a token</a></p>"
    } else {
        ""
    };
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in</title>\
             <link rel=\"icon\" href=\"data:,\"></head><body><main><h1>Not signed in</h1><p>{}</p>{login}</main></body></html>",
            esc(text)
        ),
    )
        .into_response();
    if matches!(auth, Auth::Token(_)) {
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

/// Checks the token and stores it in an HttpOnly cookie; a wrong token is refused.
pub async fn login(
    State(auth): State<Arc<Auth>>,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let Auth::Token(tokens) = auth.as_ref() else {
        return Redirect::to("/").into_response();
    };
    let t = form.token.trim();
    // Cookie values cannot hold these; a token with them is not ours anyway.
    if t.contains([';', ',', ' ', '"']) || !tokens.iter().any(|k| same(k, t)) {
        return (StatusCode::UNAUTHORIZED, "wrong token\n").into_response();
    }
    let mut resp = Redirect::to("/").into_response();
    if let Ok(v) =
        header::HeaderValue::from_str(&format!("{COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict"))
    {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison_is_still_equality() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert!(!same("", "a"));
    }
}
