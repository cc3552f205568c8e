//! The dashboard behind a path prefix. Traefik's strip-prefix middleware serves the dashboard at
//! `https://<domain>/dashboard/` while Capstan sees `/`: every link, form, redirect, asset and
//! cookie path Capstan writes must then carry `/dashboard`, or the browser leaves the route.
//!
//! The prefix of a request is its `X-Forwarded-Prefix` header (Traefik's stripPrefix sets it;
//! so do most proxies that strip a path), else the path of `public_url`, else none. The same
//! process can therefore serve `dashboard.<domain>/` and `<domain>/dashboard/` at once.
//!
//! The header is believed from anyone: it only changes the links of the answer to the request
//! that carried it (pages are `no-store`, so no cache shares them), and it is held to a plain
//! path (`/seg/seg`, unreserved characters only), so it can never make a link leave the host
//! (`//evil.example`), climb (`..`) or break out of an attribute. A malformed header is refused
//! with 400 rather than ignored, since links built without it would be silently wrong.
//!
//! Pages are built as if served at `/`; [`layer`] rewrites what leaves: root-relative `href`,
//! `src`, `action` and `formaction` attributes of HTML answers, a root-relative `Location`, and
//! the session cookie's `Path`. Templates escape every quote in data, so `href="/` in an answer
//! is always markup Capstan wrote, never text it quotes.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The header a path-stripping proxy sets.
pub const HEADER: &str = "x-forwarded-prefix";

/// Attributes whose root-relative values get the prefix.
const URL_ATTRIBUTES: [&str; 4] = ["href", "src", "action", "formaction"];

/// A validated path prefix: empty, or `/seg(/seg)*` without a trailing slash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prefix(String);

/// Why a prefix was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid path prefix {value:?}: {reason}")]
pub struct PrefixError {
    value: String,
    reason: &'static str,
}

impl Prefix {
    /// No prefix: the dashboard is served at `/`.
    pub fn none() -> Prefix {
        Prefix::default()
    }

    /// Accepts `""`, `"/"`, `"/dashboard"`, `"/a/b/"`; refuses anything but plain path segments
    /// of unreserved characters (RFC 3986: letters, digits, `-._~`), `.` and `..` segments, and
    /// more than 16 segments or 256 bytes.
    pub fn parse(raw: &str) -> Result<Prefix, PrefixError> {
        let err = |reason| PrefixError {
            value: raw.chars().take(80).collect(),
            reason,
        };
        if raw.len() > 256 {
            return Err(err("longer than 256 bytes"));
        }
        let trimmed = raw.trim_end_matches('/');
        if trimmed.is_empty() {
            return if raw.is_empty() || raw == "/" {
                Ok(Prefix::none())
            } else {
                Err(err("more than one trailing slash"))
            };
        }
        let Some(rest) = trimmed.strip_prefix('/') else {
            return Err(err("must start with /"));
        };
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.len() > 16 {
            return Err(err("more than 16 segments"));
        }
        for s in &segments {
            if s.is_empty() {
                return Err(err("empty segment (//)"));
            }
            if *s == "." || *s == ".." {
                return Err(err("dot segment"));
            }
            if !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
            {
                return Err(err(
                    "only letters, digits and -._~ are allowed in a segment",
                ));
            }
        }
        Ok(Prefix(trimmed.to_string()))
    }

    /// The path of `public_url` (`https://example.com/dashboard` → `/dashboard`). A URL with a
    /// query or fragment is refused: neither can be part of a base path.
    pub fn from_public_url(public_url: &str) -> Result<Prefix, PrefixError> {
        let err = |reason| PrefixError {
            value: public_url.chars().take(80).collect(),
            reason,
        };
        let url = url::Url::parse(public_url).map_err(|_| err("not a URL"))?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(err("a base URL has no query or fragment"));
        }
        Prefix::parse(url.path())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_none(&self) -> bool {
        self.0.is_empty()
    }

    /// `path` (root-relative) under this prefix.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

/// Root-relative URL attributes of `html` with `prefix` in front: `href="/runs"` becomes
/// `href="/dashboard/runs"`; `href="//host"`, `href="#x"`, `href="https://…"` stay.
pub fn rewrite_html(html: &str, prefix: &Prefix) -> String {
    if prefix.is_none() {
        return html.to_string();
    }
    let mut out = String::with_capacity(html.len() + 256);
    let mut rest = html;
    while let Some(i) = rest.find("=\"/") {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let attribute = head
            .rsplit(|c: char| c.is_ascii_whitespace())
            .next()
            .unwrap_or_default();
        let root_relative = !tail[3..].starts_with('/');
        if root_relative && URL_ATTRIBUTES.contains(&attribute.to_ascii_lowercase().as_str()) {
            out.push_str("=\"");
            out.push_str(prefix.as_str());
            out.push('/');
        } else {
            out.push_str("=\"/");
        }
        rest = &tail[3..];
    }
    out.push_str(rest);
    out
}

/// A root-relative redirect target under the prefix; anything else unchanged.
fn rewrite_location(location: &str, prefix: &Prefix) -> Option<String> {
    (location.starts_with('/') && !location.starts_with("//")).then(|| prefix.join(location))
}

/// A `Path=/` cookie attribute narrowed to the prefix, so the session cookie is not sent to the
/// other applications on the same host (ArgoCD and Grafana at `/argocd`, `/grafana`).
fn rewrite_cookie(cookie: &str, prefix: &Prefix) -> String {
    cookie
        .split("; ")
        .map(|part| {
            if part.eq_ignore_ascii_case("Path=/") {
                format!("Path={}/", prefix.as_str())
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The prefix of `req`: its validated `X-Forwarded-Prefix`, else `default`.
pub fn of_request(req: &Request, default: &Prefix) -> Result<Prefix, PrefixError> {
    let mut values = req.headers().get_all(HEADER).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(default.clone()),
        (Some(v), None) => Prefix::parse(v.to_str().map_err(|_| PrefixError {
            value: String::new(),
            reason: "not visible ASCII",
        })?),
        (Some(_), Some(_)) => Err(PrefixError {
            value: String::new(),
            reason: "more than one X-Forwarded-Prefix header",
        }),
    }
}

/// Largest HTML answer rewritten (a run with every diff is a few megabytes).
const MAX_PAGE: usize = 256 * 1024 * 1024;

/// The layer in front of the dashboard's routes (outside access control, so its redirects and
/// sign-in pages are rewritten too). `default` is the path of `public_url`.
pub async fn layer(State(default): State<Prefix>, req: Request, next: Next) -> Response {
    let prefix = match of_request(&req, &default) {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let resp = next.run(req).await;
    if prefix.is_none() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    if let Some(location) = parts
        .headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| rewrite_location(l, &prefix))
        .and_then(|l| HeaderValue::from_str(&l).ok())
    {
        parts.headers.insert(header::LOCATION, location);
    }
    let cookies: Vec<HeaderValue> = parts
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| match v.to_str() {
            Ok(s) => {
                HeaderValue::from_str(&rewrite_cookie(s, &prefix)).unwrap_or_else(|_| v.clone())
            }
            Err(_) => v.clone(),
        })
        .collect();
    if !cookies.is_empty() {
        parts.headers.remove(header::SET_COOKIE);
        for c in cookies {
            parts.headers.append(header::SET_COOKIE, c);
        }
    }
    let is_html = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    if !is_html {
        return Response::from_parts(parts, body);
    }
    let bytes = match axum::body::to_bytes(body, MAX_PAGE).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "dashboard page could not be read for the path prefix");
            return (StatusCode::INTERNAL_SERVER_ERROR, "page too large\n").into_response();
        }
    };
    let html = rewrite_html(&String::from_utf8_lossy(&bytes), &prefix);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(html))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plain_paths_are_prefixes() {
        assert_eq!(Prefix::parse("").unwrap(), Prefix::none());
        assert_eq!(Prefix::parse("/").unwrap(), Prefix::none());
        assert_eq!(Prefix::parse("/dashboard").unwrap().as_str(), "/dashboard");
        assert_eq!(
            Prefix::parse("/a/b-c_d.e~f/").unwrap().as_str(),
            "/a/b-c_d.e~f"
        );
    }

    #[test]
    fn anything_that_could_leave_the_host_or_the_attribute_is_refused() {
        for bad in [
            "//evil.example",
            "/a//b",
            "dashboard",
            "https://evil.example",
            "/a/../b",
            "/..",
            "/./a",
            "/a b",
            "/a\"onmouseover=x",
            "/a'b",
            "/a<b",
            "/%2e%2e",
            "/a?x=1",
            "/a#b",
            "/a\\b",
            "\\\\evil",
            "//",
            "/ü",
        ] {
            assert!(Prefix::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Prefix::parse(&format!("/{}", "a/".repeat(17))).is_err());
        assert!(Prefix::parse(&format!("/{}", "a".repeat(300))).is_err());
    }

    #[test]
    fn the_public_url_path_is_the_default_prefix() {
        let p = Prefix::from_public_url("https://example.com/dashboard").unwrap();
        assert_eq!(p.as_str(), "/dashboard");
        assert!(
            Prefix::from_public_url("https://capstan.example.com")
                .unwrap()
                .is_none()
        );
        assert!(Prefix::from_public_url("https://example.com/d?x=1").is_err());
        assert!(Prefix::from_public_url("https://example.com/a%20b").is_err());
    }

    #[test]
    fn root_relative_urls_in_markup_get_the_prefix() {
        let p = Prefix::parse("/dashboard").unwrap();
        let html = concat!(
            r#"<a href="/">o</a><a class="x" href="/runs/4">r</a><form method="get" action="/promotions">"#,
            r##"<img src="/logo.png"><a href="#app-a">a</a><a href="https://argocd.example.com/argocd/">x</a>"##,
            r#"<a href="//cdn.example">c</a><p data-x="/keep">t</p><button formaction="/login">"#,
            r#"<p>href=&quot;/not-markup&quot;</p>"#
        );
        let out = rewrite_html(html, &p);
        for want in [
            r#"href="/dashboard/""#,
            r#"href="/dashboard/runs/4""#,
            r#"action="/dashboard/promotions""#,
            r#"src="/dashboard/logo.png""#,
            r#"formaction="/dashboard/login""#,
            r##"href="#app-a""##,
            r#"href="https://argocd.example.com/argocd/""#,
            r#"href="//cdn.example""#,
            r#"data-x="/keep""#,
            r#"href=&quot;/not-markup&quot;"#,
        ] {
            assert!(out.contains(want), "{want} missing from {out}");
        }
        assert_eq!(rewrite_html(html, &Prefix::none()), html);
    }

    #[test]
    fn redirects_and_the_session_cookie_stay_under_the_prefix() {
        let p = Prefix::parse("/dashboard").unwrap();
        assert_eq!(rewrite_location("/", &p).unwrap(), "/dashboard/");
        assert_eq!(rewrite_location("/login", &p).unwrap(), "/dashboard/login");
        assert_eq!(rewrite_location("//evil.example/", &p), None);
        assert_eq!(rewrite_location("https://x.example/", &p), None);
        assert_eq!(
            rewrite_cookie(
                "capstan_session=v1.x; Path=/; HttpOnly; SameSite=Strict",
                &p
            ),
            "capstan_session=v1.x; Path=/dashboard/; HttpOnly; SameSite=Strict"
        );
    }
}
