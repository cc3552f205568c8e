//! Writing commits straight into the object database, for tests and benchmarks that need real
//! repositories built on the fly (the working directory is never written).

use std::path::Path;

use git2::{FileMode, Oid, Repository, RepositoryInitOptions, Signature};

use super::GitError;

/// One change applied on top of the parent commit's tree.
#[derive(Clone, Copy, Debug)]
pub enum Change<'a> {
    /// Create or replace a regular file.
    Write(&'a str, &'a [u8]),
    /// Create or replace a symbolic link whose target is the second string, verbatim.
    Symlink(&'a str, &'a str),
    /// Remove a file or a whole directory.
    Delete(&'a str),
}

/// A repository on branch `main` that commits are appended to.
pub struct RepoBuilder {
    repo: Repository,
}

fn err(operation: &str) -> impl FnOnce(git2::Error) -> GitError + '_ {
    move |e| GitError::Other {
        operation: operation.to_string(),
        message: e.message().to_string(),
    }
}

impl RepoBuilder {
    /// `git init` with `main` as the initial branch.
    pub fn init(dir: impl AsRef<Path>) -> Result<Self, GitError> {
        let mut opts = RepositoryInitOptions::new();
        opts.initial_head("main");
        let repo = Repository::init_opts(dir.as_ref(), &opts).map_err(err("init"))?;
        Ok(RepoBuilder { repo })
    }

    /// Commits `changes` on top of `main` (or as the root commit) and moves `main` to it.
    pub fn commit(&self, message: &str, changes: &[Change<'_>]) -> Result<Oid, GitError> {
        let parent = self
            .repo
            .find_reference("refs/heads/main")
            .ok()
            .and_then(|r| r.peel_to_commit().ok());
        let mut update = git2::build::TreeUpdateBuilder::new();
        for change in changes {
            match *change {
                Change::Write(path, bytes) => {
                    let id = self.repo.blob(bytes).map_err(err("writing blob"))?;
                    update.upsert(path, id, FileMode::Blob);
                }
                Change::Symlink(path, target) => {
                    let id = self
                        .repo
                        .blob(target.as_bytes())
                        .map_err(err("writing blob"))?;
                    update.upsert(path, id, FileMode::Link);
                }
                Change::Delete(path) => {
                    update.remove(path);
                }
            }
        }
        let baseline = match &parent {
            Some(c) => c.tree().map_err(err("reading tree"))?,
            None => {
                let empty = self
                    .repo
                    .treebuilder(None)
                    .and_then(|b| b.write())
                    .map_err(err("writing empty tree"))?;
                self.repo.find_tree(empty).map_err(err("reading tree"))?
            }
        };
        let tree_id = update
            .create_updated(&self.repo, &baseline)
            .map_err(err("updating tree"))?;
        let tree = self.repo.find_tree(tree_id).map_err(err("reading tree"))?;
        let sig = Signature::new(
            "Capstan Test",
            "test@capstan.invalid",
            &git2::Time::new(0, 0),
        )
        .map_err(err("signature"))?;
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        self.repo
            .commit(
                Some("refs/heads/main"),
                &sig,
                &sig,
                message,
                &tree,
                &parents,
            )
            .map_err(err("committing"))
    }

    /// Points a lightweight tag or branch-like ref at `commit` (e.g. `refs/heads/feature`).
    pub fn set_ref(&self, name: &str, commit: Oid) -> Result<(), GitError> {
        self.repo
            .reference(name, commit, true, "capstan fixture")
            .map(|_| ())
            .map_err(err("setting ref"))
    }
}
