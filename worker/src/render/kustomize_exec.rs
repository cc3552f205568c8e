//! The `kustomize` backend: `kustomize build`, or `kubectl kustomize` when only kubectl is
//! installed, run on a scratch copy of exactly the app's input files with the load restrictor at
//! root-only and no plugins.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;

use super::exec::{self, ExecLimits};
use super::{Backend, RenderError, RenderSource, materialize};
use crate::repo_fs::{RepoFs, RepoPath};

pub struct KustomizeExec {
    binary: PathBuf,
    /// `kubectl` needs the `kustomize` subcommand; `kustomize` needs `build`.
    kubectl: bool,
    limits: ExecLimits,
}

impl KustomizeExec {
    /// `kustomize` on PATH, else `kubectl`.
    pub fn detect(limits: ExecLimits) -> Option<Self> {
        if let Some(b) = exec::which("kustomize") {
            return Some(KustomizeExec {
                binary: b,
                kubectl: false,
                limits,
            });
        }
        exec::which("kubectl").map(|b| KustomizeExec {
            binary: b,
            kubectl: true,
            limits,
        })
    }

    /// A configured binary; a file named `kubectl` is driven as kubectl.
    pub fn with_binary(binary: PathBuf, limits: ExecLimits) -> Self {
        let kubectl = binary
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("kubectl"));
        KustomizeExec {
            binary,
            kubectl,
            limits,
        }
    }

    /// `kubectl kustomize` or `kustomize build`, for notes.
    pub fn tool_name(&self) -> &'static str {
        if self.kubectl {
            "kubectl kustomize"
        } else {
            "kustomize build"
        }
    }
}

impl Backend for KustomizeExec {
    fn name(&self) -> &'static str {
        "kustomize"
    }

    fn render(
        &self,
        fs: &dyn RepoFs,
        source: &RenderSource,
        inputs: &BTreeSet<RepoPath>,
    ) -> Result<String, RenderError> {
        let scratch = |e| RenderError::Scratch {
            path: source.path.to_string(),
            source: e,
        };
        let tmp = tempfile::tempdir().map_err(scratch)?;
        let repo = tmp.path().join("repo");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&repo).map_err(scratch)?;
        std::fs::create_dir_all(&home).map_err(scratch)?;
        materialize(fs, inputs, &repo)?;
        let dir = repo.join(source.path.as_str());
        let mut args: Vec<OsString> = Vec::new();
        args.push(if self.kubectl { "kustomize" } else { "build" }.into());
        args.push("--load-restrictor=LoadRestrictionsRootOnly".into());
        // The directory is an absolute scratch path, but positionals still go after `--` so that
        // no path can ever be read as a flag.
        args.push("--".into());
        args.push(dir.into_os_string());
        exec::run(&self.binary, &args, &repo, &home, &self.limits).map_err(|e| RenderError::Exec {
            path: source.path.to_string(),
            source: exec::relative_to(e, &repo),
        })
    }
}
