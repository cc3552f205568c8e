//! Native kustomize engine: kustomize v5 output, byte for byte, in process.
//!
//! Contract used by the render layer (keep this signature; add options through new functions):
//! [`build`] reads only through [`RepoFs`], returns the exact text `kustomize build` prints and the
//! set of repository files it read, and reports anything it does not implement as
//! [`KustomizeError::Unsupported`] so the caller can fall back to the kustomize binary.
//!
//! The build follows kustomize's `accumulateTarget`: resources (files, directories with their own
//! kustomization), generators, components, then the built-in transformers in kustomize's fixed
//! order; at the top level the content hashes are appended to generated names, name references
//! are fixed, and the result is sorted and printed.

mod config;
mod emit;
mod fieldpath;
mod fold_quirk;
mod generators;
pub mod helm_charts;
mod images;
mod labels;
mod loader;
mod merge_keys;
mod nameref;
mod namespace;
mod order;
mod patch_json6902;
mod patch_smp;
mod patches;
mod plugins;
mod prefix_suffix;
mod replacements;
mod replicas;
mod resource;
mod selector;
mod vars;
mod yaml_load;

use std::collections::BTreeSet;

use crate::repo_fs::{FsError, RepoFs, RepoPath};

pub use emit::to_yaml;
pub use helm_charts::{ChartLocation, ChartRenderer, TemplateRequest};

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
    /// A tool the build needs (helm, for `helmCharts`) is missing, or a chart cannot be had
    /// (not allowed, not cached): the app is "not checked", never rendered without it.
    #[error("not rendered: {tool} unavailable ({reason})")]
    Unavailable { tool: String, reason: String },
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl KustomizeError {
    pub(crate) fn invalid(file: impl ToString, message: impl ToString) -> Self {
        KustomizeError::Invalid {
            file: file.to_string(),
            message: message.to_string(),
        }
    }
    pub(crate) fn unsupported(feature: impl ToString, file: impl ToString) -> Self {
        KustomizeError::Unsupported {
            feature: feature.to_string(),
            file: file.to_string(),
        }
    }
}

/// Builds the kustomization in `dir`. Without a helm, `helmCharts` are
/// [`KustomizeError::Unavailable`]; see [`build_with`].
pub fn build(fs: &dyn RepoFs, dir: &RepoPath) -> Result<BuildOutput, KustomizeError> {
    build_with(fs, dir, None)
}

/// Like [`build`], inflating `helmCharts` with `helm` (kustomize's `--enable-helm`).
pub fn build_with(
    fs: &dyn RepoFs,
    dir: &RepoPath,
    helm: Option<&dyn ChartRenderer>,
) -> Result<BuildOutput, KustomizeError> {
    let mut ld = loader::Loader::new(fs);
    ld.helm = helm;
    let out = ld.build_root(dir)?;
    let mut yaml = String::new();
    for (i, r) in out.iter().enumerate() {
        if i > 0 {
            yaml.push_str("---\n");
        }
        yaml.push_str(&emit::to_yaml(&r.v));
    }
    Ok(BuildOutput {
        yaml,
        inputs: ld.inputs,
    })
}
