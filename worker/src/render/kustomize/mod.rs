//! Native kustomize engine: kustomize v5.5 output, byte for byte, in process.
//!
//! Contract used by the render layer (keep this signature; add options through new functions):
//! [`build`] reads only through [`RepoFs`], returns the exact text `kustomize build` prints and the
//! set of repository files it read, and reports anything it does not implement as
//! [`KustomizeError::Unsupported`] so the caller can fall back to the kustomize binary.

use std::collections::BTreeSet;

use crate::repo_fs::{FsError, RepoFs, RepoPath};

/// The result of one build.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    /// Multi-document YAML exactly as `kustomize build` prints it.
    pub yaml: String,
    /// Every repository file the build read (kustomization files, resources, patches, generator
    /// sources, ...): the app's input set for affected-app detection and cache keys.
    pub inputs: BTreeSet<RepoPath>,
}

#[derive(Debug, thiserror::Error)]
pub enum KustomizeError {
    /// A construct the engine does not implement; the caller may fall back to the binary.
    #[error("unsupported kustomize feature: {feature} at {file}")]
    Unsupported { feature: String, file: String },
    /// The input is wrong in a way kustomize itself would also reject.
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// Builds the kustomization in `dir`.
pub fn build(_fs: &dyn RepoFs, dir: &RepoPath) -> Result<BuildOutput, KustomizeError> {
    Err(KustomizeError::Unsupported {
        feature: "native engine not built yet".into(),
        file: dir.to_string(),
    })
}
