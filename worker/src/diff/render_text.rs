//! Text and markdown forms of a [`DiffReport`].

use std::fmt::Write;

use super::{AppDiff, DiffReport, ObjectChange, ObjectChangeKind};

fn summary(a: &AppDiff) -> String {
    format!(
        "{} added, {} changed, {} removed",
        a.count(ObjectChangeKind::Added),
        a.count(ObjectChangeKind::Changed),
        a.count(ObjectChangeKind::Removed)
    )
}

fn verb(c: &ObjectChange) -> &'static str {
    match c.change {
        ObjectChangeKind::Added => "added",
        ObjectChangeKind::Removed => "removed",
        ObjectChangeKind::Changed => "changed",
    }
}

pub fn text(r: &DiffReport) -> String {
    let mut out = String::new();
    if r.apps.is_empty() {
        out.push_str("no apps affected\n");
    }
    for a in &r.apps {
        let _ = writeln!(out, "=== app {}: {}", a.app, summary(a));
        for r in &a.reasons {
            let _ = writeln!(out, "  why: {r}");
        }
        for p in &a.problems {
            let _ = writeln!(
                out,
                "  {} {}: {}",
                p.side,
                p.status.replace('_', " "),
                p.message
            );
        }
        for n in &a.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        for c in &a.changes {
            let _ = writeln!(out, "== {} {}", verb(c), c.id);
            for k in &c.secret_keys {
                let _ = writeln!(out, "  {k}");
            }
            out.push_str(&c.diff);
        }
    }
    out
}

/// A code fence longer than any backtick run in `s`, so diff content cannot close it.
fn fence(s: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for ch in s.chars() {
        if ch == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat(longest.max(2) + 1)
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn escape_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(r: &DiffReport, limit: Option<usize>) -> String {
    // Fold the largest diffs first until the whole document fits.
    let mut folded: Vec<Vec<bool>> = r
        .apps
        .iter()
        .map(|a| vec![false; a.changes.len()])
        .collect();
    loop {
        let doc = markdown_with(r, &folded);
        let Some(limit) = limit else { return doc };
        if doc.len() <= limit {
            return doc;
        }
        let largest = r
            .apps
            .iter()
            .enumerate()
            .flat_map(|(ai, a)| {
                a.changes
                    .iter()
                    .enumerate()
                    .map(move |(ci, c)| (ai, ci, c.diff.len()))
            })
            .filter(|(ai, ci, len)| !folded[*ai][*ci] && *len > 0)
            .max_by_key(|(_, _, len)| *len);
        match largest {
            Some((ai, ci, _)) => folded[ai][ci] = true,
            None => {
                let mut cut: String = doc.chars().take(limit.saturating_sub(80)).collect();
                cut.push_str("\n\n… report truncated; the full diff is on the dashboard.\n");
                return cut;
            }
        }
    }
}

fn markdown_with(r: &DiffReport, folded: &[Vec<bool>]) -> String {
    let mut out = String::new();
    if r.apps.is_empty() {
        out.push_str("No apps affected.\n");
        return out;
    }
    out.push_str("| App | Added | Changed | Removed | Status |\n|---|---:|---:|---:|---|\n");
    for a in &r.apps {
        let status = if a.problems.is_empty() {
            "rendered".to_string()
        } else {
            a.problems
                .iter()
                .map(|p| format!("{} {}", p.side, p.status.replace('_', " ")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            escape_cell(&a.app),
            a.count(ObjectChangeKind::Added),
            a.count(ObjectChangeKind::Changed),
            a.count(ObjectChangeKind::Removed),
            status
        );
    }
    for (ai, a) in r.apps.iter().enumerate() {
        let _ = writeln!(
            out,
            "\n<details><summary><b>{}</b>: {}</summary>\n",
            escape_html(&a.app),
            summary(a)
        );
        for r in &a.reasons {
            let _ = writeln!(out, "- why: {}", escape_cell(r));
        }
        for p in &a.problems {
            let _ = writeln!(
                out,
                "- **{} {}**: {}",
                p.side,
                p.status.replace('_', " "),
                escape_cell(&p.message)
            );
        }
        for n in &a.notes {
            let _ = writeln!(out, "- note: {}", escape_cell(n));
        }
        for (ci, c) in a.changes.iter().enumerate() {
            let _ = writeln!(out, "\n**{}** `{}`\n", verb(c), c.id);
            for k in &c.secret_keys {
                let _ = writeln!(out, "- `{k}`");
            }
            if c.diff.is_empty() {
                continue;
            }
            if folded
                .get(ai)
                .and_then(|f| f.get(ci))
                .copied()
                .unwrap_or(false)
            {
                let _ = writeln!(
                    out,
                    "_diff of {} lines folded to fit; see the full report._",
                    c.diff.lines().count()
                );
                continue;
            }
            let f = fence(&c.diff);
            let _ = writeln!(out, "{f}diff\n{}{f}", c.diff);
        }
        out.push_str("\n</details>\n");
    }
    out
}
