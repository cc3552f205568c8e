//! Permission checks for parsed commands. The author's permission is looked up once per comment;
//! a failed lookup refuses every command of that comment (never allows).

use async_trait::async_trait;
use serde::Serialize;

use super::{Command, CommandConfig, CommandLine, Permission};

/// The permission lookup could not answer (network, 5xx, rate limit, unexpected payload, ...).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("permission lookup for `{user}` failed: {message}")]
pub struct LookupError {
    pub user: String,
    pub message: String,
}

/// Where the author's repository permission comes from (GitHub's collaborator-permission API in
/// production).
#[async_trait]
pub trait PermissionLookup: Send + Sync {
    async fn permission(&self, user: &str) -> Result<Permission, LookupError>;
}

/// What to do with one command line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Allowed {
        line: usize,
        command: Command,
        /// The author's permission, for the audit log.
        permission: Permission,
    },
    Refused {
        line: usize,
        text: String,
        /// Why, as a sentence for the reply (quotes user text: escape before posting).
        reason: String,
    },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }
}

/// Decides one valid command given the author's permission (or the lookup's failure).
pub fn decide(
    line: &CommandLine,
    command: &Command,
    config: &CommandConfig,
    author: &Result<Permission, LookupError>,
) -> Decision {
    let required = config.required_permission(command.kind());
    match author {
        Ok(has) if *has >= required => Decision::Allowed {
            line: line.line,
            command: command.clone(),
            permission: *has,
        },
        Ok(has) => Decision::Refused {
            line: line.line,
            text: line.text.clone(),
            reason: format!(
                "`{}` needs {required} permission on this repository; you have {has}",
                command.kind()
            ),
        },
        Err(e) => Decision::Refused {
            line: line.line,
            text: line.text.clone(),
            reason: format!(
                "could not check your permission, so `{}` was not run ({e}); try again later",
                command.kind()
            ),
        },
    }
}

/// Decides every line: parse refusals stay refusals; valid commands are checked against the
/// author's permission, looked up once and only when there is something to check.
pub async fn authorize(
    lines: &[CommandLine],
    author: &str,
    config: &CommandConfig,
    lookup: &dyn PermissionLookup,
) -> Vec<Decision> {
    let needs_lookup = lines.iter().any(|l| l.outcome.is_ok());
    let permission = if needs_lookup {
        let p = lookup.permission(author).await;
        if let Err(e) = &p {
            tracing::warn!(user = author, error = %e, "permission lookup failed; refusing commands");
        }
        p
    } else {
        Ok(Permission::None)
    };
    lines
        .iter()
        .map(|l| match &l.outcome {
            Ok(cmd) => decide(l, cmd, config, &permission),
            Err(refusal) => Decision::Refused {
                line: l.line,
                text: l.text.clone(),
                reason: refusal.to_string(),
            },
        })
        .collect()
}

/// Markdown reply listing the refused lines and why, or `None` when nothing was refused. User
/// text (the line, names quoted in reasons) is escaped: the reply cannot mention anyone or carry
/// a command of its own.
pub fn refusal_reply(decisions: &[Decision]) -> Option<String> {
    use crate::report::markdown::inline_max;
    let mut out = String::new();
    for d in decisions {
        if let Decision::Refused { line, text, reason } = d {
            out.push_str(&format!(
                "- line {line} ({}): refused: {}\n",
                inline_max(text, 200),
                inline_max(reason, 500)
            ));
        }
    }
    (!out.is_empty()).then(|| format!("Capstan did not run these commands:\n\n{out}"))
}
