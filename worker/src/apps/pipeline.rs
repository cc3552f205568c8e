//! The public entry points the PR pipeline and the policy engine call: a [`Snapshot`] of one tree
//! (its apps and each app's exact input files), rendering of one, some or all apps, and
//! [`super::affected::affected_apps`] between two snapshots.
//!
//! ```text
//! let renderer = Renderer::new(RenderConfig::default());
//! let base = Snapshot::build(&repo.tree_fs(base_commit)?, &cfg, &renderer);
//! let head = Snapshot::build(&repo.tree_fs(head_commit)?, &cfg, &renderer);
//! for a in affected_apps(&base, &head) {
//!     let before = base.render(&renderer, &a.name);   // None when the app is new
//!     let after = head.render(&renderer, &a.name);    // None when it was removed
//!     let diff = diff::diff_app(&a.name, before.as_ref(), after.as_ref());
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::{App, Discovery, DiscoveryConfig, application, discover, link_parents};
use crate::objects::K8sObject;
use crate::render::inputs::{fingerprint, tree_files};
use crate::render::{RenderOutput, Renderer};
use crate::repo_fs::{EntryKind, RepoFs, RepoPath};

/// Deepest app-of-apps chain followed through rendered output.
const MAX_APP_OF_APPS_DEPTH: usize = 8;

/// Input files of one app with their SHA-256, or why they could not be determined.
pub type InputPrints = Result<BTreeMap<RepoPath, String>, String>;

/// One tree with its apps and their input graph.
pub struct Snapshot<'a> {
    pub fs: &'a dyn RepoFs,
    pub discovery: Discovery,
    pub inputs: BTreeMap<String, InputPrints>,
}

/// The outcome of rendering one app.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RenderedApp {
    Rendered(RenderOutput),
    /// Capstan could not render the app (a source from elsewhere, a missing tool, Jsonnet, a
    /// plugin, a feature no backend here supports): nothing about it was checked, and it never
    /// passes as "no change".
    NotChecked {
        reason: String,
    },
    Failed {
        error: String,
    },
}

/// One app and its render.
#[derive(Clone, Debug, Serialize)]
pub struct AppRender {
    pub app: App,
    #[serde(flatten)]
    pub outcome: RenderedApp,
}

impl AppRender {
    /// The rendered objects; empty unless rendered.
    pub fn objects(&self) -> &[K8sObject] {
        match &self.outcome {
            RenderedApp::Rendered(out) => &out.objects,
            _ => &[],
        }
    }

    /// Why the app (or part of it) was not checked; `None` when fully rendered or failed.
    pub fn not_checked(&self) -> Option<String> {
        match &self.outcome {
            RenderedApp::NotChecked { reason } => Some(reason.clone()),
            RenderedApp::Rendered(out) if !out.not_checked.is_empty() => Some(format!(
                "partly rendered; not rendered: {}",
                out.not_checked.join("; ")
            )),
            _ => None,
        }
    }

    /// The files the render read; empty unless rendered.
    pub fn input_files(&self) -> BTreeSet<RepoPath> {
        match &self.outcome {
            RenderedApp::Rendered(out) => out.inputs.clone(),
            _ => BTreeSet::new(),
        }
    }
}

fn app_inputs(fs: &dyn RepoFs, renderer: &Renderer, app: &App) -> InputPrints {
    let mut files = BTreeSet::new();
    for src in app.local_sources() {
        let f = renderer.inputs(fs, src).map_err(|e| e.to_string())?;
        files.extend(f);
    }
    for w in app.sources.iter().flat_map(|s| &s.watch) {
        match fs.kind(w).map_err(|e| format!("{w}: {e}"))? {
            Some(EntryKind::Dir) => files.extend(tree_files(fs, w).map_err(|e| e.to_string())?),
            Some(EntryKind::File) => {
                files.insert(w.clone());
            }
            None => {}
        }
    }
    fingerprint(fs, &files).map_err(|e| e.to_string())
}

impl<'a> Snapshot<'a> {
    /// Discovers the apps of `fs`, follows app-of-apps through rendered output and computes every
    /// app's input files.
    pub fn build(fs: &'a dyn RepoFs, cfg: &DiscoveryConfig, renderer: &Renderer) -> Self {
        let mut discovery = discover(fs, cfg);
        let mut inputs: BTreeMap<String, InputPrints> = discovery
            .apps
            .iter()
            .map(|a| (a.name.clone(), app_inputs(fs, renderer, a)))
            .collect();
        let mut rendered_parents: BTreeSet<String> = BTreeSet::new();
        for _ in 0..MAX_APP_OF_APPS_DEPTH {
            let files: BTreeMap<String, BTreeSet<RepoPath>> = inputs
                .iter()
                .filter_map(|(n, r)| {
                    r.as_ref()
                        .ok()
                        .map(|m| (n.clone(), m.keys().cloned().collect()))
                })
                .collect();
            link_parents(&mut discovery, &files);
            // Parents are rendered so that children are taken as ArgoCD would apply them (after
            // the parent's kustomize transforms), including children no file spells out.
            let parents: Vec<App> = discovery
                .apps
                .iter()
                .filter(|a| !rendered_parents.contains(&a.name))
                .filter(|a| {
                    files.get(&a.name).is_some_and(|fs_set| {
                        discovery
                            .apps
                            .iter()
                            .any(|c| c.name != a.name && fs_set.contains(&c.defined_in))
                            || !fs_set.is_disjoint(&discovery.chart_templates)
                    })
                })
                .cloned()
                .collect();
            if parents.is_empty() {
                break;
            }
            let mut added = false;
            for parent in parents {
                rendered_parents.insert(parent.name.clone());
                let Some(out) = render_sources(fs, renderer, &parent).ok() else {
                    continue;
                };
                for obj in out
                    .objects
                    .iter()
                    .filter(|o| o.id.kind == "Application" && o.id.group == "argoproj.io")
                {
                    // A chart's child is defined by the template that produced it.
                    let template = files
                        .get(&parent.name)
                        .and_then(|f| f.intersection(&discovery.chart_templates).next().cloned());
                    let defined_in = discovery
                        .get(&obj.id.name)
                        .map(|c| c.defined_in.clone())
                        .or(template)
                        .or_else(|| parent.local_sources().next().map(|s| s.path.clone()))
                        .unwrap_or_default();
                    let Ok(mut child) =
                        application::parse_application(&obj.value, &defined_in, fs, cfg)
                    else {
                        continue;
                    };
                    child.parent = Some(parent.name.clone());
                    match discovery.apps.iter_mut().find(|a| a.name == child.name) {
                        Some(existing) => {
                            if existing.manifest != child.manifest {
                                child.generated_by = existing.generated_by.clone();
                                *existing = child;
                                inputs.insert(
                                    existing.name.clone(),
                                    app_inputs(fs, renderer, existing),
                                );
                            }
                        }
                        None => {
                            inputs.insert(child.name.clone(), app_inputs(fs, renderer, &child));
                            discovery.apps.push(child);
                            added = true;
                        }
                    }
                }
            }
            discovery.apps.sort_by(|a, b| a.name.cmp(&b.name));
            if !added {
                let files: BTreeMap<String, BTreeSet<RepoPath>> = inputs
                    .iter()
                    .filter_map(|(n, r)| {
                        r.as_ref()
                            .ok()
                            .map(|m| (n.clone(), m.keys().cloned().collect()))
                    })
                    .collect();
                link_parents(&mut discovery, &files);
                break;
            }
        }
        Snapshot {
            fs,
            discovery,
            inputs,
        }
    }

    pub fn app(&self, name: &str) -> Option<&App> {
        self.discovery.get(name)
    }

    /// Renders one app; `None` when the snapshot has no app of that name.
    pub fn render(&self, renderer: &Renderer, name: &str) -> Option<AppRender> {
        let app = self.app(name)?;
        Some(render_app(self.fs, renderer, app))
    }

    /// Renders every app.
    pub fn render_all(&self, renderer: &Renderer) -> Vec<AppRender> {
        let names: Vec<String> = self.discovery.apps.iter().map(|a| a.name.clone()).collect();
        self.render_many(renderer, &names)
            .into_iter()
            .flatten()
            .collect()
    }

    /// Renders the named apps on as many threads as there are cores (exec backends spend most of
    /// their time in the child process). Results keep the order of `names`; `None` for a name the
    /// snapshot does not have.
    pub fn render_many(&self, renderer: &Renderer, names: &[String]) -> Vec<Option<AppRender>> {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(names.len().max(1));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: std::sync::Mutex<Vec<Option<AppRender>>> =
            std::sync::Mutex::new(vec![None; names.len()]);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(name) = names.get(i) else { break };
                        let r = self.render(renderer, name);
                        results.lock().unwrap_or_else(|p| p.into_inner())[i] = r;
                    }
                });
            }
        });
        results.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why an app's sources did not render.
enum SourceFailure {
    /// Capstan cannot render it (a missing tool, a feature no available backend supports): the
    /// app is "not checked", not broken.
    NotChecked(String),
    Failed(String),
}

fn render_sources(
    fs: &dyn RepoFs,
    renderer: &Renderer,
    app: &App,
) -> Result<RenderOutput, SourceFailure> {
    let mut combined: Option<RenderOutput> = None;
    for src in app.local_sources() {
        let out = renderer.render(fs, src).map_err(|e| {
            let why = format!("{}: {e}", src.label());
            if e.is_not_checked() {
                SourceFailure::NotChecked(why)
            } else {
                SourceFailure::Failed(why)
            }
        })?;
        combined = Some(match combined {
            None => out,
            Some(mut acc) => {
                let mut yaml = acc.yaml.to_string();
                if !yaml.is_empty() && !out.yaml.is_empty() {
                    yaml.push_str("---\n");
                }
                yaml.push_str(&out.yaml);
                acc.yaml = yaml.into();
                acc.objects.extend(out.objects);
                acc.inputs.extend(out.inputs);
                acc.notes.extend(out.notes);
                acc.not_checked.extend(out.not_checked);
                if acc.backend != out.backend {
                    acc.backend = format!("{}+{}", acc.backend, out.backend);
                }
                acc.cache_hit &= out.cache_hit;
                acc
            }
        });
    }
    combined.ok_or_else(|| SourceFailure::Failed("no local source".into()))
}

/// Renders one app: all its local sources, in order, as one stream. Sources that are not
/// rendered make the app "not checked" (wholly, or partly next to what did render).
pub fn render_app(fs: &dyn RepoFs, renderer: &Renderer, app: &App) -> AppRender {
    let skipped = app.unrendered_sources();
    if let Some(err) = app.sources.iter().find_map(|s| match &s.status {
        super::SourceStatus::Error(e) => Some(e.clone()),
        _ => None,
    }) {
        return AppRender {
            app: app.clone(),
            outcome: RenderedApp::Failed { error: err },
        };
    }
    if app.local_sources().next().is_none() {
        let reason = if skipped.is_empty() {
            "no source to render".to_string()
        } else {
            skipped.join("; ")
        };
        return AppRender {
            app: app.clone(),
            outcome: RenderedApp::NotChecked { reason },
        };
    }
    let outcome = match render_sources(fs, renderer, app) {
        Ok(mut out) => {
            out.not_checked.extend(skipped);
            RenderedApp::Rendered(out)
        }
        Err(SourceFailure::NotChecked(reason)) => RenderedApp::NotChecked { reason },
        Err(SourceFailure::Failed(error)) => RenderedApp::Failed { error },
    };
    AppRender {
        app: app.clone(),
        outcome,
    }
}

/// True when two Application manifests differ in what ArgoCD acts on (spec, name, namespace).
pub fn manifest_changed(a: &App, b: &App) -> bool {
    let key = |app: &App| {
        (
            app.manifest.get("spec").cloned().unwrap_or(Value::Null),
            app.manifest.pointer("/metadata/namespace").cloned(),
            app.sources.clone(),
        )
    };
    key(a) != key(b)
}
