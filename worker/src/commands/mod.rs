//! Slash-commands in pull-request comments: strict parsing and permission checks.
//!
//! Pure: [`parse_comment`] turns a comment body into per-line outcomes (a command or a refusal
//! with a reason fit for a reply), and [`authorize`] checks each command against the author's
//! repository permission through a [`PermissionLookup`] (the GitHub collaborator-permission API in
//! production, a fake in tests). [`handler`] runs `command` jobs: reactions, settings from the
//! default branch ([`repo_config`]), the commands themselves and one reply per comment version
//! ([`reply`]).

mod authorize;
pub mod handler;
mod parse;
pub mod reply;
pub mod repo_config;
mod settings;
mod sync_scope;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

pub use authorize::{Decision, LookupError, PermissionLookup, authorize, decide, refusal_reply};
pub use handler::CommandHandler;
pub use parse::{CommandLine, MAX_COMMANDS_PER_COMMENT, Refusal, parse_comment};
pub use settings::{CommandSettings, SettingsError, valid_prefix};
pub use sync_scope::check_sync_scope;

/// Default command prefix.
pub const DEFAULT_PREFIX: &str = "/capstan";

/// Repository permission levels: one type with the forge's, which reads GitHub's role names.
pub use crate::forge::{Permission, UnknownPermission};

/// The commands Capstan knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    Help,
    Diff,
    Validate,
    Promote,
    Sync,
    Hold,
    Unhold,
    /// Lets the checks that touch the cluster run for a pull request `trust` does not trust.
    OkToTest,
}

impl CommandKind {
    pub const ALL: [CommandKind; 8] = [
        CommandKind::Help,
        CommandKind::Diff,
        CommandKind::Validate,
        CommandKind::Promote,
        CommandKind::Sync,
        CommandKind::Hold,
        CommandKind::Unhold,
        CommandKind::OkToTest,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CommandKind::Help => "help",
            CommandKind::Diff => "diff",
            CommandKind::Validate => "validate",
            CommandKind::Promote => "promote",
            CommandKind::Sync => "sync",
            CommandKind::Hold => "hold",
            CommandKind::Unhold => "unhold",
            CommandKind::OkToTest => "ok-to-test",
        }
    }

    /// Exact (case-sensitive) name lookup.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Arguments after the command name, for refusals and `help`.
    pub fn usage(self) -> &'static str {
        match self {
            CommandKind::Promote => "promote <environment> [app] [sha]",
            CommandKind::Sync => "sync <app>",
            other => other.name(),
        }
    }

    /// Minimum permission when `.capstan.yaml` does not override it.
    pub fn default_permission(self) -> Permission {
        match self {
            CommandKind::Help | CommandKind::Diff | CommandKind::Validate => Permission::Read,
            CommandKind::Promote | CommandKind::Sync | CommandKind::OkToTest => Permission::Write,
            CommandKind::Hold | CommandKind::Unhold => Permission::Maintain,
        }
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed, validated command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    Help,
    Diff,
    Validate,
    Promote {
        environment: String,
        app: Option<String>,
        /// 7–40 lowercase hex; the handler resolves it to a full SHA on the PR.
        sha: Option<String>,
    },
    Sync {
        app: String,
    },
    Hold,
    Unhold,
    OkToTest,
}

impl Command {
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::Help => CommandKind::Help,
            Command::Diff => CommandKind::Diff,
            Command::Validate => CommandKind::Validate,
            Command::Promote { .. } => CommandKind::Promote,
            Command::Sync { .. } => CommandKind::Sync,
            Command::Hold => CommandKind::Hold,
            Command::Unhold => CommandKind::Unhold,
            Command::OkToTest => CommandKind::OkToTest,
        }
    }
}

/// What the parser accepts, from `.capstan.yaml` on the default branch.
#[derive(Clone, Debug)]
pub struct CommandConfig {
    /// Word every command starts with (default `/capstan`).
    pub prefix: String,
    /// Also accept `/diff`, `/promote …` without the prefix.
    pub bare: bool,
    /// Environment names, matched exactly.
    pub environments: BTreeSet<String>,
    /// App names, matched exactly.
    pub apps: BTreeSet<String>,
    /// Overrides of [`CommandKind::default_permission`].
    pub permissions: BTreeMap<CommandKind, Permission>,
    /// The names of this repository (fetch URL, web URL, `repoURLs` of the settings): an app
    /// `sync` may reach only when every one of its sources is one of these.
    pub repo_urls: Vec<String>,
    /// ArgoCD projects of the apps found on the default branch: `sync` refuses apps of others.
    pub projects: BTreeSet<String>,
}

impl Default for CommandConfig {
    fn default() -> Self {
        CommandConfig {
            prefix: DEFAULT_PREFIX.to_string(),
            bare: false,
            environments: BTreeSet::new(),
            apps: BTreeSet::new(),
            permissions: BTreeMap::new(),
            repo_urls: Vec::new(),
            projects: BTreeSet::new(),
        }
    }
}

impl CommandConfig {
    /// Minimum permission for `kind`. An override never goes below `read`: a user without access
    /// to the repository can never run anything.
    pub fn required_permission(&self, kind: CommandKind) -> Permission {
        self.permissions
            .get(&kind)
            .copied()
            .unwrap_or_else(|| kind.default_permission())
            .max(Permission::Read)
    }

    /// Reply text for `help`: the commands and who may run them.
    pub fn help_text(&self) -> String {
        let mut out =
            String::from("Capstan commands (one per line, at the start of the line):\n\n");
        for k in CommandKind::ALL {
            out.push_str(&format!(
                "- `{} {}`: needs {} permission\n",
                self.prefix,
                k.usage(),
                self.required_permission(k)
            ));
        }
        out
    }
}
