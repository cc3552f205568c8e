//! Local bare mirrors of the repositories Capstan judges, one per `owner/name`, fetched on
//! demand with exact refspecs.
//!
//! The fetch URL always comes from configuration ([`fetch_url`]), never from a webhook payload.
//! `file://` URLs and plain paths (mirrors, tests) are fetched with libgit2; `http(s)` URLs with
//! the `git` CLI, because this build's libgit2 has no TLS transport and Capstan keeps one TLS
//! stack (rustls) in-process. The token goes to `git` through `GIT_CONFIG_*` environment
//! variables, so it never appears in a process listing. Submodules are never fetched.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use git2::{AutotagOption, FetchOptions, Oid, Repository};

use super::{GitError, GitRepo};

/// Default for `--git-url-template`; `{host}` is the GitHub web host.
pub const DEFAULT_URL_TEMPLATE: &str = "https://{host}/{owner}/{repo}.git";

/// Build the fetch URL of `repo` (`owner/name`) from the template. Owner and name are checked
/// against GitHub's character set, so a crafted name cannot leave the template's host or path.
pub fn fetch_url(template: &str, host: &str, repo: &str) -> Result<String, GitError> {
    let (owner, name) = split_repo(repo)?;
    Ok(template
        .replace("{host}", host)
        .replace("{owner}", owner)
        .replace("{repo}", name))
}

fn split_repo(repo: &str) -> Result<(&str, &str), GitError> {
    let bad = |why: &str| GitError::Other {
        operation: "building the fetch URL".into(),
        message: format!("repository name {repo:?} {why}"),
    };
    let (owner, name) = repo
        .split_once('/')
        .ok_or_else(|| bad("is not owner/name"))?;
    let ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && !s.starts_with('-')
            && s.len() <= 100
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if !ok(owner) || !ok(name) {
        return Err(bad("has characters GitHub does not allow"));
    }
    Ok((owner, name))
}

/// A 40-hex commit id; anything else (a branch name, a short SHA, user text) is refused.
pub fn exact_sha(sha: &str) -> Result<Oid, GitError> {
    if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(GitError::Resolve {
            reference: sha.chars().take(64).collect(),
            message: "expected a full 40-character commit SHA".into(),
        });
    }
    Oid::from_str(sha).map_err(|e| GitError::Resolve {
        reference: sha.to_string(),
        message: e.message().to_string(),
    })
}

/// Where mirrors live: `<root>/<owner>/<name>.git`.
#[derive(Clone, Debug)]
pub struct Mirrors {
    root: PathBuf,
}

impl Mirrors {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Mirrors { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The mirror of `repo`, created (bare, empty) when missing.
    pub fn open(&self, repo: &str) -> Result<Mirror, GitError> {
        let (owner, name) = split_repo(repo)?;
        let dir = self.root.join(owner).join(format!("{name}.git"));
        let lock = mirror_lock(&dir);
        {
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            Self::init(&dir)?;
        }
        Ok(Mirror { dir, lock })
    }

    fn init(dir: &Path) -> Result<(), GitError> {
        if !dir.join("HEAD").exists() {
            std::fs::create_dir_all(dir).map_err(|e| GitError::Other {
                operation: format!("creating mirror {}", dir.display()),
                message: e.to_string(),
            })?;
            Repository::init_bare(dir).map_err(|e| GitError::Open {
                path: dir.display().to_string(),
                message: e.message().to_string(),
            })?;
        }
        Ok(())
    }
}

/// One process-wide lock per mirror: concurrent fetches into one repository would fight over
/// ref lock files.
fn mirror_lock(dir: &Path) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut map = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    map.entry(dir.to_path_buf()).or_default().clone()
}

/// A bare mirror.
pub struct Mirror {
    dir: PathBuf,
    lock: Arc<Mutex<()>>,
}

impl Mirror {
    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn repo(&self) -> Result<GitRepo, GitError> {
        GitRepo::open(&self.dir)
    }

    /// Whether the commit is already here.
    pub fn has_commit(&self, oid: Oid) -> bool {
        Repository::open_bare(&self.dir)
            .ok()
            .is_some_and(|r| r.find_commit(oid).is_ok())
    }

    /// Fetch `refspecs` from `url` (no tags, no submodules). `token` authenticates https fetches.
    pub fn fetch(
        &self,
        url: &str,
        refspecs: &[String],
        token: Option<&str>,
    ) -> Result<(), GitError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if url.starts_with("http://") || url.starts_with("https://") {
            self.fetch_cli(url, refspecs, token)
        } else {
            self.fetch_libgit2(url, refspecs)
        }
    }

    /// Make sure every commit in `wanted` is present, fetching `refspecs` once when one is
    /// missing; an id still missing afterwards is an error naming it.
    pub fn ensure(
        &self,
        url: &str,
        wanted: &[Oid],
        refspecs: &[String],
        token: Option<&str>,
    ) -> Result<(), GitError> {
        if wanted.iter().all(|o| self.has_commit(*o)) {
            return Ok(());
        }
        self.fetch(url, refspecs, token)?;
        match wanted.iter().find(|o| !self.has_commit(**o)) {
            None => Ok(()),
            Some(missing) => Err(GitError::Resolve {
                reference: missing.to_string(),
                message: format!(
                    "commit not found after fetching {} from the configured remote",
                    refspecs.join(" ")
                ),
            }),
        }
    }

    fn fetch_libgit2(&self, url: &str, refspecs: &[String]) -> Result<(), GitError> {
        let repo = Repository::open_bare(&self.dir).map_err(|e| GitError::Open {
            path: self.dir.display().to_string(),
            message: e.message().to_string(),
        })?;
        let mut remote = repo.remote_anonymous(url).map_err(|e| GitError::Other {
            operation: format!("opening remote {url}"),
            message: e.message().to_string(),
        })?;
        let mut opts = FetchOptions::new();
        opts.download_tags(AutotagOption::None);
        let specs: Vec<&str> = refspecs.iter().map(String::as_str).collect();
        remote
            .fetch(&specs, Some(&mut opts), None)
            .map_err(|e| GitError::Other {
                operation: format!("fetching {} from {url}", specs.join(" ")),
                message: e.message().to_string(),
            })
    }

    fn fetch_cli(
        &self,
        url: &str,
        refspecs: &[String],
        token: Option<&str>,
    ) -> Result<(), GitError> {
        let home = scratch_home().map_err(|e| GitError::Other {
            operation: "preparing git's scratch home".into(),
            message: e.to_string(),
        })?;
        let mut cmd = Command::new("git");
        crate::render::exec::git_env(&mut cmd, home.path());
        let mut git_dir = std::ffi::OsString::from("--git-dir=");
        git_dir.push(&self.dir);
        cmd.arg(git_dir)
            .args([
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-recurse-submodules",
                "--force",
                "--",
            ])
            .arg(url)
            .args(refspecs);
        if let Some(token) = token {
            auth_env(&mut cmd, token);
        }
        let out = cmd.output().map_err(|e| GitError::Other {
            operation: "running git fetch".into(),
            message: format!("{e} (is git installed?)"),
        })?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(GitError::Other {
            operation: format!("fetching {} from {url}", refspecs.join(" ")),
            message: crate::scrub::scrub_string(
                &stderr.trim().chars().take(2000).collect::<String>(),
            ),
        })
    }
}

/// An empty `$HOME` for one `git` run, so neither the service's user config nor its credential
/// helpers are read (shared with `git::push`).
pub(crate) fn scratch_home() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("capstan-git-home")
        .tempdir()
}

/// Hands `token` to a `git` command as an HTTP header through `GIT_CONFIG_*` variables, so it
/// never appears in a process listing (shared with `git::push`).
pub(crate) fn auth_env(cmd: &mut Command, token: &str) {
    let basic = base64_encode(format!("x-access-token:{token}").as_bytes());
    cmd.env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "http.extraHeader")
        .env(
            "GIT_CONFIG_VALUE_0",
            format!("Authorization: Basic {basic}"),
        );
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::fixture::{Change, RepoBuilder};

    #[test]
    fn urls_come_from_the_template_and_names_are_checked() {
        assert_eq!(
            fetch_url(DEFAULT_URL_TEMPLATE, "github.com", "acme/gitops").ok(),
            Some("https://github.com/acme/gitops.git".to_string())
        );
        assert_eq!(
            fetch_url("file:///srv/mirrors/{owner}/{repo}", "x", "acme/gitops").ok(),
            Some("file:///srv/mirrors/acme/gitops".to_string())
        );
        for bad in [
            "acme",
            "acme/../etc",
            "../x/y",
            "acme/a b",
            "acme/x@evil.com",
            "-u/x",
            "a/b/c",
        ] {
            assert!(
                fetch_url(DEFAULT_URL_TEMPLATE, "github.com", bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_full_shas_are_accepted() {
        assert!(exact_sha(&"a".repeat(40)).is_ok());
        for bad in ["main", "abc123", &"g".repeat(40), &"a".repeat(41), "HEAD~1"] {
            assert!(exact_sha(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), want);
        }
    }

    fn upstream() -> (tempfile::TempDir, RepoBuilder, Oid, Oid) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let b = RepoBuilder::init(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let one = b
            .commit("one", &[Change::Write("a.yaml", b"a: 1\n")])
            .unwrap_or_else(|e| panic!("{e}"));
        let two = b
            .commit("two", &[Change::Write("a.yaml", b"a: 2\n")])
            .unwrap_or_else(|e| panic!("{e}"));
        (dir, b, one, two)
    }

    fn check_fetch(cli: bool) {
        let (up, _b, one, two) = upstream();
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mirror = Mirrors::new(root.path())
            .open("acme/gitops")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!mirror.has_commit(two));
        let url = format!("file://{}", up.path().display());
        let specs = vec!["+refs/heads/*:refs/remotes/origin/*".to_string()];
        let res = if cli {
            mirror.fetch_cli(&url, &specs, Some("t0ken"))
        } else {
            mirror.fetch(&url, &specs, None)
        };
        res.unwrap_or_else(|e| panic!("{e}"));
        assert!(mirror.has_commit(one) && mirror.has_commit(two));
        let missing = Oid::from_str(&"1".repeat(40)).unwrap_or_else(|e| panic!("{e}"));
        let err = mirror.ensure(&url, &[two, missing], &specs, None);
        assert!(format!("{:?}", err.err()).contains("1111111111"));
        assert!(mirror.ensure(&url, &[one, two], &specs, None).is_ok());
    }

    #[test]
    fn fetches_with_libgit2() {
        check_fetch(false);
    }

    #[test]
    fn fetches_with_the_git_cli() {
        check_fetch(true);
    }
}
