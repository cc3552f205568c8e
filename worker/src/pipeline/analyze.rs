//! The pure part of a pull-request check: which apps a change affects, their renders at base and
//! head, the per-app diff and what the policies say — the same steps `capstan check --base` runs,
//! so the CLI and the PR pipeline judge a change identically.
//!
//! Settings and policies always come from the base (the default branch), never from the head: a
//! change cannot relax the rules that judge it. Everything here is synchronous CPU work; async
//! callers run it in `spawn_blocking`.

use std::collections::{BTreeMap, BTreeSet};

use crate::apps::affected::affected_apps;
use crate::apps::{AffectedApp, App, AppRender, DiscoveryConfig, RenderedApp, Snapshot};
use crate::diff::diff_app;
use crate::policy::findings::{self, Finding, Report};
use crate::policy::source::render_apps;
use crate::policy::{PolicyEngine, PolicyError};
use crate::render::Renderer;
use crate::repo_fs::RepoFs;
use crate::report::{AppSection, ReportFinding, Severity};

/// The two trees to compare. `base: None` judges every app of `head` (plain `capstan check`).
pub struct Trees<'a> {
    pub base: Option<&'a dyn RepoFs>,
    pub head: &'a dyn RepoFs,
}

/// What the analysis found, app by app, in name order.
#[derive(Debug)]
pub struct Analysis {
    /// Apps judged: the affected ones with a base, every app without.
    pub apps: Vec<AnalyzedApp>,
    /// Number of apps discovered at head.
    pub total_apps: usize,
    /// Policy findings on the judged apps (cross-app findings about other apps are dropped when
    /// a base is given: they are not this change's doing).
    pub policy: Report,
    /// Apps not rendered locally, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Apps whose head render failed, with the error.
    pub render_failed: Vec<(String, String)>,
}

/// One judged app.
#[derive(Debug)]
pub struct AnalyzedApp {
    pub name: String,
    /// Why it was judged (`inputs changed: …`); empty without a base.
    pub reasons: Vec<String>,
    /// `None` when the app does not exist on that side (added or removed) or was not rendered
    /// (base renders are only made when asked for).
    pub base: Option<AppRender>,
    pub head: Option<AppRender>,
}

impl AnalyzedApp {
    /// The Application as it stands at head, or at base when the change removes it.
    pub fn app(&self) -> Option<&App> {
        self.head.as_ref().or(self.base.as_ref()).map(|r| &r.app)
    }
}

/// Whether to render the base side too (the PR report diffs; `capstan check` does not need it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseRenders {
    Render,
    Skip,
}

/// Runs discovery, affected-app selection, rendering and every policy layer.
pub fn analyze(
    trees: &Trees<'_>,
    engine: &PolicyEngine,
    cfg: &DiscoveryConfig,
    renderer: &Renderer,
    base_renders: BaseRenders,
) -> Result<Analysis, PolicyError> {
    let head = Snapshot::build(trees.head, cfg, renderer);
    let base = trees.base.map(|fs| Snapshot::build(fs, cfg, renderer));
    let affected: Vec<AffectedApp> = match &base {
        Some(b) => affected_apps(b, &head),
        None => head
            .discovery
            .apps
            .iter()
            .map(|a| AffectedApp {
                name: a.name.clone(),
                reasons: Vec::new(),
            })
            .collect(),
    };
    let names: Vec<String> = affected.iter().map(|a| a.name.clone()).collect();
    let head_renders = head.render_many(renderer, &names);
    let base_renders: Vec<Option<AppRender>> = match (&base, base_renders) {
        (Some(b), BaseRenders::Render) => b.render_many(renderer, &names),
        _ => vec![None; names.len()],
    };

    let rendered_heads: Vec<AppRender> = head_renders.iter().flatten().cloned().collect();
    let rendered = render_apps(trees.head, &rendered_heads);
    let mut policy = engine.check(&rendered.apps)?;
    if base.is_some() {
        let judged: BTreeSet<&str> = rendered.apps.iter().map(|a| a.name.as_str()).collect();
        policy
            .findings
            .retain(|f| f.app.is_empty() || judged.contains(f.app.as_str()));
    }

    let apps = affected
        .into_iter()
        .zip(base_renders)
        .zip(head_renders)
        .map(|((a, base), head)| AnalyzedApp {
            reasons: a.reasons.iter().map(ToString::to_string).collect(),
            name: a.name,
            base,
            head,
        })
        .collect();
    Ok(Analysis {
        apps,
        total_apps: head.discovery.apps.len(),
        policy,
        skipped: rendered.skipped,
        render_failed: rendered.failed,
    })
}

/// Label an Application may carry to name its environment in the report.
pub const ENVIRONMENT_LABEL: &str = "capstan.io/environment";

/// The app's environment: its `capstan.io/environment` label, else the folder after `overlays/`
/// in its first local source path (`apps/shop/overlays/staging` → `staging`).
pub fn environment_of(app: &App) -> Option<String> {
    if let Some(env) = app
        .manifest
        .pointer("/metadata/labels")
        .and_then(|l| l.get(ENVIRONMENT_LABEL))
        .and_then(|v| v.as_str())
    {
        return Some(env.to_string());
    }
    app.sources.iter().find_map(|s| {
        let path = s.path.as_deref()?;
        let mut segs = path.split('/');
        segs.by_ref().find(|s| *s == "overlays")?;
        segs.next().filter(|s| !s.is_empty()).map(str::to_string)
    })
}

/// Maps a policy finding onto the report's shape.
pub fn report_finding(f: &Finding) -> ReportFinding {
    ReportFinding {
        rule_id: f.rule.clone(),
        severity: match f.severity {
            findings::Severity::Deny => Severity::Deny,
            findings::Severity::Warn => Severity::Warn,
        },
        object: f
            .object
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        file: f.location.as_ref().map(|l| l.file.clone()),
        line: f.location.as_ref().and_then(|l| u32::try_from(l.line).ok()),
        message: match &f.field {
            Some(field) => format!("{} (at {field})", f.message),
            None => f.message.clone(),
        },
    }
}

/// The report's app sections: per-app diff (render failures included) and findings. ArgoCD verdicts are added
/// by the caller after the cluster checks.
pub fn app_sections(analysis: &Analysis) -> Vec<AppSection> {
    let mut by_app: BTreeMap<&str, Vec<ReportFinding>> = BTreeMap::new();
    for f in &analysis.policy.findings {
        by_app
            .entry(f.app.as_str())
            .or_default()
            .push(report_finding(f));
    }
    analysis
        .apps
        .iter()
        .map(|a| {
            let mut diff = diff_app(&a.name, a.base.as_ref(), a.head.as_ref());
            if diff.reasons.is_empty() {
                diff.reasons = a.reasons.clone();
            }
            if let Some(RenderedApp::Rendered(out)) = a.head.as_ref().map(|h| &h.outcome) {
                diff.notes.extend(out.notes.iter().cloned());
            }
            AppSection {
                name: a.name.clone(),
                environment: a.app().and_then(environment_of),
                diff,
                findings: by_app.remove(a.name.as_str()).unwrap_or_default(),
                argocd: None,
                // A failed head render is already a "failed" problem of the diff.
                render_error: None,
            }
        })
        .collect()
}
