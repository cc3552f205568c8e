//! The pure part of a pull-request check: which apps a change affects, their renders at base and
//! head, the per-app diff and what the policies say — the same steps `capstan check --base` runs,
//! so the CLI and the PR pipeline judge a change identically.
//!
//! Settings and policies always come from the base (the default branch), never from the head: a
//! change cannot relax the rules that judge it. Everything here is synchronous CPU work; async
//! callers run it in `spawn_blocking`.

use std::collections::{BTreeMap, BTreeSet};

use crate::apps::affected::affected_apps;
use crate::apps::{AffectedApp, App, AppRender, DiscoveryConfig, Snapshot};
use crate::diff::{
    DiffLimits, RULE_IGNORE_DIFFERENCES_ADDED, added_ignore_differences, diff_app_within,
};
use crate::policy::config::Gate;
use crate::policy::exceptions::{self, RULE_WAIVER_ADDED};
use crate::policy::findings::{self, Finding, Report};
use crate::policy::source::render_apps;
use crate::policy::{PolicyEngine, PolicyError};
use crate::render::Renderer;
use crate::repo_fs::RepoFs;
use crate::report::{AppSection, ReportFinding};

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
    /// Judged apps Capstan could not render (wholly or partly) at head, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Apps whose head render failed, with the error.
    pub render_failed: Vec<(String, String)>,
    /// Bounds hit while discovering apps on either side (report lines).
    pub limits: Vec<String>,
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
    let mut limits = head.discovery.limits.clone();
    for l in base.iter().flat_map(|b| &b.discovery.limits) {
        if !limits.contains(l) {
            limits.push(l.clone());
        }
    }
    let names: Vec<String> = affected.iter().map(|a| a.name.clone()).collect();
    let head_renders = head.render_many(renderer, &names);
    let base_rendered = base_renders == BaseRenders::Render;
    let base_renders: Vec<Option<AppRender>> = match (&base, base_renders) {
        (Some(b), BaseRenders::Render) => b.render_many(renderer, &names),
        _ => vec![None; names.len()],
    };

    let rendered = render_apps(trees.head, head_renders.iter().flatten());
    let skipped = head_renders
        .iter()
        .flatten()
        .filter_map(|r| r.not_checked().map(|why| (r.app.name.clone(), why)))
        .collect();
    let base_waivers = base.as_ref().map(|b| {
        // Waivers are judged against the base; it is rendered only for apps that ask for one.
        let wanted: Vec<String> = rendered
            .apps
            .iter()
            .filter(|a| a.objects.iter().any(exceptions::has_waiver))
            .map(|a| a.name.clone())
            .collect();
        let extra;
        let renders: Vec<&AppRender> = if base_rendered {
            base_renders
                .iter()
                .flatten()
                .filter(|r| wanted.contains(&r.app.name))
                .collect()
        } else {
            extra = b.render_many(renderer, &wanted);
            extra.iter().flatten().collect()
        };
        exceptions::BaseWaivers::from_objects(
            renders
                .into_iter()
                .flat_map(|r| r.objects().iter().map(move |o| (r.app.name.as_str(), o))),
        )
    });
    let mut policy = engine.check_change(&rendered.apps, base_waivers.as_ref())?;
    if let (Some(b), Some(base_fs)) = (&base, trees.base) {
        policy
            .findings
            .extend(added_exceptions(b, &head, base_fs, trees.head, &names));
    }
    if base.is_some() {
        let judged: BTreeSet<&str> = rendered.apps.iter().map(|a| a.name.as_str()).collect();
        policy
            .findings
            .retain(|f| f.app.is_empty() || judged.contains(f.app.as_str()));
    }
    // Only an app's own findings can have been there before; without any, the base is not
    // judged (nor rendered, for `capstan check`).
    let any_app_finding = policy.findings.iter().any(|f| !f.app.is_empty());
    if let (Some(b), Some(base_fs), Gate::New, true) =
        (&base, trees.base, engine.settings().gate, any_app_finding)
    {
        // The base's own findings on the same apps, judged by the same (base) rules with the
        // base's own waivers: what was there before this change is listed, not counted.
        let extra;
        let renders = if base_rendered {
            &base_renders
        } else {
            extra = b.render_many(renderer, &names);
            &extra
        };
        let before = render_apps(base_fs, renders.iter().flatten());
        let own_waivers = exceptions::BaseWaivers::from_objects(
            before
                .apps
                .iter()
                .flat_map(|a| a.objects.iter().map(move |o| (a.name.as_str(), o))),
        );
        let base_policy = engine.check_change(&before.apps, Some(&own_waivers))?;
        policy.set_aside_preexisting(&base_policy);
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
        skipped,
        render_failed: rendered.failed,
        limits,
    })
}

/// Findings for every exception the change adds to its own review, none of which applies to it:
/// `ignoreDifferences` entries on the affected Applications, and `policy.exceptions` /
/// `policy.waivable` entries in `.capstan.yaml` (whose head copy must also parse: a pull request
/// that breaks it would only fail after the merge).
fn added_exceptions(
    base: &Snapshot<'_>,
    head: &Snapshot<'_>,
    base_fs: &dyn RepoFs,
    head_fs: &dyn RepoFs,
    affected: &[String],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let app =
        |s: &Snapshot<'_>, name: &str| s.discovery.apps.iter().find(|a| a.name == name).cloned();
    for name in affected {
        let head_app = app(head, name);
        let added = added_ignore_differences(app(base, name).as_ref(), head_app.as_ref());
        if !added.is_empty() {
            let rules: Vec<String> = added
                .iter()
                .map(|v| serde_json::to_string(v).unwrap_or_default())
                .collect();
            out.push(Finding::new(
                RULE_IGNORE_DIFFERENCES_ADDED,
                findings::Severity::Warn,
                name,
                format!(
                    "this change adds ignoreDifferences {}; the diff applies only the default branch's rules, so every difference is shown",
                    rules.join(", ")
                ),
            ));
        }
    }
    let head_settings = match crate::settings::RepoSettings::from_tree(head_fs) {
        Ok((s, _)) => s,
        Err(e) => {
            out.push(Finding::new(
                crate::settings::RULE_SETTINGS_INVALID,
                findings::Severity::Deny,
                "",
                format!("this pull request's .capstan.yaml cannot be used: {e}"),
            ));
            return out;
        }
    };
    // A broken base is reported where the settings are loaded; here it only means "nothing".
    let base_settings = crate::settings::RepoSettings::from_tree(base_fs)
        .map(|(s, _)| s)
        .unwrap_or_default();
    let added = |what: String| {
        Finding::new(
            RULE_WAIVER_ADDED,
            findings::Severity::Warn,
            "",
            format!(
                "this change adds {what} in .capstan.yaml; settings apply once they are on the default branch: not applied"
            ),
        )
    };
    for e in &head_settings.policy.exceptions {
        if !base_settings.policy.exceptions.contains(e) {
            out.push(added(format!(
                "a policy.exceptions entry for rule {:?}",
                e.rule
            )));
        }
    }
    let base_waivable = base_settings.policy.waivable.unwrap_or_default();
    let new_waivable: Vec<&str> = head_settings
        .policy
        .waivable
        .iter()
        .flatten()
        .filter(|r| !base_waivable.contains(r))
        .map(String::as_str)
        .collect();
    if !new_waivable.is_empty() {
        out.push(added(format!(
            "{} to policy.waivable",
            new_waivable.join(", ")
        )));
    }
    out
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
        severity: f.severity,
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
    app_sections_within(analysis, &DiffLimits::default())
}

/// [`app_sections`] with the diffs bounded by `limits`.
pub fn app_sections_within(analysis: &Analysis, limits: &DiffLimits) -> Vec<AppSection> {
    let mut by_app: BTreeMap<&str, Vec<ReportFinding>> = BTreeMap::new();
    for f in &analysis.policy.findings {
        by_app
            .entry(f.app.as_str())
            .or_default()
            .push(report_finding(f));
    }
    let mut preexisting: BTreeMap<&str, Vec<ReportFinding>> = BTreeMap::new();
    for f in &analysis.policy.preexisting {
        preexisting
            .entry(f.app.as_str())
            .or_default()
            .push(report_finding(f));
    }
    let mut sections: Vec<AppSection> = analysis
        .apps
        .iter()
        .map(|a| {
            let mut diff = diff_app_within(&a.name, a.base.as_ref(), a.head.as_ref(), limits);
            if diff.reasons.is_empty() {
                diff.reasons = a.reasons.clone();
            }
            AppSection {
                name: a.name.clone(),
                environment: a.app().and_then(environment_of),
                diff,
                findings: by_app.remove(a.name.as_str()).unwrap_or_default(),
                preexisting: preexisting.remove(a.name.as_str()).unwrap_or_default(),
                argocd: None,
                // A failed head render is already a "failed" problem of the diff.
                render_error: None,
                live_diff: None,
            }
        })
        .collect();
    // Findings of no affected app (the settings, an unused exception, a cross-app rule) must not
    // be dropped: they get a section of their own after the apps, with nothing to diff.
    for (app, findings) in by_app {
        let name = if app.is_empty() {
            REPOSITORY_SECTION
        } else {
            app
        };
        sections.push(AppSection {
            name: name.to_string(),
            environment: None,
            diff: crate::diff::diff_objects(name, &[], &[], &[]),
            findings,
            preexisting: Vec::new(),
            argocd: None,
            render_error: None,
            live_diff: None,
        });
    }
    sections
}

/// The report section holding findings about the repository as a whole (no app's): a name no
/// Application can have.
pub const REPOSITORY_SECTION: &str = "(repository)";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::git::GitRepo;
    use crate::git::fixture::{Change, RepoBuilder};
    use crate::policy::PolicySources;
    use crate::render::RenderConfig;
    use crate::report::Severity;

    fn app(name: &str, path: &str) -> String {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: https://github.com/acme/gitops\n    targetRevision: main\n    path: {path}\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {name}\n  syncPolicy:\n    syncOptions: [CreateNamespace=true]\n"
        )
    }

    const KUSTOMIZATION: &str = "resources:\n  - cm.yaml\n";

    /// The analysis of `head` against `base` (or alone) in the repository at `dir`, as the PR
    /// check (or `capstan check`) runs it.
    fn analyze_change(
        dir: &std::path::Path,
        base: Option<git2::Oid>,
        head: git2::Oid,
        mode: BaseRenders,
    ) -> Analysis {
        let git = GitRepo::open(dir).unwrap();
        let base_fs = base.map(|b| git.tree_fs(b).unwrap());
        let head_fs = git.tree_fs(head).unwrap();
        let policy_fs = base_fs.as_ref().unwrap_or(&head_fs);
        let engine = PolicyEngine::new(&PolicySources::read(policy_fs).unwrap()).unwrap();
        let cfg = DiscoveryConfig {
            repo_urls: vec!["https://github.com/acme/gitops".into()],
            ..DiscoveryConfig::default()
        };
        let renderer = Renderer::new(RenderConfig::default());
        let trees = Trees {
            base: base_fs.as_ref().map(|fs| fs as &dyn RepoFs),
            head: &head_fs,
        };
        analyze(&trees, &engine, &cfg, &renderer, mode).unwrap()
    }

    fn cm(value: &str) -> String {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  v: \"{value}\"\n")
    }

    #[test]
    fn only_affected_apps_are_judged_with_diffs_findings_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let repo = RepoBuilder::init(dir.path()).unwrap();
        let (shop, blog) = (app("shop", "shop/overlays/staging"), app("blog", "blog"));
        let (one, two) = (cm("1"), cm("2"));
        let base = repo
            .commit(
                "base",
                &[
                    Change::Write("argocd/shop.yaml", shop.as_bytes()),
                    Change::Write("argocd/blog.yaml", blog.as_bytes()),
                    Change::Write(
                        "shop/overlays/staging/kustomization.yaml",
                        KUSTOMIZATION.as_bytes(),
                    ),
                    Change::Write("shop/overlays/staging/cm.yaml", one.as_bytes()),
                    Change::Write("blog/kustomization.yaml", KUSTOMIZATION.as_bytes()),
                    Change::Write("blog/cm.yaml", one.as_bytes()),
                ],
            )
            .unwrap();
        // The head changes the shop's ConfigMap and adds a LoadBalancer Service (a deny).
        let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n  ports:\n    - port: 80\n";
        let head = repo
            .commit(
                "head",
                &[
                    Change::Write("shop/overlays/staging/cm.yaml", two.as_bytes()),
                    Change::Write("shop/overlays/staging/svc.yaml", svc.as_bytes()),
                    Change::Write(
                        "shop/overlays/staging/kustomization.yaml",
                        b"resources:\n  - cm.yaml\n  - svc.yaml\n",
                    ),
                ],
            )
            .unwrap();
        let analysis = analyze_change(dir.path(), Some(base), head, BaseRenders::Render);
        assert_eq!(analysis.total_apps, 2);
        let names: Vec<&str> = analysis.apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, vec!["shop"]);

        let sections = app_sections(&analysis);
        let shop = &sections[0];
        assert_eq!(shop.environment.as_deref(), Some("staging"));
        assert_eq!(shop.diff.count(crate::diff::ObjectChangeKind::Changed), 1);
        assert_eq!(shop.diff.count(crate::diff::ObjectChangeKind::Added), 1);
        assert!(shop.diff.reasons[0].contains("shop/overlays/staging/cm.yaml"));
        let deny = shop
            .findings
            .iter()
            .find(|f| f.rule_id == "service-exposure")
            .unwrap();
        assert_eq!(deny.severity, Severity::Deny);
        assert_eq!(deny.file.as_deref(), Some("shop/overlays/staging/svc.yaml"));
        assert_eq!(deny.line, Some(6));
        // Rendered without a namespace: ArgoCD applies the destination namespace.
        assert_eq!(deny.object, "Service web");
        assert!(deny.message.contains("(at spec.type)"), "{}", deny.message);

        // Without a base every app is judged, and nothing is diffed against a base.
        let all = analyze_change(dir.path(), None, head, BaseRenders::Render);
        assert_eq!(all.apps.len(), 2);
        assert!(all.apps.iter().all(|a| a.base.is_none()));
    }

    /// A repository that already breaks a rule: a change that adds nothing passes with the old
    /// finding listed apart; a change that adds a finding fails naming only it; with
    /// `policy.gate: all` the old finding counts again.
    #[test]
    fn only_findings_the_change_brings_count_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let repo = RepoBuilder::init(dir.path()).unwrap();
        let shop = app("shop", "shop");
        let lb = |name: &str| {
            format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  type: LoadBalancer\n  ports:\n    - port: 80\n"
            )
        };
        let base = repo
            .commit(
                "base",
                &[
                    Change::Write("argocd/shop.yaml", shop.as_bytes()),
                    Change::Write(
                        "shop/kustomization.yaml",
                        b"resources:\n  - cm.yaml\n  - old.yaml\n",
                    ),
                    Change::Write("shop/cm.yaml", cm("1").as_bytes()),
                    Change::Write("shop/old.yaml", lb("old").as_bytes()),
                ],
            )
            .unwrap();
        // Only the ConfigMap changes; the old LoadBalancer also moves to another file.
        let quiet = repo
            .commit(
                "quiet",
                &[
                    Change::Write("shop/cm.yaml", cm("2").as_bytes()),
                    Change::Delete("shop/old.yaml"),
                    Change::Write("shop/moved.yaml", lb("old").as_bytes()),
                    Change::Write(
                        "shop/kustomization.yaml",
                        b"resources:\n  - cm.yaml\n  - moved.yaml\n",
                    ),
                ],
            )
            .unwrap();
        let exposure = |fs: &[Finding]| {
            fs.iter()
                .filter(|f| f.rule == "service-exposure")
                .map(|f| {
                    f.object
                        .as_ref()
                        .map(|o| o.name.clone())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
        };
        for mode in [BaseRenders::Render, BaseRenders::Skip] {
            let a = analyze_change(dir.path(), Some(base), quiet, mode);
            assert!(exposure(&a.policy.findings).is_empty(), "{mode:?}");
            assert_eq!(exposure(&a.policy.preexisting), vec!["old"], "{mode:?}");
            assert!(a.policy.passed());
            let shop = &app_sections(&a)[0];
            assert!(
                shop.findings
                    .iter()
                    .all(|f| f.rule_id != "service-exposure")
            );
            assert_eq!(shop.preexisting.len(), a.policy.preexisting.len());
        }

        let adds = repo
            .commit(
                "adds one",
                &[
                    Change::Write("shop/new.yaml", lb("new").as_bytes()),
                    Change::Write(
                        "shop/kustomization.yaml",
                        b"resources:\n  - cm.yaml\n  - moved.yaml\n  - new.yaml\n",
                    ),
                ],
            )
            .unwrap();
        let a = analyze_change(dir.path(), Some(quiet), adds, BaseRenders::Skip);
        assert_eq!(exposure(&a.policy.findings), vec!["new"]);
        assert_eq!(exposure(&a.policy.preexisting), vec!["old"]);
        assert!(!a.policy.passed());

        // Without a base there is nothing to compare with: everything counts.
        let alone = analyze_change(dir.path(), None, quiet, BaseRenders::Skip);
        assert_eq!(exposure(&alone.policy.findings), vec!["old"]);
        assert!(alone.policy.preexisting.is_empty());

        // `policy.gate: all` (read from the base, like every setting) counts the old one too.
        let strict = repo
            .commit(
                "strict",
                &[Change::Write(".capstan.yaml", b"policy:\n  gate: all\n")],
            )
            .unwrap();
        let touch = repo
            .commit(
                "touch",
                &[Change::Write("shop/cm.yaml", cm("3").as_bytes())],
            )
            .unwrap();
        let a = analyze_change(dir.path(), Some(strict), touch, BaseRenders::Skip);
        assert_eq!(exposure(&a.policy.findings), vec!["new", "old"]);
        assert!(a.policy.preexisting.is_empty());
    }

    #[test]
    fn the_environment_label_wins_over_the_path() {
        let mut a = crate::apps::App {
            name: "x".into(),
            namespace: None,
            project: "default".into(),
            destination: Default::default(),
            sources: Vec::new(),
            defined_in: crate::repo_fs::RepoPath::new("a.yaml").unwrap(),
            generated_by: None,
            parent: None,
            ignore_differences: Vec::new(),
            manifest: serde_json::json!({"metadata": {"labels": {ENVIRONMENT_LABEL: "prod"}}}),
        };
        assert_eq!(environment_of(&a).as_deref(), Some("prod"));
        a.manifest = serde_json::json!({});
        assert_eq!(environment_of(&a), None);
    }

    /// Exceptions the change writes into its own `.capstan.yaml` are listed, never applied: the
    /// LoadBalancer's deny stays although the head's settings list an exception for it.
    #[test]
    fn settings_exceptions_the_change_adds_are_listed_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let repo = RepoBuilder::init(dir.path()).unwrap();
        let shop = app("shop", "shop");
        let base = repo
            .commit(
                "base",
                &[
                    Change::Write("argocd/shop.yaml", shop.as_bytes()),
                    Change::Write("shop/kustomization.yaml", KUSTOMIZATION.as_bytes()),
                    Change::Write("shop/cm.yaml", cm("1").as_bytes()),
                    Change::Write(".capstan.yaml", b"policy:\n  waivable: [image-tag]\n"),
                ],
            )
            .unwrap();
        let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n  ports:\n    - port: 80\n";
        let head = repo
            .commit(
                "head",
                &[
                    Change::Write("shop/svc.yaml", svc.as_bytes()),
                    Change::Write(
                        "shop/kustomization.yaml",
                        b"resources:\n  - cm.yaml\n  - svc.yaml\n",
                    ),
                    Change::Write(
                        ".capstan.yaml",
                        b"policy:\n  waivable: [image-tag, service-exposure]\n  exceptions:\n    - {rule: service-exposure, objects: ['*'], reason: mine}\n",
                    ),
                ],
            )
            .unwrap();
        let analysis = analyze_change(dir.path(), Some(base), head, BaseRenders::Skip);
        let f = &analysis.policy.findings;
        assert!(f.iter().any(|f| f.rule == "service-exposure"), "{f:#?}");
        let added: Vec<&str> = f
            .iter()
            .filter(|f| f.rule == RULE_WAIVER_ADDED)
            .map(|f| f.message.as_str())
            .collect();
        assert_eq!(added.len(), 2, "{added:#?}");
        assert!(added[0].contains("policy.exceptions entry for rule \"service-exposure\""));
        assert!(added[1].contains("adds service-exposure to policy.waivable"));
        assert!(analysis.policy.suppressed.is_empty());
    }
}
