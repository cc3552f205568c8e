//! The `capstan` check run's output: conclusion, title, summary and annotations.

use std::fmt::Write;

use serde::Serialize;

use super::markdown::{inline_max, truncate};
use super::{RunReport, Severity};
use crate::render::NotCheckedConclusion;

/// GitHub's limit for `output.summary`.
pub const CHECK_SUMMARY_LIMIT: usize = 65_535;
/// GitHub accepts at most 50 annotations per create/update request.
pub const ANNOTATION_BATCH: usize = 50;
const TITLE_MAX: usize = 255;
const ANNOTATION_MESSAGE_MAX: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    /// No deny, no render error, no warning, no hold.
    Success,
    /// Any deny finding, any render error, or a hold.
    Failure,
    /// Warnings only, or an affected app Capstan could not render (`render.notChecked:
    /// neutral`): worth a look, not blocking.
    Neutral,
}

/// The forge's annotation type: a report builds exactly what is sent.
pub use crate::forge::{Annotation, AnnotationLevel};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckRunOutput {
    pub conclusion: Conclusion,
    pub title: String,
    /// Markdown, at most [`CHECK_SUMMARY_LIMIT`] bytes.
    pub summary: String,
    /// Annotations in request-sized batches of at most [`ANNOTATION_BATCH`].
    pub annotation_batches: Vec<Vec<Annotation>>,
}

/// Builds the check-run output with the default `render.notChecked` (neutral).
pub fn check_run(report: &RunReport) -> CheckRunOutput {
    check_run_with(report, NotCheckedConclusion::Neutral)
}

/// Builds the check-run output. Findings without a file cannot be annotated (they appear in the
/// summary and the comment); a finding with a file but no line is annotated at line 1. An
/// affected app that was not checked makes the conclusion `not_checked` at least: never success.
pub fn check_run_with(report: &RunReport, not_checked: NotCheckedConclusion) -> CheckRunOutput {
    let deny = report.deny_count();
    let warn = report.warn_count();
    let errors = report.render_error_count();
    let unchecked = report.not_checked_count();
    let fails_unchecked = unchecked > 0 && not_checked == NotCheckedConclusion::Failure;
    // A bound that was hit always fails: what it left unchecked is unknown.
    let limited = !report.limit_lines().is_empty();
    let conclusion =
        if deny > 0 || errors > 0 || report.held_by.is_some() || fails_unchecked || limited {
            Conclusion::Failure
        } else if warn > 0 || unchecked > 0 {
            Conclusion::Neutral
        } else {
            Conclusion::Success
        };

    let title = title(report, deny, warn, errors, unchecked);
    let summary = summary(report);

    let annotations: Vec<Annotation> = report
        .apps
        .iter()
        .flat_map(|a| a.findings.iter().map(move |f| (a, f)))
        .filter_map(|(a, f)| {
            let path = f.file.clone()?;
            let line = f.line.unwrap_or(1).max(1);
            let (message, _) = truncate(&f.message, ANNOTATION_MESSAGE_MAX);
            let name = truncate(&a.name, 200).0;
            // " · " is 4 bytes; the title stays within 255 bytes (and so characters).
            let (t, _) = truncate(&f.rule_id, TITLE_MAX - name.len() - 4);
            Some(Annotation {
                path,
                start_line: line,
                end_line: line,
                annotation_level: match f.severity {
                    Severity::Deny => AnnotationLevel::Failure,
                    Severity::Warn => AnnotationLevel::Warning,
                },
                message: if f.object.is_empty() {
                    message.to_string()
                } else {
                    format!("{}: {message}", f.object)
                },
                title: format!("{name} · {t}"),
            })
        })
        .collect();
    let annotation_batches = annotations
        .chunks(ANNOTATION_BATCH)
        .map(<[Annotation]>::to_vec)
        .collect();

    CheckRunOutput {
        conclusion,
        title,
        summary,
        annotation_batches,
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn title(report: &RunReport, deny: usize, warn: usize, errors: usize, unchecked: usize) -> String {
    let mut parts = vec![plural(report.apps.len(), "app", "apps")];
    if errors > 0 {
        parts.push(plural(errors, "render error", "render errors"));
    }
    if unchecked > 0 {
        parts.push(format!("{unchecked} not checked"));
    }
    if deny > 0 {
        parts.push(format!("{deny} deny"));
    }
    if warn > 0 {
        parts.push(plural(warn, "warning", "warnings"));
    }
    if deny == 0 && warn == 0 && errors == 0 {
        parts.push("policy passed".into());
    }
    if !report.limit_lines().is_empty() {
        parts.insert(0, "not fully checked (limit reached)".into());
    }
    let mut t = parts.join(", ");
    if report.held_by.is_some() {
        t.insert_str(0, "On hold; ");
    }
    truncate(&t, TITLE_MAX).0.to_string()
}

fn summary(report: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Full report: {} (and the pull-request comment).\n",
        report.run_url
    );
    if let Some(who) = &report.held_by {
        let _ = writeln!(out, "**On hold** by {}.\n", inline_max(who, 256));
    }
    for line in report.limit_lines().into_iter().take(20) {
        let _ = writeln!(out, "- **{}**", inline_max(line, 1000));
    }
    out.push_str("| App | + | ~ | − | Deny | Warn | Render |\n|---|--:|--:|--:|--:|--:|---|\n");
    let footer_room = 200;
    let mut shown = 0;
    for a in &report.apps {
        use crate::diff::ObjectChangeKind as K;
        let row = format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            inline_max(&a.name, 256),
            a.diff.count(K::Added),
            a.diff.count(K::Changed),
            a.diff.count(K::Removed),
            a.deny_count(),
            a.warn_count(),
            if a.has_render_error() {
                "failed"
            } else if a.is_not_checked() {
                "not checked"
            } else {
                "ok"
            }
        );
        if out.len() + row.len() + footer_room > CHECK_SUMMARY_LIMIT {
            break;
        }
        out.push_str(&row);
        shown += 1;
    }
    if shown < report.apps.len() {
        let _ = writeln!(
            out,
            "\n…and {} more apps; see the full report.",
            report.apps.len() - shown
        );
    }
    out
}
