//! Nothing unrendered may pass: an app Capstan cannot render (Jsonnet reading the commit being
//! synced through `$ARGOCD_APP_REVISION`, a config management plugin, a chart from a helm repository, a multi-source app partly from elsewhere) is "not
//! checked" with its reason, a change to its files still makes it affected, the diff says so, and
//! the check conclusion is neutral (or failure when `render.notChecked: failure`), never success.
#![allow(clippy::unwrap_used)]

use capstan_worker::apps::affected::affected_apps;
use capstan_worker::apps::{DiscoveryConfig, RenderedApp, Snapshot};
use capstan_worker::diff::{DiffReport, diff_app};
use capstan_worker::git::GitRepo;
use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::render::{NotCheckedConclusion, RenderConfig, Renderer};
use capstan_worker::repo_fs::RepoFs;
use capstan_worker::report::{
    AppSection, Conclusion, RunReport, check_run, check_run_with, render_comment,
};

const URL: &str = "https://example.com/gitops";

fn cfg() -> DiscoveryConfig {
    DiscoveryConfig {
        repo_urls: vec![URL.into()],
        ..DiscoveryConfig::default()
    }
}

fn app(name: &str, source: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\nspec:\n  project: default\n{source}  destination:\n    namespace: {name}\n"
    )
}

fn path_source(path: &str, extra: &str) -> String {
    format!("  source:\n    repoURL: {URL}\n    targetRevision: HEAD\n    path: {path}\n{extra}")
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n";

/// Base and head commits of a repository with a Jsonnet app, a plugin app, a chart from a helm
/// repository with a value file from this repository, a partly external multi-source app and a
/// plain app; the head changes a file of each of the first four.
fn repo(dir: &std::path::Path) -> (GitRepo, git2::Oid, git2::Oid) {
    let b = RepoBuilder::init(dir).unwrap();
    let jsonnet = app(
        "jsonnet-app",
        &path_source(
            "jsonnet",
            "    directory:\n      jsonnet:\n        extVars:\n        - name: rev\n          value: $ARGOCD_APP_REVISION\n",
        ),
    );
    let plugin = app(
        "plugin-app",
        &path_source("plugin", "    plugin:\n      name: sops\n"),
    );
    let chart = app(
        "chart-app",
        &format!(
            "  sources:\n  - repoURL: https://charts.example.com\n    chart: web\n    targetRevision: 1.0.0\n    helm:\n      valueFiles:\n      - $values/values/web.yaml\n  - repoURL: {URL}\n    targetRevision: HEAD\n    ref: values\n"
        ),
    );
    let multi = app(
        "multi-app",
        &format!(
            "  sources:\n  - repoURL: {URL}\n    targetRevision: HEAD\n    path: multi\n  - repoURL: https://github.com/someone/else\n    path: x\n"
        ),
    );
    let plain = app("plain-app", &path_source("plain", ""));
    let base = b
        .commit(
            "base",
            &[
                Change::Write("argocd/jsonnet.yaml", jsonnet.as_bytes()),
                Change::Write("argocd/plugin.yaml", plugin.as_bytes()),
                Change::Write("argocd/chart.yaml", chart.as_bytes()),
                Change::Write("argocd/multi.yaml", multi.as_bytes()),
                Change::Write("argocd/plain.yaml", plain.as_bytes()),
                Change::Write("jsonnet/main.jsonnet", b"{ a: 1 }\n"),
                Change::Write("plugin/secrets.enc.yaml", b"k: ENC[1]\n"),
                Change::Write("values/web.yaml", b"replicas: 1\n"),
                Change::Write("multi/cm.yaml", CM.as_bytes()),
                Change::Write("plain/cm.yaml", CM.as_bytes()),
            ],
        )
        .unwrap();
    let head = b
        .commit(
            "head",
            &[
                Change::Write("jsonnet/main.jsonnet", b"{ a: 2 }\n"),
                Change::Write("plugin/secrets.enc.yaml", b"k: ENC[2]\n"),
                Change::Write("values/web.yaml", b"replicas: 2\n"),
                Change::Write("multi/cm.yaml", CM.replace("k: v", "k: w").as_bytes()),
            ],
        )
        .unwrap();
    (GitRepo::open(dir).unwrap(), base, head)
}

fn snapshots<'a>(
    base: &'a dyn RepoFs,
    head: &'a dyn RepoFs,
    r: &Renderer,
) -> (Snapshot<'a>, Snapshot<'a>) {
    (
        Snapshot::build(base, &cfg(), r),
        Snapshot::build(head, &cfg(), r),
    )
}

#[test]
fn unrenderable_apps_are_not_checked_and_their_changes_affect_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (git, base, head) = repo(tmp.path());
    let (base_fs, head_fs) = (git.tree_fs(base).unwrap(), git.tree_fs(head).unwrap());
    let r = Renderer::new(RenderConfig::default());
    let (b, h) = snapshots(&base_fs, &head_fs, &r);

    let affected: Vec<String> = affected_apps(&b, &h).into_iter().map(|a| a.name).collect();
    assert_eq!(
        affected,
        vec!["chart-app", "jsonnet-app", "multi-app", "plugin-app"],
        "a change to files an app reads affects it even when it cannot be rendered"
    );

    let reason = |name: &str| h.render(&r, name).unwrap().not_checked();
    assert!(
        reason("jsonnet-app")
            .unwrap()
            .contains("$ARGOCD_APP_REVISION"),
        "{:?}",
        reason("jsonnet-app")
    );
    assert!(
        reason("plugin-app")
            .unwrap()
            .contains("plugins are not run"),
        "{:?}",
        reason("plugin-app")
    );
    assert!(
        reason("chart-app").unwrap().contains("charts.example.com"),
        "{:?}",
        reason("chart-app")
    );
    let multi = h.render(&r, "multi-app").unwrap();
    assert!(
        matches!(&multi.outcome, RenderedApp::Rendered(out) if out.objects.len() == 1),
        "the local part still renders: {:?}",
        multi.outcome
    );
    assert!(
        multi.not_checked().unwrap().contains("not this repository"),
        "{:?}",
        multi.not_checked()
    );
    assert_eq!(reason("plain-app"), None);

    // The diff of each affected app says "not checked"; the partly rendered one still shows its
    // objects' changes.
    let report = DiffReport {
        apps: affected
            .iter()
            .map(|n| diff_app(n, b.render(&r, n).as_ref(), h.render(&r, n).as_ref()))
            .collect(),
    };
    assert!(report.has_not_checked());
    assert!(!report.has_failures());
    assert!(report.apps.iter().all(|a| a.not_checked()), "{report:#?}");
    let multi_diff = report.apps.iter().find(|a| a.app == "multi-app").unwrap();
    assert_eq!(multi_diff.changes.len(), 1);
    let text = report.to_text();
    assert!(text.contains("$ARGOCD_APP_REVISION"), "{text}");
    for s in [report.to_markdown(), report.to_json()] {
        assert!(
            s.contains("not checked") || s.contains("not_checked"),
            "{s}"
        );
    }
}

fn section(name: &str, diff: capstan_worker::diff::AppDiff) -> AppSection {
    AppSection {
        name: name.into(),
        environment: None,
        diff,
        findings: Vec::new(),
        preexisting: Vec::new(),
        argocd: None,
        render_error: None,
        live_diff: None,
    }
}

#[test]
fn the_check_is_never_success_when_an_affected_app_was_not_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let (git, base, head) = repo(tmp.path());
    let (base_fs, head_fs) = (git.tree_fs(base).unwrap(), git.tree_fs(head).unwrap());
    let r = Renderer::new(RenderConfig::default());
    let (b, h) = snapshots(&base_fs, &head_fs, &r);
    let diff = diff_app(
        "jsonnet-app",
        b.render(&r, "jsonnet-app").as_ref(),
        h.render(&r, "jsonnet-app").as_ref(),
    );
    let report = RunReport {
        repo: "acme/gitops".into(),
        pr: 7,
        head_sha: "a".repeat(40),
        run_url: "https://capstan.example/runs/1".into(),
        held_by: None,
        limits: Vec::new(),
        apps: vec![section("jsonnet-app", diff)],
    };
    assert_eq!(report.not_checked_count(), 1);
    let neutral = check_run(&report);
    assert_eq!(neutral.conclusion, Conclusion::Neutral);
    assert!(neutral.title.contains("1 not checked"), "{}", neutral.title);
    assert!(
        neutral.summary.contains("| not checked |"),
        "{}",
        neutral.summary
    );
    let failing = check_run_with(&report, NotCheckedConclusion::Failure);
    assert_eq!(failing.conclusion, Conclusion::Failure);

    let comment = render_comment(&report);
    let body = &comment.parts[0].body;
    assert!(body.contains("⚪ not checked"), "{body}");
    assert!(body.contains("**1 not checked**"), "{body}");
    assert!(body.contains("**head not checked**"), "{body}");
    assert!(body.contains("$ARGOCD_APP_REVISION"), "{body}");
}
