//! Comment body → commands. A command is a whole line that starts (in column 0) with the prefix,
//! outside fenced code blocks, HTML comments and quotes. Anything doubtful is refused with a
//! reason rather than guessed.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{Command, CommandConfig, CommandKind};

/// More command lines than this in one comment are refused (each one after the limit).
pub const MAX_COMMANDS_PER_COMMENT: usize = 10;

/// Why a command line was not accepted. Values quoted from the comment are user text: the
/// handler escapes the message before replying.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    #[error("missing command; allowed: {allowed}")]
    MissingCommand { allowed: String },
    #[error("unknown command `{given}`; allowed: {allowed}")]
    UnknownCommand { given: String, allowed: String },
    #[error(
        "`{given}` contains non-ASCII characters; commands, environment and app names are plain ASCII"
    )]
    NonAscii { given: String },
    #[error(
        "`{given}` looks like a path; arguments are plain names (letters, digits, `-`, `_`, `.`)"
    )]
    PathLike { given: String },
    #[error("`{given}` contains characters other than letters, digits, `-`, `_` and `.`")]
    BadCharacters { given: String },
    #[error("unknown environment `{given}`; allowed: {allowed}{hint}")]
    UnknownEnvironment {
        given: String,
        allowed: String,
        /// `; did you mean `x`?` when a configured name is near, else empty.
        hint: String,
    },
    #[error("unknown app `{given}`; it must be the exact name of an app in this repository{hint}")]
    UnknownApp { given: String, hint: String },
    #[error("`{given}` is not a commit: expected 7 to 40 lowercase hex characters")]
    BadSha { given: String },
    #[error("`{command}` needs more arguments; usage: {usage}")]
    MissingArgument { command: String, usage: String },
    #[error("unexpected argument `{given}` for `{command}`; usage: {usage}")]
    ExtraArgument {
        command: String,
        given: String,
        usage: String,
    },
    #[error("more than {MAX_COMMANDS_PER_COMMENT} commands in one comment; this one was not run")]
    TooManyCommands,
}

/// One command line of a comment and what came of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommandLine {
    /// 1-based line number in the comment.
    pub line: usize,
    /// The line as written (trailing whitespace removed).
    pub text: String,
    pub outcome: Result<Command, Refusal>,
}

/// Finds and parses every command line of `body`, in order. Lines that are not addressed to
/// Capstan produce nothing; lines that are, but are malformed, produce a refusal.
pub fn parse_comment(body: &str, config: &CommandConfig) -> Vec<CommandLine> {
    let mut out = Vec::new();
    let mut fence: Option<(u8, usize)> = None;
    let mut comment: Option<HtmlComment> = None;
    let mut accepted = 0;
    for (i, raw) in body.split('\n').enumerate() {
        let line = raw.trim_end_matches(['\r', ' ', '\t']);
        if let Some((ch, len)) = fence {
            if closes_fence(line, ch, len) {
                fence = None;
            }
            continue;
        }
        match comment {
            // A fence line ends the paragraph an inline comment was opened in, and the comment
            // with it (its `<!--` is then literal text); the fence is handled below.
            Some(HtmlComment::Inline) if opens_fence(line).is_some() => comment = None,
            Some(state) => {
                if line.contains("-->") {
                    comment = None;
                } else if matches!(state, HtmlComment::Inline) && starts_comment_block(line) {
                    // The paragraph ends there and an HTML block begins, which fences do not end.
                    comment = Some(HtmlComment::Block);
                }
                continue;
            }
            None => {}
        }
        if let Some(open) = opens_fence(line) {
            fence = Some(open);
            continue;
        }
        if let Some(pos) = line.find("<!--")
            && !line[pos + 2..].contains("-->")
        {
            // Lines are hidden until `-->` either way; only a block's own lines cannot open a
            // fence. Hiding more than a renderer would is the safe side: a command not run.
            comment = Some(if starts_comment_block(line) {
                HtmlComment::Block
            } else {
                HtmlComment::Inline
            });
        }
        let Some(args) = addressed(line, config) else {
            continue;
        };
        let outcome = if accepted >= MAX_COMMANDS_PER_COMMENT {
            Err(Refusal::TooManyCommands)
        } else {
            accepted += 1;
            parse_words(&args, config)
        };
        out.push(CommandLine {
            line: i + 1,
            text: line.to_string(),
            outcome,
        });
    }
    out
}

/// An HTML comment still open at the end of a line.
#[derive(Clone, Copy)]
enum HtmlComment {
    /// A line starting with `<!--` (up to 3 spaces in): CommonMark's HTML block, which runs to
    /// the first line holding `-->` whatever that line looks like.
    Block,
    /// `<!--` later in a line: inline HTML inside a paragraph, which a fence line ends.
    Inline,
}

/// A line CommonMark starts an HTML comment block with: up to 3 spaces, then `<!--`.
fn starts_comment_block(line: &str) -> bool {
    let rest = line.trim_start_matches(' ');
    line.len() - rest.len() <= 3 && rest.starts_with("<!--")
}

/// An opening code fence: up to 3 spaces, then 3+ backticks or tildes.
fn opens_fence(line: &str) -> Option<(u8, usize)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let ch = *rest.as_bytes().first()?;
    if ch != b'`' && ch != b'~' {
        return None;
    }
    let len = rest.bytes().take_while(|b| *b == ch).count();
    if len < 3 {
        return None;
    }
    // A backtick fence's info string cannot contain backticks (then it is inline code).
    if ch == b'`' && rest[len..].contains('`') {
        return None;
    }
    Some((ch, len))
}

fn closes_fence(line: &str, ch: u8, len: usize) -> bool {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return false;
    }
    let rest = &line[indent..];
    let run = rest.bytes().take_while(|b| *b == ch).count();
    run >= len && rest[run..].trim().is_empty()
}

/// The words after the prefix when `line` is addressed to Capstan. In bare mode `/diff` stands
/// for `<prefix> diff`, but only for known command names, so other bots' commands are left alone.
fn addressed(line: &str, config: &CommandConfig) -> Option<Vec<String>> {
    let first_end = line.find([' ', '\t']).unwrap_or(line.len());
    let first = &line[..first_end];
    let rest = &line[first_end..];
    let words = || {
        rest.split([' ', '\t'])
            .filter(|w| !w.is_empty())
            .map(String::from)
    };
    if !config.prefix.is_empty() && first == config.prefix {
        return Some(words().collect());
    }
    // `/capstan` followed by a Unicode space or an invisible character: clearly meant for us, so
    // it is refused (as non-ASCII) rather than silently ignored.
    if let Some(glued) = first.strip_prefix(config.prefix.as_str())
        && !config.prefix.is_empty()
        && glued.chars().next().is_some_and(|c| !c.is_ascii())
    {
        let mut all = vec![glued.to_string()];
        all.extend(words());
        return Some(all);
    }
    if config.bare {
        let name = first.strip_prefix('/')?;
        if CommandKind::from_name(name).is_some() {
            let mut all = vec![name.to_string()];
            all.extend(words());
            return Some(all);
        }
    }
    None
}

fn allowed_commands() -> String {
    CommandKind::ALL
        .iter()
        .map(|k| k.usage())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every word must be a plain name: ASCII, not path-like, `[A-Za-z0-9._-]`.
fn check_word(w: &str) -> Result<(), Refusal> {
    if !w.is_ascii() {
        return Err(Refusal::NonAscii { given: w.into() });
    }
    if w.contains('/')
        || w.contains('\\')
        || w.contains("..")
        || w.starts_with('.')
        || w.starts_with('~')
    {
        return Err(Refusal::PathLike { given: w.into() });
    }
    if !w
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(Refusal::BadCharacters { given: w.into() });
    }
    Ok(())
}

fn is_sha(w: &str) -> bool {
    (7..=40).contains(&w.len()) && w.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn parse_words(words: &[String], config: &CommandConfig) -> Result<Command, Refusal> {
    let Some(name) = words.first() else {
        return Err(Refusal::MissingCommand {
            allowed: allowed_commands(),
        });
    };
    // Check every word first, so a homoglyph anywhere is named as such.
    for w in words {
        check_word(w)?;
    }
    let kind = CommandKind::from_name(name).ok_or_else(|| Refusal::UnknownCommand {
        given: name.clone(),
        allowed: allowed_commands(),
    })?;
    let args = &words[1..];
    let extra = |given: &str| Refusal::ExtraArgument {
        command: kind.name().into(),
        given: given.into(),
        usage: kind.usage().into(),
    };
    let missing = || Refusal::MissingArgument {
        command: kind.name().into(),
        usage: kind.usage().into(),
    };
    // Names are matched exactly (no case folding); a near one is only suggested.
    let hint = |given: &str, names: &BTreeSet<String>| {
        crate::settings::did_you_mean_hint(given, names.iter().map(String::as_str))
    };
    let unknown_app = |given: &str| Refusal::UnknownApp {
        given: given.into(),
        hint: hint(given, &config.apps),
    };
    let app = |given: &str| {
        if config.apps.contains(given) {
            Ok(given.to_string())
        } else {
            Err(unknown_app(given))
        }
    };
    match kind {
        CommandKind::Help
        | CommandKind::Diff
        | CommandKind::Validate
        | CommandKind::Hold
        | CommandKind::Unhold
        | CommandKind::OkToTest => {
            if let Some(a) = args.first() {
                return Err(extra(a));
            }
            Ok(match kind {
                CommandKind::Help => Command::Help,
                CommandKind::Diff => Command::Diff,
                CommandKind::Validate => Command::Validate,
                CommandKind::Hold => Command::Hold,
                CommandKind::OkToTest => Command::OkToTest,
                _ => Command::Unhold,
            })
        }
        CommandKind::Sync => match args {
            [] => Err(missing()),
            [a] => Ok(Command::Sync { app: app(a)? }),
            [_, more, ..] => Err(extra(more)),
        },
        CommandKind::Promote => {
            let Some(env) = args.first() else {
                return Err(missing());
            };
            if !config.environments.contains(env.as_str()) {
                return Err(Refusal::UnknownEnvironment {
                    given: env.clone(),
                    allowed: if config.environments.is_empty() {
                        "(none configured)".into()
                    } else {
                        config
                            .environments
                            .iter()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    hint: hint(env, &config.environments),
                });
            }
            // `[app] [sha]`: a known app name wins over a hex-looking word, so an app named
            // like a commit stays reachable; a lone SHA without an app is also accepted.
            let (app_arg, sha_arg) = match &args[1..] {
                [] => (None, None),
                [x] if config.apps.contains(x.as_str()) => (Some(x.clone()), None),
                [x] if is_sha(x) => (None, Some(x.clone())),
                [x] if x.bytes().all(|b| b.is_ascii_hexdigit()) && x.len() >= 7 => {
                    return Err(Refusal::BadSha { given: x.clone() });
                }
                [x] => return Err(unknown_app(x)),
                [a, s] => {
                    let a = app(a)?;
                    if !is_sha(s) {
                        return Err(Refusal::BadSha { given: s.clone() });
                    }
                    (Some(a), Some(s.clone()))
                }
                [_, _, more, ..] => return Err(extra(more)),
            };
            Ok(Command::Promote {
                environment: env.clone(),
                app: app_arg,
                sha: sha_arg,
            })
        }
    }
}
