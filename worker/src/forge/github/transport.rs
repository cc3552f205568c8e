//! How a GitHub request travels: octocrab builds it (auth header, `X-GitHub-Api-Version`, JSON
//! body, `Page` with `Link` parsing, the error body as `GitHubError`) and hands it to a tower
//! stack Capstan owns:
//!
//! ```text
//! octocrab ─▶ RateLimit (bounded waits, 502/503/504 retries) ─▶ BaseUri ─▶ reqwest
//! ```
//!
//! The bottom is Capstan's reqwest client (rustls with aws-lc-rs, redirects off so a token never
//! follows a `Location` elsewhere, a per-request timeout): one HTTP client and one TLS stack in
//! the process. The rate-limit layer replaces octocrab's `retry` feature, which waits as long as
//! GitHub asks (an hour on a primary limit) and then reports nothing: here a wait longer than
//! `max_rate_limit_wait` is handed back as the response, and the client turns it into
//! `ForgeError::RateLimited` with the wait, computed by the same [`rate_limit_wait`].

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::header::{ACCEPT, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use octocrab::OctoBody;
use tower::{Layer, Service, ServiceExt};
use tracing::warn;

use super::Clock;

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(super) type Body = BoxBody<Bytes, BoxError>;

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// The bottom of the stack: sends octocrab's request with Capstan's reqwest client and reads the
/// whole answer (GitHub's JSON bodies are small; a buffered body can be inspected and replayed).
#[derive(Clone)]
pub(super) struct Reqwest {
    pub client: reqwest::Client,
}

impl Service<Request<OctoBody>> for Reqwest {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<OctoBody>) -> Self::Future {
        let client = self.client.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            // GitHub's recommended media type; octocrab sets the API version header itself.
            parts
                .headers
                .entry(ACCEPT)
                .or_insert(HeaderValue::from_static("application/vnd.github+json"));
            let body = body.collect().await?.to_bytes();
            let req = reqwest::Request::try_from(Request::from_parts(parts, body))?;
            let resp = client.execute(req).await?;
            let mut out = Response::builder().status(resp.status());
            if let Some(h) = out.headers_mut() {
                *h = resp.headers().clone();
            }
            let bytes = resp.bytes().await?;
            Ok(out.body(full(bytes))?)
        })
    }
}

/// Capstan's retry rules for one request.
pub(super) struct RetryPolicy {
    /// The longest Capstan sleeps for a rate limit; beyond it the limit is reported.
    pub max_wait: Duration,
    /// Retries of one request after a rate limit or a 502/503/504.
    pub max_retries: u32,
    pub clock: Clock,
}

/// Puts [`RateLimit`] around a service.
#[derive(Clone)]
pub(super) struct RateLimitLayer(pub Arc<RetryPolicy>);

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            policy: self.0.clone(),
        }
    }
}

/// Waits out GitHub's rate limits when the wait is within the bound, and retries 502/503/504
/// with a short backoff; anything else (or a wait too long) goes back up as the response.
#[derive(Clone)]
pub(super) struct RateLimit<S> {
    inner: S,
    policy: Arc<RetryPolicy>,
}

impl<S> Service<Request<OctoBody>> for RateLimit<S>
where
    S: Service<Request<OctoBody>, Response = Response<Body>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<Body>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<OctoBody>) -> Self::Future {
        // The clone that was polled ready serves this call; the fresh one waits for the next.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let policy = self.policy.clone();
        Box::pin(async move {
            let mut req = req;
            let mut attempt = 0u32;
            loop {
                let again = copy(&req);
                let method = req.method().clone();
                let path = req.uri().path().to_string();
                let resp = inner.ready().await?.call(req).await?;
                let status = resp.status();
                let (resp, wait) = if matches!(
                    status,
                    StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                ) {
                    (resp, Some(Duration::from_millis(200 << attempt.min(8))))
                } else if status == StatusCode::FORBIDDEN || status == StatusCode::TOO_MANY_REQUESTS
                {
                    let (parts, body) = resp.into_parts();
                    let bytes = body.collect().await?.to_bytes();
                    let wait = rate_limit_wait(
                        status,
                        &parts.headers,
                        &message_of(&bytes),
                        (policy.clock)(),
                    )
                    .filter(|w| *w <= policy.max_wait);
                    (Response::from_parts(parts, full(bytes)), wait)
                } else {
                    (resp, None)
                };
                match (wait, again) {
                    (Some(wait), Some(next)) if attempt < policy.max_retries => {
                        warn!(%method, %path, status = status.as_u16(), wait_ms = wait.as_millis() as u64, "GitHub asked to wait; retrying");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        req = next;
                    }
                    // The client maps what is left: a wait beyond the bound becomes `RateLimited`.
                    _ => return Ok(resp),
                }
            }
        })
    }
}

/// The same request again, when its body can be replayed (octocrab's JSON bodies can; an empty
/// body has nothing to clone).
fn copy(req: &Request<OctoBody>) -> Option<Request<OctoBody>> {
    let body = req.body().try_clone().unwrap_or_else(OctoBody::empty);
    let mut out = Request::builder()
        .method(req.method().clone())
        .uri(req.uri().clone())
        .version(req.version());
    if let Some(h) = out.headers_mut() {
        *h = req.headers().clone();
    }
    out.body(body).ok()
}

/// `message` of a GitHub error body, or the start of the text when it is not one.
pub(super) fn message_of(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).chars().take(200).collect())
}

/// How long GitHub asks Capstan to wait, when a response is a rate limit: `retry-after`, else the
/// primary limit's `x-ratelimit-reset` (measured on `now`), else GitHub's advice for a secondary
/// limit without headers (at least a minute). A plain 403 is no rate limit.
pub(super) fn rate_limit_wait(
    status: StatusCode,
    headers: &HeaderMap,
    message: &str,
    now: SystemTime,
) -> Option<Duration> {
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(secs) = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    if header("x-ratelimit-remaining") == Some("0") {
        let reset = header("x-ratelimit-reset").and_then(|v| v.trim().parse::<u64>().ok())?;
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        return Some(Duration::from_secs(reset.saturating_sub(now).max(1)));
    }
    if message
        .to_ascii_lowercase()
        .contains("secondary rate limit")
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        return Some(Duration::from_secs(60));
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn waits_follow_githubs_headers_and_advice() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let forbidden = StatusCode::FORBIDDEN;
        let w = |h: &[(&'static str, &str)], status, msg: &str| {
            rate_limit_wait(status, &headers(h), msg, now)
        };
        assert_eq!(
            w(&[("retry-after", "7")], forbidden, ""),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            w(
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1030")
                ],
                forbidden,
                ""
            ),
            Some(Duration::from_secs(30))
        );
        // A reset already past still waits a moment rather than hammering.
        assert_eq!(
            w(
                &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "900")],
                forbidden,
                ""
            ),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            w(&[], forbidden, "You have exceeded a secondary rate limit."),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            w(&[], StatusCode::TOO_MANY_REQUESTS, ""),
            Some(Duration::from_secs(60))
        );
        // A plain refusal is not a rate limit, and other statuses never are.
        assert_eq!(
            w(&[], forbidden, "Resource not accessible by integration"),
            None
        );
        assert_eq!(w(&[("retry-after", "7")], StatusCode::NOT_FOUND, ""), None);
    }
}
