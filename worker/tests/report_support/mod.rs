//! Fixture builders and a small markdown structure checker shared by the report tests.
#![allow(clippy::unwrap_used, dead_code)]

pub mod hostile;

use capstan_worker::diff::{AppDiff, ObjectChange, ObjectChangeKind, SideProblem};
use capstan_worker::objects::ObjectId;
use capstan_worker::report::{AppSection, ArgoStatus, ReportFinding, RunReport, Severity};

pub fn id(kind: &str, ns: &str, name: &str) -> ObjectId {
    ObjectId {
        group: if kind == "Deployment" {
            "apps".into()
        } else {
            String::new()
        },
        kind: kind.into(),
        namespace: Some(ns.into()),
        name: name.into(),
    }
}

pub fn change(kind: ObjectChangeKind, obj: ObjectId, diff: &str) -> ObjectChange {
    ObjectChange {
        id: obj,
        change: kind,
        diff: diff.into(),
        secret_keys: Vec::new(),
    }
}

pub fn app(name: &str, env: Option<&str>, changes: Vec<ObjectChange>) -> AppSection {
    AppSection {
        name: name.into(),
        environment: env.map(String::from),
        diff: AppDiff {
            app: name.into(),
            reasons: vec![format!("inputs changed: apps/{name}/deployment.yaml")],
            changes,
            problems: Vec::new(),
            notes: Vec::new(),
        },
        findings: Vec::new(),
        preexisting: Vec::new(),
        argocd: None,
        render_error: None,
        live_diff: None,
    }
}

pub fn finding(
    sev: Severity,
    rule: &str,
    file: Option<&str>,
    line: Option<u32>,
    msg: &str,
) -> ReportFinding {
    ReportFinding {
        rule_id: rule.into(),
        severity: sev,
        object: "apps/Deployment shop/web".into(),
        file: file.map(String::from),
        line,
        message: msg.into(),
    }
}

pub fn report(apps: Vec<AppSection>) -> RunReport {
    RunReport {
        repo: "acme/gitops".into(),
        pr: 42,
        head_sha: "0123456789abcdef0123456789abcdef01234567".into(),
        run_url: "https://capstan.example.test/runs/17".into(),
        held_by: None,
        limits: Vec::new(),
        apps,
    }
}

/// The typical report used by the snapshots: a changed app with a warning, a new app with a
/// deny, an app that failed to render, ArgoCD answers and one ArgoCD outage.
pub fn typical() -> RunReport {
    let mut web = app(
        "shop-web",
        Some("production"),
        vec![change(
            ObjectChangeKind::Changed,
            id("Deployment", "shop", "web"),
            "@@ -5,7 +5,7 @@\n spec:\n-  replicas: 2\n+  replicas: 3\n   template:\n",
        )],
    );
    web.findings.push(finding(
        Severity::Warn,
        "resources.limits",
        Some("apps/shop/web/deployment.yaml"),
        Some(12),
        "container web has no memory limit",
    ));
    web.argocd = Some(ArgoStatus::Reported {
        sync: Some("OutOfSync".into()),
        health: Some("Healthy".into()),
        dry_run: Some("dry run: 1 configured".into()),
    });
    let mut api = app(
        "shop-api",
        Some("staging"),
        vec![
            change(
                ObjectChangeKind::Added,
                id("Service", "shop", "api"),
                "+apiVersion: v1\n+kind: Service\n+metadata:\n+  name: api\n",
            ),
            change(
                ObjectChangeKind::Removed,
                id("ConfigMap", "shop", "api-old"),
                "-apiVersion: v1\n-kind: ConfigMap\n",
            ),
        ],
    );
    api.findings.push(finding(
        Severity::Deny,
        "no-latest-tag",
        Some("apps/shop/api/deployment.yaml"),
        Some(20),
        "image shop/api:latest uses the latest tag",
    ));
    api.argocd = Some(ArgoStatus::Unreachable("connection refused".into()));
    let mut broken = app("billing", None, Vec::new());
    broken.render_error =
        Some("kustomize: accumulating resources: missing.yaml: no such file".into());
    broken.diff.problems.push(SideProblem {
        side: "head".into(),
        status: "failed".into(),
        message: "kustomize: accumulating resources".into(),
    });
    report(vec![web, api, broken])
}

/// Structure of one comment part as GitHub's markdown would see it.
#[derive(Debug, Default)]
pub struct Structure {
    pub details_open: usize,
    pub details_close: usize,
    /// Deepest `<details>` nesting seen outside code.
    pub max_depth: usize,
    /// `<details>` closed before opening, or a fence left open at the end.
    pub unbalanced: bool,
    /// Text outside fenced code blocks and after the opening line of an HTML comment block (that
    /// line stays, so a stray `<!--` is still seen).
    pub outside_code: String,
}

/// Walks `body` the way CommonMark does for fenced blocks (a fence closes only with at least as
/// many of the same character and nothing else on the line) and for HTML comment blocks (a line
/// starting with `<!--` opens one, which ends with the first line holding `-->`; no fence opens
/// inside it), and counts `<details>` outside code.
pub fn structure(body: &str) -> Structure {
    let mut s = Structure::default();
    let mut fence: Option<(char, usize)> = None;
    let mut html_comment = false;
    let mut depth: isize = 0;
    for line in body.split('\n') {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent.min(line.len())..];
        if html_comment {
            html_comment = !line.contains("-->");
            continue;
        }
        if let Some((ch, len)) = fence {
            let run = rest.chars().take_while(|c| *c == ch).count();
            if indent <= 3 && run >= len && rest[run..].trim().is_empty() {
                fence = None;
            }
            continue;
        }
        if indent <= 3 {
            for ch in ['`', '~'] {
                let run = rest.chars().take_while(|c| *c == ch).count();
                if run >= 3 && !(ch == '`' && rest[run..].contains('`')) {
                    fence = Some((ch, run));
                }
            }
            if fence.is_some() {
                continue;
            }
            // The start line may close the block itself, even overlapping the opener (`<!-->`).
            html_comment = rest.starts_with("<!--") && !rest[2..].contains("-->");
        }
        s.outside_code.push_str(line);
        s.outside_code.push('\n');
        for _ in 0..line.matches("<details>").count() {
            depth += 1;
            s.details_open += 1;
            s.max_depth = s.max_depth.max(depth as usize);
        }
        for _ in 0..line.matches("</details>").count() {
            depth -= 1;
            s.details_close += 1;
            if depth < 0 {
                s.unbalanced = true;
            }
        }
    }
    if fence.is_some() || depth != 0 {
        s.unbalanced = true;
    }
    s
}

/// Our own tags; any other `<` outside code came from user text and was not escaped.
pub fn stray_html(outside: &str) -> Vec<String> {
    let allowed = [
        "<details>",
        "</details>",
        "<summary>",
        "</summary>",
        "<b>",
        "</b>",
        "<!-- capstan:report pr=",
    ];
    let mut bad = Vec::new();
    for (i, _) in outside.match_indices('<') {
        let rest = &outside[i..];
        if !allowed.iter().any(|a| rest.starts_with(a)) {
            bad.push(rest.chars().take(30).collect());
        }
    }
    bad
}
