//! The async door to git: every git2 call and every `git` process the service runs on a
//! repository goes through [`GitSource::with_mirror`], which
//!
//! - takes the repository's async lock, so two jobs never fetch, commit or push in one mirror at
//!   once (they would fight over ref lock files, and a promotion's compare-and-swap would see
//!   another job's half-done fetch) while jobs on other repositories go on in parallel;
//! - runs the operation on tokio's blocking pool, so libgit2 and `git` never stall the async
//!   runtime's workers (a fetch can take seconds, a history walk as long as the history);
//! - names the repository by [`RepoName`], checked once, so no operation builds a path or URL
//!   from an unchecked string.
//!
//! Reads of a commit's tree ([`super::GitTreeFs`]) may go on outside the lock: objects are
//! immutable and a fetch only adds new ones, so a view opened under the lock stays valid.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::GitError;
use super::mirror::{Mirror, Mirrors};
use super::names::RepoName;

/// Default for `--git-url-template`; `{host}` is the GitHub web host.
pub const DEFAULT_URL_TEMPLATE: &str = "https://{host}/{owner}/{repo}.git";

/// One async lock per repository, created on first use. Entries nobody holds are pruned when
/// the map grows, so the map stays as small as the set of repositories in flight.
#[derive(Default)]
struct RepoLocks {
    map: Mutex<HashMap<RepoName, Arc<AsyncMutex<()>>>>,
}

impl RepoLocks {
    const PRUNE_ABOVE: usize = 256;

    fn of(&self, repo: &RepoName) -> Arc<AsyncMutex<()>> {
        // Poisoning cannot leave the map inconsistent: every critical section is one call.
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > Self::PRUNE_ABOVE {
            map.retain(|_, l| Arc::strong_count(l) > 1);
        }
        map.entry(repo.clone()).or_default().clone()
    }
}

/// Where repositories are fetched from, and the only way to run git on their mirrors. Clones
/// share the locks.
#[derive(Clone)]
pub struct GitSource {
    url_template: String,
    host: String,
    mirrors: Mirrors,
    locks: Arc<RepoLocks>,
}

impl std::fmt::Debug for GitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitSource")
            .field("url_template", &self.url_template)
            .field("host", &self.host)
            .field("mirrors", &self.mirrors.root())
            .finish_non_exhaustive()
    }
}

impl GitSource {
    /// `url_template` is `--git-url-template` (`{host}`, `{owner}`, `{repo}`); `host` the GitHub
    /// web host `{host}` stands for; mirrors live under `mirror_root`.
    pub fn new(
        url_template: impl Into<String>,
        host: impl Into<String>,
        mirror_root: PathBuf,
    ) -> Self {
        GitSource {
            url_template: url_template.into(),
            host: host.into(),
            mirrors: Mirrors::new(mirror_root),
            locks: Arc::default(),
        }
    }

    /// The GitHub web host (`github.com`, or a GHES host).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The configured fetch URL of `repo`; never taken from a payload. The name's alphabet keeps
    /// it inside the template's host and path.
    pub fn url(&self, repo: &RepoName) -> String {
        self.url_template
            .replace("{host}", &self.host)
            .replace("{owner}", repo.owner())
            .replace("{repo}", repo.name())
    }

    /// The repository's web address, as Applications may spell the repository.
    pub fn web_url(&self, repo: &RepoName) -> String {
        format!("https://{}/{repo}", self.host)
    }

    /// Runs `op` on the mirror of `repo` (created empty when missing) with its fetch URL, on the
    /// blocking pool, holding the repository's lock until `op` returns, even when the caller
    /// stops waiting (a job aborted mid-fetch does not let the next one in early).
    pub async fn with_mirror<T, E, F>(&self, repo: &RepoName, op: F) -> Result<T, E>
    where
        F: FnOnce(&Mirror, &str) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<GitError> + Send + 'static,
    {
        let guard = self.lock(repo).await;
        let mirrors = self.mirrors.clone();
        let url = self.url(repo);
        let repo = repo.clone();
        let span = tracing::info_span!("git", repo = %repo);
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let _guard = guard;
            let mirror = mirrors.open(&repo)?;
            op(&mirror, &url)
        })
        .await
        .map_err(|e| E::from(GitError::task(e)))?
    }

    /// The lock of `repo`, for work that must not interleave with git on it.
    pub async fn lock(&self, repo: &RepoName) -> OwnedMutexGuard<()> {
        self.locks.of(repo).lock_owned().await
    }
}

/// Runs git work that has no mirror (a local checkout, a test repository) on the blocking pool.
pub async fn blocking<T, E>(op: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<GitError> + Send + 'static,
{
    tokio::task::spawn_blocking(op)
        .await
        .map_err(|e| E::from(GitError::task(e)))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn source() -> (tempfile::TempDir, GitSource) {
        let dir = tempfile::tempdir().unwrap();
        let src = GitSource::new(
            "file:///srv/{owner}/{repo}",
            "github.com",
            dir.path().to_path_buf(),
        );
        (dir, src)
    }

    fn name(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    /// Runs one operation on `a` and one on `b` at once and says how many ran together. Each
    /// waits (up to `patience`) for the other to arrive, so two operations that may overlap
    /// always meet, and two that may not never do.
    async fn overlap(src: &GitSource, a: &RepoName, b: &RepoName, patience: Duration) -> usize {
        let running = Arc::new(AtomicUsize::new(0));
        let arrived = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let op = || {
            let (running, arrived, most) = (running.clone(), arrived.clone(), most.clone());
            move |_: &Mirror, _: &str| -> Result<(), GitError> {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                arrived.fetch_add(1, Ordering::SeqCst);
                let until = std::time::Instant::now() + patience;
                while arrived.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(5));
                }
                most.fetch_max(running.load(Ordering::SeqCst), Ordering::SeqCst);
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        };
        let (x, y) = tokio::join!(src.with_mirror(a, op()), src.with_mirror(b, op()));
        x.unwrap();
        y.unwrap();
        most.load(Ordering::SeqCst)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_repository_is_serialized_two_run_in_parallel() {
        let (_dir, src) = source();
        let (a, b) = (name("acme/one"), name("acme/two"));
        let short = Duration::from_millis(300);
        assert_eq!(
            overlap(&src, &a, &a, short).await,
            1,
            "same repository overlapped"
        );
        let long = Duration::from_secs(30);
        assert_eq!(
            overlap(&src, &a, &b, long).await,
            2,
            "two repositories serialized"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn git_runs_off_the_async_runtime() {
        let (_dir, src) = source();
        let runtime_thread = std::thread::current().id();
        let (thread, path, url) = src
            .with_mirror(&name("acme/gitops"), |m, url| {
                Ok::<_, GitError>((
                    std::thread::current().id(),
                    m.path().to_path_buf(),
                    url.to_string(),
                ))
            })
            .await
            .unwrap();
        assert_ne!(thread, runtime_thread);
        assert!(path.ends_with("acme/gitops.git") && path.join("HEAD").exists());
        assert_eq!(url, "file:///srv/acme/gitops");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_lock_outlives_a_caller_that_stops_waiting() {
        let (_dir, src) = source();
        let repo = name("acme/gitops");
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let first = src.with_mirror(&repo, move |_, _| {
            let _ = started_tx.send(());
            let _ = release_rx.recv();
            Ok::<_, GitError>(())
        });
        // Start the operation, then drop the future as an aborted job would.
        let mut first = Box::pin(first);
        tokio::select! {
            _ = &mut first => panic!("the operation cannot finish before it is released"),
            _ = tokio::task::spawn_blocking(move || started_rx.recv()) => {}
        }
        drop(first);
        let second = src.with_mirror(&repo, |_, _| Ok::<_, GitError>(()));
        let waited = tokio::time::timeout(Duration::from_millis(300), second).await;
        assert!(
            waited.is_err(),
            "the next operation got in while git still ran"
        );
        release_tx.send(()).unwrap();
        src.with_mirror(&repo, |_, _| Ok::<_, GitError>(()))
            .await
            .unwrap();
    }

    #[test]
    fn urls_come_from_the_template() {
        let src = GitSource::new(DEFAULT_URL_TEMPLATE, "github.com", PathBuf::from("/m"));
        assert_eq!(
            src.url(&name("acme/gitops")),
            "https://github.com/acme/gitops.git"
        );
        assert_eq!(
            src.web_url(&name("acme/gitops")),
            "https://github.com/acme/gitops"
        );
    }
}
