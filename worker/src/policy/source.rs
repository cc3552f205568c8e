//! Where `capstan check` gets apps and their rendered objects from.
//!
//! [`AppSource`] is the seam. [`KubectlKustomizeSource`] is a **temporary adapter** written while
//! the render layer (`render`, `apps`) is built in parallel: it finds the top-level kustomization
//! directories of the GitOps tree and runs `kubectl kustomize` on each. At merge the lead swaps it
//! for the render layer's app graph; nothing else in the policy engine depends on it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::Value;

use super::AppInput;
use super::trace::SourceFile;
use crate::objects::parse_stream;
use crate::repo_fs::{EntryKind, FsError, MAX_FILE_BYTES, RepoFs, RepoPath};

/// Gives the policy engine every app with its rendered objects.
pub trait AppSource {
    fn apps(&self) -> Result<Vec<AppInput>, SourceError>;
}

/// Why apps could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("kubectl kustomize {dir} failed: {message}")]
    Render { dir: String, message: String },
}

const KUSTOMIZATION_NAMES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Folders of the GitOps tree (DESIGN.md §7) searched when they exist.
pub const DEFAULT_TREE: &[&str] = &["bootstrap", "argocd", "infrastructure", "applications"];

/// Temporary adapter: every kustomization directory no other kustomization includes is an app,
/// rendered with `kubectl kustomize`.
pub struct KubectlKustomizeSource {
    pub root: PathBuf,
    /// Folders (relative to `root`) searched for kustomizations.
    pub tree: Vec<String>,
}

struct Kustomization {
    /// Repository-relative directory.
    dir: String,
    /// Directories this one includes (resources, bases, components).
    includes: Vec<String>,
    /// Files it names (resources, patches, generator sources).
    files: Vec<String>,
    file: String,
    component: bool,
}

impl KubectlKustomizeSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        KubectlKustomizeSource {
            root: root.into(),
            tree: DEFAULT_TREE.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn find(&self) -> Result<BTreeMap<String, Kustomization>, SourceError> {
        let mut out = BTreeMap::new();
        let mut stack: Vec<String> = self
            .tree
            .iter()
            .filter(|t| self.root.join(t).is_dir())
            .cloned()
            .collect();
        while let Some(dir) = stack.pop() {
            let abs = self.root.join(&dir);
            let entries = std::fs::read_dir(&abs).map_err(|source| SourceError::Io {
                path: dir.clone(),
                source,
            })?;
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let rel = format!("{dir}/{name}");
                // Symlinked folders are not followed: they could leave the repository.
                let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                if is_dir && !name.starts_with('.') {
                    stack.push(rel);
                } else if KUSTOMIZATION_NAMES.contains(&name.as_str()) {
                    let k = read_kustomization(&self.root, &dir, &rel)?;
                    out.insert(dir.clone(), k);
                }
            }
        }
        Ok(out)
    }
}

fn read_kustomization(root: &Path, dir: &str, file: &str) -> Result<Kustomization, SourceError> {
    let text = std::fs::read_to_string(root.join(file)).map_err(|source| SourceError::Io {
        path: file.to_string(),
        source,
    })?;
    let k = crate::yaml::parse_single(&text, file).map_err(|e| SourceError::Invalid {
        path: file.to_string(),
        message: e.to_string(),
    })?;
    let mut includes = Vec::new();
    let mut files = Vec::new();
    let mut add = |rel: &str| {
        if crate::repo_fs::looks_remote(rel) {
            return;
        }
        let Ok(p) = crate::repo_fs::RepoPath::new(dir).and_then(|d| d.join(rel)) else {
            return;
        };
        let p = p.as_str().to_string();
        if root.join(&p).is_dir() {
            includes.push(p);
        } else {
            files.push(p);
        }
    };
    for key in [
        "resources",
        "bases",
        "components",
        "patchesStrategicMerge",
        "crds",
    ] {
        for r in k.get(key).and_then(Value::as_array).into_iter().flatten() {
            if let Some(s) = r.as_str() {
                add(s);
            }
        }
    }
    for key in ["patches", "patchesJson6902"] {
        for p in k.get(key).and_then(Value::as_array).into_iter().flatten() {
            if let Some(s) = p.get("path").and_then(Value::as_str) {
                add(s);
            }
        }
    }
    for key in ["configMapGenerator", "secretGenerator"] {
        for g in k.get(key).and_then(Value::as_array).into_iter().flatten() {
            for f in g
                .get("files")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(s) = f.as_str() {
                    // `key=path` names the key explicitly.
                    add(s.rsplit_once('=').map(|(_, p)| p).unwrap_or(s));
                }
            }
            for f in g
                .get("envs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(s) = f.as_str() {
                    add(s);
                }
            }
        }
    }
    Ok(Kustomization {
        dir: dir.to_string(),
        includes,
        files,
        file: file.to_string(),
        component: k.get("kind").and_then(Value::as_str) == Some("Component"),
    })
}

/// What an ArgoCD Application says about the app at a path.
struct AppMeta {
    name: String,
    namespace: Option<String>,
    create_namespace: bool,
    cluster: Option<String>,
}

impl AppSource for KubectlKustomizeSource {
    fn apps(&self) -> Result<Vec<AppInput>, SourceError> {
        let all = self.find()?;
        let included: BTreeSet<&String> = all.values().flat_map(|k| &k.includes).collect();
        let roots: Vec<&Kustomization> = all
            .values()
            .filter(|k| !k.component && !included.contains(&k.dir))
            .collect();
        let mut apps = Vec::new();
        for k in roots {
            let out = Command::new("kubectl")
                .arg("kustomize")
                .arg(self.root.join(&k.dir))
                .output()
                .map_err(|e| SourceError::Render {
                    dir: k.dir.clone(),
                    message: e.to_string(),
                })?;
            if !out.status.success() {
                return Err(SourceError::Render {
                    dir: k.dir.clone(),
                    message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                });
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let objects =
                parse_stream(&text, &format!("kubectl kustomize {}", k.dir)).map_err(|e| {
                    SourceError::Render {
                        dir: k.dir.clone(),
                        message: e.to_string(),
                    }
                })?;
            let mut files = Vec::new();
            let mut seen = BTreeSet::new();
            collect_inputs(&self.root, &all, &k.dir, &mut seen, &mut files);
            apps.push(AppInput {
                name: k.dir.clone(),
                objects,
                files,
                ..Default::default()
            });
        }
        // Name apps after the ArgoCD Applications that deploy them, and take their destination.
        let mut by_path: BTreeMap<String, AppMeta> = BTreeMap::new();
        let mut generated: Vec<(String, Value)> = Vec::new();
        for app in &apps {
            for o in &app.objects {
                if o.id.group != "argoproj.io" {
                    continue;
                }
                match o.id.kind.as_str() {
                    "Application" => {
                        if let Some(spec) = o.value.get("spec") {
                            for p in source_paths(spec) {
                                by_path.insert(p, app_meta(&o.id.name, spec));
                            }
                        }
                    }
                    // Git directory generators: each matching folder is an app, named and placed by
                    // the template.
                    "ApplicationSet" => {
                        for g in o
                            .value
                            .pointer("/spec/generators")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            for d in g
                                .pointer("/git/directories")
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten()
                            {
                                let exclude =
                                    d.get("exclude").and_then(Value::as_bool) == Some(true);
                                if let (Some(p), false) =
                                    (d.get("path").and_then(Value::as_str), exclude)
                                    && let Some(t) = o.value.pointer("/spec/template")
                                {
                                    generated.push((p.to_string(), t.clone()));
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        let any_deployer = !by_path.is_empty() || !generated.is_empty();
        for app in &mut apps {
            let dir = app.name.clone();
            let meta = by_path.remove(&dir).or_else(|| {
                generated
                    .iter()
                    .find(|(pattern, _)| path_glob(pattern, &dir))
                    .and_then(|(_, t)| {
                        let rendered = render_template(t, &dir);
                        let name = rendered
                            .pointer("/metadata/name")
                            .and_then(Value::as_str)?
                            .to_string();
                        Some(app_meta(&name, rendered.get("spec")?))
                    })
            });
            match meta {
                Some(m) => {
                    app.name = format!("{} ({dir})", m.name);
                    app.destination_namespace = m.namespace;
                    app.creates_namespace = m.create_namespace;
                    app.cluster = m.cluster;
                }
                // An overlay no Application deploys (another cluster's, or unused) is checked on
                // its own and never conflicts with deployed apps. An app-of-apps root is applied
                // by hand at bootstrap, so it counts as deployed.
                None if any_deployer && !app.objects.iter().any(is_argocd_app) => {
                    app.name = format!("{dir} (not deployed by any Application)");
                    app.cluster = Some(format!("undeployed:{dir}"));
                }
                None => {}
            }
        }
        apps.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(apps)
    }
}

/// Runs git in `root`; the error is git's own message.
pub fn git(root: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .map_err(|e| format!("running git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

/// A read-only view of one commit through the git CLI. Temporary, like the kustomize adapter: the
/// git module's tree view replaces it at merge.
pub struct GitRefFs {
    root: PathBuf,
    commit: String,
}

impl GitRefFs {
    pub fn new(root: &Path, rev: &str) -> Result<Self, String> {
        let commit = git(
            root,
            &["rev-parse", "--verify", &format!("{rev}^{{commit}}")],
        )
        .map_err(|e| format!("unknown base ref {rev}: {e}"))?;
        Ok(GitRefFs {
            root: root.to_path_buf(),
            commit: String::from_utf8_lossy(&commit).trim().to_string(),
        })
    }

    fn spec(&self, path: &RepoPath) -> String {
        format!("{}:{}", self.commit, path.as_str())
    }

    fn backend(path: &RepoPath, e: String) -> FsError {
        FsError::Backend {
            path: path.to_string(),
            message: e,
        }
    }
}

impl RepoFs for GitRefFs {
    fn kind(&self, path: &RepoPath) -> Result<Option<EntryKind>, FsError> {
        if path.is_root() {
            return Ok(Some(EntryKind::Dir));
        }
        match git(&self.root, &["cat-file", "-t", &self.spec(path)]) {
            Ok(t) => Ok(match String::from_utf8_lossy(&t).trim() {
                "tree" => Some(EntryKind::Dir),
                "blob" => Some(EntryKind::File),
                _ => None,
            }),
            Err(_) => Ok(None),
        }
    }

    fn read(&self, path: &RepoPath) -> Result<Arc<[u8]>, FsError> {
        let size = git(&self.root, &["cat-file", "-s", &self.spec(path)])
            .map_err(|_| FsError::NotFound(path.to_string()))?;
        let size: u64 = String::from_utf8_lossy(&size)
            .trim()
            .parse()
            .unwrap_or(u64::MAX);
        if size > MAX_FILE_BYTES {
            return Err(FsError::TooLarge {
                path: path.to_string(),
                size,
                limit: MAX_FILE_BYTES,
            });
        }
        let bytes = git(&self.root, &["cat-file", "blob", &self.spec(path)])
            .map_err(|e| Self::backend(path, e))?;
        Ok(Arc::from(bytes))
    }

    fn list_dir(&self, path: &RepoPath) -> Result<Vec<(String, EntryKind)>, FsError> {
        let spec = if path.is_root() {
            self.commit.clone()
        } else {
            self.spec(path)
        };
        let out = git(&self.root, &["ls-tree", &spec]).map_err(|e| Self::backend(path, e))?;
        let mut entries = Vec::new();
        for line in String::from_utf8_lossy(&out).lines() {
            let Some((meta, name)) = line.split_once('\t') else {
                continue;
            };
            // Symlinks (mode 120000) and submodules are not followed.
            let kind = match meta.split_whitespace().nth(1) {
                Some("tree") => EntryKind::Dir,
                Some("blob") if !meta.starts_with("120000") => EntryKind::File,
                _ => continue,
            };
            entries.push((name.to_string(), kind));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }
}

fn is_argocd_app(o: &crate::objects::K8sObject) -> bool {
    o.id.group == "argoproj.io" && (o.id.kind == "Application" || o.id.kind == "ApplicationSet")
}

fn source_paths(spec: &Value) -> Vec<String> {
    spec.get("source")
        .into_iter()
        .chain(
            spec.get("sources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .filter_map(|s| s.get("path").and_then(Value::as_str))
        .map(|p| p.trim_matches('/').to_string())
        .collect()
}

fn app_meta(name: &str, spec: &Value) -> AppMeta {
    let dest = spec.get("destination");
    AppMeta {
        name: name.to_string(),
        namespace: dest
            .and_then(|d| d.get("namespace"))
            .and_then(Value::as_str)
            .map(String::from),
        create_namespace: spec
            .pointer("/syncPolicy/syncOptions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|x| x.as_str().map(|s| s.replace(' ', "")) == Some("CreateNamespace=true".into())),
        cluster: dest
            .and_then(|d| d.get("server").or_else(|| d.get("name")))
            .and_then(Value::as_str)
            .filter(|s| *s != "https://kubernetes.default.svc" && *s != "in-cluster")
            .map(String::from),
    }
}

/// ArgoCD's directory patterns: `*` matches within one path segment.
fn path_glob(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    p.len() == s.len()
        && p.iter().zip(&s).all(|(p, s)| {
            let parts: Vec<&str> = p.split('*').collect();
            match parts.as_slice() {
                [only] => only == s,
                [first, .., last] => {
                    s.starts_with(first)
                        && s[first.len()..].ends_with(last)
                        && s.len() >= first.len() + last.len()
                }
                [] => false,
            }
        })
}

/// Fills the git directory generator's parameters into every string of a template. Only the
/// path parameters are known here; other expressions are left as they are.
fn render_template(t: &Value, dir: &str) -> Value {
    let segments: Vec<&str> = dir.split('/').collect();
    let basename = segments.last().copied().unwrap_or("");
    let subst = |s: &str| -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("{{") {
            out.push_str(&rest[..i]);
            let Some(j) = rest[i..].find("}}") else {
                out.push_str(&rest[i..]);
                return out;
            };
            let expr = rest[i + 2..i + j].trim();
            let value = match expr {
                ".path.path" | "path" | "path.path" => Some(dir.to_string()),
                ".path.basename" | "path.basename" => Some(basename.to_string()),
                _ => expr
                    .strip_prefix("index .path.segments ")
                    .or_else(|| expr.strip_prefix("path[").and_then(|e| e.strip_suffix(']')))
                    .and_then(|n| n.trim().parse::<usize>().ok())
                    .and_then(|n| segments.get(n))
                    .map(|s| s.to_string()),
            };
            match value {
                Some(v) => out.push_str(&v),
                None => out.push_str(&rest[i..i + j + 2]),
            }
            rest = &rest[i + j + 2..];
        }
        out.push_str(rest);
        out
    };
    match t {
        Value::String(s) => Value::String(subst(s)),
        Value::Array(a) => Value::Array(a.iter().map(|x| render_template(x, dir)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), render_template(v, dir)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn collect_inputs(
    root: &Path,
    all: &BTreeMap<String, Kustomization>,
    dir: &str,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<SourceFile>,
) {
    let Some(k) = all.get(dir) else { return };
    if !seen.insert(k.dir.clone()) {
        return;
    }
    for f in std::iter::once(&k.file).chain(&k.files) {
        if let Ok(text) = std::fs::read_to_string(root.join(f)) {
            out.push(SourceFile {
                path: f.clone(),
                text,
            });
        }
    }
    for inc in &k.includes {
        collect_inputs(root, all, inc, seen, out);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn git_directory_generator_names_and_places_apps() {
        assert!(path_glob(
            "applications/workloads/*/overlays/*",
            "applications/workloads/podinfo/overlays/staging"
        ));
        assert!(!path_glob(
            "applications/workloads/*/overlays/*",
            "applications/workloads/podinfo/base"
        ));
        let t = serde_json::json!({"metadata": {"name": "{{index .path.segments 2}}-{{.path.basename}}"},
            "spec": {"destination": {"namespace": "{{path[2]}}-{{path.basename}}"}, "x": "{{.other}}"}});
        let r = render_template(&t, "applications/workloads/podinfo/overlays/staging");
        assert_eq!(r.pointer("/metadata/name").unwrap(), "podinfo-staging");
        assert_eq!(
            r.pointer("/spec/destination/namespace").unwrap(),
            "podinfo-staging"
        );
        assert_eq!(r.pointer("/spec/x").unwrap(), "{{.other}}");
    }
}
