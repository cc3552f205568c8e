//! Slash-command parsing: where commands are recognised, and every refusal rule.
#![allow(clippy::unwrap_used)]

use capstan_worker::commands::{
    Command, CommandConfig, CommandKind, MAX_COMMANDS_PER_COMMENT, Permission, Refusal,
    parse_comment,
};

fn config() -> CommandConfig {
    CommandConfig {
        environments: ["staging", "production"].map(String::from).into(),
        apps: ["shop-web", "shop-api", "deadbeef"]
            .map(String::from)
            .into(),
        ..CommandConfig::default()
    }
}

fn one(body: &str) -> Result<Command, Refusal> {
    let lines = parse_comment(body, &config());
    assert_eq!(lines.len(), 1, "{body:?} gave {lines:?}");
    lines.into_iter().next().unwrap().outcome
}

fn none(body: &str) {
    assert_eq!(parse_comment(body, &config()), Vec::new(), "{body:?}");
}

#[test]
fn simple_commands() {
    assert_eq!(one("/capstan help"), Ok(Command::Help));
    assert_eq!(one("/capstan diff"), Ok(Command::Diff));
    assert_eq!(one("/capstan validate"), Ok(Command::Validate));
    assert_eq!(one("/capstan hold"), Ok(Command::Hold));
    assert_eq!(one("/capstan unhold"), Ok(Command::Unhold));
    assert_eq!(one("/capstan   diff  \t"), Ok(Command::Diff));
    assert_eq!(
        one("/capstan sync shop-web"),
        Ok(Command::Sync {
            app: "shop-web".into()
        })
    );
}

#[test]
fn promote_forms() {
    let p = |env: &str, app: Option<&str>, sha: Option<&str>| {
        Ok(Command::Promote {
            environment: env.into(),
            app: app.map(String::from),
            sha: sha.map(String::from),
        })
    };
    assert_eq!(
        one("/capstan promote production"),
        p("production", None, None)
    );
    assert_eq!(
        one("/capstan promote staging shop-web"),
        p("staging", Some("shop-web"), None)
    );
    assert_eq!(
        one("/capstan promote production shop-api 0123abc"),
        p("production", Some("shop-api"), Some("0123abc"))
    );
    let full = "0123456789abcdef0123456789abcdef01234567";
    assert_eq!(
        one(&format!("/capstan promote production {full}")),
        p("production", None, Some(full))
    );
    // A known app whose name looks like hex is the app, not a commit.
    assert_eq!(
        one("/capstan promote production deadbeef"),
        p("production", Some("deadbeef"), None)
    );
}

#[test]
fn sha_must_be_7_to_40_lowercase_hex() {
    for bad in [
        "012345",
        "0123ABC",
        "0123456789abcdef0123456789abcdef012345678",
        "0123xyz",
    ] {
        let r = one(&format!("/capstan promote production shop-web {bad}"));
        assert_eq!(r, Err(Refusal::BadSha { given: bad.into() }), "{bad}");
    }
    assert_eq!(
        one("/capstan promote production ABCDEF0"),
        Err(Refusal::BadSha {
            given: "ABCDEF0".into()
        })
    );
}

#[test]
fn homoglyph_environment_is_refused() {
    // Cyrillic о (U+043E) in "prоduction".
    let r = one("/capstan promote pr\u{043E}duction");
    assert_eq!(
        r,
        Err(Refusal::NonAscii {
            given: "pr\u{043E}duction".into()
        })
    );
    assert!(r.unwrap_err().to_string().contains("non-ASCII"));
    // Fullwidth letters, a homoglyph app, a non-breaking space as separator.
    assert!(matches!(
        one("/capstan promote ｐroduction"),
        Err(Refusal::NonAscii { .. })
    ));
    assert!(matches!(
        one("/capstan sync shop-w\u{0435}b"),
        Err(Refusal::NonAscii { .. })
    ));
    assert!(matches!(
        one("/capstan promote\u{00A0}production"),
        Err(Refusal::NonAscii { .. })
    ));
    assert!(matches!(
        one("/capstan h\u{043E}ld"),
        Err(Refusal::NonAscii { .. })
    ));
}

#[test]
fn no_case_folding() {
    assert!(matches!(
        one("/capstan promote Production"),
        Err(Refusal::UnknownEnvironment { .. })
    ));
    // Refused, but the near name is offered.
    let e = one("/capstan promote Production").unwrap_err().to_string();
    assert!(e.contains("did you mean `production`?"), "{e}");
    assert!(matches!(
        one("/capstan Diff"),
        Err(Refusal::UnknownCommand { .. })
    ));
    assert!(matches!(
        one("/capstan sync Shop-web"),
        Err(Refusal::UnknownApp { .. })
    ));
    none("/Capstan diff");
}

#[test]
fn path_like_arguments_are_refused() {
    for arg in [
        "../production",
        "..",
        "a/b",
        "..\\x",
        ".hidden",
        "~root",
        "/etc",
    ] {
        let r = one(&format!("/capstan sync {arg}"));
        assert_eq!(r, Err(Refusal::PathLike { given: arg.into() }), "{arg}");
    }
    assert!(matches!(
        one("/capstan promote ../production"),
        Err(Refusal::PathLike { .. })
    ));
}

#[test]
fn odd_characters_are_refused() {
    for arg in ["a;b", "$(id)", "a`b", "x@y", "a=b"] {
        assert_eq!(
            one(&format!("/capstan sync {arg}")),
            Err(Refusal::BadCharacters { given: arg.into() }),
            "{arg}"
        );
    }
}

#[test]
fn unknown_and_extra_arguments_say_what_is_allowed() {
    let r = one("/capstan deploy").unwrap_err();
    assert!(matches!(r, Refusal::UnknownCommand { .. }));
    let msg = r.to_string();
    assert!(
        msg.contains("promote <environment> [app] [sha]") && msg.contains("sync <app>"),
        "{msg}"
    );

    let r = one("/capstan diff now").unwrap_err();
    assert_eq!(
        r,
        Refusal::ExtraArgument {
            command: "diff".into(),
            given: "now".into(),
            usage: "diff".into()
        }
    );
    let r = one("/capstan sync shop-web shop-api").unwrap_err();
    assert!(r.to_string().contains("usage: sync <app>"), "{r}");
    let r = one("/capstan promote production shop-web 0123abc extra").unwrap_err();
    assert!(matches!(r, Refusal::ExtraArgument { ref given, .. } if given == "extra"));

    let r = one("/capstan promote qa").unwrap_err();
    assert!(
        r.to_string().contains("allowed: production, staging"),
        "{r}"
    );
    assert!(matches!(
        one("/capstan promote"),
        Err(Refusal::MissingArgument { .. })
    ));
    assert!(matches!(
        one("/capstan sync"),
        Err(Refusal::MissingArgument { .. })
    ));
    assert!(matches!(
        one("/capstan"),
        Err(Refusal::MissingCommand { .. })
    ));
    assert!(matches!(
        one("/capstan sync nope"),
        Err(Refusal::UnknownApp { .. })
    ));
    assert!(matches!(
        one("/capstan promote production nope"),
        Err(Refusal::UnknownApp { .. })
    ));
}

#[test]
fn no_environments_configured_refuses_promote() {
    let c = CommandConfig::default();
    let lines = parse_comment("/capstan promote production", &c);
    let r = lines[0].outcome.clone().unwrap_err();
    assert!(r.to_string().contains("none configured"), "{r}");
}

#[test]
fn only_at_line_start() {
    none("please /capstan diff");
    none(" /capstan diff");
    none("    /capstan diff");
    none("\t/capstan diff");
    none("/capstandiff");
    // Glued to the prefix by a Unicode space or an invisible character: refused, not ignored.
    assert!(matches!(
        one("/capstan\u{00A0}diff"),
        Err(Refusal::NonAscii { .. })
    ));
    assert!(matches!(
        one("/capstan\u{200B} diff"),
        Err(Refusal::NonAscii { .. })
    ));
    none("/capstan-diff");
}

#[test]
fn ignored_in_code_quotes_and_comments() {
    none("```\n/capstan promote production\n```");
    none("~~~\n/capstan hold\n~~~");
    none("````md\n```\n/capstan hold\n```\n````");
    none("  ```\n/capstan hold\n  ```");
    none("```\n/capstan hold"); // unclosed fence runs to the end
    none("`/capstan diff`");
    none("> /capstan promote production");
    none(">/capstan diff");
    none("> quoted\n> /capstan hold");
    none("<!--\n/capstan hold\n-->");
    // After the fence closes, commands count again.
    let lines = parse_comment("```\n/capstan hold\n```\n/capstan diff", &config());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].line, 4);
    assert_eq!(lines[0].outcome, Ok(Command::Diff));
    // Inline backticks on the opening line make it inline code, not a fence.
    let lines = parse_comment("``` x ```\n/capstan diff", &config());
    assert_eq!(lines.len(), 1);
}

/// Found by the fuzzer: a fence line inside an HTML comment opens nothing (CommonMark ends the
/// comment block at its `-->` line), so a command after the comment is visible and counts.
#[test]
fn a_fence_inside_an_html_comment_hides_nothing_after_the_comment() {
    let lines = parse_comment("<!--\n~~~\n-->\n/capstan diff\n~~~", &config());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!((lines[0].line, &lines[0].outcome), (4, &Ok(Command::Diff)));
    // And a command inside the comment stays hidden, whatever fence it sits after.
    none("<!--\n~~~\n/capstan hold\n-->");
    // A `<!--` in the middle of a paragraph is no HTML block: a fence on the next line ends the
    // paragraph and opens a code block, whose `-->` closes nothing (found by the fuzzer).
    none("/<!--\n```-->\n/capstan diff");
    none("text <!--\n~~~\n-->\n/capstan diff\n~~~");
    // A line starting with `<!--` after such a paragraph opens a comment block, which no fence
    // line ends: all that follows it without a `-->` is hidden (found by the fuzzer).
    none("-<!--\n<!--\n```\n```\n/capstan diff");
    // `<!-->` is a whole comment (its `-->` overlaps the opener): the next line is visible.
    let lines = parse_comment("<!-->\n/capstan diff", &config());
    assert_eq!(lines.len(), 1, "{lines:?}");
}

#[test]
fn several_commands_in_one_comment() {
    let body = "Thanks!\r\n/capstan diff\r\nsome text\n/capstan promote staging shop-web\n/capstan bogus\n/capstan validate";
    let lines = parse_comment(body, &config());
    let got: Vec<(usize, bool)> = lines.iter().map(|l| (l.line, l.outcome.is_ok())).collect();
    assert_eq!(got, vec![(2, true), (4, true), (5, false), (6, true)]);
    assert_eq!(lines[0].text, "/capstan diff");
}

#[test]
fn too_many_commands_are_refused_past_the_limit() {
    let body = "/capstan diff\n".repeat(MAX_COMMANDS_PER_COMMENT + 3);
    let lines = parse_comment(&body, &config());
    assert_eq!(lines.len(), MAX_COMMANDS_PER_COMMENT + 3);
    assert!(
        lines[..MAX_COMMANDS_PER_COMMENT]
            .iter()
            .all(|l| l.outcome.is_ok())
    );
    assert!(
        lines[MAX_COMMANDS_PER_COMMENT..]
            .iter()
            .all(|l| l.outcome == Err(Refusal::TooManyCommands))
    );
}

#[test]
fn bare_mode_and_custom_prefix() {
    let mut c = config();
    assert!(parse_comment("/diff", &c).is_empty(), "bare off by default");
    c.bare = true;
    let lines = parse_comment("/diff\n/promote staging\n/assign @me\n/capstan hold", &c);
    let got: Vec<_> = lines.iter().map(|l| l.outcome.clone()).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0], Ok(Command::Diff));
    assert!(matches!(got[1], Ok(Command::Promote { .. })));
    assert_eq!(got[2], Ok(Command::Hold));

    let c = CommandConfig {
        prefix: "/cap".into(),
        ..config()
    };
    assert_eq!(parse_comment("/cap diff", &c)[0].outcome, Ok(Command::Diff));
    assert!(parse_comment("/capstan diff", &c).is_empty());
}

#[test]
fn permissions_parse_and_order() {
    let levels = ["none", "read", "triage", "write", "maintain", "admin"];
    let parsed: Vec<Permission> = levels.iter().map(|l| l.parse().unwrap()).collect();
    assert!(parsed.windows(2).all(|w| w[0] < w[1]));
    assert!("Admin".parse::<Permission>().is_err());
    assert!("owner".parse::<Permission>().is_err());
    assert_eq!(
        CommandKind::from_name("promote"),
        Some(CommandKind::Promote)
    );
    assert_eq!(CommandKind::from_name("Promote"), None);
}

#[test]
fn help_lists_every_command_with_its_permission() {
    let text = config().help_text();
    for k in CommandKind::ALL {
        assert!(text.contains(&format!("/capstan {}", k.usage())), "{k}");
    }
    assert!(text.contains("`/capstan hold`: needs maintain"));
}
