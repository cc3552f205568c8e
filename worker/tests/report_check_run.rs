//! The check run's conclusion, title, summary and annotation batches.
#![allow(clippy::unwrap_used)]

mod report_support;

use capstan_worker::diff::{ObjectChangeKind, SideProblem};
use capstan_worker::report::Severity;
use capstan_worker::report::{
    ANNOTATION_BATCH, AnnotationLevel, CHECK_SUMMARY_LIMIT, Conclusion, check_run,
};
use report_support::*;

fn clean_app(name: &str) -> capstan_worker::report::AppSection {
    app(
        name,
        Some("staging"),
        vec![change(
            ObjectChangeKind::Changed,
            id("Service", "x", name),
            "-a: 1\n+a: 2\n",
        )],
    )
}

#[test]
fn typical_check_run_snapshot() {
    insta::assert_json_snapshot!("typical_check_run", check_run(&typical()));
}

#[test]
fn clean_report_succeeds() {
    let out = check_run(&report(vec![clean_app("a")]));
    assert_eq!(out.conclusion, Conclusion::Success);
    assert!(out.annotation_batches.is_empty());
    assert_eq!(out.title, "1 app, policy passed");
}

#[test]
fn no_apps_succeeds() {
    assert_eq!(
        check_run(&report(Vec::new())).conclusion,
        Conclusion::Success
    );
}

#[test]
fn warnings_only_are_neutral() {
    let mut a = clean_app("a");
    a.findings.push(finding(
        Severity::Warn,
        "w",
        Some("a.yaml"),
        Some(2),
        "careful",
    ));
    let out = check_run(&report(vec![a]));
    assert_eq!(out.conclusion, Conclusion::Neutral);
    assert_eq!(
        out.annotation_batches[0][0].annotation_level,
        AnnotationLevel::Warning
    );
}

#[test]
fn any_deny_fails() {
    let mut a = clean_app("a");
    a.findings
        .push(finding(Severity::Warn, "w", None, None, "careful"));
    let mut b = clean_app("b");
    b.findings.push(finding(
        Severity::Deny,
        "d",
        Some("apps/b/x.yaml"),
        Some(7),
        "no",
    ));
    let out = check_run(&report(vec![a, b]));
    assert_eq!(out.conclusion, Conclusion::Failure);
    // Only the finding with a file is annotated, at its file and line.
    let all: Vec<_> = out.annotation_batches.concat();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].path, "apps/b/x.yaml");
    assert_eq!((all[0].start_line, all[0].end_line), (7, 7));
    assert_eq!(all[0].annotation_level, AnnotationLevel::Failure);
    assert!(all[0].title.contains('d'));
    assert!(all[0].message.ends_with("no"));
}

#[test]
fn render_error_fails_whether_given_or_from_the_diff() {
    let mut a = clean_app("a");
    a.render_error = Some("boom".into());
    assert_eq!(check_run(&report(vec![a])).conclusion, Conclusion::Failure);

    let mut b = clean_app("b");
    b.diff.problems.push(SideProblem {
        side: "head".into(),
        status: "failed".into(),
        message: "boom".into(),
    });
    let out = check_run(&report(vec![b]));
    assert_eq!(out.conclusion, Conclusion::Failure);
    assert!(out.title.contains("1 render error"), "{}", out.title);

    // A failure only at base does not fail the run (the PR may be the repair).
    let mut c = clean_app("c");
    c.diff.problems.push(SideProblem {
        side: "base".into(),
        status: "failed".into(),
        message: "old breakage".into(),
    });
    assert_eq!(check_run(&report(vec![c])).conclusion, Conclusion::Success);
}

#[test]
fn hold_fails_until_unheld() {
    let mut r = report(vec![clean_app("a")]);
    r.held_by = Some("alice".into());
    let out = check_run(&r);
    assert_eq!(out.conclusion, Conclusion::Failure);
    assert!(out.title.starts_with("On hold"));
    r.held_by = None;
    assert_eq!(check_run(&r).conclusion, Conclusion::Success);
}

#[test]
fn annotations_come_in_batches_of_fifty() {
    let mut a = clean_app("a");
    for i in 0..120 {
        a.findings.push(finding(
            Severity::Deny,
            "r",
            Some("f.yaml"),
            Some(i + 1),
            "m",
        ));
    }
    // No line: annotated at line 1.
    a.findings
        .push(finding(Severity::Warn, "r", Some("g.yaml"), None, "m"));
    let out = check_run(&report(vec![a]));
    let sizes: Vec<usize> = out.annotation_batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![ANNOTATION_BATCH, ANNOTATION_BATCH, 21]);
    let last = out.annotation_batches[2].last().unwrap();
    assert_eq!((last.path.as_str(), last.start_line), ("g.yaml", 1));
    // Order is preserved across batches.
    assert_eq!(out.annotation_batches[1][0].start_line, 51);
}

#[test]
fn summary_of_many_apps_stays_within_the_limit() {
    let apps = (0..5000)
        .map(|i| {
            clean_app(&format!(
                "an-app-with-a-long-descriptive-name-number-{i:05}"
            ))
        })
        .collect();
    let out = check_run(&report(apps));
    assert!(
        out.summary.len() <= CHECK_SUMMARY_LIMIT,
        "{}",
        out.summary.len()
    );
    assert!(out.summary.contains("more apps; see the full report"));
    assert!(out.title.len() <= 255);
}

#[test]
fn annotation_title_and_message_are_bounded() {
    let mut a = clean_app(&"n".repeat(400));
    let long = "r".repeat(1000);
    a.findings.push(finding(
        Severity::Deny,
        &long,
        Some("f.yaml"),
        Some(0),
        &"m".repeat(100_000),
    ));
    let out = check_run(&report(vec![a]));
    let ann = &out.annotation_batches[0][0];
    assert!(ann.title.len() <= 255, "{}", ann.title.len());
    assert!(ann.message.len() < 10_000);
    assert_eq!(ann.start_line, 1, "line 0 is not a line");
}

#[test]
fn an_annotation_about_no_object_is_the_message_alone() {
    let mut a = clean_app("(repository)");
    let mut f = finding(
        Severity::Deny,
        "capstan-settings-invalid",
        Some(".capstan.yaml"),
        Some(3),
        "unknown key `promtion`",
    );
    f.object.clear();
    a.findings.push(f);
    let out = check_run(&report(vec![a]));
    assert_eq!(
        out.annotation_batches[0][0].message,
        "unknown key `promtion`"
    );
}
