//! Helm charts from OCI registries, pulled through the distribution HTTP API the way `helm pull
//! oci://…` does: the manifest of `<path>/<chart>:<version>` (its config must be a Helm chart
//! config), then the one chart layer as a blob, checked against the digest the manifest names.
//!
//! A registry that answers 401 names how to authenticate in `WWW-Authenticate`: a Bearer
//! challenge sends the client to a token service (with the operator's credentials for the
//! repository, or none for an anonymous pull), a Basic one takes the credentials directly.
//! Credentials are sent as headers only and never appear in a message.
//!
//! Plain HTTP is used only for a loopback registry (what Docker itself allows by default);
//! anything else is HTTPS.

use std::net::IpAddr;

use serde_json::Value;

use super::charts::{ChartError, Credential, hex_sha256};

/// Helm's config media type: a manifest whose config is anything else is not a chart.
pub const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
/// The chart archive layer (helm also wrote `application/tar+gzip` before Helm 3.8).
pub const HELM_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
const LEGACY_LAYER: &str = "application/tar+gzip";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Largest manifest or token answer read: both are small JSON documents.
const MAX_DOCUMENT: usize = 1024 * 1024;

/// `oci://host[:port]/path` split into where the registry is and the repository under it.
#[derive(Clone, Debug, PartialEq)]
pub struct OciRepo {
    /// `host` or `host:port`.
    pub host: String,
    /// Repository path under the registry, possibly empty (`oci://host` + chart).
    pub path: String,
}

impl OciRepo {
    /// Parses `oci://host[:port][/path]`; `None` when it is not one a registry could serve
    /// (the distribution grammar: lowercase components separated by `/`).
    pub fn parse(url: &str) -> Option<OciRepo> {
        let rest = url.strip_prefix("oci://")?.trim_end_matches('/');
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host_ok = !host.is_empty()
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
            });
        (host_ok && (path.is_empty() || path.split('/').all(component))).then(|| OciRepo {
            host: host.to_string(),
            path: path.to_string(),
        })
    }

    fn loopback(&self) -> bool {
        let name = match self.host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => self
                .host
                .rsplit_once(':')
                .map_or(self.host.as_str(), |(h, _)| h),
        };
        name.eq_ignore_ascii_case("localhost")
            || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// `http(s)://host`: the registry's base URL.
    pub fn base(&self) -> String {
        let scheme = if self.loopback() { "http" } else { "https" };
        format!("{scheme}://{}", self.host)
    }

    /// The repository that holds `chart`.
    pub fn repository(&self, chart: &str) -> String {
        if self.path.is_empty() {
            chart.to_string()
        } else {
            format!("{}/{chart}", self.path)
        }
    }
}

/// One path component of a distribution repository name.
pub fn component(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
        && b.last()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

/// The tag helm pushes a chart version under: OCI tags have no `+`, helm writes `_`.
pub fn tag(version: &str) -> String {
    version.replace('+', "_")
}

/// How requests to the registry authenticate once it has said how.
#[derive(Clone)]
enum Auth {
    None,
    Basic,
    Bearer(String),
}

/// The parameters of a `WWW-Authenticate` challenge (`Bearer realm="…",service="…"`), keys
/// lowercased. Quoted values may hold commas (a scope of `pull,push`).
fn challenge(header: &str) -> Option<(String, Vec<(String, String)>)> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.push((key.trim().to_ascii_lowercase(), value));
    }
    Some((scheme.to_ascii_lowercase(), params))
}

/// What a pull returns: the chart archive and its hex SHA-256 (the layer digest).
pub struct Pulled {
    pub archive: Vec<u8>,
    pub digest: String,
}

/// The registry session of one pull.
struct Session<'a> {
    client: reqwest::Client,
    repo: &'a OciRepo,
    /// `oci://host/path`, for messages.
    label: String,
    repository: String,
    credential: Option<&'a Credential>,
    auth: Auth,
    max: usize,
}

impl Session<'_> {
    fn fetch_err(&self, url: &str, message: impl Into<String>) -> ChartError {
        ChartError::Fetch {
            url: url.to_string(),
            message: message.into(),
        }
    }

    fn auth_err(&self, message: impl Into<String>) -> ChartError {
        ChartError::Auth {
            repo: self.label.clone(),
            message: message.into(),
        }
    }

    fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match (&self.auth, self.credential) {
            (Auth::Bearer(t), _) => req.bearer_auth(t),
            (Auth::Basic, Some(c)) => req.basic_auth(&c.username, Some(c.password.expose())),
            _ => req,
        }
    }

    /// GET `url` (authenticating once when challenged) and read at most `limit` bytes. The
    /// answer's headers come back with the body.
    async fn get(
        &mut self,
        url: &str,
        accept: &str,
        limit: usize,
    ) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>), ChartError> {
        let mut challenged = false;
        loop {
            let req = self.authorize(self.client.get(url).header("accept", accept));
            let mut resp = req
                .send()
                .await
                .map_err(|e| self.fetch_err(url, e.without_url().to_string()))?;
            if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
                if challenged {
                    return Err(self.auth_err(match self.credential {
                        Some(_) => "the registry refused the credentials configured for it",
                        None => "the registry requires credentials and none are configured for it",
                    }));
                }
                challenged = true;
                let header = resp
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                self.answer(&header).await?;
                continue;
            }
            let status = resp.status();
            let headers = resp.headers().clone();
            let mut body = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| self.fetch_err(url, e.without_url().to_string()))?
            {
                if body.len() + chunk.len() > limit {
                    return Err(self.fetch_err(url, format!("larger than {limit} bytes")));
                }
                body.extend_from_slice(&chunk);
            }
            return Ok((status, headers, body));
        }
    }

    /// Meets a 401's challenge: a token from the realm it names (Bearer), or the credentials
    /// themselves (Basic).
    async fn answer(&mut self, header: &str) -> Result<(), ChartError> {
        let Some((scheme, params)) = challenge(header) else {
            return Err(self.auth_err("HTTP 401 without a challenge"));
        };
        let param = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        match scheme.as_str() {
            "basic" => {
                if self.credential.is_none() {
                    return Err(self.auth_err(
                        "the registry requires credentials and none are configured for it",
                    ));
                }
                self.auth = Auth::Basic;
                Ok(())
            }
            "bearer" => {
                let realm = param("realm")
                    .ok_or_else(|| self.auth_err("a Bearer challenge without a realm"))?;
                let mut url = url::Url::parse(&realm)
                    .map_err(|_| self.auth_err("the Bearer challenge's realm is not a URL"))?;
                // Credentials travel to the realm: never in clear text off this machine.
                let realm_loopback = url.host_str().is_some_and(|h| {
                    h == "localhost"
                        || h.trim_matches(['[', ']'])
                            .parse::<IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback())
                });
                if !(url.scheme() == "https" || (url.scheme() == "http" && realm_loopback)) {
                    return Err(self.auth_err(format!(
                        "the token service {} is not HTTPS",
                        url.origin().ascii_serialization()
                    )));
                }
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(service) = param("service") {
                        q.append_pair("service", &service);
                    }
                    // The scope is ours, not the challenge's: pull, of this repository only.
                    q.append_pair("scope", &format!("repository:{}:pull", self.repository));
                }
                let mut req = self.client.get(url.clone());
                if let Some(c) = self.credential {
                    req = req.basic_auth(&c.username, Some(c.password.expose()));
                }
                let origin = url.origin().ascii_serialization();
                let resp = req
                    .send()
                    .await
                    .map_err(|e| self.fetch_err(&origin, e.without_url().to_string()))?;
                let status = resp.status();
                if status == reqwest::StatusCode::UNAUTHORIZED
                    || status == reqwest::StatusCode::FORBIDDEN
                {
                    return Err(self.auth_err(format!(
                        "the token service answered HTTP {status} ({})",
                        if self.credential.is_some() {
                            "the credentials configured for it were refused"
                        } else {
                            "no credentials are configured for it"
                        }
                    )));
                }
                if !status.is_success() {
                    return Err(self.fetch_err(&origin, format!("token service: HTTP {status}")));
                }
                let body = resp
                    .bytes()
                    .await
                    .map_err(|e| self.fetch_err(&origin, e.without_url().to_string()))?;
                if body.len() > MAX_DOCUMENT {
                    return Err(self.fetch_err(&origin, "token answer too large"));
                }
                let doc: Value = serde_json::from_slice(&body)
                    .map_err(|_| self.fetch_err(&origin, "the token answer is not JSON"))?;
                let token = doc
                    .get("token")
                    .or_else(|| doc.get("access_token"))
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| self.fetch_err(&origin, "the token answer holds no token"))?;
                self.auth = Auth::Bearer(token.to_string());
                Ok(())
            }
            _ => Err(self.auth_err(format!(
                "the registry asks for {scheme} authentication, which Capstan does not speak"
            ))),
        }
    }
}

fn sha256_digest(d: &str) -> Option<&str> {
    let hex = d.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

/// Pulls `chart` at `version` from `repo`.
pub async fn pull(
    repo: &OciRepo,
    chart: &str,
    version: &str,
    credential: Option<&Credential>,
    max: usize,
    timeout: std::time::Duration,
) -> Result<Pulled, ChartError> {
    let label = format!("oci://{}{}", repo.host, {
        if repo.path.is_empty() {
            String::new()
        } else {
            format!("/{}", repo.path)
        }
    });
    if !component(chart) {
        return Err(ChartError::NotAChart {
            url: label,
            message: format!("{chart:?} is not a name an OCI registry can hold"),
        });
    }
    let client = reqwest::Client::builder()
        .timeout(timeout)
        // Registries commonly redirect blobs to storage; the digest check covers what comes
        // back, and reqwest drops the Authorization header when the host changes.
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .map_err(|e| ChartError::Fetch {
            url: label.clone(),
            message: e.to_string(),
        })?;
    let repository = repo.repository(chart);
    let mut s = Session {
        client,
        repo,
        label,
        repository: repository.clone(),
        credential,
        auth: Auth::None,
        max,
    };
    let base = s.repo.base();
    let manifest_url = format!("{base}/v2/{repository}/manifests/{}", tag(version));
    let (status, headers, body) = s.get(&manifest_url, OCI_MANIFEST, MAX_DOCUMENT).await?;
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(ChartError::NotFound {
            repo: s.label.clone(),
            chart: chart.to_string(),
            version: version.to_string(),
        });
    }
    if !status.is_success() {
        return Err(s.fetch_err(&manifest_url, format!("HTTP {status}")));
    }
    // The registry says which manifest it served; what arrived must be that manifest.
    if let Some(claimed) = headers
        .get("docker-content-digest")
        .and_then(|h| h.to_str().ok())
        .and_then(sha256_digest)
    {
        let got = hex_sha256(&body);
        if got != claimed {
            return Err(ChartError::Digest {
                url: manifest_url,
                expected: claimed.to_string(),
                got,
            });
        }
    }
    let not_chart = |message: String| ChartError::NotAChart {
        url: manifest_url.clone(),
        message,
    };
    let manifest: Value = serde_json::from_slice(&body)
        .map_err(|e| not_chart(format!("the manifest is not JSON: {e}")))?;
    let config = manifest
        .pointer("/config/mediaType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if config != HELM_CONFIG {
        return Err(not_chart(format!(
            "not a Helm chart (config media type {config:?}, expected {HELM_CONFIG})"
        )));
    }
    let layers: Vec<&Value> = manifest
        .get("layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|l| {
            matches!(
                l.get("mediaType").and_then(Value::as_str),
                Some(HELM_LAYER | LEGACY_LAYER)
            )
        })
        .collect();
    let [layer] = layers.as_slice() else {
        return Err(not_chart(format!(
            "{} chart layers, expected one",
            layers.len()
        )));
    };
    let digest = layer
        .get("digest")
        .and_then(Value::as_str)
        .and_then(sha256_digest)
        .ok_or_else(|| not_chart("the chart layer has no sha256 digest".into()))?
        .to_string();
    if layer
        .get("size")
        .and_then(Value::as_u64)
        .is_some_and(|n| n > max as u64)
    {
        return Err(s.fetch_err(
            &manifest_url,
            format!("chart layer larger than {max} bytes"),
        ));
    }
    let blob_url = format!("{base}/v2/{repository}/blobs/sha256:{digest}");
    let (status, _, archive) = s.get(&blob_url, "*/*", s.max).await?;
    if !status.is_success() {
        return Err(s.fetch_err(&blob_url, format!("HTTP {status}")));
    }
    let got = hex_sha256(&archive);
    if got != digest {
        return Err(ChartError::Digest {
            url: blob_url,
            expected: digest,
            got,
        });
    }
    Ok(Pulled { archive, digest })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn references_follow_the_distribution_grammar() {
        let r = OciRepo::parse("oci://127.0.0.1:5000/charts/team/").unwrap();
        assert_eq!(r.base(), "http://127.0.0.1:5000");
        assert_eq!(r.repository("web"), "charts/team/web");
        let r = OciRepo::parse("oci://ghcr.io").unwrap();
        assert_eq!(r.base(), "https://ghcr.io");
        assert_eq!(r.repository("web"), "web");
        assert_eq!(
            OciRepo::parse("oci://localhost:5000/x").unwrap().base(),
            "http://localhost:5000"
        );
        assert_eq!(
            OciRepo::parse("oci://[::1]:5000/x").unwrap().base(),
            "http://[::1]:5000"
        );
        for bad in [
            "https://h/x",
            "oci://",
            "oci://h/../x",
            "oci://h/Upper",
            "oci://h/a//b",
            "oci://h@evil/x",
            "oci://h/x?y",
        ] {
            assert_eq!(OciRepo::parse(bad), None, "{bad}");
        }
        assert!(!component("..") && !component("a/b") && !component("-a") && component("a.b-c_d"));
        assert_eq!(tag("1.2.3+build.1"), "1.2.3_build.1");
    }

    #[test]
    fn challenges_keep_commas_inside_quotes() {
        let (scheme, params) = challenge(
            "Bearer realm=\"https://auth.example/token\",service=\"reg\",scope=\"repository:a/b:pull,push\"",
        )
        .unwrap();
        assert_eq!(scheme, "bearer");
        assert_eq!(
            params,
            vec![
                ("realm".into(), "https://auth.example/token".into()),
                ("service".into(), "reg".into()),
                ("scope".into(), "repository:a/b:pull,push".into()),
            ]
        );
        let (scheme, params) = challenge("Basic realm=registry").unwrap();
        assert_eq!(scheme, "basic");
        assert_eq!(params, vec![("realm".into(), "registry".into())]);
    }
}
