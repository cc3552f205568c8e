//! `/runs` and `/runs/{id}`: the complete report of a run — every app, every object diff, every
//! finding — with an anchor per app (`#app-<name>`) that the PR comment links to, so a comment
//! that GitHub's size limit cut or split always has the whole story one click away.

use std::fmt::Write as _;

use capstan_worker::diff::{ObjectChange, ObjectChangeKind};
use capstan_worker::report::{AppSection, ArgoStatus, RunReport, Severity};
use capstan_worker::store::{RunFilter, RunRecord, RunStatus};
use serde::Deserialize;

use super::layout::{self, Tone, badge, esc};
use super::overview::{RUN_HEADERS, run_row, status_tone};
use super::{Dashboard, PageError};

#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    pub repo: Option<String>,
    pub pr: Option<u64>,
    pub status: Option<String>,
    pub limit: Option<usize>,
}

pub async fn build_list(d: &Dashboard, p: &ListParams) -> Result<Vec<RunRecord>, PageError> {
    let status = match p.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            RunStatus::parse(s)
                .ok_or_else(|| PageError::BadRequest(format!("unknown run status {s:?}")))?,
        ),
    };
    Ok(d.runs
        .list_runs(&RunFilter {
            repo: p.repo.clone().filter(|r| !r.is_empty()),
            pr: p.pr,
            status,
            limit: p.limit.unwrap_or(100).clamp(1, 1000),
        })
        .await?)
}

pub fn render_list(d: &Dashboard, runs: &[RunRecord], user: Option<&str>) -> String {
    let rows: Vec<String> = runs.iter().map(run_row).collect();
    let body = format!(
        "<h1>Runs</h1>{}",
        layout::table(&RUN_HEADERS, &rows, "No runs match.")
    );
    layout::page(&d.config, "Runs", "/", user, &body)
}

pub async fn build(d: &Dashboard, id: &str) -> Result<RunRecord, PageError> {
    let id: i64 = id
        .parse()
        .map_err(|_| PageError::NotFound(format!("run {id:?}")))?;
    d.runs
        .run(id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("run {id}")))
}

/// The id attribute of an app's section. Browsers percent-decode the fragment before matching,
/// so `#app-<url_fragment(name)>` (what the comment links to) lands here for any name.
pub fn section_id(name: &str) -> String {
    format!("app-{name}")
}

pub fn render(d: &Dashboard, r: &RunRecord, user: Option<&str>) -> String {
    let mut b = String::new();
    let short = r.head_sha.get(..7).unwrap_or(&r.head_sha);
    let _ = write!(
        b,
        "<h1>Run #{} · {} #{} <code>{}</code></h1>",
        r.id,
        esc(&r.repo),
        r.pr,
        esc(short)
    );
    let _ = write!(
        b,
        "<div class=\"table-wrap\"><table><tbody>\
         <tr><th scope=\"row\">Status</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Head</th><td><code>{}</code></td></tr>\
         <tr><th scope=\"row\">Base</th><td><code>{}</code></td></tr>\
         <tr><th scope=\"row\">Trigger</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Started</th><td>{}</td></tr>\
         <tr><th scope=\"row\">Duration</th><td>{}</td></tr>\
         </tbody></table></div>",
        badge(r.status.as_str(), status_tone(r.status.as_str())),
        esc(&r.head_sha),
        esc(r.base_sha.as_deref().unwrap_or("—")),
        esc(&r.trigger),
        layout::time(r.started_at),
        layout::duration(r.duration_ms()),
    );
    if let Some(e) = &r.error {
        b.push_str(&layout::notice(&format!("The run failed: {e}")));
    }
    match &r.report {
        None => b.push_str(&layout::notice(
            "This run stored no report (it is still running, was superseded, or failed before reporting).",
        )),
        Some(report) => report_html(&mut b, report),
    }
    layout::page(&d.config, &format!("Run #{}", r.id), "/", user, &b)
}

fn report_html(b: &mut String, report: &RunReport) {
    if let Some(by) = &report.held_by {
        b.push_str(&layout::notice(&format!(
            "On hold by {by}: the check stays failing until /capstan unhold."
        )));
    }
    b.push_str("<h2>Summary</h2>");
    let rows: Vec<String> = report.apps.iter().map(summary_row).collect();
    b.push_str(&layout::table(
        &[
            "App",
            "Environment",
            "Added",
            "Changed",
            "Removed",
            "Policy",
            "ArgoCD",
        ],
        &rows,
        "No app is affected by this change.",
    ));
    for app in &report.apps {
        app_section(b, app);
    }
}

fn policy_verdict(a: &AppSection) -> String {
    let (deny, warn) = (a.deny_count(), a.warn_count());
    if a.has_render_error() {
        badge("render error", Tone::Bad)
    } else if deny > 0 {
        badge(&format!("{deny} deny"), Tone::Bad)
    } else if warn > 0 {
        badge(&format!("{warn} warn"), Tone::Warn)
    } else {
        badge("pass", Tone::Good)
    }
}

fn argo_verdict(a: &AppSection) -> String {
    match &a.argocd {
        None => "<span class=\"muted\">not configured</span>".into(),
        Some(ArgoStatus::Unreachable(why)) => {
            format!("{} {}", badge("unreachable", Tone::Warn), esc(why))
        }
        Some(ArgoStatus::Reported {
            sync,
            health,
            dry_run,
        }) => {
            let mut parts = Vec::new();
            if let Some(s) = sync {
                parts.push(badge(s, status_tone(s)));
            }
            if let Some(h) = health {
                parts.push(badge(h, status_tone(h)));
            }
            if let Some(d) = dry_run {
                parts.push(esc(d));
            }
            parts.join(" ")
        }
    }
}

fn summary_row(a: &AppSection) -> String {
    format!(
        "<td><a href=\"#{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
        esc(&capstan_worker::report::markdown::url_fragment(
            &section_id(&a.name)
        )),
        esc(&a.name),
        esc(a.environment.as_deref().unwrap_or("—")),
        a.diff.count(ObjectChangeKind::Added),
        a.diff.count(ObjectChangeKind::Changed),
        a.diff.count(ObjectChangeKind::Removed),
        policy_verdict(a),
        argo_verdict(a),
    )
}

fn app_section(b: &mut String, a: &AppSection) {
    let _ = write!(
        b,
        "<section class=\"app\" id=\"{}\" aria-labelledby=\"h-{0}\"><h2 id=\"h-{0}\">{}</h2><p>{} · policy {} · ArgoCD {}</p>",
        esc(&section_id(&a.name)),
        esc(&a.name),
        esc(a.environment.as_deref().unwrap_or("no environment")),
        policy_verdict(a),
        argo_verdict(a),
    );
    if !a.diff.reasons.is_empty() {
        b.push_str("<p class=\"muted\">Compared because: ");
        b.push_str(&esc(&a.diff.reasons.join("; ")));
        b.push_str("</p>");
    }
    if let Some(e) = &a.render_error {
        b.push_str(&layout::notice(&format!("Render error: {e}")));
    }
    for p in &a.diff.problems {
        b.push_str(&layout::notice(&format!(
            "{} side {}: {}",
            p.side, p.status, p.message
        )));
    }
    for n in &a.diff.notes {
        let _ = write!(b, "<p class=\"muted\">Note: {}</p>", esc(n));
    }
    if !a.findings.is_empty() {
        b.push_str("<h3>Findings</h3>");
        let rows: Vec<String> = a
            .findings
            .iter()
            .map(|f| {
                let sev = match f.severity {
                    Severity::Deny => badge("deny", Tone::Bad),
                    Severity::Warn => badge("warn", Tone::Warn),
                };
                let at = match (&f.file, f.line) {
                    (Some(file), Some(line)) => format!("{file}:{line}"),
                    (Some(file), None) => file.clone(),
                    _ => "—".into(),
                };
                format!(
                    "<td>{sev}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td>",
                    esc(&f.rule_id),
                    esc(&f.object),
                    esc(&at),
                    esc(&f.message)
                )
            })
            .collect();
        b.push_str(&layout::table(
            &["Severity", "Rule", "Object", "Where", "Message"],
            &rows,
            "",
        ));
    }
    if a.diff.changes.is_empty() {
        b.push_str("<p class=\"muted\">No object changes.</p>");
    } else {
        let _ = write!(b, "<h3>Object changes ({})</h3>", a.diff.changes.len());
        changes(b, &a.diff.changes);
    }
    if let Some(live) = &a.live_diff {
        if live.changes.is_empty() {
            b.push_str("<p class=\"muted\">Against the live cluster: the cluster already matches this head.</p>");
        } else {
            let _ = write!(
                b,
                "<h3>Against the live cluster ({}): what a sync of this head would change</h3>",
                live.changes.len()
            );
            changes(b, &live.changes);
        }
    }
    b.push_str("</section>");
}

fn changes(b: &mut String, list: &[ObjectChange]) {
    for c in list {
        let (word, tone) = match c.change {
            ObjectChangeKind::Added => ("added", Tone::Good),
            ObjectChangeKind::Removed => ("removed", Tone::Bad),
            ObjectChangeKind::Changed => ("changed", Tone::Warn),
        };
        let _ = write!(
            b,
            "<h4>{} <code>{}</code></h4>",
            badge(word, tone),
            esc(&c.id.to_string())
        );
        if !c.secret_keys.is_empty() {
            let _ = write!(
                b,
                "<p>Secret keys (values hidden): {}</p>",
                esc(&c.secret_keys.join(", "))
            );
        }
        diff_block(b, &c.diff);
    }
}

/// A unified diff with added, removed and hunk lines marked by class (and by their `+`/`-`
/// prefix, which stays, so the diff reads without colour).
fn diff_block(b: &mut String, diff: &str) {
    b.push_str("<pre class=\"diff\"><code>");
    for line in diff.lines() {
        let class = if line.starts_with("@@") {
            Some("hunk")
        } else if line.starts_with('+') {
            Some("add")
        } else if line.starts_with('-') {
            Some("del")
        } else {
            None
        };
        match class {
            Some(c) => {
                let _ = writeln!(b, "<span class=\"{c}\">{}</span>", esc(line));
            }
            None => {
                b.push_str(&esc(line));
                b.push('\n');
            }
        }
    }
    b.push_str("</code></pre>");
}
