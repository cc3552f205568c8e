//! The exact set of repository files a render reads: the input graph behind affected-app
//! detection, the render cache key and what the exec backends get to see.
//!
//! The kustomization walker follows every field through which kustomize reads a file. Anything
//! remote is refused here, before any tool runs; anything the walker cannot account for exactly is
//! an error rather than a guess, because a missing input would make affected-app detection
//! silently wrong.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::RenderError;
use crate::repo_fs::{EntryKind, FsError, RepoFs, RepoPath, looks_remote};
use crate::yaml;

/// File names kustomize recognises, in the order it tries them.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Deep kustomization chains are a sign of a cycle the visited set missed or of abuse.
const MAX_DEPTH: usize = 64;

/// The kustomization file of `dir`, if it has one.
pub fn kustomization_file(fs: &dyn RepoFs, dir: &RepoPath) -> Result<Option<RepoPath>, FsError> {
    for name in KUSTOMIZATION_FILES {
        let p = dir.join(name)?;
        if fs.kind(&p)? == Some(EntryKind::File) {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// kustomize refuses a folder holding more than one kustomization file; so does the walker, since
/// the scratch copy would otherwise hide the conflict from the binary.
fn single_kustomization(fs: &dyn RepoFs, dir: &RepoPath) -> Result<Option<RepoPath>, RenderError> {
    let mut found = Vec::new();
    for name in KUSTOMIZATION_FILES {
        let p = dir.join(name).map_err(fs_err(dir))?;
        if fs.kind(&p).map_err(fs_err(dir))? == Some(EntryKind::File) {
            found.push(name);
        }
    }
    if found.len() > 1 {
        return Err(RenderError::Invalid {
            file: dir.to_string(),
            message: format!("found multiple kustomization files: {}", found.join(", ")),
        });
    }
    Ok(found.first().and_then(|n| dir.join(n).ok()))
}

/// Files read by `kustomize build dir`.
pub fn kustomize_inputs(
    fs: &dyn RepoFs,
    dir: &RepoPath,
) -> Result<BTreeSet<RepoPath>, RenderError> {
    let mut w = Walker {
        fs,
        files: BTreeSet::new(),
        visited: BTreeSet::new(),
    };
    w.kustomization(dir, 0)?;
    Ok(w.files)
}

struct Walker<'a> {
    fs: &'a dyn RepoFs,
    files: BTreeSet<RepoPath>,
    visited: BTreeSet<RepoPath>,
}

fn fs_err(file: &RepoPath) -> impl FnOnce(FsError) -> RenderError + '_ {
    move |source| RenderError::Input {
        file: file.to_string(),
        source,
    }
}

impl Walker<'_> {
    fn kustomization(&mut self, dir: &RepoPath, depth: usize) -> Result<(), RenderError> {
        if !self.visited.insert(dir.clone()) {
            return Ok(());
        }
        if depth > MAX_DEPTH {
            return Err(RenderError::Invalid {
                file: dir.to_string(),
                message: format!("kustomizations nested deeper than {MAX_DEPTH} levels"),
            });
        }
        let file = single_kustomization(self.fs, dir)?.ok_or_else(|| RenderError::Invalid {
            file: dir.to_string(),
            message: "no kustomization.yaml, kustomization.yml or Kustomization in this directory"
                .into(),
        })?;
        let text = self.fs.read_to_string(&file).map_err(fs_err(&file))?;
        self.files.insert(file.clone());
        let k = yaml::parse_single(&text, file.as_str())?;
        let k = match k {
            Value::Null => return Ok(()),
            Value::Object(m) => m,
            _ => {
                return Err(RenderError::Invalid {
                    file: file.to_string(),
                    message: "a kustomization must be a mapping".into(),
                });
            }
        };
        let list = |key: &str| -> Vec<Value> {
            match k.get(key) {
                Some(Value::Array(a)) => a.clone(),
                Some(Value::Null) | None => Vec::new(),
                Some(other) => vec![other.clone()],
            }
        };

        for key in ["resources", "bases", "components"] {
            for entry in list(key) {
                let s = self.string(&entry, &file, key)?;
                self.resource(dir, &file, s, depth)?;
            }
        }
        for key in ["crds", "configurations"] {
            for entry in list(key) {
                let s = self.string(&entry, &file, key)?;
                self.file(dir, &file, s, true)?;
            }
        }
        for entry in list("patches")
            .into_iter()
            .chain(list("patchesJson6902"))
            .chain(list("replacements"))
        {
            if let Some(path) = entry.get("path").and_then(Value::as_str) {
                self.file(dir, &file, path, true)?;
            }
        }
        for entry in list("patchesStrategicMerge") {
            let s = self.string(&entry, &file, "patchesStrategicMerge")?;
            // kustomize accepts inline patches here too; a one-line entry is a path.
            if !s.contains('\n') {
                self.file(dir, &file, s, true)?;
            }
        }
        for key in ["configMapGenerator", "secretGenerator"] {
            for gen_entry in list(key) {
                let files = match gen_entry.get("files") {
                    Some(Value::Array(a)) => a.clone(),
                    _ => Vec::new(),
                };
                for f in files {
                    let s = self.string(&f, &file, key)?;
                    // `key=path` names the data key; the path follows the first `=`.
                    let path = s.split_once('=').map(|(_, p)| p).unwrap_or(s);
                    self.file(dir, &file, path, false)?;
                }
                let mut envs: Vec<Value> = match gen_entry.get("envs") {
                    Some(Value::Array(a)) => a.clone(),
                    _ => Vec::new(),
                };
                if let Some(env) = gen_entry.get("env") {
                    envs.push(env.clone());
                }
                for e in envs {
                    let s = self.string(&e, &file, key)?;
                    self.file(dir, &file, s, false)?;
                }
            }
        }
        for key in ["generators", "transformers", "validators"] {
            for entry in list(key) {
                match entry {
                    Value::String(s) if !s.contains('\n') => {
                        self.resource(dir, &file, &s, depth)?
                    }
                    // Inline plugin configs: kustomize without plugins enabled only runs the
                    // built-in ones, which read nothing beyond what is inline.
                    _ => {}
                }
            }
        }
        if let Some(openapi) = k
            .get("openapi")
            .and_then(|o| o.get("path"))
            .and_then(Value::as_str)
        {
            self.file(dir, &file, openapi, true)?;
        }
        self.helm_charts(dir, &file, &Value::Object(k.clone()))?;
        Ok(())
    }

    /// `helmCharts`: a chart in the repository brings every file of its folder (helm reads
    /// them all); named values files are inputs like any file. A chart from a repository brings
    /// nothing from this repository (the chart fetcher keys it by version and digest).
    fn helm_charts(
        &mut self,
        dir: &RepoPath,
        file: &RepoPath,
        k: &Value,
    ) -> Result<(), RenderError> {
        let invalid = |e: super::kustomize::KustomizeError| RenderError::Invalid {
            file: file.to_string(),
            message: e.to_string(),
        };
        let (globals, charts) =
            super::kustomize::helm_charts::entries(k, file.as_str()).map_err(invalid)?;
        for c in &charts {
            if let Some(chart) = c
                .local_chart(self.fs, &globals, dir, file.as_str())
                .map_err(invalid)?
            {
                for f in tree_files(self.fs, &chart)? {
                    self.add(file, f, false)?;
                }
            }
            for vf in c.named_values_files() {
                self.file(dir, file, vf, true)?;
            }
        }
        Ok(())
    }

    fn string<'v>(&self, v: &'v Value, file: &RepoPath, key: &str) -> Result<&'v str, RenderError> {
        v.as_str().ok_or_else(|| RenderError::Invalid {
            file: file.to_string(),
            message: format!("{key}: expected a string entry, found {v}"),
        })
    }

    fn join(&self, dir: &RepoPath, file: &RepoPath, rel: &str) -> Result<RepoPath, RenderError> {
        if looks_remote(rel) {
            return Err(RenderError::Input {
                file: file.to_string(),
                source: FsError::Remote(rel.to_string()),
            });
        }
        dir.join(rel).map_err(fs_err(file))
    }

    /// A `resources`-style entry: a file, or a directory holding a kustomization.
    fn resource(
        &mut self,
        dir: &RepoPath,
        file: &RepoPath,
        rel: &str,
        depth: usize,
    ) -> Result<(), RenderError> {
        let target = self.join(dir, file, rel)?;
        match self.fs.kind(&target).map_err(fs_err(file))? {
            Some(EntryKind::Dir) => self.kustomization(&target, depth + 1),
            Some(EntryKind::File) => self.add(file, target, true),
            None => Err(RenderError::Input {
                file: file.to_string(),
                source: FsError::NotFound(target.to_string()),
            }),
        }
    }

    fn file(
        &mut self,
        dir: &RepoPath,
        file: &RepoPath,
        rel: &str,
        yaml: bool,
    ) -> Result<(), RenderError> {
        let target = self.join(dir, file, rel)?;
        match self.fs.kind(&target).map_err(fs_err(file))? {
            Some(EntryKind::File) => self.add(file, target, yaml),
            Some(EntryKind::Dir) => Err(RenderError::Invalid {
                file: file.to_string(),
                message: format!("{target} is a directory, expected a file"),
            }),
            None => Err(RenderError::Input {
                file: file.to_string(),
                source: FsError::NotFound(target.to_string()),
            }),
        }
    }

    /// Records an input. Reading here applies the sandbox (size cap, symlink containment) to every
    /// input before any backend sees it, with errors pointing at the kustomization that asked.
    /// Files kustomize parses as YAML go through the safe parser first, so alias bombs, excessive
    /// nesting and duplicate keys are refused with file and line before any tool runs.
    fn add(&mut self, from: &RepoPath, target: RepoPath, yaml: bool) -> Result<(), RenderError> {
        let bytes = self.fs.read(&target).map_err(fs_err(from))?;
        if yaml && !self.files.contains(&target) {
            let text = std::str::from_utf8(&bytes).map_err(|_| RenderError::Invalid {
                file: target.to_string(),
                message: "not UTF-8".into(),
            })?;
            yaml::parse_documents(text, target.as_str())?;
        }
        self.files.insert(target);
        Ok(())
    }
}

/// Files under `dir` (recursively), regular files only, in path order.
pub fn tree_files(fs: &dyn RepoFs, dir: &RepoPath) -> Result<Vec<RepoPath>, RenderError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for (name, kind) in fs.list_dir(&d).map_err(fs_err(&d))? {
            let child = d.join(&name).map_err(fs_err(&d))?;
            match kind {
                EntryKind::Dir => stack.push(child),
                EntryKind::File => out.push(child),
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Content fingerprint of a set of files: path and SHA-256 of each, in path order.
pub fn fingerprint(
    fs: &dyn RepoFs,
    files: &BTreeSet<RepoPath>,
) -> Result<BTreeMap<RepoPath, String>, RenderError> {
    use sha2::Digest;
    let mut out = BTreeMap::new();
    for f in files {
        let bytes = fs.read(f).map_err(fs_err(f))?;
        out.insert(f.clone(), hex::encode(sha2::Sha256::digest(&bytes)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::repo_fs::MemFs;

    fn p(s: &str) -> RepoPath {
        RepoPath::new(s).unwrap()
    }

    #[test]
    fn inline_patches_and_generator_keys_are_understood() {
        let fs = MemFs::new()
            .with(
                "a/kustomization.yaml",
                "resources: [cm.yaml]\npatchesStrategicMerge:\n- |\n  apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n- smp.yaml\nconfigMapGenerator:\n- name: g\n  files: [key=data/f.txt]\n  env: e.env\n",
            )
            .with("a/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
            .with("a/smp.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
            .with("a/data/f.txt", "not: [yaml")
            .with("a/e.env", "A=1\n");
        let got: Vec<String> = kustomize_inputs(&fs, &p("a"))
            .unwrap()
            .into_iter()
            .map(|x| x.as_str().to_string())
            .collect();
        assert_eq!(
            got,
            vec![
                "a/cm.yaml",
                "a/data/f.txt",
                "a/e.env",
                "a/kustomization.yaml",
                "a/smp.yaml"
            ]
        );
    }

    #[test]
    fn two_kustomization_files_in_one_folder_are_refused() {
        let fs = MemFs::new()
            .with("a/kustomization.yaml", "resources: []\n")
            .with("a/Kustomization", "resources: []\n");
        let err = kustomize_inputs(&fs, &p("a")).unwrap_err().to_string();
        assert!(err.contains("multiple kustomization files"), "{err}");
    }

    #[test]
    fn cycles_terminate() {
        let fs = MemFs::new()
            .with("a/kustomization.yaml", "resources: [../b]\n")
            .with("b/kustomization.yaml", "resources: [../a]\n");
        let got = kustomize_inputs(&fs, &p("a")).unwrap();
        assert_eq!(got.len(), 2);
    }
}
