//! The `directory` backend: plain manifests, as ArgoCD's directory source reads them (`.yaml`,
//! `.yml` and `.json` files; optionally recursive; include/exclude globs on the path relative to
//! the source folder).

use std::collections::BTreeSet;

use globset::{GlobBuilder, GlobMatcher};
use serde_json::Value;

use super::inputs::tree_files;
use super::source::DirectoryOptions;
use super::{Backend, RenderError, RenderSource};
use crate::repo_fs::{EntryKind, RepoFs, RepoPath};
use crate::yaml;

pub struct DirectoryBackend;

/// A Jsonnet program or library, which this backend does not evaluate.
pub fn is_jsonnet(f: &RepoPath) -> bool {
    let name = f.file_name();
    name.ends_with(".jsonnet") || name.ends_with(".libsonnet")
}

fn glob(pattern: &str, dir: &RepoPath) -> Result<GlobMatcher, RenderError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| RenderError::Invalid {
            file: dir.to_string(),
            message: format!("directory include/exclude pattern {pattern:?}: {e}"),
        })
}

/// The manifest files a directory source reads.
pub fn inputs(
    fs: &dyn RepoFs,
    dir: &RepoPath,
    opts: &DirectoryOptions,
) -> Result<BTreeSet<RepoPath>, RenderError> {
    let candidates: Vec<RepoPath> = if opts.recurse {
        tree_files(fs, dir)?
    } else {
        fs.list_dir(dir)
            .map_err(|source| RenderError::Input {
                file: dir.to_string(),
                source,
            })?
            .into_iter()
            .filter(|(_, k)| *k == EntryKind::File)
            .filter_map(|(n, _)| dir.join(&n).ok())
            .collect()
    };
    let include = opts.include.as_deref().map(|p| glob(p, dir)).transpose()?;
    let exclude = opts.exclude.as_deref().map(|p| glob(p, dir)).transpose()?;
    let mut out = BTreeSet::new();
    for f in candidates {
        let name = f.file_name();
        // Jsonnet files are inputs too (ArgoCD evaluates them): a change to one must mark the app
        // affected, and the render refuses them by name instead of leaving them out silently.
        if !(name.ends_with(".yaml")
            || name.ends_with(".yml")
            || name.ends_with(".json")
            || is_jsonnet(&f))
        {
            continue;
        }
        let rel = if dir.is_root() {
            f.as_str()
        } else {
            &f.as_str()[dir.as_str().len() + 1..]
        };
        if include
            .as_ref()
            .is_some_and(|g| !g.is_match(rel) && !g.is_match(name))
        {
            continue;
        }
        if exclude
            .as_ref()
            .is_some_and(|g| g.is_match(rel) || g.is_match(name))
        {
            continue;
        }
        out.insert(f);
    }
    Ok(out)
}

impl Backend for DirectoryBackend {
    fn name(&self) -> &'static str {
        "directory"
    }

    fn render(
        &self,
        fs: &dyn RepoFs,
        _source: &RenderSource,
        inputs: &BTreeSet<RepoPath>,
    ) -> Result<String, RenderError> {
        let mut out = String::new();
        for f in inputs {
            let text = fs.read_to_string(f).map_err(|source| RenderError::Input {
                file: f.to_string(),
                source,
            })?;
            for doc in yaml::parse_documents(&text, f.as_str())? {
                // `kind: List` is unwrapped, as kubectl and ArgoCD do.
                let items = match (doc.get("kind").and_then(Value::as_str), doc.get("items")) {
                    (Some("List"), Some(Value::Array(items))) => items.clone(),
                    _ => vec![doc],
                };
                for item in items {
                    let text = yaml_serde::to_string(&item).map_err(|e| RenderError::Invalid {
                        file: f.to_string(),
                        message: e.to_string(),
                    })?;
                    if !out.is_empty() {
                        out.push_str("---\n");
                    }
                    out.push_str(&text);
                }
            }
        }
        Ok(out)
    }
}
