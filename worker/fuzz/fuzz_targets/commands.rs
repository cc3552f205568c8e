//! The slash-command parser, on comment text anyone can write. Commands are found only on lines
//! outside code (checked against the report tests' own CommonMark fence walker, written
//! separately), in order, never more accepted than the per-comment cap, each naming its line.
#![no_main]

#[path = "../../tests/report_support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod report_support;

use capstan_worker::commands::{CommandConfig, MAX_COMMANDS_PER_COMMENT, parse_comment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let body = String::from_utf8_lossy(rest);
    let config = CommandConfig {
        bare: mode & 1 == 1,
        environments: ["staging".to_string(), "production".to_string()].into(),
        apps: ["web".to_string()].into(),
        ..CommandConfig::default()
    };
    let found = parse_comment(&body, &config);
    assert_eq!(
        found,
        parse_comment(&body, &config),
        "parsing is not deterministic"
    );
    let lines: Vec<&str> = body.split('\n').collect();
    let outside = report_support::structure(&body).outside_code;
    let outside: Vec<&str> = outside
        .split('\n')
        .map(|l| l.trim_end_matches(['\r', ' ', '\t']))
        .collect();
    let mut last = 0;
    for c in &found {
        assert!(c.line > last, "lines out of order");
        last = c.line;
        let written = lines[c.line - 1].trim_end_matches(['\r', ' ', '\t']);
        assert_eq!(c.text, written, "the command does not quote its line");
        assert!(
            outside.contains(&c.text.as_str()),
            "a command inside a code block: {:?}",
            c.text
        );
    }
    let accepted = found.iter().filter(|c| c.outcome.is_ok()).count();
    assert!(
        accepted <= MAX_COMMANDS_PER_COMMENT,
        "{accepted} commands in one comment"
    );
});
