//! A report whose every repository- or cluster-sourced text is hostile, and the checks that such a
//! report's comment must pass. Shared by the injection property test and the report fuzz target
//! (worker/fuzz), so both judge the same invariants.

use super::*;
use capstan_worker::commands::{CommandConfig, parse_comment};
use capstan_worker::report::{
    RenderedComment, parse_marker, render_comment, render_comment_within,
};

/// A report where every text that comes from the repository or the cluster is `evil`.
pub fn hostile_report_with(evil: &str) -> capstan_worker::report::RunReport {
    let evil_line = evil.replace('\n', " ");
    let diff = format!(
        "@@ -1 +1 @@\n-a: 1\n+a: 2\n{}",
        evil.lines().map(|l| format!("+{l}\n")).collect::<String>()
    );
    // Raw lines too, as a malformed diff could carry them.
    let diff = format!("{diff}{evil}");
    let mut a = app(
        &format!("evil{evil_line}"),
        Some("@user"),
        vec![change(
            ObjectChangeKind::Changed,
            id("ConfigMap", "ns</details>", "@user"),
            &diff,
        )],
    );
    a.diff.change_secret_keys_placeholder(evil);
    a.findings
        .push(finding(Severity::Deny, evil, Some(evil), Some(3), evil));
    a.findings
        .push(finding(Severity::Warn, "@org/team", None, None, evil));
    a.argocd = Some(ArgoStatus::Reported {
        sync: Some(evil.into()),
        health: Some("@user".into()),
        dry_run: Some(evil.into()),
    });
    a.render_error = Some(evil.into());
    a.diff.reasons.push(evil.into());
    a.diff.notes.push(evil.into());
    a.diff.problems.push(SideProblem {
        side: "head".into(),
        status: "failed".into(),
        message: evil.into(),
    });
    let mut b = app("second", Some("production"), Vec::new());
    b.argocd = Some(ArgoStatus::Unreachable(evil.into()));
    let mut r = report(vec![a, b]);
    r.held_by = Some("@user".into());
    r
}

pub trait Placeholder {
    fn change_secret_keys_placeholder(&mut self, evil: &str);
}
impl Placeholder for capstan_worker::diff::AppDiff {
    /// Secret key names come from the repository too.
    fn change_secret_keys_placeholder(&mut self, evil: &str) {
        for c in &mut self.changes {
            c.secret_keys.push(format!("data.{evil}: changed"));
        }
    }
}

pub fn assert_safe(rendered: &RenderedComment, apps: usize) {
    let mut details = 0;
    for part in &rendered.parts {
        let body = &part.body;
        assert_eq!(parse_marker(body), Some((42, part.number)));
        assert_eq!(
            body.matches("capstan:report").count(),
            1,
            "marker forged in part {}",
            part.number
        );
        let s = structure(body);
        assert!(!s.unbalanced, "part {} unbalanced:\n{body}", part.number);
        assert_eq!(s.details_open, s.details_close);
        assert!(s.max_depth <= 1);
        details += s.details_open;
        assert!(
            !s.outside_code.contains("@user"),
            "raw mention outside code"
        );
        assert!(
            !s.outside_code.contains("@org/team"),
            "raw team mention outside code"
        );
        assert_eq!(
            stray_html(&s.outside_code),
            Vec::<String>::new(),
            "unescaped HTML"
        );
        assert!(!s.outside_code.contains("[click](https"), "link injected");
        // (`&#124;` is our own entity for `|`, hence the longer needle.)
        assert!(
            !s.outside_code.contains("fixes #1"),
            "issue reference outside code"
        );
        assert!(
            !s.outside_code.contains("other#2"),
            "cross-repo reference outside code"
        );
        for line in body.split('\n') {
            let t = line.trim_start();
            assert!(!t.starts_with("/capstan"), "command line: {line:?}");
            assert!(!t.starts_with("/diff"), "bare command line: {line:?}");
        }
        assert!(!body.contains('\r'));
        // The command parser (bare mode on, to be strict) finds nothing to run.
        let config = CommandConfig {
            bare: true,
            environments: ["production".to_string()].into(),
            ..CommandConfig::default()
        };
        assert_eq!(parse_comment(body, &config), Vec::new());
    }
    assert_eq!(details, apps, "one <details> per app");
}

/// The whole contract for one hostile text: safe in one part, and when a report of five such apps
/// is split to fit `limit` bytes, every part fits and stays safe.
pub fn assert_safe_whole_and_split(evil: &str, limit: usize) {
    let r = hostile_report_with(evil);
    assert_safe(&render_comment(&r), 2);
    let mut big = r.clone();
    let template = big.apps[0].clone();
    for i in 0..3 {
        let mut a = template.clone();
        a.name = format!("evil-{i}");
        for c in &mut a.diff.changes {
            c.diff = c.diff.repeat(20);
        }
        big.apps.push(a);
    }
    let split = render_comment_within(&big, limit);
    for p in &split.parts {
        assert!(
            p.body.len() <= limit,
            "part {} is {} bytes",
            p.number,
            p.body.len()
        );
    }
    assert_safe(&split, 5);
}
