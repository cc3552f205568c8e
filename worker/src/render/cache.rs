//! Render cache keyed by what a render depends on: the backend choice, the source description
//! (path, type, Application options) and the path and SHA-256 of every input file. Two commits that
//! agree on those share the entry, so base renders are shared across pull requests.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::{BackendChoice, RenderSource};
use crate::repo_fs::RepoPath;

/// Bumped whenever the rendering of a given input set could change (backend behaviour, format).
const KEY_VERSION: &str = "capstan-render-v1";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub yaml: String,
    pub backend: String,
    pub notes: Vec<String>,
}

/// In memory, plus an optional folder of `<key>.json` files shared between runs.
pub struct RenderCache {
    mem: Mutex<HashMap<String, Entry>>,
    dir: Option<PathBuf>,
}

/// `engine_version` is part of the key so that an engine upgrade renders everything afresh (and
/// so gets each kustomization verified again, see [`super::verify`]); `repo` because pins are per
/// repository, and a render made under one repository's pin is not another's.
pub fn key(
    backend: BackendChoice,
    source: &RenderSource,
    inputs: &BTreeMap<RepoPath, String>,
    engine_version: &str,
    repo: &str,
) -> String {
    let mut h = sha2::Sha256::new();
    h.update(KEY_VERSION);
    h.update([0]);
    h.update(engine_version);
    h.update([0]);
    h.update(repo);
    h.update([0]);
    h.update(serde_json::to_vec(&backend).unwrap_or_default());
    h.update([0]);
    h.update(serde_json::to_vec(source).unwrap_or_default());
    for (path, digest) in inputs {
        h.update([0]);
        h.update(path.as_str());
        h.update([0]);
        h.update(digest);
    }
    hex::encode(h.finalize())
}

impl RenderCache {
    pub fn new(dir: Option<PathBuf>) -> Self {
        RenderCache {
            mem: Mutex::new(HashMap::new()),
            dir,
        }
    }

    pub fn get(&self, key: &str) -> Option<Entry> {
        let mut mem = self.mem.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = mem.get(key) {
            return Some(e.clone());
        }
        let dir = self.dir.as_ref()?;
        let bytes = std::fs::read(dir.join(format!("{key}.json"))).ok()?;
        // A corrupt or foreign file is a miss, never an error: the render simply runs again.
        let entry: Entry = serde_json::from_slice(&bytes).ok()?;
        mem.insert(key.to_string(), entry.clone());
        Some(entry)
    }

    pub fn put(&self, key: &str, entry: Entry) {
        if let Some(dir) = &self.dir {
            // Write then rename, so a concurrent reader never sees half a file.
            let tmp = dir.join(format!(".{key}.{}.tmp", std::process::id()));
            let ok = std::fs::create_dir_all(dir).is_ok()
                && serde_json::to_vec(&entry)
                    .ok()
                    .is_some_and(|b| std::fs::write(&tmp, b).is_ok())
                && std::fs::rename(&tmp, dir.join(format!("{key}.json"))).is_ok();
            if !ok {
                tracing::warn!(dir = %dir.display(), "render cache entry not written");
                let _ = std::fs::remove_file(&tmp);
            }
        }
        self.mem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), entry);
    }
}
