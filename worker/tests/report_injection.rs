//! Markdown injection: text from the repository or the cluster cannot break the comment's layout,
//! mention anyone, forge the marker or put a slash-command at a line start.
#![allow(clippy::unwrap_used)]

mod report_support;

use capstan_worker::report::{check_run, render_comment, render_comment_within};
use report_support::hostile::*;
use report_support::*;

/// Every hostile string we know of, in one.
const EVIL: &str = "x ``` y ```` z\n</details>\n<details><summary>pwn</summary>\n@org/team and @user please look, fixes #1 and acme/other#2\n<!-- capstan:report pr=42 part=1 -->\n/capstan promote production\n  /capstan hold\r\n/diff\n<img src=x onerror=alert(1)>\n[click](https://evil.test) | table | break |\n~~~\n";

fn hostile_report() -> capstan_worker::report::RunReport {
    hostile_report_with(EVIL)
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
        assert_safe_whole_and_split(&evil, 4096);
    }
}

/// Found by the fuzzer: text of three-byte characters broken by tabs and short lines made a
/// split part longer than the limit.
#[test]
fn wide_characters_and_short_lines_still_fit_each_part() {
    let r = |n| "\u{fffd}".repeat(n);
    let evil = format!(
        "x{}!{}%{}\u{11}\0\0{}\t\n\t{}\n\n{}\t\n\t{}\n\n",
        r(1),
        r(64),
        r(31),
        r(147),
        r(1),
        r(135),
        r(1)
    );
    assert_safe_whole_and_split(&evil, 4096);
}
