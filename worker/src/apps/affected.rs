//! Which apps a change affects: exactly the apps with a changed input file (by content), the apps
//! whose Application changed, and the apps added or removed. No path-prefix guessing.

use std::collections::BTreeSet;

use serde::Serialize;

use super::pipeline::{Snapshot, manifest_changed};
use crate::repo_fs::RepoPath;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ChangeReason {
    Added,
    Removed,
    /// The Application object itself changed (source, destination, options, ...).
    ManifestChanged,
    /// These input files were added, removed or changed.
    InputsChanged {
        files: Vec<RepoPath>,
    },
    /// The input graph could not be computed on one side; the app is re-rendered to show why.
    InputsUnknown {
        error: String,
    },
}

impl std::fmt::Display for ChangeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeReason::Added => f.write_str("Application added"),
            ChangeReason::Removed => f.write_str("Application removed"),
            ChangeReason::ManifestChanged => f.write_str("Application changed"),
            ChangeReason::InputsChanged { files } => {
                let names: Vec<&str> = files.iter().map(RepoPath::as_str).collect();
                write!(f, "inputs changed: {}", names.join(", "))
            }
            ChangeReason::InputsUnknown { error } => write!(f, "input graph unknown: {error}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AffectedApp {
    pub name: String,
    pub reasons: Vec<ChangeReason>,
}

/// Apps that differ between `base` and `head`, by name.
pub fn affected_apps(base: &Snapshot<'_>, head: &Snapshot<'_>) -> Vec<AffectedApp> {
    let names: BTreeSet<&str> = base
        .discovery
        .apps
        .iter()
        .chain(head.discovery.apps.iter())
        .map(|a| a.name.as_str())
        .collect();
    let mut out = Vec::new();
    for name in names {
        let mut reasons = Vec::new();
        match (base.app(name), head.app(name)) {
            (None, Some(_)) => reasons.push(ChangeReason::Added),
            (Some(_), None) => reasons.push(ChangeReason::Removed),
            (Some(b), Some(h)) => {
                if manifest_changed(b, h) {
                    reasons.push(ChangeReason::ManifestChanged);
                }
                match (base.inputs.get(name), head.inputs.get(name)) {
                    (Some(Ok(bi)), Some(Ok(hi))) => {
                        let files: Vec<RepoPath> = bi
                            .keys()
                            .chain(hi.keys())
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                            .filter(|f| bi.get(*f) != hi.get(*f))
                            .cloned()
                            .collect();
                        if !files.is_empty() {
                            reasons.push(ChangeReason::InputsChanged { files });
                        }
                    }
                    // The same failure on both sides is not a change.
                    (Some(Err(be)), Some(Err(he))) if be == he => {}
                    (Some(Err(e)), _) | (_, Some(Err(e))) => {
                        reasons.push(ChangeReason::InputsUnknown { error: e.clone() })
                    }
                    _ => {}
                }
            }
            (None, None) => {}
        }
        if !reasons.is_empty() {
            out.push(AffectedApp {
                name: name.to_string(),
                reasons,
            });
        }
    }
    out
}
