//! Rendering a [`Report`] for people (text, markdown) and tools (JSON, SARIF 2.1.0).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Value, json};

use super::findings::{Finding, Report, Severity, Suppressed};

fn object_label(f: &Finding) -> String {
    f.object
        .as_ref()
        .map(|o| o.to_string())
        .unwrap_or_else(|| "(repository)".into())
}

fn by_app(report: &Report) -> BTreeMap<&str, Vec<&Finding>> {
    let mut m: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in &report.findings {
        m.entry(f.app.as_str()).or_default().push(f);
    }
    m
}

fn app_label(app: &str) -> &str {
    if app.is_empty() { "(all apps)" } else { app }
}

/// Plain text grouped by app, for terminals.
pub fn text(report: &Report) -> String {
    let mut s = String::new();
    let grouped = by_app(report);
    for (app, n) in &report.apps {
        if !grouped.contains_key(app.as_str()) {
            match report.preexisting.iter().filter(|f| &f.app == app).count() {
                0 => {
                    let _ = writeln!(s, "app {app}: {n} objects, no findings");
                }
                old => {
                    let _ = writeln!(
                        s,
                        "app {app}: {n} objects, no new findings ({old} already on base)"
                    );
                }
            }
        }
    }
    for (app, findings) in grouped {
        let deny = findings
            .iter()
            .filter(|f| f.severity == Severity::Deny)
            .count();
        let _ = writeln!(
            s,
            "app {}: {deny} deny, {} warn",
            app_label(app),
            findings.len() - deny
        );
        for f in findings {
            let _ = writeln!(
                s,
                "  {:<4} {}  {}",
                f.severity.to_string().to_uppercase(),
                f.rule,
                object_label(f)
            );
            if let Some(loc) = &f.location {
                let _ = write!(s, "       at {loc}");
                if let Some(field) = &f.field {
                    let _ = write!(s, " ({field})");
                }
                let _ = writeln!(s);
            } else if let Some(field) = &f.field {
                let _ = writeln!(s, "       field {field}");
            }
            let _ = writeln!(s, "       {}", f.message);
        }
    }
    if !report.preexisting.is_empty() {
        let _ = writeln!(
            s,
            "already on the base branch (policy.gate: new; not counted):"
        );
        for f in &report.preexisting {
            let _ = writeln!(
                s,
                "  {:<4} {} [{}] {}: {}",
                f.severity.to_string().to_uppercase(),
                f.rule,
                app_label(&f.app),
                object_label(f),
                f.message
            );
        }
    }
    if !report.suppressed.is_empty() {
        let _ = writeln!(s, "exceptions applied:");
        for x in &report.suppressed {
            let _ = writeln!(
                s,
                "  {} {} [{}] {} — {} ({})",
                x.finding.severity,
                x.finding.rule,
                app_label(&x.finding.app),
                object_label(&x.finding),
                x.reason,
                x.source
            );
        }
    }
    let _ = write!(
        s,
        "{} objects checked: {} deny, {} warn, {} excepted",
        report.objects_checked,
        report.deny_count(),
        report.warn_count(),
        report.suppressed.len()
    );
    if !report.preexisting.is_empty() {
        let _ = write!(s, ", {} already on base", report.preexisting.len());
    }
    let _ = writeln!(s);
    s
}

/// The report as JSON (the [`Report`] structure).
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn severity_icon(severity: Severity) -> &'static str {
    match severity {
        Severity::Deny => "❌ deny",
        Severity::Warn => "⚠️ warn",
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// GitHub-flavoured markdown, one table per app.
pub fn markdown(report: &Report) -> String {
    let mut s = String::new();
    let verdict = if report.passed() { "passed" } else { "failed" };
    let _ = writeln!(
        s,
        "**Policy check {verdict}**: {} deny, {} warn, {} excepted ({} objects)\n",
        report.deny_count(),
        report.warn_count(),
        report.suppressed.len(),
        report.objects_checked
    );
    for (app, findings) in by_app(report) {
        let _ = writeln!(s, "#### {}\n", app_label(app));
        let _ = writeln!(
            s,
            "| | rule | object | where | message |\n|---|---|---|---|---|"
        );
        for f in findings {
            let icon = severity_icon(f.severity);
            let place = f
                .location
                .as_ref()
                .map(|l| format!("`{l}`"))
                .or_else(|| f.field.as_ref().map(|x| format!("`{x}`")))
                .unwrap_or_default();
            let rule = if f.doc.is_empty() {
                f.rule.clone()
            } else {
                format!("[{}]({})", f.rule, f.doc)
            };
            let _ = writeln!(
                s,
                "| {icon} | {rule} | {} | {place} | {} |",
                md_escape(&object_label(f)),
                md_escape(&f.message)
            );
        }
        let _ = writeln!(s);
    }
    if !report.preexisting.is_empty() {
        let _ = writeln!(
            s,
            "<details><summary>Already on the base branch, not counted ({})</summary>\n",
            report.preexisting.len()
        );
        let _ = writeln!(
            s,
            "| | rule | app | object | message |\n|---|---|---|---|---|"
        );
        for f in &report.preexisting {
            let icon = severity_icon(f.severity);
            let _ = writeln!(
                s,
                "| {icon} | {} | {} | {} | {} |",
                md_escape(&f.rule),
                md_escape(app_label(&f.app)),
                md_escape(&object_label(f)),
                md_escape(&f.message)
            );
        }
        let _ = writeln!(s, "\n</details>");
    }
    if !report.suppressed.is_empty() {
        let _ = writeln!(
            s,
            "<details><summary>Exceptions applied ({})</summary>\n",
            report.suppressed.len()
        );
        let _ = writeln!(
            s,
            "| rule | app | object | reason | source |\n|---|---|---|---|---|"
        );
        for x in &report.suppressed {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                x.finding.rule,
                app_label(&x.finding.app),
                md_escape(&object_label(&x.finding)),
                md_escape(&x.reason),
                x.source
            );
        }
        let _ = writeln!(s, "\n</details>");
    }
    s
}

fn sarif_result(f: &Finding, suppressed: Option<&Suppressed>) -> Value {
    let mut r = json!({
        "ruleId": f.rule,
        "level": match f.severity { Severity::Deny => "error", Severity::Warn => "warning" },
        "message": {"text": format!("{}: {}", object_label(f), f.message)},
        "properties": {"app": f.app, "field": f.field},
    });
    if let Some(loc) = &f.location {
        r["locations"] = json!([{"physicalLocation": {
            "artifactLocation": {"uri": loc.file},
            "region": {"startLine": loc.line},
        }}]);
    }
    if let Some(x) = suppressed {
        r["suppressions"] = json!([{
            "kind": if x.source.starts_with("annotation") { "inSource" } else { "external" },
            "justification": x.reason,
        }]);
    }
    r
}

/// SARIF 2.1.0, for code-scanning uploads. Excepted findings carry a `suppressions` entry.
pub fn sarif(report: &Report) -> String {
    let mut rules: BTreeMap<&str, &str> = BTreeMap::new();
    for f in report
        .findings
        .iter()
        .chain(&report.preexisting)
        .chain(report.suppressed.iter().map(|s| &s.finding))
    {
        rules.insert(&f.rule, &f.doc);
    }
    // With a base compared, each result says whether the change brought it (SARIF's
    // baselineState); pre-existing ones are listed so code scanning can track them too.
    let compared = !report.preexisting.is_empty();
    let baseline = |mut r: Value, state: &str| {
        if compared {
            r["baselineState"] = json!(state);
        }
        r
    };
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| baseline(sarif_result(f, None), "new"))
        .chain(
            report
                .preexisting
                .iter()
                .map(|f| baseline(sarif_result(f, None), "unchanged")),
        )
        .chain(
            report
                .suppressed
                .iter()
                .map(|s| sarif_result(&s.finding, Some(s))),
        )
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "capstan",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/capstan-gitops/capstan",
                "rules": rules.iter().map(|(id, doc)| if doc.is_empty() {
                    json!({"id": id})
                } else {
                    json!({"id": id, "helpUri": doc})
                }).collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}
