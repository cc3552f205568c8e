//! `/apps`: the app × environment matrix of the repository's default branch — which image tags
//! or chart versions each overlay deploys — with ArgoCD sync and health when configured and the
//! promotions still pending. Read from a local checkout (`--dashboard-repo`, or the current
//! directory), so `capstan serve` on a fresh clone shows the clone's own apps.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use capstan_worker::apps::local::LocalRepo;
use capstan_worker::apps::{self, App};
use capstan_worker::repo_fs::{RepoFs, RepoPath};
use capstan_worker::settings::RepoSettings;
use capstan_worker::store::{PromotionFilter, PromotionStatus};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::argocd::{self, ArgoView};
use super::layout::{self, badge};
use super::overview::status_tone;
use super::{Dashboard, PageError};

#[derive(Debug, Default, Deserialize)]
pub struct Params {}

/// An environment from `.capstan.yaml`.
#[derive(Clone, Debug, Serialize)]
pub struct Environment {
    pub name: String,
    pub description: Option<String>,
    /// Folder inside an app holding the environment's kustomization (`overlays/staging`).
    pub overlay: Option<String>,
}

/// What one environment of one app deploys.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    /// The ArgoCD Application.
    pub application: String,
    pub path: Option<String>,
    /// `image:tag` from the overlay's `images:`, or `chart version` for Helm sources.
    pub versions: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AppRow {
    pub name: String,
    /// Keyed by environment name; `""` for apps that are not per-environment.
    pub cells: BTreeMap<String, Cell>,
}

/// The matrix as read from one commit.
#[derive(Clone, Debug, Serialize)]
pub struct Matrix {
    pub branch: String,
    /// Commit read, or `working tree` when the branch could not be resolved.
    pub revision: String,
    pub environments: Vec<Environment>,
    pub rows: Vec<AppRow>,
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct EnvironmentsPage {
    /// `None` when no repository is configured.
    pub repo: Option<String>,
    pub matrix: Option<Matrix>,
    pub error: Option<String>,
    pub argocd: ArgoView,
    /// `app/env` → pending promotion summaries.
    pub pending: BTreeMap<String, Vec<String>>,
}

/// Discovery is re-run only when the default branch moves (or every 30 s for a plain folder).
#[derive(Default)]
pub struct EnvironmentsCache {
    last: Mutex<Option<(String, Instant, Matrix)>>,
}

const WORKTREE_TTL: Duration = Duration::from_secs(30);

fn environments(settings: &RepoSettings) -> Vec<Environment> {
    settings
        .environments
        .iter()
        .map(|e| Environment {
            name: e.name.clone(),
            description: Some(e.description.clone()).filter(|d| !d.is_empty()),
            overlay: e.overlay.clone(),
        })
        .collect()
}

/// `images:` of the kustomization in `dir` as `name:tag` (or `@digest`).
fn images(fs: &dyn RepoFs, dir: &str) -> Vec<String> {
    let text = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .filter_map(|f| RepoPath::new(&format!("{dir}/{f}")).ok())
        .find_map(|p| fs.read_to_string(&p).ok());
    let Some(doc) = text.and_then(|t| capstan_worker::yaml::parse_single(&t, dir).ok()) else {
        return Vec::new();
    };
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    doc.get("images")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|i| {
                    let name = s(i, "newName").or_else(|| s(i, "name"))?;
                    Some(match (s(i, "digest"), s(i, "newTag")) {
                        (Some(d), _) => format!("{name}@{d}"),
                        (None, Some(t)) => format!("{name}:{t}"),
                        (None, None) => name,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Row name and environment of an app: an app whose source path ends in an environment's
/// overlay folder belongs to that environment, under the name of the folder above the overlay.
fn placement(app: &App, envs: &[Environment]) -> (String, String, Option<String>) {
    let path = app
        .sources
        .iter()
        .find_map(|s| s.path.clone())
        .map(|p| p.trim_matches('/').to_string());
    if let Some(p) = &path {
        for env in envs {
            let Some(overlay) = env.overlay.as_deref().map(|o| o.trim_matches('/')) else {
                continue;
            };
            if let Some(prefix) = p.strip_suffix(overlay).and_then(|x| x.strip_suffix('/')) {
                let name = prefix.rsplit('/').next().unwrap_or(prefix).to_string();
                return (name, env.name.clone(), path);
            }
        }
    }
    (app.name.clone(), String::new(), path)
}

fn matrix_of(
    fs: &dyn RepoFs,
    settings: &RepoSettings,
    cfg: &apps::DiscoveryConfig,
    revision: String,
) -> Matrix {
    let envs = environments(settings);
    let d = apps::discover(fs, cfg);
    let mut rows: BTreeMap<String, AppRow> = BTreeMap::new();
    for app in &d.apps {
        let (name, env, path) = placement(app, &envs);
        let mut versions = path.as_deref().map(|p| images(fs, p)).unwrap_or_default();
        for s in &app.sources {
            if let Some(chart) = &s.chart {
                versions.push(format!("{chart} {}", s.target_revision));
            }
        }
        rows.entry(name.clone())
            .or_insert_with(|| AppRow {
                name,
                cells: BTreeMap::new(),
            })
            .cells
            .insert(
                env,
                Cell {
                    application: app.name.clone(),
                    path,
                    versions,
                },
            );
    }
    Matrix {
        branch: cfg.default_branch.clone(),
        revision,
        environments: envs,
        rows: rows.into_values().collect(),
        errors: d.errors,
    }
}

impl EnvironmentsCache {
    fn read(&self, repo: &Path) -> Result<Matrix, String> {
        let local = LocalRepo::open(repo).map_err(|e| e.to_string())?;
        let settings = local.settings(None).map_err(|e| e.to_string())?;
        let cfg = local
            .discovery_config(&[], None)
            .map_err(|e| e.to_string())?;
        let (key, fs): (String, Box<dyn RepoFs>) = match local
            .git()
            .and_then(|g| g.resolve(&cfg.default_branch).ok())
        {
            Some(oid) => (
                oid.to_string(),
                local
                    .fs(Some(&cfg.default_branch))
                    .map_err(|e| e.to_string())?,
            ),
            None => (
                "working tree".into(),
                local.fs(None).map_err(|e| e.to_string())?,
            ),
        };
        if let Ok(guard) = self.last.lock()
            && let Some((k, at, m)) = guard.as_ref()
            && *k == key
            && (key != "working tree" || at.elapsed() < WORKTREE_TTL)
        {
            return Ok(m.clone());
        }
        let m = matrix_of(fs.as_ref(), &settings, &cfg, key.clone());
        if let Ok(mut guard) = self.last.lock() {
            *guard = Some((key, Instant::now(), m.clone()));
        }
        Ok(m)
    }
}

pub async fn build(d: &Dashboard, _: &Params) -> Result<EnvironmentsPage, PageError> {
    let argocd = argocd::view(d.argocd.as_deref()).await;
    let mut pending: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(store) = &d.promotions {
        for status in [PromotionStatus::Pending, PromotionStatus::Opened] {
            let list = store
                .list_promotions(&PromotionFilter {
                    status: Some(status),
                    limit: 500,
                    ..PromotionFilter::default()
                })
                .await?;
            for p in list {
                let result = p
                    .result_pr
                    .map(|n| format!(" (PR #{n})"))
                    .unwrap_or_default();
                pending
                    .entry(format!("{}/{}", p.app, p.target_env))
                    .or_default()
                    .push(format!("{}: {}{result}", status.as_str(), p.summary));
            }
        }
    }
    let Some(repo) = d.repo.clone() else {
        return Ok(EnvironmentsPage {
            repo: None,
            matrix: None,
            error: None,
            argocd,
            pending,
        });
    };
    let shown = repo.display().to_string();
    let dash = d.environments.clone();
    let read = tokio::task::spawn_blocking(move || dash.read(&repo))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
    let (matrix, error) = match read {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(e)),
    };
    Ok(EnvironmentsPage {
        repo: Some(shown),
        matrix,
        error,
        argocd,
        pending,
    })
}

pub fn render(d: &Dashboard, p: &EnvironmentsPage, user: Option<&str>) -> Markup {
    let Some(repo) = &p.repo else {
        let body = html! {
            h1 { "Environments" }
            (layout::notice(
                "No GitOps repository configured: start capstan in a clone or set --dashboard-repo.",
            ))
        };
        return layout::page(&d.config, "Environments", "/apps", user, body);
    };
    let body = html! {
        h1 { "Environments" }
        @if let Some(e) = &p.error {
            (layout::notice(&format!("Cannot read {repo}: {e}")))
        }
        @if let Some(t) = p.argocd.status_text() {
            (layout::notice(&t))
        }
        @if let Some(m) = &p.matrix {
            p.muted {
                (repo) " at branch " code { (m.branch) } ", revision "
                code { (m.revision.get(..12).unwrap_or(&m.revision)) } "."
            }
            (matrix_table(m, p))
            @if !m.environments.is_empty() {
                h2 { "Environments" }
                ul { @for e in &m.environments {
                    li { strong { (e.name) } " " (e.description.as_deref().unwrap_or("")) }
                } }
            }
            @if !m.errors.is_empty() {
                h2 { "Discovery problems" }
                ul { @for e in &m.errors { li { (e) } } }
            }
        }
    };
    layout::page(&d.config, "Environments", "/apps", user, body)
}

/// Apps × environments: each cell the Application, its versions, ArgoCD's view and pending
/// promotions.
fn matrix_table(m: &Matrix, p: &EnvironmentsPage) -> Markup {
    let mut cols: Vec<(String, String)> = m
        .environments
        .iter()
        .map(|e| (e.name.clone(), e.name.clone()))
        .collect();
    if m.rows.iter().any(|r| r.cells.contains_key("")) {
        cols.push((String::new(), "Not per environment".into()));
    }
    let mut headers: Vec<&str> = vec!["App"];
    headers.extend(cols.iter().map(|(_, l)| l.as_str()));
    let rows: Vec<Markup> = m
        .rows
        .iter()
        .map(|r| {
            html! {
                th scope="row" { (r.name) }
                @for (env, _) in &cols {
                    td {
                        @match r.cells.get(env) {
                            None => span.muted { "—" },
                            Some(c) => (cell_html(c, &p.argocd)),
                        }
                        @if let Some(list) = p.pending.get(&format!("{}/{env}", r.name)) {
                            @for x in list {
                                div { (badge("promotion pending", layout::Tone::Warn)) " " (x) }
                            }
                        }
                    }
                }
            }
        })
        .collect();
    layout::table(
        &headers,
        &rows,
        "No ArgoCD Applications found on the default branch.",
    )
}

fn cell_html(c: &Cell, argo: &ArgoView) -> Markup {
    html! {
        div { code { (c.application) } }
        @for v in &c.versions { div { (v) } }
        @if let Some(a) = argo.app(&c.application) {
            div { (badge(&a.sync, status_tone(&a.sync))) " " (badge(&a.health, status_tone(&a.health))) }
        }
    }
}
