//! Charts from HTTP Helm repositories: the repository's `index.yaml`, the chart archive it
//! names, the archive's SHA-256 checked against the index, and a cache keyed by repository URL +
//! chart + version (pointing at the archive by digest), with an offline mode served from it.
//!
//! Which repositories may be fetched from is the operator's choice ([`ChartSettings::
//! repositories`]), never the repository's: an Application under review names any URL it likes,
//! and fetching whatever it names would let a pull request make Capstan send requests into the
//! network it runs in. A chart from a repository not listed is "not checked" with that reason.
//!
//! Charts from OCI registries (`oci://host/path`, or a bare `host/path` the operator listed as
//! `oci://host/path`) go through [`super::oci`] and share the allow-list, the cache and the
//! offline mode. Credentials for a repository come from the operator's settings only
//! ([`ChartSettings::credentials`]), are sent as headers and never appear in a message.
//!
//! The fetch runs on a thread of its own with its own small runtime, so it is safe to call from
//! the blocking pool and from plain threads alike. `helm` itself never reaches the network: the
//! archive is handed to it as a file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sha2::Digest;

use super::oci;

/// The disk cache's default bound: a pull request naming many versions of an allowed chart must
/// not fill the disk.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 2048 * 1024 * 1024;

/// Where charts may come from and how they are cached.
#[derive(Clone, Debug)]
pub struct ChartSettings {
    /// Repository URLs charts may be fetched from (`https://charts.example.com`; a listed URL
    /// also admits the paths below it). Empty: no chart is ever fetched.
    pub repositories: Vec<String>,
    /// Folder of the persistent chart cache; `None` keeps charts in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Most bytes of archives the folder keeps; past it the least recently used go.
    pub cache_max_bytes: u64,
    /// Serve charts from the cache only; a chart not cached is "not checked".
    pub offline: bool,
    /// Largest archive or index accepted.
    pub max_bytes: usize,
    pub timeout: Duration,
    /// Archives kept in memory.
    pub memory_entries: usize,
    /// Credentials per repository (the longest listed prefix of a URL wins).
    pub credentials: Vec<Credential>,
}

/// A username and password for the repositories under `repository` (an HTTP repository URL or
/// `oci://host/path`). `Debug` does not show the password.
#[derive(Clone, PartialEq)]
pub struct Credential {
    pub repository: String,
    pub username: String,
    pub password: Password,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("repository", &self.repository)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A password that is not printed by `Debug` or `Display`.
#[derive(Clone, PartialEq)]
pub struct Password(String);

impl Password {
    pub fn new(s: impl Into<String>) -> Self {
        Password(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Default for ChartSettings {
    fn default() -> Self {
        ChartSettings {
            repositories: Vec::new(),
            cache_dir: None,
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            offline: false,
            max_bytes: 32 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            memory_entries: 256,
            credentials: Vec::new(),
        }
    }
}

/// Why a chart could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// The operator did not list the repository: nothing is fetched.
    #[error(
        "chart repository {repo} is not one Capstan may fetch from (list it in the service's chart repositories)"
    )]
    NotAllowed { repo: String },
    /// Offline and not in the cache.
    #[error("chart {chart} {version} from {repo} is not cached and fetching is off (offline)")]
    NotCached {
        repo: String,
        chart: String,
        version: String,
    },
    /// A version range rather than one version: resolving it needs the index at the time
    /// ArgoCD resolved it, which Capstan cannot know.
    #[error("chart {chart}: version {version:?} is not an exact version")]
    NotExact { chart: String, version: String },
    #[error("fetching {url}: {message}")]
    Fetch { url: String, message: String },
    /// A repository URL without a scheme the operator did not list as an OCI registry.
    #[error(
        "chart repository {repo} has no scheme: it is an OCI registry only when listed as oci://{repo} in the service's chart repositories"
    )]
    NotMarkedOci { repo: String },
    /// The repository wants credentials it was not given, or refused them.
    #[error("chart repository {repo}: {message}")]
    Auth { repo: String, message: String },
    /// What the registry holds under that name is not a Helm chart.
    #[error("{url}: {message}")]
    NotAChart { url: String, message: String },
    #[error("chart {chart} {version} is not in {repo}")]
    NotFound {
        repo: String,
        chart: String,
        version: String,
    },
    #[error("{url}: archive digest sha256:{got} does not match the index's {expected}")]
    Digest {
        url: String,
        expected: String,
        got: String,
    },
    #[error("{url}: the repository index is not valid: {message}")]
    Index { url: String, message: String },
}

impl ChartError {
    /// True when Capstan could not obtain the chart (the app is "not checked"), as opposed to
    /// the Application naming a chart that does not exist or whose archive is corrupt.
    pub fn is_not_checked(&self) -> bool {
        matches!(
            self,
            ChartError::NotAllowed { .. }
                | ChartError::NotMarkedOci { .. }
                | ChartError::Auth { .. }
                | ChartError::NotCached { .. }
                | ChartError::NotExact { .. }
                | ChartError::Fetch { .. }
        )
    }
}

/// A chart archive and its digest (hex SHA-256).
#[derive(Clone, Debug)]
pub struct Chart {
    pub digest: String,
    pub archive: Arc<Vec<u8>>,
    /// True when it came from the cache, without a request.
    pub cached: bool,
}

/// Fetches and caches chart archives.
pub struct ChartFetcher {
    settings: ChartSettings,
    memory: Mutex<HashMap<String, Chart>>,
    fetching: Mutex<()>,
    /// Requests sent: each request to an HTTP repository, and one per OCI pull (tests and
    /// benchmarks count them).
    pub requests: std::sync::atomic::AtomicUsize,
}

fn normalize(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

pub(crate) fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// True for one exact SemVer version (`1.2.3`, `v1.2.3`, `1.2.3-rc.1+b`), as opposed to a range.
fn is_exact(version: &str) -> bool {
    let v = version.strip_prefix('v').unwrap_or(version);
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
}

impl ChartFetcher {
    pub fn new(settings: ChartSettings) -> Self {
        ChartFetcher {
            settings,
            memory: Mutex::new(HashMap::new()),
            fetching: Mutex::new(()),
            requests: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    pub fn settings(&self) -> &ChartSettings {
        &self.settings
    }

    fn allowed(&self, repo: &str) -> bool {
        let repo = normalize(repo);
        self.settings.repositories.iter().any(|a| {
            let a = normalize(a);
            repo == a || repo.starts_with(&format!("{a}/"))
        })
    }

    /// The cache file naming the digest of (repository, chart, version).
    fn ref_file(&self, key: &str) -> Option<PathBuf> {
        let dir = self.settings.cache_dir.as_ref()?;
        Some(dir.join("refs").join(hex_sha256(key.as_bytes())))
    }

    fn archive_file(&self, digest: &str) -> Option<PathBuf> {
        let dir = self.settings.cache_dir.as_ref()?;
        Some(dir.join("sha256").join(format!("{digest}.tgz")))
    }

    fn read_cached(&self, key: &str) -> Option<Chart> {
        let digest = std::fs::read_to_string(self.ref_file(key)?).ok()?;
        let digest = digest.trim();
        let path = self.archive_file(digest)?;
        let archive = std::fs::read(&path).ok()?;
        // A damaged or altered cache file is not used: it is fetched again.
        if hex_sha256(&archive) != digest {
            return None;
        }
        // Its modification time is its last use: eviction goes least recently used first.
        if let Err(e) = std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        {
            tracing::debug!(error = %e, "chart cache: could not mark an archive used");
        }
        Some(Chart {
            digest: digest.to_string(),
            archive: Arc::new(archive),
            cached: true,
        })
    }

    /// Removes the least recently used archives until the folder is within its bound, never
    /// `keep` (the archive just stored). A ref left pointing at a removed archive reads as a
    /// miss, so the chart is fetched again when it is next needed.
    fn prune(&self, keep: &Path) {
        let Some(dir) = self.settings.cache_dir.as_ref().map(|d| d.join("sha256")) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                m.is_file().then(|| {
                    (
                        m.modified().unwrap_or(std::time::UNIX_EPOCH),
                        m.len(),
                        e.path(),
                    )
                })
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        if total <= self.settings.cache_max_bytes {
            return;
        }
        files.sort();
        let mut removed = 0;
        for (_, len, path) in files {
            if total <= self.settings.cache_max_bytes {
                break;
            }
            if path == keep {
                continue;
            }
            if std::fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(len);
                removed += 1;
            }
        }
        tracing::info!(
            removed,
            bytes = total,
            bound = self.settings.cache_max_bytes,
            "chart cache: evicted the least recently used archives"
        );
    }

    fn store(&self, key: &str, chart: &Chart) {
        let (Some(r), Some(a)) = (self.ref_file(key), self.archive_file(&chart.digest)) else {
            return;
        };
        // Write-then-rename: a reader never sees half an archive.
        let write = |path: &PathBuf, bytes: &[u8]| -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, path)
        };
        if let Err(e) = write(&a, &chart.archive).and_then(|()| write(&r, chart.digest.as_bytes()))
        {
            tracing::warn!(error = %e, "chart cache: could not store an archive");
        }
        self.prune(&a);
    }

    fn remember(&self, key: &str, chart: &Chart) {
        let mut m = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= self.settings.memory_entries.max(1)
            && let Some(k) = m.keys().next().cloned()
        {
            m.remove(&k);
        }
        m.insert(key.to_string(), chart.clone());
    }

    /// The credential for `url`: the one whose repository is the longest prefix of it.
    fn credential(&self, url: &str) -> Option<&Credential> {
        let url = normalize(url);
        self.settings
            .credentials
            .iter()
            .filter(|c| {
                let r = normalize(&c.repository);
                url == r || url.starts_with(&format!("{r}/"))
            })
            .max_by_key(|c| normalize(&c.repository).len())
    }

    /// Where `repo` is: an HTTP repository or an OCI registry, normalised (a bare `host/path`
    /// becomes `oci://host/path` when the operator listed it so).
    fn locate(&self, repo: &str) -> Result<(String, Option<oci::OciRepo>), ChartError> {
        let n = normalize(repo);
        let lower = n.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Ok((n, None));
        }
        let oci_url = if lower.starts_with("oci://") {
            n
        } else if n.contains("://") {
            return Err(ChartError::NotAllowed { repo: n });
        } else {
            let marked = format!("oci://{n}");
            if !self.allowed(&marked) {
                return Err(ChartError::NotMarkedOci { repo: n });
            }
            marked
        };
        match oci::OciRepo::parse(&oci_url) {
            Some(r) => Ok((oci_url, Some(r))),
            None => Err(ChartError::NotAChart {
                url: oci_url,
                message: "not an OCI repository reference (oci://host[:port]/path)".into(),
            }),
        }
    }

    /// The archive of `chart` at `version` from the repository `repo`.
    #[tracing::instrument(skip(self), fields(repo = %repo))]
    pub fn fetch(&self, repo: &str, chart: &str, version: &str) -> Result<Chart, ChartError> {
        if !is_exact(version) {
            return Err(ChartError::NotExact {
                chart: chart.to_string(),
                version: version.to_string(),
            });
        }
        let (repo_n, registry) = self.locate(repo)?;
        let key = format!("{repo_n}\0{chart}\0{version}");
        if let Some(c) = self.cached(&key) {
            return Ok(c);
        }
        // One fetch at a time: apps rendered in parallel that share a chart wait for the first
        // fetch and take it from the cache instead of downloading it again.
        let _one = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = self.cached(&key) {
            return Ok(c);
        }
        if !self.allowed(&repo_n) {
            return Err(ChartError::NotAllowed { repo: repo_n });
        }
        if self.settings.offline {
            return Err(ChartError::NotCached {
                repo: repo_n,
                chart: chart.to_string(),
                version: version.to_string(),
            });
        }
        if let Some(registry) = registry {
            let credential = self.credential(&repo_n).cloned();
            let (max, timeout) = (self.settings.max_bytes, self.settings.timeout);
            let (chart_s, version_s) = (chart.to_string(), version.to_string());
            self.requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let pulled = on_thread(&repo_n, async move {
                oci::pull(
                    &registry,
                    &chart_s,
                    &version_s,
                    credential.as_ref(),
                    max,
                    timeout,
                )
                .await
            })?;
            let c = Chart {
                digest: pulled.digest,
                archive: Arc::new(pulled.archive),
                cached: false,
            };
            self.store(&key, &c);
            self.remember(&key, &c);
            return Ok(c);
        }
        let index_url = format!("{repo_n}/index.yaml");
        let index = self.get(&index_url)?;
        let (url, expected) = archive_url(&index, &index_url, &repo_n, chart, version)?;
        // The archive may live elsewhere (a CDN): it is fetched only from an allowed place too.
        if !self.allowed(&url) && !url.starts_with(&format!("{repo_n}/")) {
            return Err(ChartError::NotAllowed { repo: url });
        }
        let archive = self.get(&url)?;
        let got = hex_sha256(&archive);
        if let Some(expected) = expected
            && expected != got
        {
            return Err(ChartError::Digest { url, expected, got });
        }
        let c = Chart {
            digest: got,
            archive: Arc::new(archive),
            cached: false,
        };
        self.store(&key, &c);
        self.remember(&key, &c);
        Ok(c)
    }

    fn cached(&self, key: &str) -> Option<Chart> {
        if let Some(c) = self
            .memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
        {
            return Some(Chart {
                cached: true,
                ..c.clone()
            });
        }
        let c = self.read_cached(key)?;
        self.remember(key, &c);
        Some(c)
    }

    fn get(&self, url: &str) -> Result<Vec<u8>, ChartError> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fail = |message: String| ChartError::Fetch {
            url: url.to_string(),
            message,
        };
        let parsed = url::Url::parse(url).map_err(|e| fail(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(fail(
                "only http and https chart repositories are fetched".into(),
            ));
        }
        // Credentials go only to the repository they are for (not to a CDN the index names).
        let credential = self.credential(url).cloned();
        let max = self.settings.max_bytes;
        let timeout = self.settings.timeout;
        let target = parsed.clone();
        let label = url.to_string();
        on_thread(url, async move {
            let fail = |message: String| ChartError::Fetch {
                url: label.clone(),
                message,
            };
            let client = reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| fail(e.to_string()))?;
            let mut req = client.get(target);
            if let Some(c) = &credential {
                req = req.basic_auth(&c.username, Some(c.password.expose()));
            }
            let mut resp = req
                .send()
                .await
                .map_err(|e| fail(e.without_url().to_string()))?;
            let status = resp.status();
            if status == reqwest::StatusCode::UNAUTHORIZED
                || status == reqwest::StatusCode::FORBIDDEN
            {
                return Err(ChartError::Auth {
                    repo: label.clone(),
                    message: format!(
                        "HTTP {status} ({})",
                        if credential.is_some() {
                            "the credentials configured for it were refused"
                        } else {
                            "no credentials are configured for it"
                        }
                    ),
                });
            }
            if !status.is_success() {
                return Err(fail(format!("HTTP {status}")));
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| fail(e.without_url().to_string()))?
            {
                if body.len() + chunk.len() > max {
                    return Err(fail(format!("larger than {max} bytes")));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        })
    }
}

/// Runs `fut` on a thread of its own with a small runtime: callers may be on the blocking pool,
/// inside a runtime, or on plain threads.
fn on_thread<T: Send + 'static>(
    url: &str,
    fut: impl std::future::Future<Output = Result<T, ChartError>> + Send + 'static,
) -> Result<T, ChartError> {
    let fail = |message: String| ChartError::Fetch {
        url: url.to_string(),
        message,
    };
    std::thread::spawn(move || {
        crate::forge::github::install_crypto_provider();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ChartError::Fetch {
                url: String::new(),
                message: e.to_string(),
            })?;
        rt.block_on(fut)
    })
    .join()
    .map_err(|_| fail("the fetch thread panicked".into()))?
}

/// The archive URL and expected digest of `chart` `version` in a repository index.
fn archive_url(
    index: &[u8],
    index_url: &str,
    repo: &str,
    chart: &str,
    version: &str,
) -> Result<(String, Option<String>), ChartError> {
    let bad = |message: String| ChartError::Index {
        url: index_url.to_string(),
        message,
    };
    let text = std::str::from_utf8(index).map_err(|_| bad("not UTF-8".into()))?;
    let doc: Value = yaml_serde::from_str(text).map_err(|e| bad(e.to_string()))?;
    let entries = doc
        .get("entries")
        .and_then(|e| e.get(chart))
        .and_then(Value::as_array);
    let want = version.strip_prefix('v').unwrap_or(version);
    let entry = entries
        .into_iter()
        .flatten()
        .find(|e| {
            e.get("version")
                .and_then(Value::as_str)
                .is_some_and(|v| v.strip_prefix('v').unwrap_or(v) == want)
        })
        .ok_or_else(|| ChartError::NotFound {
            repo: repo.to_string(),
            chart: chart.to_string(),
            version: version.to_string(),
        })?;
    let first = entry
        .get("urls")
        .and_then(Value::as_array)
        .and_then(|u| u.first())
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{chart} {version} has no urls")))?;
    let base = url::Url::parse(&format!("{repo}/")).map_err(|e| bad(e.to_string()))?;
    let url = base.join(first).map_err(|e| bad(e.to_string()))?;
    let digest = entry
        .get("digest")
        .and_then(Value::as_str)
        .map(|d| d.strip_prefix("sha256:").unwrap_or(d).to_ascii_lowercase());
    Ok((url.to_string(), digest))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn exact_versions_only() {
        for ok in ["1.2.3", "v1.2.3", "1.2.3-rc.1", "0.0.1+build.5"] {
            assert!(is_exact(ok), "{ok}");
        }
        for bad in [
            "",
            "1.2",
            "~1.2.3",
            "^1",
            "1.x",
            ">=1.0.0",
            "1.2.*",
            "1.2.3 || 2.0.0",
        ] {
            assert!(!is_exact(bad), "{bad:?}");
        }
    }

    #[test]
    fn index_entries_resolve_relative_urls_and_digests() {
        let index = b"apiVersion: v1\nentries:\n  web:\n  - version: 1.0.0\n    urls: [web-1.0.0.tgz]\n    digest: ABC\n  - version: 2.0.0\n    urls: [https://cdn.example.com/web-2.0.0.tgz]\n";
        let (u, d) = archive_url(index, "x", "http://h/charts", "web", "1.0.0").unwrap();
        assert_eq!(u, "http://h/charts/web-1.0.0.tgz");
        assert_eq!(d.as_deref(), Some("abc"));
        let (u, d) = archive_url(index, "x", "http://h/charts", "web", "v2.0.0").unwrap();
        assert_eq!(u, "https://cdn.example.com/web-2.0.0.tgz");
        assert_eq!(d, None);
        assert!(matches!(
            archive_url(index, "x", "http://h", "web", "3.0.0"),
            Err(ChartError::NotFound { .. })
        ));
    }

    #[test]
    fn nothing_is_fetched_from_a_repository_not_listed() {
        let f = ChartFetcher::new(ChartSettings::default());
        assert!(matches!(
            f.fetch("http://169.254.169.254/latest", "web", "1.0.0"),
            Err(ChartError::NotAllowed { .. })
        ));
        assert_eq!(f.requests.load(std::sync::atomic::Ordering::Relaxed), 0);
    }
}
