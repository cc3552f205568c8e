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

impl Entry {
    /// What the entry costs to hold in memory, roughly: its text.
    fn weight(&self) -> usize {
        self.yaml.len()
            + self.backend.len()
            + self.notes.iter().map(String::len).sum::<usize>()
            + std::mem::size_of::<Entry>()
    }
}

/// How much the in-memory cache may hold; the least recently used entries go first. Any PR
/// author can make renders (and so entries) of any size, so an unbounded cache is a way to
/// exhaust the worker's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    pub max_entries: usize,
    pub max_bytes: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_entries: 2_000,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The in-memory entries with their last use, for least-recently-used eviction.
#[derive(Default)]
struct Lru {
    entries: HashMap<String, (Entry, u64)>,
    bytes: usize,
    clock: u64,
}

impl Lru {
    fn get(&mut self, key: &str) -> Option<Entry> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(key).map(|(e, used)| {
            *used = clock;
            e.clone()
        })
    }

    fn insert(&mut self, key: &str, entry: Entry, limits: CacheLimits) {
        let weight = entry.weight();
        if let Some((old, _)) = self.entries.remove(key) {
            self.bytes -= old.weight();
        }
        // An entry larger than the whole budget is never kept (the disk copy, if any, stays).
        if weight > limits.max_bytes || limits.max_entries == 0 {
            return;
        }
        while !self.entries.is_empty()
            && (self.entries.len() + 1 > limits.max_entries
                || self.bytes + weight > limits.max_bytes)
        {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((e, _)) = self.entries.remove(&oldest) {
                self.bytes -= e.weight();
            }
        }
        self.clock += 1;
        self.bytes += weight;
        self.entries.insert(key.to_string(), (entry, self.clock));
    }
}

/// In memory (bounded by [`CacheLimits`]), plus an optional folder of `<key>.json` files shared
/// between runs.
pub struct RenderCache {
    mem: Mutex<Lru>,
    limits: CacheLimits,
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
    pub fn new(dir: Option<PathBuf>, limits: CacheLimits) -> Self {
        RenderCache {
            mem: Mutex::new(Lru::default()),
            limits,
            dir,
        }
    }

    pub fn get(&self, key: &str) -> Option<Entry> {
        let mut mem = self.mem.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = mem.get(key) {
            return Some(e);
        }
        let dir = self.dir.as_ref()?;
        let bytes = std::fs::read(dir.join(format!("{key}.json"))).ok()?;
        // A corrupt or foreign file is a miss, never an error: the render simply runs again.
        let entry: Entry = serde_json::from_slice(&bytes).ok()?;
        mem.insert(key, entry.clone(), self.limits);
        Some(entry)
    }

    /// Entries and bytes held in memory now.
    pub fn held(&self) -> (usize, usize) {
        let mem = self.mem.lock().unwrap_or_else(|p| p.into_inner());
        (mem.entries.len(), mem.bytes)
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
            .insert(key, entry, self.limits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bytes: usize) -> Entry {
        Entry {
            yaml: "x".repeat(bytes),
            backend: String::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn the_least_recently_used_entries_go_first_by_count_and_by_bytes() {
        let overhead = entry(0).weight();
        let cache = RenderCache::new(
            None,
            CacheLimits {
                max_entries: 3,
                max_bytes: 3 * (100 + overhead),
            },
        );
        for k in ["a", "b", "c"] {
            cache.put(k, entry(100));
        }
        assert!(cache.get("a").is_some(), "a is now the most recently used");
        cache.put("d", entry(100));
        assert!(cache.get("b").is_none(), "b was the least recently used");
        assert!(cache.get("a").is_some() && cache.get("c").is_some() && cache.get("d").is_some());
        assert_eq!(cache.held().0, 3);
        // One big entry pushes out as many as its size needs (here two of the three).
        cache.put("big", entry(200 + overhead));
        assert_eq!(cache.held().0, 2);
        assert!(cache.get("big").is_some() && cache.get("d").is_some());
        assert!(cache.held().1 <= 3 * (100 + overhead));
        // An entry over the whole budget is not kept at all.
        cache.put("huge", entry(10_000));
        assert!(cache.get("huge").is_none());
        assert!(cache.held().1 <= 3 * (100 + overhead));
    }

    #[test]
    fn hostile_volumes_stay_within_the_bounds() {
        let limits = CacheLimits {
            max_entries: 50,
            max_bytes: 64 * 1024,
        };
        let cache = RenderCache::new(None, limits);
        for i in 0..5_000 {
            cache.put(&format!("k{i}"), entry(i % 4_000));
            let (n, bytes) = cache.held();
            assert!(
                n <= limits.max_entries && bytes <= limits.max_bytes,
                "{i}: {n} {bytes}"
            );
        }
    }
}
