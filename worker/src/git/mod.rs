//! Git access through libgit2: open a repository, resolve refs to commits, read a commit's tree
//! through [`RepoFs`] without a checkout, and list the paths changed between two commits.
//!
//! The service reaches git only through [`GitSource::with_mirror`] ([`source`]): one async lock
//! per repository, every git2 call and `git` process on the blocking pool, repositories and
//! commits named by [`RepoName`] and [`Sha`] ([`names`]), checked once where they enter.
//! Nothing here writes to the user's working tree or index. [`mirror`] fetches into bare mirrors
//! under the data dir.

pub mod fixture;
pub mod mirror;
pub mod names;
pub mod push;
pub mod source;
mod tree_fs;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use git2::{Oid, Repository};

use crate::repo_fs::{FsError, RepoPath};

pub use names::{NameError, RepoName, Sha, check_branch};
pub use source::{DEFAULT_URL_TEMPLATE, GitSource, blocking};
pub use tree_fs::GitTreeFs;

/// A git failure, naming the repository or ref concerned.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The path is not inside a git repository.
    #[error("opening git repository at {path}: {message}")]
    Open { path: String, message: String },
    /// A branch, tag or revision expression that does not name a commit.
    #[error("cannot resolve {reference:?} to a commit: {message}")]
    Resolve { reference: String, message: String },
    /// Any other libgit2 failure.
    #[error("git {operation}: {message}")]
    Other { operation: String, message: String },
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A repository name or commit id that is not one.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The blocking task running git panicked or was cancelled at shutdown.
    #[error("git task did not finish: {message}")]
    Task { message: String },
}

impl GitError {
    pub(crate) fn task(e: tokio::task::JoinError) -> Self {
        GitError::Task {
            message: if e.is_panic() {
                "it panicked".into()
            } else {
                "it was cancelled".into()
            },
        }
    }
}

/// Names the operation a libgit2 failure interrupted.
pub(crate) fn other(operation: &str) -> impl FnOnce(git2::Error) -> GitError + '_ {
    move |e| GitError::Other {
        operation: operation.to_string(),
        message: e.message().to_string(),
    }
}

/// A local repository (bare or with a working tree).
pub struct GitRepo {
    path: PathBuf,
    repo: Repository,
}

impl GitRepo {
    /// Opens the repository at `path` exactly (no upward search).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GitError> {
        let path = path.as_ref();
        let repo = Repository::open(path).map_err(|e| GitError::Open {
            path: path.display().to_string(),
            message: e.message().to_string(),
        })?;
        Ok(GitRepo {
            path: path.to_path_buf(),
            repo,
        })
    }

    /// Opens the repository containing `path`, searching upwards like `git` does.
    pub fn discover(path: impl AsRef<Path>) -> Result<Self, GitError> {
        let path = path.as_ref();
        let repo = Repository::discover(path).map_err(|e| GitError::Open {
            path: path.display().to_string(),
            message: e.message().to_string(),
        })?;
        let path = repo.workdir().unwrap_or_else(|| repo.path()).to_path_buf();
        Ok(GitRepo { path, repo })
    }

    /// The working directory, or the git directory of a bare repository.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The working directory, if the repository has one.
    pub fn workdir(&self) -> Option<&Path> {
        self.repo.workdir()
    }

    pub fn raw(&self) -> &Repository {
        &self.repo
    }

    /// Resolves a branch, tag, full or abbreviated SHA or revision expression (`HEAD~1`) to a commit.
    pub fn resolve(&self, reference: &str) -> Result<Oid, GitError> {
        let obj = self.repo.revparse_single(reference).map_err(|e| {
            let message = format!("{}{}", e.message(), self.near_ref(reference));
            GitError::Resolve {
                reference: reference.to_string(),
                message,
            }
        })?;
        let commit = obj.peel_to_commit().map_err(|e| GitError::Resolve {
            reference: reference.to_string(),
            message: e.message().to_string(),
        })?;
        Ok(commit.id())
    }

    /// "; did you mean `x`?" for the branch, remote branch or tag whose short name is nearest a
    /// mistyped `reference`, or nothing.
    fn near_ref(&self, reference: &str) -> String {
        // A repository may hold very many refs; the suggestion is a courtesy, so it looks at a
        // bounded number.
        let Ok(refs) = self.repo.references() else {
            return String::new();
        };
        let names: Vec<String> = refs
            .flatten()
            .take(10_000)
            .filter_map(|r| r.shorthand().ok().map(str::to_string))
            .collect();
        crate::settings::did_you_mean_hint(reference, names.iter().map(String::as_str))
    }

    /// The branch `HEAD` points to (`main` for `refs/heads/main`), if it is a branch.
    pub fn head_branch(&self) -> Option<String> {
        let head = self.repo.find_reference("HEAD").ok()?;
        let target = head.symbolic_target().ok()??;
        target.strip_prefix("refs/heads/").map(str::to_string)
    }

    /// URLs of all configured remotes, used as aliases of "this repository" in Applications.
    pub fn remote_urls(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(names) = self.repo.remotes() {
            for name in names.iter().filter_map(|n| n.ok().flatten()) {
                if let Ok(remote) = self.repo.find_remote(name)
                    && let Ok(url) = remote.url()
                {
                    out.push(url.to_string());
                }
            }
        }
        out
    }

    /// A read-only view of the tree of `commit`.
    pub fn tree_fs(&self, commit: Oid) -> Result<GitTreeFs, GitError> {
        GitTreeFs::open(&self.path, commit)
    }

    /// Paths (files, both sides of renames) that differ between the trees of two commits.
    pub fn changed_paths(&self, base: Oid, head: Oid) -> Result<BTreeSet<RepoPath>, GitError> {
        let base_tree = self
            .repo
            .find_commit(base)
            .and_then(|c| c.tree())
            .map_err(other("reading base tree"))?;
        let head_tree = self
            .repo
            .find_commit(head)
            .and_then(|c| c.tree())
            .map_err(other("reading head tree"))?;
        let diff = self
            .repo
            .diff_tree_to_tree(Some(&base_tree), Some(&head_tree), None)
            .map_err(other("diffing trees"))?;
        let mut out = BTreeSet::new();
        for delta in diff.deltas() {
            for file in [delta.old_file(), delta.new_file()] {
                if let Some(p) = file.path().and_then(Path::to_str) {
                    out.insert(RepoPath::new(p)?);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
