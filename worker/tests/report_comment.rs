//! The sticky comment: snapshot of a typical report, splitting of huge reports into parts,
//! shrinking, and folding of a single huge app.
#![allow(clippy::unwrap_used)]

mod report_support;

use capstan_worker::diff::ObjectChangeKind;
use capstan_worker::report::{
    AppSection, COMMENT_LIMIT, RenderedComment, Severity, parse_marker, render_comment,
};
use report_support::*;

#[test]
fn typical_report_snapshot() {
    let rendered = render_comment(&typical());
    assert_eq!(rendered.part_numbers(), vec![1]);
    insta::assert_snapshot!("typical_comment", rendered.parts[0].body);
}

#[test]
fn no_apps_says_so() {
    let rendered = render_comment(&report(Vec::new()));
    assert_eq!(rendered.parts.len(), 1);
    assert!(rendered.parts[0].body.contains("No apps are affected"));
}

#[test]
fn marker_round_trips_and_only_at_start() {
    let rendered = render_comment(&typical());
    assert_eq!(parse_marker(&rendered.parts[0].body), Some((42, 1)));
    assert_eq!(parse_marker(&format!("x{}", rendered.parts[0].body)), None);
    assert_eq!(parse_marker("<!-- capstan:report pr=4x2 part=1 -->"), None);
    assert_eq!(parse_marker("<!-- capstan:report pr=42 part= -->"), None);
}

/// A diff of about `bytes` bytes made of many changed lines.
fn big_diff(bytes: usize, seed: usize) -> String {
    let mut s = String::from("@@ -1,1 +1,1 @@\n");
    let mut i = 0;
    while s.len() < bytes {
        s.push_str(&format!(
            "-  key{seed}_{i}: old value {i} ``` </details>\n+  key{seed}_{i}: new value {i}\n"
        ));
        i += 1;
    }
    s
}

fn app_with(name: &str, objects: usize, bytes_each: usize) -> AppSection {
    let changes = (0..objects)
        .map(|o| {
            change(
                ObjectChangeKind::Changed,
                id("ConfigMap", name, &format!("cm-{o}")),
                &big_diff(bytes_each, o),
            )
        })
        .collect();
    app(name, Some("production"), changes)
}

/// About 5 MB: 60 apps of ten 8.5 KB diffs, plus one app holding a single 1 MB diff.
fn five_mb() -> capstan_worker::report::RunReport {
    let mut apps: Vec<AppSection> = (0..60)
        .map(|i| app_with(&format!("app-{i:02}"), 10, 8_500))
        .collect();
    apps.insert(30, app_with("monolith", 1, 1_000_000));
    report(apps)
}

fn assert_parts_well_formed(rendered: &RenderedComment, apps: &[String]) {
    let total = rendered.parts.len();
    for (k, part) in rendered.parts.iter().enumerate() {
        let body = &part.body;
        assert_eq!(part.number, k + 1);
        assert_eq!(part.total, total);
        assert!(
            body.len() <= COMMENT_LIMIT,
            "part {} has {} bytes",
            k + 1,
            body.len()
        );
        assert!(body.chars().count() <= COMMENT_LIMIT);
        assert_eq!(parse_marker(body), Some((42, k + 1)));
        if total > 1 {
            assert!(
                body.contains(&format!("(part {}/{total})", k + 1)),
                "label of part {}",
                k + 1
            );
        }
        let s = structure(body);
        assert!(!s.unbalanced, "part {} unbalanced", k + 1);
        assert_eq!(s.details_open, s.details_close);
        assert!(s.max_depth <= 1, "nested details in part {}", k + 1);
        assert_eq!(
            body.contains("| App | Env |"),
            k == 0,
            "summary table only in part 1"
        );
    }
    // Every app appears exactly once, in exactly one part, and in the summary.
    for name in apps {
        let needle = format!("<summary><b>{name}</b>");
        let hits: usize = rendered
            .parts
            .iter()
            .map(|p| p.body.matches(&needle).count())
            .sum();
        assert_eq!(hits, 1, "section of {name}");
        assert!(
            rendered.parts[0].body.contains(&format!("| [{name}](")),
            "summary row of {name}"
        );
    }
}

#[test]
fn five_megabyte_report_is_split_into_balanced_parts() {
    let r = five_mb();
    let input: usize = r
        .apps
        .iter()
        .flat_map(|a| &a.diff.changes)
        .map(|c| c.diff.len())
        .sum();
    assert!(input > 5_000_000, "fixture is {input} bytes");
    let rendered = render_comment(&r);
    assert!(
        rendered.parts.len() > 60,
        "got {} parts",
        rendered.parts.len()
    );
    let names: Vec<String> = r.apps.iter().map(|a| a.name.clone()).collect();
    assert_parts_well_formed(&rendered, &names);
    // The 1 MB diff was folded with a dashboard link, never cut inside a fence.
    let mono = rendered
        .parts
        .iter()
        .find(|p| p.body.contains("<summary><b>monolith</b>"))
        .unwrap();
    assert!(
        mono.body.contains(
            "full diff on the dashboard: https://capstan.example.test/runs/17#app-monolith"
        )
    );
}

#[test]
fn parts_are_packed_per_app_in_order() {
    let r = five_mb();
    let rendered = render_comment(&r);
    let mut last = 0;
    for a in &r.apps {
        let needle = format!("<summary><b>{}</b>", a.name);
        let part = rendered
            .parts
            .iter()
            .position(|p| p.body.contains(&needle))
            .unwrap();
        assert!(part >= last, "{} went backwards", a.name);
        last = part;
    }
}

#[test]
fn single_app_larger_than_the_limit_is_folded_largest_diff_first() {
    let small = change(
        ObjectChangeKind::Changed,
        id("Service", "x", "small"),
        "-a: 1\n+a: 2\n",
    );
    let mut huge = app_with("huge", 3, 40_000);
    huge.diff.changes.push(small);
    let rendered = render_comment(&report(vec![huge]));
    let names = vec!["huge".to_string()];
    assert_parts_well_formed(&rendered, &names);
    let all: String = rendered.parts.iter().map(|p| p.body.as_str()).collect();
    // The small diff survives intact; the large ones are folded with a link.
    assert!(all.contains("-a: 1\n+a: 2\n"));
    assert!(all.matches("full diff on the dashboard").count() >= 1);
}

#[test]
fn shrinking_produces_fewer_parts_and_names_the_obsolete_ones() {
    let big = render_comment(&five_mb());
    let n = big.parts.len();
    assert!(n > 1);
    let existing: Vec<usize> = big.part_numbers();
    assert_eq!(existing, (1..=n).collect::<Vec<_>>());

    let small = render_comment(&typical());
    assert_eq!(small.part_numbers(), vec![1]);
    assert_eq!(small.obsolete_parts(&existing), (2..=n).collect::<Vec<_>>());

    // Medium: a few parts, so only the tail is obsolete.
    let medium_apps: Vec<AppSection> = (0..8)
        .map(|i| app_with(&format!("m{i}"), 4, 8_500))
        .collect();
    let medium = render_comment(&report(medium_apps));
    let m = medium.parts.len();
    assert!(m > 1 && m < n, "medium has {m} parts");
    assert_eq!(
        medium.obsolete_parts(&existing),
        (m + 1..=n).collect::<Vec<_>>()
    );
    assert!(medium.obsolete_parts(&medium.part_numbers()).is_empty());
}

#[test]
fn summary_table_of_thousands_of_apps_stays_within_part_one() {
    let apps: Vec<AppSection> = (0..3000)
        .map(|i| {
            app(
                &format!("app-with-a-rather-long-name-{i:05}"),
                Some("production"),
                Vec::new(),
            )
        })
        .collect();
    let rendered = render_comment(&report(apps));
    for p in &rendered.parts {
        assert!(p.body.len() <= COMMENT_LIMIT);
        assert!(!structure(&p.body).unbalanced);
    }
    assert!(
        rendered.parts[0]
            .body
            .contains("more apps; see the dashboard")
    );
}

#[test]
fn a_finding_about_no_object_names_no_object() {
    let mut settings = finding(
        Severity::Deny,
        "capstan-settings-invalid",
        Some(".capstan.yaml"),
        Some(3),
        "unknown key `promtion`",
    );
    settings.object.clear();
    let mut section = app("(repository)", None, Vec::new());
    section.findings.push(settings);
    let body = &render_comment(&report(vec![section])).parts[0].body;
    assert!(
        body.contains("- ❌ deny capstan-settings-invalid · .capstan.yaml:3: unknown key"),
        "{body}"
    );
    assert!(!body.contains("· ·"), "{body}");
}

/// Findings the base branch already had are folded apart in the comment and counted in neither
/// the verdict nor the check run's conclusion or annotations.
#[test]
fn findings_already_on_base_are_folded_and_not_counted() {
    let mut a = app("shop", Some("prod"), Vec::new());
    a.findings = vec![finding(
        Severity::Warn,
        "resources-limits",
        Some("apps/shop/new.yaml"),
        Some(4),
        "new finding",
    )];
    a.preexisting = vec![finding(
        Severity::Deny,
        "service-exposure",
        Some("apps/shop/old.yaml"),
        Some(6),
        "old finding",
    )];
    let r = report(vec![a]);
    let body = &render_comment(&r).parts[0].body;
    assert!(body.contains("⚠️ 1 warn (+1 already on base)"), "{body}");
    let (before, folded) = body
        .split_once("1 finding the base branch already has (not counted)")
        .unwrap_or_else(|| panic!("no folded list: {body}"));
    assert!(before.contains("new finding") && !before.contains("old finding"));
    assert!(folded.contains("service-exposure") && folded.contains("old finding"));
    assert!(stray_html(body).is_empty(), "{:?}", stray_html(body));

    let run = capstan_worker::report::check_run(&r);
    assert_eq!(run.conclusion, capstan_worker::report::Conclusion::Neutral);
    let annotated: Vec<&str> = run
        .annotation_batches
        .iter()
        .flatten()
        .map(|x| x.message.as_str())
        .collect();
    assert_eq!(annotated.len(), 1);
    assert!(annotated[0].contains("new finding"));
}
