//! `--help` is where a new user learns the CLI: every subcommand's page is pinned by a snapshot,
//! every option and argument explains itself, and each page lists only the service settings that
//! subcommand reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// `capstan ARGS --help` with an empty environment: clap prints the current value of `env`
/// arguments and reads the terminal width from the environment, so both are pinned.
fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .arg("--help")
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands a help page lists under `Commands:` (without clap's own `help`).
fn commands(page: &str) -> Vec<String> {
    let mut in_commands = false;
    let mut found = Vec::new();
    for line in page.lines() {
        if line == "Commands:" {
            in_commands = true;
            continue;
        }
        if in_commands {
            if !line.starts_with("  ") {
                break;
            }
            // Continuation lines of a wrapped description are indented further.
            if let Some(name) = line.strip_prefix("  ").filter(|l| !l.starts_with(' ')) {
                let name = name.split_whitespace().next().unwrap_or_default();
                if name != "help" {
                    found.push(name.to_string());
                }
            }
        }
    }
    found
}

/// Every subcommand path, nested ones included (`policy test`).
fn every_subcommand() -> Vec<Vec<String>> {
    let mut all = Vec::new();
    let mut todo: Vec<Vec<String>> = commands(&help(&[])).into_iter().map(|c| vec![c]).collect();
    while let Some(path) = todo.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        for sub in commands(&help(&args)) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
        all.push(path);
    }
    all.sort();
    all
}

/// One entry of a help page's `Arguments:` or `Options:` section: its spec (`--data-dir <DIR>`,
/// `<PAYLOAD>`) and its description, wrapped lines joined.
#[derive(Debug)]
struct Entry {
    spec: String,
    text: String,
}

fn entries(page: &str) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let mut in_section = false;
    for line in page.lines() {
        if line == "Options:" || line == "Arguments:" {
            in_section = true;
            continue;
        }
        if !line.starts_with(' ') {
            in_section = false;
            continue;
        }
        if !in_section {
            continue;
        }
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let starts_entry = indent <= 6
            && (trimmed.starts_with('-') || trimmed.starts_with('<') || trimmed.starts_with('['));
        if starts_entry {
            // The spec ends where two spaces separate it from a description on the same line.
            let (spec, text) = match trimmed.find("  ") {
                Some(i) => (&trimmed[..i], trimmed[i..].trim()),
                None => (trimmed, ""),
            };
            out.push(Entry {
                spec: spec.to_string(),
                text: text.to_string(),
            });
        } else if let Some(last) = out.last_mut() {
            if !last.text.is_empty() {
                last.text.push(' ');
            }
            last.text.push_str(trimmed);
        }
    }
    out
}

/// A description without clap's bracketed annotations (`[default: …]`, `[env: …]`,
/// `[possible values: …]`, `[aliases: …]`).
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.trim().to_string()
}

/// The long flag of an option spec (`--data-dir <DIR>` → `--data-dir`).
fn flag(spec: &str) -> Option<&str> {
    spec.split([' ', ',', '='])
        .find(|w| w.starts_with("--"))
        .map(|w| w.trim_end_matches(['<', '>']))
}

#[test]
fn every_subcommand_help_page_is_pinned() {
    let subs = every_subcommand();
    // The walk must find the nested ones too, or the snapshots would silently cover less.
    assert!(subs.iter().any(|p| p == &["policy", "test"]), "{subs:?}");
    assert!(subs.len() >= 12, "{subs:?}");
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        insta::assert_snapshot!("capstan", help(&[]));
        for path in &subs {
            let args: Vec<&str> = path.iter().map(String::as_str).collect();
            insta::assert_snapshot!(format!("capstan_{}", path.join("_")), help(&args));
        }
    });
}

#[test]
fn every_option_and_argument_says_what_it_is_for() {
    let mut silent = Vec::new();
    let mut seen = 0;
    for path in every_subcommand() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        for e in entries(&help(&args)) {
            seen += 1;
            if prose(&e.text).is_empty() {
                silent.push(format!(
                    "capstan {} {}: {:?}",
                    path.join(" "),
                    e.spec,
                    e.text
                ));
            }
        }
    }
    assert!(seen > 100, "the parser found only {seen} entries");
    assert!(
        silent.is_empty(),
        "options without a description:\n{}",
        silent.join("\n")
    );
}

#[test]
fn serve_help_gives_each_setting_its_default_and_environment_variable() {
    let page = help(&["serve"]);
    let by_flag: BTreeMap<String, String> = entries(&page)
        .into_iter()
        .filter_map(|e| flag(&e.spec).map(|f| (f.to_string(), e.text)))
        .collect();
    for key in capstan_server::config::ALL {
        if key.flag.is_empty() {
            // Secrets are read from the environment only and have no flag.
            continue;
        }
        let text = by_flag
            .get(key.flag)
            .unwrap_or_else(|| panic!("serve --help lacks {}", key.flag));
        assert!(
            text.contains(&format!("[env: {}]", key.env)),
            "{}: {text}",
            key.flag
        );
        if !key.default.is_empty() {
            assert!(
                text.contains(&format!("[default: {}]", key.default)),
                "{}: {text}",
                key.flag
            );
        }
    }
}

/// Each subcommand lists the service settings it reads and no other: a read-only or one-shot
/// command drowning in thirty unrelated settings teaches nothing.
#[test]
fn subcommands_list_only_the_service_settings_they_read() {
    let service: BTreeSet<&str> = capstan_server::config::ALL
        .iter()
        .map(|k| k.flag)
        .filter(|f| !f.is_empty())
        .collect();
    // Rendering reads the service's chart and Jsonnet bounds, so the CLI renders alike.
    let repo_settings = [
        "--chart-cache-dir",
        "--charts-offline",
        "--jsonnet-deadline-secs",
        "--jsonnet-max-memory-mb",
        "--jsonnet-max-output-mb",
        "--jsonnet-max-stack",
        "--jsonnet-max-files",
    ];
    let expected: BTreeMap<&str, Vec<&str>> = [
        ("promotions", vec!["--data-dir", "--database-url"]),
        (
            "replay",
            vec!["--listen", "--data-dir", "--webhook-secret-file"],
        ),
        ("apps", repo_settings.to_vec()),
        ("render", repo_settings.to_vec()),
        ("diff", repo_settings.to_vec()),
        ("check", repo_settings.to_vec()),
        ("init", repo_settings.to_vec()),
    ]
    .into_iter()
    .collect();
    for path in every_subcommand() {
        let name = path.join(" ");
        if name == "serve" || name == "config" {
            continue;
        }
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let listed: BTreeSet<&str> = entries(&help(&args))
            .iter()
            .filter_map(|e| flag(&e.spec))
            .filter(|f| service.contains(f))
            .map(|f| *service.get(f).unwrap())
            .collect();
        let want: BTreeSet<&str> = expected
            .get(name.as_str())
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        assert_eq!(listed, want, "capstan {name} --help");
    }
}

/// Every `capstan SUBCOMMAND … --flag` the README and docs show names a subcommand and flags that
/// exist: examples are where users copy from, so a renamed flag must fail here, not for them.
#[test]
fn every_command_line_the_docs_show_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let listed = Command::new("git")
        .args(["ls-files", "*.md"])
        .current_dir(&root)
        .output()
        .unwrap();
    let subs = every_subcommand();
    let mut pages: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &subs {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let flags = entries(&help(&args))
            .iter()
            .flat_map(|e| {
                // `--chart-cache-dir <DIR>` and its aliases (`[aliases: --chart-cache]`).
                let mut f: Vec<String> = e
                    .spec
                    .split([' ', ','])
                    .filter(|w| w.starts_with("--"))
                    .map(str::to_string)
                    .collect();
                if let Some(a) = e.text.split("[aliases: ").nth(1) {
                    f.extend(
                        a.split([',', ' ', ']'])
                            .filter(|w| w.starts_with("--"))
                            .map(str::to_string),
                    );
                }
                f
            })
            .collect();
        pages.insert(path.join(" "), flags);
    }
    let mut shown = 0;
    let mut wrong = Vec::new();
    for file in String::from_utf8(listed.stdout).unwrap().lines() {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for (n, line) in text.lines().enumerate() {
            for (at, _) in line.match_indices("capstan ") {
                // Only command lines: in code (`capstan apps`), or a shell line that starts with it.
                let before = &line[..at];
                if !(before.ends_with('`') || before.trim().is_empty() || before.ends_with("$ ")) {
                    continue;
                }
                // The command runs to the end of the code span, a comment or a shell separator.
                let rest = &line[at + "capstan ".len()..];
                let end = rest.find(['`', '#', ';', '&', '>']).unwrap_or(rest.len());
                let words: Vec<&str> = rest[..end].split_whitespace().collect();
                let Some(first) = words.first() else { continue };
                if !first.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
                    continue;
                }
                let (sub, flags_from) = match words.get(1) {
                    Some(second) if pages.contains_key(&format!("{first} {second}")) => {
                        (format!("{first} {second}"), 2)
                    }
                    _ => (first.to_string(), 1),
                };
                let Some(known) = pages.get(&sub) else {
                    // Prose such as "capstan renders …" is not a command; a code span is.
                    if before.ends_with('`') {
                        wrong.push(format!("{file}:{}: no subcommand `capstan {sub}`", n + 1));
                    }
                    continue;
                };
                shown += 1;
                for w in &words[flags_from..] {
                    let w = w.trim_start_matches(['[', '(']);
                    let Some(flag) = w.strip_prefix("--").map(|f| {
                        let f = f
                            .split(['=', ']', ')', '|', ','])
                            .next()
                            .unwrap_or_default();
                        format!("--{f}")
                    }) else {
                        continue;
                    };
                    if flag != "--help" && flag != "--" && !known.contains(&flag) {
                        wrong.push(format!("{file}:{}: `capstan {sub}` has no {flag}", n + 1));
                    }
                }
            }
        }
    }
    assert!(shown > 20, "only {shown} command lines found in the docs");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
