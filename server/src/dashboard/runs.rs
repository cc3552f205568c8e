//! `/runs` and `/runs/{id}`: the complete report of a run — every app, every object diff, every
//! finding — with an anchor per app (`#app-<name>`) that the PR comment links to, so a comment
//! that GitHub's size limit cut or split always has the whole story one click away. A run is
//! one pull-request head: the page reads as its latest attempt and lists every attempt.

use capstan_worker::diff::{ObjectChange, ObjectChangeKind};
use capstan_worker::git::RepoName;
use capstan_worker::report::{AppSection, ArgoStatus, ReportFinding, RunReport, Severity};
use capstan_worker::store::{RunAttempt, RunFilter, RunRecord, RunStatus};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Tone, badge};
use super::overview::{RUN_HEADERS, run_row, short_sha, status_tone};
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

pub fn render_list(d: &Dashboard, runs: &[RunRecord], user: Option<&str>) -> Markup {
    let rows: Vec<Markup> = runs.iter().map(run_row).collect();
    let body = html! {
        h1 { "Runs" }
        (layout::table(&RUN_HEADERS, &rows, "No runs match."))
    };
    layout::page(&d.config, "Runs", "/", user, body)
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

pub fn render(d: &Dashboard, r: &RunRecord, user: Option<&str>) -> Markup {
    let short = r.head_sha.get(..7).unwrap_or(&r.head_sha);
    let body = html! {
        h1 { "Run #" (r.id) " · " (r.repo) " #" (r.pr) " " code { (short) } }
        div.table-wrap { table { tbody {
            tr { th scope="row" { "Status" } td { (badge(r.status.as_str(), status_tone(r.status.as_str()))) } }
            tr { th scope="row" { "Head" } td { code { (r.head_sha) } } }
            tr { th scope="row" { "Base" } td { (full_sha(r.base_sha.as_deref())) " " span.muted { "(the base branch tip fetched)" } } }
            tr { th scope="row" { "Merge base" } td { (full_sha(r.merge_base.as_deref())) " " span.muted { "(what the diff compared the head against)" } } }
            tr { th scope="row" { "Trigger" } td { (r.trigger) } }
            tr { th scope="row" { "Attempts" } td { (r.attempts) } }
            tr { th scope="row" { "Started" } td { (layout::time(r.started_at)) } }
            tr { th scope="row" { "Duration" } td { (layout::duration(r.duration_ms())) } }
            tr { th scope="row" { "On the forge" } td { (forge_links(d, r)) } }
        } } }
        @if let Some(e) = &r.error {
            (layout::notice(&format!("The run failed: {e}")))
        }
        @if !r.attempt_history.is_empty() {
            h2 { "Attempts" }
            (layout::table(
                &["Attempt", "Job", "Trigger", "Status", "Started", "Duration", "Error"],
                &r.attempt_history.iter().map(attempt_row).collect::<Vec<_>>(),
                "",
            ))
        }
        @match &r.report {
            None => (layout::notice(
                "This run stored no report (it is still running, was superseded, or failed before reporting).",
            )),
            Some(report) => (report_html(report)),
        }
    };
    layout::page(&d.config, &format!("Run #{}", r.id), "/", user, body)
}

fn full_sha(sha: Option<&str>) -> Markup {
    match sha {
        Some(s) => html! { code { (s) } },
        None => short_sha(None),
    }
}

fn attempt_row(a: &RunAttempt) -> Markup {
    html! {
        td { "#" (a.attempt) }
        td { @match a.job_id { Some(j) => (j), None => span.muted { "—" } } }
        td { (a.trigger) }
        td { (badge(a.status.as_str(), status_tone(a.status.as_str()))) }
        td { (layout::time(a.started_at)) }
        td { (layout::duration(a.finished_at.map(|f| f - a.started_at))) }
        td { @match &a.error { Some(e) => (e), None => span.muted { "—" } } }
    }
}

/// The latest attempt's check run and comment parts: links when the forge is known and the
/// repository name is one (it becomes part of the URL), their ids otherwise.
fn forge_links(d: &Dashboard, r: &RunRecord) -> Markup {
    if r.check_run_id.is_none() && r.comment_ids.is_empty() {
        return html! { span.muted { "nothing posted" } };
    }
    let web = d
        .forge_web
        .as_deref()
        .filter(|_| RepoName::parse(&r.repo).is_ok());
    let kind = d.forge_kind;
    html! {
        @if let Some(id) = r.check_run_id {
            @match web {
                Some(w) => a href=(kind.check_url(w, &r.repo, &r.head_sha, Some(id))) { "check run " (id) },
                None => { "check run " (id) },
            }
        }
        @for (i, c) in r.comment_ids.iter().enumerate() {
            @if i > 0 || r.check_run_id.is_some() { " · " }
            @match web {
                Some(w) => a href=(kind.comment_url(w, &r.repo, r.pr, *c)) { "comment " (c) },
                None => { "comment " (c) },
            }
        }
    }
}

fn report_html(report: &RunReport) -> Markup {
    let rows: Vec<Markup> = report.apps.iter().map(summary_row).collect();
    html! {
        @if let Some(by) = &report.held_by {
            (layout::notice(&format!(
                "On hold by {by}: the check stays failing until /capstan unhold."
            )))
        }
        h2 { "Summary" }
        (layout::table(
            &["App", "Environment", "Added", "Changed", "Removed", "Policy", "ArgoCD"],
            &rows,
            "No app is affected by this change.",
        ))
        @for app in &report.apps {
            (app_section(app))
        }
    }
}

fn policy_verdict(a: &AppSection) -> Markup {
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

fn argo_verdict(a: &AppSection) -> Markup {
    match &a.argocd {
        None => html! { span.muted { "not configured" } },
        Some(ArgoStatus::Unreachable(why)) => {
            html! { (badge("unreachable", Tone::Warn)) " " (why) }
        }
        Some(ArgoStatus::Reported {
            sync,
            health,
            dry_run,
        }) => {
            let badges: Vec<Markup> = [sync, health]
                .into_iter()
                .flatten()
                .map(|s| badge(s, status_tone(s)))
                .collect();
            html! {
                @for (i, b) in badges.iter().enumerate() {
                    @if i > 0 { " " }
                    (b)
                }
                @if let Some(d) = dry_run {
                    @if !badges.is_empty() { " " }
                    (d)
                }
            }
        }
    }
}

fn summary_row(a: &AppSection) -> Markup {
    let anchor = capstan_worker::report::markdown::url_fragment(&section_id(&a.name));
    html! {
        td { a href={ "#" (anchor) } { (a.name) } }
        td { (a.environment.as_deref().unwrap_or("—")) }
        td { (a.diff.count(ObjectChangeKind::Added)) }
        td { (a.diff.count(ObjectChangeKind::Changed)) }
        td { (a.diff.count(ObjectChangeKind::Removed)) }
        td { (policy_verdict(a)) }
        td { (argo_verdict(a)) }
    }
}

fn finding_rows(findings: &[ReportFinding]) -> Vec<Markup> {
    findings
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
            html! {
                td { (sev) }
                td { code { (f.rule_id) } }
                td { (f.object) }
                td { code { (at) } }
                td { (f.message) }
            }
        })
        .collect()
}

fn app_section(a: &AppSection) -> Markup {
    let id = section_id(&a.name);
    let findings = finding_rows(&a.findings);
    let preexisting = finding_rows(&a.preexisting);
    html! {
        section.app id=(id) aria-labelledby={ "h-" (id) } {
            h2 id={ "h-" (id) } { (a.name) }
            p {
                (a.environment.as_deref().unwrap_or("no environment"))
                " · policy " (policy_verdict(a)) " · ArgoCD " (argo_verdict(a))
            }
            @if !a.diff.reasons.is_empty() {
                p.muted { "Compared because: " (a.diff.reasons.join("; ")) }
            }
            @if let Some(e) = &a.render_error {
                (layout::notice(&format!("Render error: {e}")))
            }
            @for p in &a.diff.problems {
                (layout::notice(&format!("{} side {}: {}", p.side, p.status, p.message)))
            }
            @for n in &a.diff.notes {
                p.muted { "Note: " (n) }
            }
            @if !findings.is_empty() {
                h3 { "Findings" }
                (layout::table(&["Severity", "Rule", "Object", "Where", "Message"], &findings, ""))
            }
            @if !preexisting.is_empty() {
                details {
                    summary { (preexisting.len()) " findings the base branch already has (not counted)" }
                    (layout::table(&["Severity", "Rule", "Object", "Where", "Message"], &preexisting, ""))
                }
            }
            @if a.diff.changes.is_empty() {
                p.muted { "No object changes." }
            } @else {
                h3 { "Object changes (" (a.diff.changes.len()) ")" }
                (changes(&a.diff.changes))
            }
            @if let Some(live) = &a.live_diff {
                @if live.changes.is_empty() {
                    p.muted { "Against the live cluster: the cluster already matches this head." }
                } @else {
                    h3 { "Against the live cluster (" (live.changes.len()) "): what a sync of this head would change" }
                    (changes(&live.changes))
                }
            }
        }
    }
}

fn changes(list: &[ObjectChange]) -> Markup {
    html! {
        @for c in list {
            @let (word, tone) = match c.change {
                ObjectChangeKind::Added => ("added", Tone::Good),
                ObjectChangeKind::Removed => ("removed", Tone::Bad),
                ObjectChangeKind::Changed => ("changed", Tone::Warn),
            };
            h4 { (badge(word, tone)) " " code { (c.id.to_string()) } }
            @if !c.secret_keys.is_empty() {
                p { "Secret keys (values hidden): " (c.secret_keys.join(", ")) }
            }
            (diff_block(&c.diff))
        }
    }
}

/// A unified diff with added, removed and hunk lines marked by class (and by their `+`/`-`
/// prefix, which stays, so the diff reads without colour).
fn diff_block(diff: &str) -> Markup {
    html! {
        pre.diff { code {
            @for line in diff.lines() {
                @let class = if line.starts_with("@@") {
                    Some("hunk")
                } else if line.starts_with('+') {
                    Some("add")
                } else if line.starts_with('-') {
                    Some("del")
                } else {
                    None
                };
                @match class {
                    Some(c) => { span class=(c) { (line) } "\n" }
                    None => { (line) "\n" }
                }
            }
        } }
    }
}
