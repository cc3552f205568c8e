//! The HTTP plumbing the self-hosted forges share (Gitea/Forgejo and GitLab): one reqwest client
//! that never follows redirects (the token would go with them), an API root under the
//! instance's address (a path prefix kept), escaped path segments, one auth header, and the
//! forge's error answers turned into [`ForgeError`]s that name the repository and never the
//! token.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::ForgeError;

/// The repository named in errors of calls not about one.
pub(super) const NO_REPO: &str = "(instance)";

/// A successful answer: its body, and its headers for the forges that page by header.
pub(super) struct Answer {
    pub bytes: bytes::Bytes,
    pub headers: HeaderMap,
}

/// The HTTP client of every forge: redirects are not followed (they would carry the token to
/// wherever the forge points; a 3xx is reported instead).
pub(super) fn http_client(
    user_agent: String,
    timeout: Duration,
) -> Result<reqwest::Client, ForgeError> {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ForgeError::Other {
            repo: NO_REPO.into(),
            message: format!("building the HTTP client failed: {e}"),
        })
}

/// One forge's API root and credential.
pub(super) struct Rest {
    http: reqwest::Client,
    api: Url,
    auth_header: &'static str,
    auth_value: String,
    /// For messages: "Gitea", "GitLab".
    forge: &'static str,
}

impl Rest {
    /// `api_path` is appended to the instance's own path (`api/v1`, `api/v4`).
    pub fn new(
        base_url: &Url,
        api_path: &str,
        timeout: Duration,
        auth_header: &'static str,
        auth_value: String,
        forge: &'static str,
    ) -> Result<Rest, ForgeError> {
        super::github::install_crypto_provider();
        let http = http_client(format!("capstan/{}", env!("CARGO_PKG_VERSION")), timeout)?;
        let mut api = base_url.clone();
        let path = format!("{}/{api_path}/", api.path().trim_end_matches('/'));
        api.set_path(&path);
        if api.cannot_be_a_base() {
            return Err(ForgeError::Other {
                repo: NO_REPO.into(),
                message: format!("the {forge} address {base_url} is not usable"),
            });
        }
        Ok(Rest {
            http,
            api,
            auth_header,
            auth_value,
            forge,
        })
    }

    /// `<api>/<segments…>`, each segment escaped (a `/` inside one becomes `%2F`, so names never
    /// become path syntax).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.api.clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty();
            p.extend(segments);
        }
        url
    }

    pub async fn send<B: Serialize + ?Sized>(
        &self,
        repo: &str,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<Answer, ForgeError> {
        // Marked sensitive so no debug output of the request shows the token.
        let mut auth =
            HeaderValue::from_str(&self.auth_value).map_err(|_| ForgeError::Unauthorized {
                repo: repo.into(),
                message: "the token has characters no HTTP header can carry".into(),
            })?;
        auth.set_sensitive(true);
        let mut req = self
            .http
            .request(method, url)
            .header(self.auth_header, auth)
            .header("accept", "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        // `without_url`: the URL holds no secret, but the error text stays short and uniform.
        let resp = req.send().await.map_err(|e| ForgeError::Other {
            repo: repo.into(),
            message: format!("request failed: {}", e.without_url()),
        })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let retry_after = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = resp.bytes().await.map_err(|e| ForgeError::Other {
            repo: repo.into(),
            message: format!("reading the answer failed: {}", e.without_url()),
        })?;
        if status.is_success() {
            return Ok(Answer { bytes, headers });
        }
        Err(error_of(repo, status, &bytes, retry_after))
    }

    pub fn decode<T: DeserializeOwned>(&self, repo: &str, bytes: &[u8]) -> Result<T, ForgeError> {
        serde_json::from_slice(bytes).map_err(|e| ForgeError::Other {
            repo: repo.into(),
            message: format!("unexpected answer from {}: {e}", self.forge),
        })
    }

    pub async fn json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        repo: &str,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<T, ForgeError> {
        let answer = self.send(repo, method, url, body).await?;
        self.decode(repo, &answer.bytes)
    }

    pub async fn get<T: DeserializeOwned>(&self, repo: &str, url: Url) -> Result<T, ForgeError> {
        self.json::<T, ()>(repo, Method::GET, url, None).await
    }

    #[cfg(test)]
    pub fn api(&self) -> &Url {
        &self.api
    }
}

/// The answer of a forge without check runs to a check-run call: the pipeline then reports
/// with a commit status.
pub(super) fn no_check_runs(repo: &str, forge: &str) -> ForgeError {
    ForgeError::Unsupported {
        repo: repo.into(),
        what: format!("check runs ({forge} reports with commit statuses)"),
    }
}

/// The forge's error answer as the error the caller can act on. Gitea answers
/// `{"message": "…"}`; GitLab `{"message": "…"}`, `{"message": {"field": ["…"]}}` or
/// `{"error": "…"}`. A 400, 409 or 422 is the forge refusing the content: not worth retrying.
pub(super) fn error_of(
    repo: &str,
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
) -> ForgeError {
    let parsed = serde_json::from_slice::<serde_json::Value>(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| match (&v["message"], &v["error"]) {
            (serde_json::Value::String(s), _) | (_, serde_json::Value::String(s)) => {
                Some(s.clone())
            }
            (m @ (serde_json::Value::Object(_) | serde_json::Value::Array(_)), _) => {
                Some(m.to_string())
            }
            _ => None,
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    let message: String = message.chars().take(500).collect();
    let repo = repo.to_string();
    match status {
        StatusCode::UNAUTHORIZED => ForgeError::Unauthorized { repo, message },
        StatusCode::FORBIDDEN => ForgeError::Forbidden { repo, message },
        StatusCode::NOT_FOUND => ForgeError::NotFound { repo },
        StatusCode::BAD_REQUEST | StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY => {
            ForgeError::Validation { repo, message }
        }
        StatusCode::TOO_MANY_REQUESTS => ForgeError::RateLimited {
            repo,
            retry_after,
            message,
        },
        other => ForgeError::Other {
            repo,
            message: format!("HTTP {}: {message}", other.as_u16()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_of_both_shapes_become_typed_errors() {
        let e = error_of(
            "a/b",
            StatusCode::BAD_REQUEST,
            br#"{"message":{"note":["is too long (maximum is 1000000 characters)"]}}"#,
            None,
        );
        assert!(
            matches!(&e, ForgeError::Validation { message, .. } if message.contains("maximum is 1000000")),
            "{e:?}"
        );
        let e = error_of(
            "a/b",
            StatusCode::CONFLICT,
            br#"{"message":["exists"]}"#,
            None,
        );
        assert!(matches!(e, ForgeError::Validation { .. }), "{e:?}");
        let e = error_of(
            "a/b",
            StatusCode::UNAUTHORIZED,
            br#"{"error":"invalid_token"}"#,
            None,
        );
        assert!(
            matches!(&e, ForgeError::Unauthorized { message, .. } if message == "invalid_token"),
            "{e:?}"
        );
        let e = error_of("a/b", StatusCode::BAD_GATEWAY, b"<html>", None);
        assert!(matches!(e, ForgeError::Other { .. }), "{e:?}");
    }
}
