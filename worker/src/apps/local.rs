//! A checkout on the local disk, as the CLI sees it: the working directory, or any commit of its
//! repository read straight from the object database (the working tree is never modified).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::DiscoveryConfig;
use crate::git::{GitError, GitRepo};
use crate::render::verify::{SettingsError, VerifySettings};
use crate::repo_fs::{DirFs, FsError, RepoFs, RepoPath};
use crate::yaml;

/// Repository settings file at the root of the GitOps repository.
pub const SETTINGS_FILE: &str = ".capstan.yaml";

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{0} is not inside a git repository, so --ref cannot be used")]
    NoGit(String),
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
        self.git
            .as_ref()
            .and_then(|g| {
                let r = g.raw().find_reference("refs/remotes/origin/HEAD").ok()?;
                let target = r.symbolic_target().ok()??.to_string();
                target
                    .strip_prefix("refs/remotes/origin/")
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "main".to_string())
    }

    /// Discovery settings: explicit URLs, the repository's remotes and `repoURLs`/`repoURL` from
    /// `.capstan.yaml` as read from the default branch (a change under review cannot widen them),
    /// falling back to the working directory's copy when the branch does not exist. The default
    /// branch is the argument, else `defaultBranch` in `.capstan.yaml`, else origin/HEAD or main.
    pub fn discovery_config(
        &self,
        extra_urls: &[String],
        default_branch: Option<&str>,
    ) -> DiscoveryConfig {
        let mut branch = default_branch
            .map(str::to_string)
            .unwrap_or_else(|| self.default_branch());
        let mut repo_urls: Vec<String> = extra_urls.to_vec();
        if let Some(g) = &self.git {
            repo_urls.extend(g.remote_urls());
        }
        let settings_fs = self.fs(Some(&branch)).or_else(|_| self.fs(None)).ok();
        if let Some(fs) = &settings_fs {
            repo_urls.extend(settings_repo_urls(fs.as_ref()));
            if default_branch.is_none()
                && let Some(b) = settings_default_branch(fs.as_ref())
            {
                branch = b;
            }
        }
        DiscoveryConfig {
            repo_urls,
            default_branch: branch,
            exclude: settings_fs
                .as_deref()
                .map(settings_discovery_exclude)
                .unwrap_or_default(),
            ..DiscoveryConfig::default()
        }
    }

    /// `render.verify`, `render.verifyShare` and `render.notChecked` from `.capstan.yaml`, read
    /// like the discovery settings: from the default branch, else the working directory.
    pub fn verify_settings(
        &self,
        default_branch: Option<&str>,
    ) -> Result<VerifySettings, SettingsError> {
        let branch = default_branch
            .map(str::to_string)
            .unwrap_or_else(|| self.default_branch());
        match self.fs(Some(&branch)).or_else(|_| self.fs(None)) {
            Ok(fs) => VerifySettings::read(fs.as_ref()),
            Err(_) => Ok(VerifySettings::default()),
        }
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

fn settings(fs: &dyn RepoFs) -> Option<Value> {
    let path = RepoPath::new(SETTINGS_FILE).ok()?;
    let text = fs.read_to_string(&path).ok()?;
    yaml::parse_single(&text, SETTINGS_FILE).ok()
}

/// `defaultBranch` from `.capstan.yaml`.
pub fn settings_default_branch(fs: &dyn RepoFs) -> Option<String> {
    settings(fs)?
        .get("defaultBranch")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// `discovery.exclude` from `.capstan.yaml`: folders searched for no Applications. Entries that
/// are not valid repository paths are dropped (they could never match anything inside the repo).
pub fn settings_discovery_exclude(fs: &dyn RepoFs) -> Vec<RepoPath> {
    settings(fs)
        .and_then(|v| v.pointer("/discovery/exclude").cloned())
        .and_then(|v| match v {
            Value::Array(a) => Some(a),
            _ => None,
        })
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|p| RepoPath::new(p).ok())
        .filter(|p| !p.is_root())
        .collect()
}

/// `repoURLs` (a list) or `repoURL` (one) from `.capstan.yaml`.
pub fn settings_repo_urls(fs: &dyn RepoFs) -> Vec<String> {
    let Some(v) = settings(fs) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(Value::Array(a)) = v.get("repoURLs") {
        out.extend(a.iter().filter_map(Value::as_str).map(str::to_string));
    }
    if let Some(u) = v.get("repoURL").and_then(Value::as_str) {
        out.push(u.to_string());
    }
    out
}
