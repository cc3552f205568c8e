//! The one reply Capstan posts per evaluated comment: a hidden marker naming the comment and its
//! version (so a retried job finds its own reply instead of posting twice), then one list item per
//! command line with its outcome. Every piece of user or cluster text goes through
//! `report::markdown`, so the reply can neither mention anyone nor carry a command line.

use crate::report::markdown::inline_max;

/// Start of the marker; `jobs::mapping` ignores every comment containing `<!-- capstan`.
const MARKER_PREFIX: &str = "<!-- capstan:command-reply ";

/// How one command line ended, for the reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It ran; the text says what happened (trusted wording from Capstan itself).
    Done(String),
    /// It ran, and the extra text (from ArgoCD or the promotion engine) is shown escaped.
    DoneWith { summary: String, detail: String },
    /// It was not run; the reason may quote user text.
    Refused(String),
    /// `help`: the text is Capstan's own list of commands.
    Help(String),
}

/// One line of the reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyItem {
    /// The command line as written (user text).
    pub text: String,
    pub outcome: Outcome,
}

/// The hidden marker for `comment_id` at `version`. The version comes from GitHub's
/// `updated_at`; anything but plain timestamp characters is dropped so it cannot end the HTML
/// comment.
pub fn marker(comment_id: u64, version: &str) -> String {
    let version: String = version
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '+'))
        .take(64)
        .collect();
    format!("{MARKER_PREFIX}{comment_id}@{version} -->")
}

/// The reply body.
pub fn render(comment_id: u64, version: &str, author: &str, items: &[ReplyItem]) -> String {
    let mut out = marker(comment_id, version);
    out.push('\n');
    out.push_str(&format!(
        "Capstan read {} command{} from {}:\n\n",
        items.len(),
        if items.len() == 1 { "" } else { "s" },
        inline_max(author, 60)
    ));
    let mut help = None;
    for item in items {
        let line = inline_max(&item.text, 200);
        let outcome = match &item.outcome {
            Outcome::Done(text) => format!("done: {text}"),
            Outcome::DoneWith { summary, detail } => {
                format!("done: {summary}: {}", inline_max(detail, 1000))
            }
            Outcome::Refused(reason) => format!("refused: {}", inline_max(reason, 500)),
            Outcome::Help(text) => {
                help = Some(text.clone());
                "done: the commands are listed below".to_string()
            }
        };
        out.push_str(&format!("- {line} → {outcome}\n"));
    }
    if let Some(text) = help {
        out.push('\n');
        out.push_str(&text);
    }
    out
}

/// A reply to the whole comment when none of its lines could be evaluated.
pub fn render_note(comment_id: u64, version: &str, note: &str) -> String {
    format!(
        "{}\nCapstan did not run any command from this comment: {}\n",
        marker(comment_id, version),
        inline_max(note, 1500)
    )
}

/// Whether `body` is the reply to `comment_id` at `version`.
pub fn is_reply_to(body: &str, comment_id: u64, version: &str) -> bool {
    body.starts_with(&marker(comment_id, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_cannot_mention_or_command() {
        let items = vec![
            ReplyItem {
                text: "/capstan promote @org/team".into(),
                outcome: Outcome::Refused("`@org/team` looks like a path".into()),
            },
            ReplyItem {
                text: "/capstan sync web".into(),
                outcome: Outcome::DoneWith {
                    summary: "ArgoCD sync of web started".into(),
                    detail: "message\n/capstan hold\n<!-- capstan:report -->".into(),
                },
            },
        ];
        let body = render(7, "2026-11-26T08:00:00Z", "alice", &items);
        assert!(body.starts_with("<!-- capstan:command-reply 7@2026-11-26T08:00:00Z -->\n"));
        assert!(is_reply_to(&body, 7, "2026-11-26T08:00:00Z"));
        assert!(!is_reply_to(&body, 7, "2026-11-26T09:00:00Z"));
        // No mention survives, no line starts with a command, the report marker is not forged.
        assert!(!body.contains("@org"), "{body}");
        for line in body.lines() {
            assert!(!line.trim_start().starts_with('/'), "{line}");
        }
        assert!(!body.contains("<!-- capstan:report"));
        assert_eq!(body.matches("<!--").count(), 1, "{body}");
    }

    #[test]
    fn markers_drop_characters_that_could_end_the_comment() {
        assert_eq!(
            marker(1, "x --> @you"),
            "<!-- capstan:command-reply 1@x--you -->"
        );
    }
}
