//! A checkout on the local disk, as the CLI sees it: the working directory, or any commit of its
//! repository read straight from the object database (the working tree is never modified).

use std::path::{Path, PathBuf};

use super::DiscoveryConfig;
use crate::git::{GitError, GitRepo};
use crate::render::verify::VerifySettings;
use crate::repo_fs::{DirFs, FsError, RepoFs, RepoPath};
use crate::settings::{RepoSettings, SettingsError};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{0} is not inside a git repository, so --ref cannot be used")]
    NoGit(String),
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

pub struct LocalRepo {
    root: PathBuf,
    git: Option<GitRepo>,
}

impl LocalRepo {
    /// The repository containing `path` (searching upwards); a plain folder works without `--ref`.
    pub fn open(path: &Path) -> Result<Self, LocalError> {
        match GitRepo::discover(path) {
            Ok(git) => {
                let root = git
                    .workdir()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| git.path().to_path_buf());
                Ok(LocalRepo {
                    root,
                    git: Some(git),
                })
            }
            Err(_) => Ok(LocalRepo {
                root: path.to_path_buf(),
                git: None,
            }),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn git(&self) -> Option<&GitRepo> {
        self.git.as_ref()
    }

    /// The tree at `reference`, or the working directory when `None`.
    pub fn fs(&self, reference: Option<&str>) -> Result<Box<dyn RepoFs>, LocalError> {
        match reference {
            None => Ok(Box::new(DirFs::new(&self.root)?)),
            Some(r) => {
                let git = self
                    .git
                    .as_ref()
                    .ok_or_else(|| LocalError::NoGit(self.root.display().to_string()))?;
                let commit = git.resolve(r)?;
                Ok(Box::new(git.tree_fs(commit)?))
            }
        }
    }

    /// The default branch: `origin/HEAD` when known, else `main`.
    pub fn default_branch(&self) -> String {
        let Some(g) = self.git.as_ref() else {
            return "main".to_string();
        };
        let origin_head = || {
            let r = g.raw().find_reference("refs/remotes/origin/HEAD").ok()?;
            let target = r.symbolic_target().ok()??.to_string();
            target
                .strip_prefix("refs/remotes/origin/")
                .map(str::to_string)
        };
        // Without origin/HEAD (a copy, a clone whose remote was removed): `main` or `master`
        // when one exists, else the branch checked out. Guessing `main` in a `master` repository
        // would read settings from a branch that is not there.
        let exists = |b: &str| {
            g.raw().find_reference(&format!("refs/heads/{b}")).is_ok()
                || g.raw()
                    .find_reference(&format!("refs/remotes/origin/{b}"))
                    .is_ok()
        };
        origin_head()
            .or_else(|| {
                ["main", "master"]
                    .into_iter()
                    .find(|b| exists(b))
                    .map(str::to_string)
            })
            .or_else(|| g.head_branch())
            .unwrap_or_else(|| "main".to_string())
    }

    /// The repository settings as read from the default branch (a change under review cannot
    /// widen them), falling back to the working directory's copy when the branch does not exist.
    /// The default branch is the argument, else origin/HEAD or main. A broken file is an error.
    pub fn settings(&self, default_branch: Option<&str>) -> Result<RepoSettings, LocalError> {
        let branch = default_branch
            .map(str::to_string)
            .unwrap_or_else(|| self.default_branch());
        let fs = self.fs(Some(&branch)).or_else(|_| self.fs(None))?;
        Ok(RepoSettings::from_tree(fs.as_ref())?.0)
    }

    /// Discovery settings: explicit URLs, the repository's remotes and `repoURLs`/`repoURL` from
    /// [`LocalRepo::settings`]. The default branch is the argument, else `defaultBranch` in
    /// `.capstan.yaml`, else origin/HEAD or main.
    pub fn discovery_config(
        &self,
        extra_urls: &[String],
        default_branch: Option<&str>,
    ) -> Result<DiscoveryConfig, LocalError> {
        let settings = self.settings(default_branch)?;
        let mut repo_urls: Vec<String> = extra_urls.to_vec();
        if let Some(g) = &self.git {
            repo_urls.extend(g.remote_urls());
        }
        let fallback = default_branch
            .map(str::to_string)
            .unwrap_or_else(|| self.default_branch());
        let mut cfg = DiscoveryConfig::from_settings(&settings, repo_urls, &fallback);
        if let Some(b) = default_branch {
            cfg.default_branch = b.to_string();
        }
        Ok(cfg)
    }

    /// `render.verify`, `render.verifyShare` and `render.notChecked` of [`LocalRepo::settings`].
    pub fn verify_settings(
        &self,
        default_branch: Option<&str>,
    ) -> Result<VerifySettings, LocalError> {
        Ok(VerifySettings::from(&self.settings(default_branch)?.render))
    }

    /// The repository that contains the folder `arg` (absolute, or relative to the current
    /// directory) and the folder's path in it; `None` when `arg` is no folder on disk. Nothing
    /// but the folder's ancestors is looked at. A folder in no git repository belongs to
    /// `fallback` when inside it, else it is its own root.
    pub fn containing(arg: &str, fallback: &Path) -> Result<Option<(Self, RepoPath)>, LocalError> {
        let on_disk = Path::new(arg);
        if !on_disk.is_dir() {
            return Ok(None);
        }
        let io = |source| FsError::Io {
            path: arg.to_string(),
            source,
        };
        let abs = on_disk.canonicalize().map_err(io)?;
        let mut local = LocalRepo::open(&abs)?;
        if local.git.is_none()
            && let Ok(fb) = fallback.canonicalize()
            && abs.starts_with(&fb)
        {
            local = LocalRepo::open(&fb)?;
        }
        let root = local.root.canonicalize().map_err(io)?;
        let rel = abs
            .strip_prefix(&root)
            .map_err(|_| FsError::Escape(format!("{arg} is not inside {}", root.display())))?;
        Ok(Some((local, RepoPath::new(&rel.to_string_lossy())?)))
    }

    /// Turns a command-line directory (relative to the current directory, or to the repository
    /// root) into a repository path.
    pub fn repo_path(&self, arg: &str) -> Result<RepoPath, FsError> {
        let on_disk = Path::new(arg);
        if let (Ok(abs), Ok(root)) = (on_disk.canonicalize(), self.root.canonicalize())
            && let Ok(rel) = abs.strip_prefix(&root)
        {
            return RepoPath::new(&rel.to_string_lossy());
        }
        RepoPath::new(arg)
    }
}
