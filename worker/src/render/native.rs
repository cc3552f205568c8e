//! The `native` backend: the in-process kustomize engine of [`super::kustomize`].

use std::collections::BTreeSet;

use super::kustomize::{self, KustomizeError};
use super::{Backend, RenderError, RenderSource};
use crate::repo_fs::{RepoFs, RepoPath};

/// The engine's version as verification records and pins know it: a pin holds until this
/// changes. Bump the suffix with every change to the engine's output (`render/kustomize/`).
pub const ENGINE_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+native.2");

/// The engine, with the helm its `helmCharts` are inflated with (none: they are "not checked").
#[derive(Default)]
pub struct NativeBackend {
    pub helm: Option<super::helm::HelmExec>,
}

impl Backend for NativeBackend {
    fn name(&self) -> &'static str {
        "native"
    }

    fn render(
        &self,
        fs: &dyn RepoFs,
        source: &RenderSource,
        _inputs: &BTreeSet<RepoPath>,
    ) -> Result<String, RenderError> {
        let helm = self
            .helm
            .as_ref()
            .map(|h| h as &dyn kustomize::ChartRenderer);
        kustomize::build_with(fs, &source.path, helm)
            .map(|out| out.yaml)
            .map_err(|e| match e {
                KustomizeError::Unsupported { feature, file } => {
                    RenderError::Unsupported { feature, file }
                }
                KustomizeError::Invalid { file, message } => RenderError::Invalid { file, message },
                KustomizeError::Unavailable { tool, reason } => RenderError::Unavailable {
                    backend: tool,
                    reason,
                },
                KustomizeError::Fs(source) => RenderError::Input {
                    file: source_file(&source),
                    source,
                },
            })
    }
}

fn source_file(e: &crate::repo_fs::FsError) -> String {
    use crate::repo_fs::FsError::*;
    match e {
        Escape(p) | Remote(p) | NotFound(p) | NotADirectory(p) => p.clone(),
        SymlinkEscape { path, .. }
        | TooLarge { path, .. }
        | Io { path, .. }
        | Backend { path, .. } => path.clone(),
    }
}
