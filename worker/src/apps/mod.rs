//! App discovery and the app graph: which ArgoCD Applications a repository tree defines (directly,
//! through ApplicationSets and through app-of-apps), what each renders from, and which apps a
//! change affects.
//!
//! Discovery reads a [`RepoFs`] — normally the tree of a commit — never the working directory
//! implicitly. Sources that cannot be rendered locally (another repository, another revision, a
//! chart from a helm repository, a plugin) are kept in the list with the reason.

pub mod affected;
mod application;
mod appset;
pub mod local;
pub mod pipeline;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::render::RenderSource;
use crate::repo_fs::{RepoFs, RepoPath};
use crate::yaml;

pub use affected::{AffectedApp, ChangeReason};
pub use appset::{CLUSTER_FILES, DeclaredCluster, declared_clusters};
pub use pipeline::{AppRender, RenderedApp, Snapshot};

/// How to recognise "this repository" and its default branch in Applications.
#[derive(Clone, Debug)]
pub struct DiscoveryConfig {
    /// URLs under which this repository is known (https, ssh, with or without `.git`).
    pub repo_urls: Vec<String>,
    pub default_branch: String,
    /// Folders never searched for Applications (`discovery.exclude` in `.capstan.yaml`), e.g. test
    /// fixtures that contain Application manifests which are not part of the deployed tree.
    pub exclude: Vec<RepoPath>,
    /// Apps one ApplicationSet may generate ([`crate::limits::Limits::appset_max_apps`]).
    pub max_generated_apps: usize,
}

impl DiscoveryConfig {
    /// `extra_urls`, then the settings' `repoURLs`/`repoURL`; the settings' `defaultBranch`, else
    /// `fallback_branch`; `discovery.exclude`.
    pub fn from_settings(
        settings: &crate::settings::RepoSettings,
        mut extra_urls: Vec<String>,
        fallback_branch: &str,
    ) -> Self {
        extra_urls.extend(settings.repo_urls());
        DiscoveryConfig {
            repo_urls: extra_urls,
            default_branch: settings
                .default_branch
                .clone()
                .unwrap_or_else(|| fallback_branch.to_string()),
            exclude: settings.discovery_exclude(),
            ..DiscoveryConfig::default()
        }
    }
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            repo_urls: Vec::new(),
            default_branch: "main".into(),
            exclude: Vec::new(),
            max_generated_apps: crate::limits::DEFAULT_APPSET_MAX_APPS,
        }
    }
}

/// `https://github.com/Org/Repo.git`, `git@github.com:org/repo` and `ssh://git@github.com/org/repo`
/// all become `github.com/org/repo`.
pub fn normalize_repo_url(url: &str) -> String {
    let mut u = url.trim().to_ascii_lowercase();
    if let Some(i) = u.find("://") {
        u = u[i + 3..].to_string();
    } else if let Some((user_host, path)) = u.split_once(':')
        && user_host.contains('@')
    {
        u = format!("{user_host}/{path}");
    }
    if let Some(i) = u.find('@')
        && u[..i].find('/').is_none()
    {
        u = u[i + 1..].to_string();
    }
    let u = u.trim_end_matches('/');
    u.strip_suffix(".git").unwrap_or(u).to_string()
}

impl DiscoveryConfig {
    pub fn is_this_repo(&self, url: &str) -> bool {
        let n = normalize_repo_url(url);
        self.repo_urls.iter().any(|a| normalize_repo_url(a) == n)
    }

    pub fn is_default_revision(&self, rev: &str) -> bool {
        rev.is_empty()
            || rev == "HEAD"
            || rev == self.default_branch
            || rev.strip_prefix("refs/heads/") == Some(self.default_branch.as_str())
    }
}

/// Where an Application sends its objects.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Destination {
    pub server: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

/// Whether a source is rendered locally.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum SourceStatus {
    Local,
    /// Listed but deliberately not rendered, with the reason.
    NotRendered(String),
    /// The source is wrong (e.g. its path does not exist).
    Error(String),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AppSource {
    pub repo_url: String,
    pub target_revision: String,
    pub path: Option<String>,
    pub chart: Option<String>,
    pub ref_name: Option<String>,
    /// `kustomize`, `helm` or `directory` once known.
    pub kind: Option<String>,
    #[serde(flatten)]
    pub status: SourceStatus,
    #[serde(skip)]
    pub render: Option<RenderSource>,
    /// Folders and files of this repository the source reads although Capstan does not render
    /// it (a config management plugin's folder, `directory.jsonnet`, `$ref` value files of a chart
    /// from a helm repository): they count as the app's inputs, so a change to them still marks
    /// the app affected (and "not checked").
    #[serde(skip)]
    pub watch: Vec<RepoPath>,
}

/// One ArgoCD Application.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct App {
    pub name: String,
    pub namespace: Option<String>,
    pub project: String,
    pub destination: Destination,
    pub sources: Vec<AppSource>,
    /// The file holding the Application or the ApplicationSet that generated it.
    pub defined_in: RepoPath,
    /// The ApplicationSet that generated it.
    pub generated_by: Option<String>,
    /// The app whose render contains this Application (app-of-apps).
    pub parent: Option<String>,
    #[serde(skip)]
    pub ignore_differences: Vec<Value>,
    /// The Application object as found; a change to it affects the app.
    #[serde(skip)]
    pub manifest: Value,
}

impl App {
    /// Sources rendered locally.
    pub fn local_sources(&self) -> impl Iterator<Item = &RenderSource> {
        self.sources.iter().filter_map(|s| s.render.as_ref())
    }

    /// Why sources of this app are not rendered (values-only `ref` sources excepted: they are
    /// read through the sources that use them). Empty when every source is rendered.
    pub fn unrendered_sources(&self) -> Vec<String> {
        self.sources
            .iter()
            .filter_map(|s| match &s.status {
                SourceStatus::NotRendered(r) if s.ref_name.is_none() || s.path.is_some() => {
                    Some(r.clone())
                }
                SourceStatus::Error(e) => Some(format!("error: {e}")),
                _ => None,
            })
            .collect()
    }

    /// `CreateNamespace=true` in `spec.syncPolicy.syncOptions`: deploying the app creates its
    /// destination namespace.
    pub fn creates_namespace(&self) -> bool {
        self.manifest
            .pointer("/spec/syncPolicy/syncOptions")
            .and_then(Value::as_array)
            .is_some_and(|opts| {
                opts.iter()
                    .any(|o| o.as_str().map(str::trim) == Some("CreateNamespace=true"))
            })
    }

    /// The destination cluster by name: a declared cluster whose server the app targets is
    /// named as declared, the cluster ArgoCD runs in is `in-cluster` (ArgoCD's own name).
    pub fn cluster_name(&self, declared: &[DeclaredCluster]) -> String {
        match self.cluster() {
            None => "in-cluster".into(),
            Some(c) => declared
                .iter()
                .find(|d| d.server == c)
                .map_or(c, |d| d.name.clone()),
        }
    }

    /// The destination cluster, `None` for the cluster ArgoCD runs in.
    pub fn cluster(&self) -> Option<String> {
        let in_cluster = |s: &str| s == "https://kubernetes.default.svc" || s == "in-cluster";
        match (&self.destination.name, &self.destination.server) {
            (Some(n), _) if !in_cluster(n) => Some(n.clone()),
            (None, Some(s)) if !in_cluster(s) => Some(s.clone()),
            _ => None,
        }
    }
}

/// A generator or construct that discovery does not expand.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Unsupported {
    pub file: RepoPath,
    pub object: String,
    pub what: String,
}

/// Everything discovery found in one tree.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Discovery {
    pub apps: Vec<App>,
    pub unsupported: Vec<Unsupported>,
    /// Files that look like ArgoCD objects but could not be read or parsed.
    pub errors: Vec<String>,
    /// Helm chart templates that mention ArgoCD's API group: an app whose inputs include one is
    /// rendered during discovery to find the Applications it produces.
    #[serde(skip)]
    pub chart_templates: BTreeSet<RepoPath>,
    /// Bounds that were hit ("not checked: limit … reached" lines for the report).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<String>,
}

impl Discovery {
    pub fn get(&self, name: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.name == name)
    }
}

/// Folders never searched: VCS data, build output, dependencies.
fn skipped_dir(name: &str) -> bool {
    name.starts_with('.') || name == "target" || name == "node_modules"
}

/// YAML files of the tree, outside skipped folders, and the Helm chart templates that mention
/// ArgoCD's API group. A chart's `templates/` and `charts/` hold templates, not manifests: read
/// as YAML they would be errors no user made, so they are set apart and the app rendering the
/// chart is rendered to find the Applications they produce (app-of-apps written as a chart).
fn yaml_files(
    fs: &dyn RepoFs,
    exclude: &[RepoPath],
) -> Result<(Vec<RepoPath>, BTreeSet<RepoPath>), String> {
    let mut out = Vec::new();
    let mut templates = BTreeSet::new();
    let mut stack = vec![RepoPath::root()];
    while let Some(d) = stack.pop() {
        let entries = fs.list_dir(&d).map_err(|e| format!("{d}: {e}"))?;
        let chart = entries
            .iter()
            .any(|(n, k)| n == "Chart.yaml" && *k == crate::repo_fs::EntryKind::File);
        for (name, kind) in entries {
            let Ok(child) = d.join(&name) else { continue };
            match kind {
                crate::repo_fs::EntryKind::Dir
                    if chart && (name == "templates" || name == "charts") =>
                {
                    for f in crate::render::inputs::tree_files(fs, &child)
                        .map_err(|e| format!("{child}: {e}"))?
                    {
                        if fs.read(&f).is_ok_and(|b| {
                            b.windows(b"argoproj.io".len()).any(|w| w == b"argoproj.io")
                        }) {
                            templates.insert(f);
                        }
                    }
                }
                crate::repo_fs::EntryKind::Dir
                    if !skipped_dir(&name) && !exclude.iter().any(|x| child.starts_with(x)) =>
                {
                    stack.push(child)
                }
                crate::repo_fs::EntryKind::File
                    if name.ends_with(".yaml") || name.ends_with(".yml") =>
                {
                    out.push(child)
                }
                _ => {}
            }
        }
    }
    out.sort();
    Ok((out, templates))
}

fn is_argo(doc: &Value, kind: &str) -> bool {
    doc.get("kind").and_then(Value::as_str) == Some(kind)
        && doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("argoproj.io/"))
}

/// Finds every Application and ApplicationSet-generated Application in the tree.
pub fn discover(fs: &dyn RepoFs, cfg: &DiscoveryConfig) -> Discovery {
    let mut d = Discovery::default();
    let files = match yaml_files(fs, &cfg.exclude) {
        Ok((f, templates)) => {
            d.chart_templates = templates;
            f
        }
        Err(e) => {
            d.errors.push(e);
            return d;
        }
    };
    let mut by_name: BTreeMap<String, RepoPath> = BTreeMap::new();
    for file in files {
        let bytes = match fs.read(&file) {
            Ok(b) => b,
            Err(e) => {
                d.errors.push(format!("{file}: {e}"));
                continue;
            }
        };
        // Cheap pre-filter: only files mentioning ArgoCD's API group are parsed.
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        if !text.contains("argoproj.io") {
            continue;
        }
        let docs = match yaml::parse_documents(text, file.as_str()) {
            Ok(docs) => docs,
            Err(e) => {
                d.errors.push(e.to_string());
                continue;
            }
        };
        for doc in docs {
            let found = if is_argo(&doc, "Application") {
                match application::parse_application(&doc, &file, fs, cfg) {
                    Ok(app) => vec![app],
                    Err(e) => {
                        d.errors.push(format!("{file}: {e}"));
                        continue;
                    }
                }
            } else if is_argo(&doc, "ApplicationSet") {
                appset::expand(&doc, &file, fs, cfg, &mut d)
            } else {
                continue;
            };
            for app in found {
                if let Some(first) = by_name.get(&app.name) {
                    d.errors.push(format!(
                        "Application {} is defined more than once ({first} and {file}); the first is used",
                        app.name
                    ));
                    continue;
                }
                by_name.insert(app.name.clone(), file.clone());
                d.apps.push(app);
            }
        }
    }
    d.apps.sort_by(|a, b| a.name.cmp(&b.name));
    d
}

/// Links children to parents: an app whose input files include the file that defines another app
/// is that app's parent (app-of-apps).
pub fn link_parents(
    d: &mut Discovery,
    inputs: &BTreeMap<String, std::collections::BTreeSet<RepoPath>>,
) {
    for app in &mut d.apps {
        for (parent, files) in inputs {
            if parent == &app.name {
                continue;
            }
            if files.contains(&app.defined_in) {
                app.parent = Some(parent.clone());
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests;
