//! Local bare mirrors of the repositories Capstan judges, one per `owner/name`, fetched on
//! demand with exact refspecs.
//!
//! The fetch URL always comes from configuration ([`super::GitSource::url`]), never from a webhook payload.
//! `file://` URLs and plain paths (mirrors, tests) are fetched with libgit2; `http(s)` URLs with
//! the `git` CLI, because this build's libgit2 has no TLS transport and Capstan keeps one TLS
//! stack (rustls) in-process. The token goes to `git` through `GIT_CONFIG_*` environment
//! variables, so it never appears in a process listing. Submodules are never fetched.

use std::path::{Path, PathBuf};
use std::process::Command;

use git2::{AutotagOption, FetchOptions, Oid, Repository};

use super::names::RepoName;
use super::{GitError, GitRepo};

/// Where mirrors live: `<root>/<owner>/<name>.git`. Opened only through
/// [`super::GitSource::with_mirror`], which holds the repository's lock.
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

    /// The mirror of `repo`, created (bare, empty) when missing. The name's alphabet keeps the
    /// directory under the root.
    pub(super) fn open(&self, repo: &RepoName) -> Result<Mirror, GitError> {
        let dir = self
            .root
            .join(repo.owner())
            .join(format!("{}.git", repo.name()));
        Self::init(&dir)?;
        Ok(Mirror { dir })
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

/// A bare mirror.
pub struct Mirror {
    dir: PathBuf,
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
            .open(&RepoName::parse("acme/gitops").unwrap_or_else(|e| panic!("{e}")))
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
