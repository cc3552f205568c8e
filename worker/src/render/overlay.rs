//! Application-level kustomize options (`spec.source.kustomize`), applied the way ArgoCD does it:
//! as `kustomize edit set/add ...` on the app's kustomization before the build. Here the edit goes
//! into an in-memory overlay of the repository, so every backend sees the same edited file and
//! nothing on disk changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::RenderError;
use super::inputs::kustomization_file;
use super::source::KustomizeOptions;
use crate::repo_fs::{EntryKind, FsError, RepoFs, RepoPath};
use crate::yaml;

/// A repository view with some files replaced.
pub struct OverlayFs<'a> {
    inner: &'a dyn RepoFs,
    files: BTreeMap<RepoPath, Arc<[u8]>>,
}

impl<'a> OverlayFs<'a> {
    pub fn new(inner: &'a dyn RepoFs) -> Self {
        OverlayFs {
            inner,
            files: BTreeMap::new(),
        }
    }
}

impl RepoFs for OverlayFs<'_> {
    fn kind(&self, path: &RepoPath) -> Result<Option<EntryKind>, FsError> {
        if self.files.contains_key(path) {
            return Ok(Some(EntryKind::File));
        }
        self.inner.kind(path)
    }

    fn read(&self, path: &RepoPath) -> Result<Arc<[u8]>, FsError> {
        match self.files.get(path) {
            Some(b) => Ok(b.clone()),
            None => self.inner.read(path),
        }
    }

    fn list_dir(&self, path: &RepoPath) -> Result<Vec<(String, EntryKind)>, FsError> {
        // Overrides only replace files that already exist, so listings are unchanged.
        self.inner.list_dir(path)
    }
}

/// An overlay of `fs` where the kustomization in `dir` carries the Application's options.
pub fn with_kustomize_options<'a>(
    fs: &'a dyn RepoFs,
    dir: &RepoPath,
    opts: &KustomizeOptions,
) -> Result<OverlayFs<'a>, RenderError> {
    let mut overlay = OverlayFs::new(fs);
    if opts.is_empty() {
        return Ok(overlay);
    }
    let file = kustomization_file(fs, dir)
        .map_err(|source| RenderError::Input {
            file: dir.to_string(),
            source,
        })?
        .ok_or_else(|| RenderError::Invalid {
            file: dir.to_string(),
            message:
                "the Application sets kustomize options but the directory has no kustomization"
                    .into(),
        })?;
    let text = fs
        .read_to_string(&file)
        .map_err(|source| RenderError::Input {
            file: file.to_string(),
            source,
        })?;
    let mut k = match yaml::parse_single(&text, file.as_str())? {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        _ => {
            return Err(RenderError::Invalid {
                file: file.to_string(),
                message: "a kustomization must be a mapping".into(),
            });
        }
    };
    apply(&mut k, opts);
    let edited = yaml_serde::to_string(&Value::Object(k)).map_err(|e| RenderError::Invalid {
        file: file.to_string(),
        message: format!("re-serialising with Application options: {e}"),
    })?;
    overlay.files.insert(file, Arc::from(edited.into_bytes()));
    Ok(overlay)
}

fn apply(k: &mut Map<String, Value>, o: &KustomizeOptions) {
    if let Some(p) = &o.name_prefix {
        k.insert("namePrefix".into(), Value::String(p.clone()));
    }
    if let Some(s) = &o.name_suffix {
        k.insert("nameSuffix".into(), Value::String(s.clone()));
    }
    if let Some(ns) = &o.namespace {
        k.insert("namespace".into(), Value::String(ns.clone()));
    }
    merge_map(k, "commonLabels", &o.common_labels);
    merge_map(k, "commonAnnotations", &o.common_annotations);
    for arg in &o.images {
        merge_named(k, "images", image_entry(arg));
    }
    for r in &o.replicas {
        merge_named(k, "replicas", r.clone());
    }
    append(
        k,
        "components",
        o.components.iter().cloned().map(Value::String),
    );
    append(k, "patches", o.patches.iter().cloned());
}

fn merge_map(k: &mut Map<String, Value>, key: &str, add: &indexmap::IndexMap<String, String>) {
    if add.is_empty() {
        return;
    }
    let entry = k
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(m) = entry {
        for (name, value) in add {
            m.insert(name.clone(), Value::String(value.clone()));
        }
    }
}

fn list_mut<'m>(k: &'m mut Map<String, Value>, key: &str) -> &'m mut Vec<Value> {
    let entry = k
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !entry.is_array() {
        *entry = Value::Array(Vec::new());
    }
    match entry {
        Value::Array(a) => a,
        // Just made an array above.
        _ => unreachable!("entry is an array"),
    }
}

fn merge_named(k: &mut Map<String, Value>, key: &str, item: Value) {
    let list = list_mut(k, key);
    let name = item.get("name").cloned();
    match list.iter_mut().find(|e| e.get("name") == name.as_ref()) {
        Some(existing) => {
            if let (Value::Object(dst), Value::Object(src)) = (existing, item) {
                for (f, v) in src {
                    dst.insert(f, v);
                }
            }
        }
        None => list.push(item),
    }
}

fn append(k: &mut Map<String, Value>, key: &str, items: impl Iterator<Item = Value>) {
    let items: Vec<Value> = items.collect();
    if !items.is_empty() {
        list_mut(k, key).extend(items);
    }
}

/// Splits an image reference into name, tag and digest (the tag is after the last `:` that follows
/// the last `/`, so registry ports are kept in the name).
fn split_image(s: &str) -> (&str, Option<&str>, Option<&str>) {
    if let Some((n, d)) = s.split_once('@') {
        return (n, None, Some(d));
    }
    let slash = s.rfind('/').map(|i| i + 1).unwrap_or(0);
    match s[slash..].rfind(':') {
        Some(i) => (&s[..slash + i], Some(&s[slash + i + 1..]), None),
        None => (s, None, None),
    }
}

/// The `images:` entry `kustomize edit set image ARG` writes.
pub fn image_entry(arg: &str) -> Value {
    let (name, spec) = match arg.split_once('=') {
        Some((n, v)) => (n, v),
        None => (split_image(arg).0, arg),
    };
    let (new_name, tag, digest) = split_image(spec);
    let mut m = Map::new();
    m.insert("name".into(), Value::String(name.to_string()));
    if !new_name.is_empty() && new_name != name {
        m.insert("newName".into(), Value::String(new_name.to_string()));
    }
    if let Some(t) = tag {
        m.insert("newTag".into(), Value::String(t.to_string()));
    }
    if let Some(d) = digest {
        m.insert("digest".into(), Value::String(d.to_string()));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn image_arguments_follow_kustomize_edit() {
        assert_eq!(
            image_entry("nginx=registry:5000/nginx:1.27"),
            json!({"name": "nginx", "newName": "registry:5000/nginx", "newTag": "1.27"})
        );
        assert_eq!(
            image_entry("ghcr.io/org/app:v2"),
            json!({"name": "ghcr.io/org/app", "newTag": "v2"})
        );
        assert_eq!(
            image_entry("app@sha256:abc"),
            json!({"name": "app", "digest": "sha256:abc"})
        );
    }

    #[test]
    fn options_edit_the_kustomization_in_memory_only() {
        let fs = crate::repo_fs::MemFs::new().with(
            "app/kustomization.yaml",
            "resources: [d.yaml]\nimages:\n- name: web\n  newTag: '1'\n",
        );
        let opts = KustomizeOptions {
            name_prefix: Some("p-".into()),
            images: vec!["web:2".into(), "db:3".into()],
            ..Default::default()
        };
        let dir = RepoPath::new("app").unwrap();
        let ov = with_kustomize_options(&fs, &dir, &opts).unwrap();
        let file = RepoPath::new("app/kustomization.yaml").unwrap();
        let edited = yaml::parse_single(&ov.read_to_string(&file).unwrap(), "k").unwrap();
        assert_eq!(edited["namePrefix"], "p-");
        assert_eq!(
            edited["images"],
            json!([{"name": "web", "newTag": "2"}, {"name": "db", "newTag": "3"}])
        );
        assert!(fs.read_to_string(&file).unwrap().starts_with("resources"));
    }
}
