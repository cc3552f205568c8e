//! The `commands:` section of `.capstan.yaml` (read from the default branch by the caller):
//!
//! ```yaml
//! commands:
//!   prefix: /capstan      # optional
//!   bare: false           # optional: also accept `/diff`, `/promote …`
//!   permissions:          # optional overrides of the defaults
//!     promote: admin
//!     hold: write
//! ```

use std::collections::{BTreeMap, BTreeSet};

use super::{CommandConfig, CommandKind, DEFAULT_PREFIX, Permission};
pub use crate::settings::CommandSettings;

/// A `commands:` setting that cannot be used; names the key and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "{file}: commands.prefix `{given}` must be `/` followed by 1 to 31 ASCII letters, digits, `-` or `_`"
    )]
    BadPrefix { file: String, given: String },
    #[error("{file}: commands.permissions has unknown command `{given}`; allowed: {allowed}")]
    UnknownCommand {
        file: String,
        given: String,
        allowed: String,
    },
    #[error(
        "{file}: commands.permissions.{command} is `{given}`; allowed: read, triage, write, maintain, admin"
    )]
    BadPermission {
        file: String,
        command: String,
        given: String,
    },
}

/// `/` followed by 1 to 31 ASCII letters, digits, `-` or `_`.
pub fn valid_prefix(prefix: &str) -> bool {
    prefix.len() >= 2
        && prefix.len() <= 32
        && prefix.starts_with('/')
        && prefix[1..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl CommandSettings {
    /// Validates the section and combines it with the environment and app names the parser
    /// accepts. `file` names the settings file in errors.
    pub fn into_config(
        self,
        file: &str,
        environments: BTreeSet<String>,
        apps: BTreeSet<String>,
    ) -> Result<CommandConfig, SettingsError> {
        let prefix = self.prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_string());
        if !valid_prefix(&prefix) {
            return Err(SettingsError::BadPrefix {
                file: file.into(),
                given: prefix,
            });
        }
        let mut permissions = BTreeMap::new();
        for (name, level) in self.permissions {
            let kind =
                CommandKind::from_name(&name).ok_or_else(|| SettingsError::UnknownCommand {
                    file: file.into(),
                    given: name.clone(),
                    allowed: CommandKind::ALL.map(CommandKind::name).join(", "),
                })?;
            let permission = match level.parse::<Permission>() {
                Ok(p) if p != Permission::None => p,
                _ => {
                    return Err(SettingsError::BadPermission {
                        file: file.into(),
                        command: name,
                        given: level,
                    });
                }
            };
            permissions.insert(kind, permission);
        }
        Ok(CommandConfig {
            prefix,
            bare: self.bare,
            environments,
            apps,
            permissions,
            ..CommandConfig::default()
        })
    }
}
