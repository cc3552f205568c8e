//! The sticky PR comment: summary table, one `<details>` section per app, split into numbered
//! parts when it exceeds the forge's comment limit (GitHub's unless the forge says otherwise).
//!
//! Sizes are measured in UTF-8 bytes, which is never less than GitHub's count of characters (or
//! UTF-16 code units), so a part that fits here fits there.

use std::collections::BinaryHeap;
use std::fmt::Write;

use super::markdown::{fenced, html_text_max, inline, inline_max, truncate};
use super::{AppSection, ArgoStatus, ReportFinding, RunReport, Severity};
use crate::diff::{ObjectChange, ObjectChangeKind};

/// GitHub's maximum comment body (it answers 422 "Body is too long" beyond it).
pub const COMMENT_LIMIT: usize = 65_536;

/// Lines of a large diff kept when it is folded to its head.
const FOLDED_HEAD_LINES: usize = 40;
/// Caps for single texts in a section, so no one message can crowd out the rest.
/// They shrink with the budget (a fraction of it) so small limits degrade gracefully.
const RENDER_ERROR_MAX: usize = 8 * 1024;
const PROBLEM_MAX: usize = 4 * 1024;
const REASONS_MAX: usize = 2 * 1024;
const NOTE_MAX: usize = 512;
const NOTES_SHOWN: usize = 10;
const ARGO_FIELD_MAX: usize = 512;
const FINDING_MESSAGE_MAX: usize = 1024;
const NAME_MAX: usize = 256;

/// The hidden marker at the very start of every part: how the handler finds its own comments.
pub fn marker(pr: u64, part: usize) -> String {
    format!("<!-- capstan:report pr={pr} part={part} -->")
}

/// `(pr, part)` from a comment body that starts with Capstan's marker; `None` for anything else
/// (including a body that merely contains the marker somewhere later).
pub fn parse_marker(body: &str) -> Option<(u64, usize)> {
    let rest = body.strip_prefix("<!-- capstan:report pr=")?;
    let (pr, rest) = rest.split_once(" part=")?;
    let (part, _) = rest.split_once(" -->")?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pr) || !digits(part) {
        return None;
    }
    Some((pr.parse().ok()?, part.parse().ok()?))
}

/// One comment to post or edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommentPart {
    /// 1-based.
    pub number: usize,
    pub total: usize,
    pub body: String,
}

/// The whole sticky comment, as one or more parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedComment {
    pub parts: Vec<CommentPart>,
}

impl RenderedComment {
    /// Part numbers this rendering produces (1..=n).
    pub fn part_numbers(&self) -> Vec<usize> {
        self.parts.iter().map(|p| p.number).collect()
    }

    /// Of the parts found on the pull request, those this rendering no longer produces: the
    /// handler deletes them when a report shrinks.
    pub fn obsolete_parts(&self, existing: &[usize]) -> Vec<usize> {
        let mut out: Vec<usize> = existing
            .iter()
            .copied()
            .filter(|n| *n == 0 || *n > self.parts.len())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Renders the sticky comment within [`COMMENT_LIMIT`].
pub fn render_comment(report: &RunReport) -> RenderedComment {
    render_comment_within(report, COMMENT_LIMIT)
}

/// The sticky comment in parts of at most `limit` bytes (the forge's comment limit:
/// [`COMMENT_LIMIT`] on GitHub, 1,000,000 characters on GitLab) and at most `max_parts` parts.
/// When more are needed, the report gets a "not checked" line (which fails the check) and the
/// sections that do not fit are left to the dashboard; `true` says so.
pub fn render_comment_capped(
    report: &mut RunReport,
    max_parts: usize,
    limit: usize,
) -> (RenderedComment, bool) {
    let max_parts = max_parts.max(1);
    let full = render_comment_within(report, limit);
    if full.parts.len() <= max_parts {
        return (full, false);
    }
    report.limits.push(crate::limits::not_checked(
        "comment_max_parts",
        max_parts,
        &format!(
            "the report needs {} comment parts; the rest is on the dashboard",
            full.parts.len()
        ),
    ));
    // Room for the closing line below, so no part goes over the forge's limit.
    let mut capped = render_comment_within(report, limit.saturating_sub(1024));
    capped.parts.truncate(max_parts);
    let total = capped.parts.len();
    for p in &mut capped.parts {
        p.total = total;
    }
    if let Some(last) = capped.parts.last_mut() {
        let _ = writeln!(
            last.body,
            "\n**Not shown**: the sections after this one; the full report is on the dashboard: {}",
            report.run_url
        );
    }
    (capped, true)
}

/// Renders the sticky comment with parts of at most `limit` bytes (`limit` below a few KiB is
/// raised to 4 KiB: a part must at least hold its header and a folded section).
pub fn render_comment_within(report: &RunReport, limit: usize) -> RenderedComment {
    let limit = limit.max(4096);
    let worst = report.apps.len() + 1;
    let first_header_len = header(report, Some((worst, worst))).len();
    let table = summary_table(report, limit / 4);
    let first_len = first_header_len + table.len();
    let next_header_len = continuation_header(report, worst, worst).len();
    // A section must fit in a fresh continuation part.
    let section_budget = limit.saturating_sub(next_header_len);
    let sections: Vec<String> = report
        .apps
        .iter()
        .map(|a| app_section(a, &report.run_url, section_budget))
        .collect();

    let single =
        header(report, None).len() + table.len() + sections.iter().map(String::len).sum::<usize>();
    if single <= limit {
        let mut body = header(report, None);
        body.push_str(&table);
        for s in &sections {
            body.push_str(s);
        }
        return RenderedComment {
            parts: vec![CommentPart {
                number: 1,
                total: 1,
                body,
            }],
        };
    }

    // Greedy packing, in app order; part 1 always carries the summary table.
    let mut groups: Vec<Vec<usize>> = vec![Vec::new()];
    let mut used = first_len;
    for (i, s) in sections.iter().enumerate() {
        if used + s.len() > limit {
            groups.push(Vec::new());
            used = next_header_len;
        }
        used += s.len();
        if let Some(g) = groups.last_mut() {
            g.push(i);
        }
    }
    let total = groups.len();
    let parts = groups
        .iter()
        .enumerate()
        .map(|(k, g)| {
            let number = k + 1;
            let mut body = if number == 1 {
                let mut b = header(report, Some((1, total)));
                b.push_str(&table);
                b
            } else {
                continuation_header(report, number, total)
            };
            for i in g {
                body.push_str(&sections[*i]);
            }
            CommentPart {
                number,
                total,
                body,
            }
        })
        .collect();
    RenderedComment { parts }
}

fn short_sha(sha: &str) -> String {
    let s: String = sha.chars().take(7).collect();
    if s.bytes().all(|b| b.is_ascii_hexdigit()) && !s.is_empty() {
        format!("`{s}`")
    } else {
        inline(&s)
    }
}

fn part_label(part: Option<(usize, usize)>) -> String {
    match part {
        Some((k, n)) => format!(" (part {k}/{n})"),
        None => String::new(),
    }
}

fn header(report: &RunReport, part: Option<(usize, usize)>) -> String {
    let number = part.map_or(1, |(k, _)| k);
    let mut out = marker(report.pr, number);
    let _ = write!(
        out,
        "\n### Capstan report for {} #{} at {}{}\n\n",
        inline_max(&report.repo, NAME_MAX),
        report.pr,
        short_sha(&report.head_sha),
        part_label(part)
    );
    if let Some(who) = &report.held_by {
        let _ = writeln!(
            out,
            "**On hold** by {}: the check stays failing until `unhold`.\n",
            inline_max(who, NAME_MAX)
        );
    }
    let limits = report.limit_lines();
    for line in limits.iter().take(20) {
        let _ = writeln!(out, "- **{}**", inline_max(line, 1000));
    }
    if !limits.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "[Full report on the dashboard]({})\n", report.run_url);
    out
}

fn continuation_header(report: &RunReport, k: usize, n: usize) -> String {
    let mut out = marker(report.pr, k);
    let _ = write!(
        out,
        "\n### Capstan report for {} #{} at {}{}\n\nContinued; the summary table is in part 1. [Full report on the dashboard]({})\n\n",
        inline_max(&report.repo, NAME_MAX),
        report.pr,
        short_sha(&report.head_sha),
        part_label(Some((k, n))),
        report.run_url
    );
    out
}

fn policy_verdict(a: &AppSection) -> String {
    let (deny, warn) = (a.deny_count(), a.warn_count());
    let verdict = match (deny, warn) {
        (0, 0) => "✅ pass".into(),
        (0, w) => format!("⚠️ {w} warn"),
        (d, 0) => format!("❌ {d} deny"),
        (d, w) => format!("❌ {d} deny, {w} warn"),
    };
    match a.preexisting.len() {
        0 => verdict,
        n => format!("{verdict} (+{n} already on base)"),
    }
}

fn argo_verdict(a: &AppSection, max: usize) -> String {
    match &a.argocd {
        None => "—".into(),
        Some(ArgoStatus::Unreachable(why)) => {
            format!("unreachable: {}", inline_max(why, max))
        }
        Some(ArgoStatus::Reported {
            sync,
            health,
            dry_run,
        }) => {
            let parts: Vec<String> = [sync, health, dry_run]
                .into_iter()
                .flatten()
                .map(|t| inline_max(t, max))
                .collect();
            if parts.is_empty() {
                "—".into()
            } else {
                parts.join(", ")
            }
        }
    }
}

fn counts(a: &AppSection) -> (usize, usize, usize) {
    (
        a.diff.count(ObjectChangeKind::Added),
        a.diff.count(ObjectChangeKind::Changed),
        a.diff.count(ObjectChangeKind::Removed),
    )
}

/// The summary table, within `budget` bytes (further apps are counted, not listed).
fn summary_table(report: &RunReport, budget: usize) -> String {
    let mut out = String::new();
    if report.apps.is_empty() {
        out.push_str("No apps are affected by this change.\n\n");
        return out;
    }
    out.push_str("| App | Env | + | ~ | − | Policy | ArgoCD |\n|---|---|--:|--:|--:|---|---|\n");
    let mut shown = 0;
    for a in &report.apps {
        let (add, chg, rem) = counts(a);
        let policy = if a.is_not_checked() && !a.has_render_error() {
            format!("⚪ not checked; {}", policy_verdict(a))
        } else if !a.has_render_error() {
            policy_verdict(a)
        } else if a.findings.is_empty() {
            "💥 render error".to_string()
        } else {
            format!("💥 render error; {}", policy_verdict(a))
        };
        let row = format!(
            "| [{}]({}) | {} | {add} | {chg} | {rem} | {policy} | {} |\n",
            inline_max(&a.name, NAME_MAX),
            a.anchor_url(&report.run_url),
            a.environment
                .as_deref()
                .map_or_else(|| "—".into(), |e| inline_max(e, NAME_MAX)),
            argo_verdict(a, ARGO_FIELD_MAX / 4)
        );
        if out.len() + row.len() > budget {
            break;
        }
        out.push_str(&row);
        shown += 1;
    }
    if shown < report.apps.len() {
        let _ = writeln!(
            out,
            "\n…and {} more apps; see the dashboard.",
            report.apps.len() - shown
        );
    }
    let unchecked = report.not_checked_count();
    if unchecked > 0 {
        let _ = writeln!(
            out,
            "\n⚪ **{unchecked} not checked**: Capstan could not render {} (the reason is in the app's section), so this report cannot vouch for {}.",
            if unchecked == 1 {
                "this app"
            } else {
                "these apps"
            },
            if unchecked == 1 { "it" } else { "them" },
        );
    }
    out.push('\n');
    out
}

/// How much of one object's diff a section shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    Full,
    Head,
    Hidden,
}

fn verb(c: &ObjectChange) -> &'static str {
    match c.change {
        ObjectChangeKind::Added => "added",
        ObjectChangeKind::Removed => "removed",
        ObjectChangeKind::Changed => "changed",
    }
}

fn change_block(c: &ObjectChange, shown: Shown, link: &str) -> String {
    let mut out = format!(
        "**{}** {}\n",
        verb(c),
        inline_max(&c.id.to_string(), 4 * NAME_MAX)
    );
    for k in &c.secret_keys {
        let _ = writeln!(out, "- {}", inline_max(k, NAME_MAX));
    }
    out.push('\n');
    let lines = c.diff.lines().count();
    match shown {
        Shown::Full => {
            if !c.diff.is_empty() {
                out.push_str(&fenced(&c.diff, "diff"));
                out.push('\n');
            }
        }
        Shown::Head => {
            let head: String = c
                .diff
                .split_inclusive('\n')
                .take(FOLDED_HEAD_LINES)
                .collect();
            out.push_str(&fenced(&head, "diff"));
            let _ = writeln!(
                out,
                "\n…{} more lines; full diff on the dashboard: {link}\n",
                lines.saturating_sub(FOLDED_HEAD_LINES)
            );
        }
        Shown::Hidden => {
            let _ = writeln!(
                out,
                "Diff of {lines} lines folded; full diff on the dashboard: {link}\n"
            );
        }
    }
    out
}

fn section_open(a: &AppSection, link: &str, budget: usize) -> String {
    let cap = |max: usize, share: usize| max.min(budget / share).max(16);
    let findings_budget = budget / 4;
    let (add, chg, rem) = counts(a);
    let mut out = String::from("<details>\n<summary><b>");
    out.push_str(&html_text_max(&a.name, cap(NAME_MAX, 32)));
    out.push_str("</b>");
    if let Some(env) = &a.environment {
        let _ = write!(out, " ({})", html_text_max(env, cap(NAME_MAX, 32)));
    }
    let _ = write!(out, ": +{add} ~{chg} −{rem} · {}", policy_verdict(a));
    if a.has_render_error() {
        out.push_str(" · 💥 render error");
    } else if a.is_not_checked() {
        out.push_str(" · ⚪ not checked");
    }
    out.push_str("</summary>\n\n");
    let _ = writeln!(out, "[This app on the dashboard]({link})\n");

    if let Some(err) = &a.render_error {
        let (text, cut) = truncate(err, cap(RENDER_ERROR_MAX, 8));
        out.push_str("**Render error**\n\n");
        out.push_str(&fenced(text, "text"));
        if cut {
            let _ = write!(out, "\n…truncated; full error on the dashboard: {link}\n");
        }
        out.push('\n');
    }
    for p in &a.diff.problems {
        let (text, cut) = truncate(&p.message, cap(PROBLEM_MAX, 16));
        let _ = writeln!(
            out,
            "**{} {}**\n",
            inline(&p.side),
            inline(&p.status.replace('_', " "))
        );
        out.push_str(&fenced(text, "text"));
        if cut {
            let _ = write!(out, "\n…truncated; see the dashboard: {link}\n");
        }
        out.push('\n');
    }
    if a.argocd.is_some() {
        let _ = writeln!(
            out,
            "**ArgoCD**: {}\n",
            argo_verdict(a, cap(ARGO_FIELD_MAX, 64))
        );
    }
    if !a.diff.reasons.is_empty() {
        let joined = a.diff.reasons.join("; ");
        let _ = writeln!(
            out,
            "**Why compared**: {}\n",
            inline_max(&joined, cap(REASONS_MAX, 32))
        );
    }
    for n in a.diff.notes.iter().take(NOTES_SHOWN) {
        let _ = writeln!(out, "- note: {}", inline_max(n, cap(NOTE_MAX, 128)));
    }
    if !a.diff.notes.is_empty() {
        out.push('\n');
    }

    if !a.findings.is_empty() {
        out.push_str("**Policy findings**\n\n");
        finding_lines(&mut out, &a.findings, findings_budget, link, &cap);
        out.push('\n');
    }
    if !a.preexisting.is_empty() {
        // Folded: they are not this change's doing, and a reviewer should see the new ones first.
        let _ = writeln!(
            out,
            "<details>\n<summary>{} finding{} the base branch already has (not counted)</summary>\n",
            a.preexisting.len(),
            if a.preexisting.len() == 1 { "" } else { "s" }
        );
        finding_lines(&mut out, &a.preexisting, findings_budget / 2, link, &cap);
        out.push_str("\n</details>\n\n");
    }
    if a.diff.changes.is_empty() && !a.has_render_error() {
        out.push_str("No object changes.\n\n");
    }
    out
}

/// The findings as a bullet list within `budget` bytes; the rest are counted with a link.
fn finding_lines(
    out: &mut String,
    findings: &[ReportFinding],
    budget: usize,
    link: &str,
    cap: &dyn Fn(usize, usize) -> usize,
) {
    let mut shown = 0;
    let start = out.len();
    for f in findings {
        let icon = match f.severity {
            Severity::Deny => "❌ deny",
            Severity::Warn => "⚠️ warn",
        };
        let mut line = format!("- {icon} {}", inline_max(&f.rule_id, cap(NAME_MAX, 64)));
        // Findings about the repository (settings, unused exceptions) have no object.
        if !f.object.is_empty() {
            let _ = write!(line, " · {}", inline_max(&f.object, cap(NAME_MAX, 64)));
        }
        if let Some(file) = &f.file {
            let _ = write!(line, " · {}", inline_max(file, cap(NAME_MAX, 64)));
            if let Some(l) = f.line {
                let _ = write!(line, ":{l}");
            }
        }
        let _ = writeln!(
            line,
            ": {}",
            inline_max(&f.message, cap(FINDING_MESSAGE_MAX, 16))
        );
        if out.len() - start + line.len() > budget {
            break;
        }
        out.push_str(&line);
        shown += 1;
    }
    if shown < findings.len() {
        let _ = writeln!(
            out,
            "- …and {} more findings on the dashboard: {link}",
            findings.len() - shown
        );
    }
}

const SECTION_CLOSE: &str = "</details>\n\n";

/// One app's `<details>` section within `budget` bytes: the largest diffs are folded first (to
/// their head, then hidden), then trailing objects are counted instead of shown.
fn app_section(a: &AppSection, run_url: &str, budget: usize) -> String {
    let link = a.anchor_url(run_url);
    let open = section_open(a, &link, budget);
    // The git diff first, then what a sync would change in the live cluster; one folding budget
    // covers both, and the live objects are the first to be counted instead of shown.
    let git_n = a.diff.changes.len();
    let items: Vec<&ObjectChange> = a
        .diff
        .changes
        .iter()
        .chain(a.live_diff.iter().flat_map(|l| l.changes.iter()))
        .collect();
    let mut states: Vec<Shown> = vec![Shown::Full; items.len()];
    let mut blocks: Vec<String> = items
        .iter()
        .map(|c| change_block(c, Shown::Full, &link))
        .collect();
    // Room for the two headings and the "…and N more" line.
    let fixed = open.len() + SECTION_CLOSE.len() + link.len() + 200;
    let mut total = fixed + blocks.iter().map(String::len).sum::<usize>();
    // Largest block first; each pop folds one step further (full → head → hidden).
    let mut heap: BinaryHeap<(usize, usize)> = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| (b.len(), i))
        .collect();
    while total > budget {
        let Some((_, i)) = heap.pop() else { break };
        states[i] = if states[i] == Shown::Full && items[i].diff.lines().count() > FOLDED_HEAD_LINES
        {
            Shown::Head
        } else {
            Shown::Hidden
        };
        let block = change_block(items[i], states[i], &link);
        total = total - blocks[i].len() + block.len();
        if states[i] != Shown::Hidden {
            heap.push((block.len(), i));
        }
        blocks[i] = block;
    }
    let mut kept = blocks.len();
    while total > budget && kept > 0 {
        kept -= 1;
        total -= blocks[kept].len();
    }
    let mut out = open;
    if git_n > 0 {
        out.push_str("**Changes**\n\n");
    }
    for b in &blocks[..kept.min(git_n)] {
        out.push_str(b);
    }
    if kept > git_n {
        out.push_str(
            "**Against the live cluster** (ArgoCD: what a sync of this head would change)\n\n",
        );
        for b in &blocks[git_n..kept] {
            out.push_str(b);
        }
    } else if a.live_diff.as_ref().is_some_and(|l| !l.has_changes()) {
        out.push_str("**Against the live cluster**: the cluster already matches this head.\n\n");
    }
    if kept < blocks.len() {
        let _ = writeln!(
            out,
            "…and {} more changed objects; see the dashboard: {link}\n",
            blocks.len() - kept
        );
    }
    out.push_str(SECTION_CLOSE);
    if out.len() > budget {
        // Only reachable with pathological caps or names. The anchor repeats the app's name
        // percent-encoded (up to nine bytes a character), so a section that must fit links to
        // the run itself when its anchored form would not.
        let minimal = |link: &str| {
            format!(
                "<details>\n<summary><b>{}</b></summary>\n\nThis app's report is too large for a comment; see the dashboard: {link}\n\n{SECTION_CLOSE}",
                html_text_max(&a.name, NAME_MAX)
            )
        };
        let anchored = minimal(&link);
        return if anchored.len() <= budget {
            anchored
        } else {
            minimal(run_url)
        };
    }
    out
}
