//! Markdown injection: text from the repository or the cluster cannot break the comment's layout,
//! mention anyone, forge the marker or put a slash-command at a line start.
#![allow(clippy::unwrap_used)]

mod report_support;

use capstan_worker::commands::{CommandConfig, parse_comment};
use capstan_worker::diff::{ObjectChangeKind, SideProblem};
use capstan_worker::report::{
    ArgoStatus, RenderedComment, Severity, check_run, parse_marker, render_comment,
    render_comment_within,
};
use report_support::*;

/// Every hostile string we know of, in one.
const EVIL: &str = "x ``` y ```` z\n</details>\n<details><summary>pwn</summary>\n@org/team and @user please look, fixes #1 and acme/other#2\n<!-- capstan:report pr=42 part=1 -->\n/capstan promote production\n  /capstan hold\r\n/diff\n<img src=x onerror=alert(1)>\n[click](https://evil.test) | table | break |\n~~~\n";

fn hostile_report() -> capstan_worker::report::RunReport {
    hostile_report_with(EVIL)
}

/// A report where every text that comes from the repository or the cluster is `evil`.
fn hostile_report_with(evil: &str) -> capstan_worker::report::RunReport {
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

trait Placeholder {
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

fn assert_safe(rendered: &RenderedComment, apps: usize) {
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

#[test]
fn hostile_values_cannot_break_the_comment() {
    let r = hostile_report();
    let rendered = render_comment(&r);
    assert_eq!(rendered.parts.len(), 1);
    assert_safe(&rendered, 2);
}

#[test]
fn hostile_values_cannot_break_split_parts() {
    // Several hostile apps whose diffs are large enough to be folded and split.
    let mut r = hostile_report();
    let template = r.apps[0].clone();
    for i in 0..5 {
        let mut a = template.clone();
        // Short names, so that the dashboard links leave room for folded diffs.
        a.name = format!("evil-{i}");
        for c in &mut a.diff.changes {
            c.diff = c.diff.repeat(30);
        }
        r.apps.push(a);
    }
    let rendered = render_comment_within(&r, 4096);
    assert!(rendered.parts.len() > 2, "{} parts", rendered.parts.len());
    for p in &rendered.parts {
        assert!(p.body.len() <= 4096);
    }
    assert!(
        rendered
            .parts
            .iter()
            .any(|p| p.body.contains("full diff on the dashboard"))
    );
    assert_safe(&rendered, 7);
}

#[test]
fn hostile_diff_keeps_its_content_inside_a_longer_fence() {
    let r = hostile_report();
    let body = &render_comment(&r).parts[0].body;
    // The four-backtick run inside forces a fence of at least five.
    assert!(body.contains("`````diff\n"));
    // The content is still there for the reader, only neutralised.
    assert!(body.contains("+x ``` y ```` z"));
}

#[test]
fn hostile_values_in_check_run_summary_are_escaped() {
    let out = check_run(&hostile_report());
    let s = structure(&out.summary);
    assert!(!s.unbalanced);
    assert!(!out.summary.contains("@user"));
    assert_eq!(stray_html(&out.summary), Vec::<String>::new());
    for line in out.summary.lines() {
        assert!(!line.trim_start().starts_with("/capstan"));
    }
}

/// Pieces hostile text is made of: fences of every length, details tags, mentions, references,
/// our own marker, command lines, HTML, links, table pipes, line ends and odd characters.
const FRAGMENTS: &[&str] = &[
    "`",
    "```",
    "````",
    "~~~",
    "</details>",
    "<details><summary>pwn</summary>",
    "@user",
    "@org/team",
    "fixes #1",
    "acme/other#2",
    "<!-- capstan:report pr=42 part=1 -->",
    "\n/capstan promote production\n",
    "\r\n/diff\n",
    "\n  /capstan hold",
    "<img src=x onerror=alert(1)>",
    "[click](https://evil.test)",
    "|",
    "\n",
    "\r",
    " ",
    "x",
    "é",
    "\u{202e}",
    "<",
    ">",
    "&",
    "<!--",
    "-->",
    "\t",
    "\\",
    "*",
    "_",
    "#",
];

proptest::proptest! {
    // `CAPSTAN_PROPTEST_CASES` runs it longer (the default keeps the suite fast).
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: std::env::var("CAPSTAN_PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(48),
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Whatever the repository's text is made of, the comment keeps its structure: one marker,
    /// balanced fences and details, no mention, reference, link, HTML or command outside code,
    /// in one part and when split into parts within a size limit.
    #[test]
    fn generated_hostile_text_cannot_break_the_comment(
        pieces in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 1..16)
    ) {
        let evil: String = pieces.concat();
        let r = hostile_report_with(&evil);
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
        let split = render_comment_within(&big, 4096);
        for p in &split.parts {
            proptest::prop_assert!(p.body.len() <= 4096, "part {} is {} bytes", p.number, p.body.len());
        }
        assert_safe(&split, 5);
    }
}
