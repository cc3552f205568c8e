//! The `kustomize` backend: `kustomize build`, or `kubectl kustomize` when only kubectl is
//! installed, run on a scratch copy of exactly the app's input files with the load restrictor at
//! root-only and no plugins.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;

use super::exec::{self, ExecLimits};
use super::kustomize::helm_charts;
use super::{Backend, RenderError, RenderSource, materialize};
use crate::repo_fs::{RepoFs, RepoPath};

pub struct KustomizeExec {
    binary: PathBuf,
    /// `kubectl` needs the `kustomize` subcommand; `kustomize` needs `build`.
    kubectl: bool,
    limits: ExecLimits,
    /// The helm `helmCharts` in the repository are inflated with (`--enable-helm`).
    helm: Option<PathBuf>,
}

impl KustomizeExec {
    /// `kustomize` on PATH, else `kubectl`.
    pub fn detect(limits: ExecLimits) -> Option<Self> {
        if let Some(b) = exec::which("kustomize") {
            return Some(KustomizeExec {
                binary: b,
                kubectl: false,
                limits,
                helm: None,
            });
        }
        exec::which("kubectl").map(|b| KustomizeExec {
            binary: b,
            kubectl: true,
            limits,
            helm: None,
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
            helm: None,
        }
    }

    /// The same tool, given the helm for `helmCharts`.
    pub fn with_helm(mut self, helm: Option<PathBuf>) -> Self {
        self.helm = helm;
        self
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
        if uses_helm(fs, inputs)? {
            // Only charts in the repository get here (`uses_helm` refuses the rest): the tool
            // must never pull a chart from the network itself.
            let helm = self.helm.as_ref().ok_or_else(|| RenderError::Unavailable {
                backend: "helm".into(),
                reason: format!(
                    "{}: helmCharts need a helm binary (none on PATH and none configured)",
                    source.path
                ),
            })?;
            args.push("--enable-helm".into());
            let mut flag = OsString::from("--helm-command=");
            flag.push(helm);
            args.push(flag);
        }
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

/// True when a kustomization among `inputs` has chart entries, all of them charts in the
/// repository. A chart kustomize would `helm pull` is refused: Capstan fetches charts only
/// through its chart fetcher, which the native engine uses.
fn uses_helm(fs: &dyn RepoFs, inputs: &BTreeSet<RepoPath>) -> Result<bool, RenderError> {
    let mut any = false;
    for f in inputs {
        if !super::inputs::KUSTOMIZATION_FILES.contains(&f.file_name()) {
            continue;
        }
        let text = fs.read_to_string(f).map_err(|source| RenderError::Input {
            file: f.to_string(),
            source,
        })?;
        if !text.contains("helmChart") {
            continue;
        }
        let k = crate::yaml::parse_single(&text, f.as_str())?;
        let invalid = |e: super::kustomize::KustomizeError| RenderError::Invalid {
            file: f.to_string(),
            message: e.to_string(),
        };
        let (globals, charts) = helm_charts::entries(&k, f.as_str()).map_err(invalid)?;
        let dir = f.parent();
        for c in &charts {
            any = true;
            if c.local_chart(fs, &globals, &dir, f.as_str())
                .map_err(invalid)?
                .is_none()
            {
                return Err(RenderError::Unsupported {
                    feature: format!(
                        "helmCharts {} from {}: only the native engine renders charts from a repository",
                        c.name, c.repo
                    ),
                    file: f.to_string(),
                });
            }
        }
    }
    Ok(any)
}
