//! The repository settings: `.capstan.yaml` at the root of the GitOps repository, read from the
//! **default branch** (never from the pull request under review) and parsed once per commit into
//! [`RepoSettings`]. Every consumer (discovery, render, policy, commands, promotion, trust) takes
//! a `&RepoSettings` or the section it needs; nothing else parses the file.
//!
//! The contract is strict on purpose: every level refuses unknown keys, so a typo such as
//! `promtion:` is an error naming the key path, the line and column, and the nearest allowed key
//! ([`SettingsError`]), instead of silently disabling a rule. The JSON Schema published at
//! `docs/capstan-yaml.schema.json` is generated from these types ([`json_schema`]); a test keeps
//! the schema, `docs/capstan-yaml.md` and the types in step.

mod error;
mod sections;

use serde::{Deserialize, Deserializer};

pub use error::{SettingsError, did_you_mean, did_you_mean_hint};
pub use sections::*;

use crate::repo_fs::{EntryKind, RepoFs, RepoPath};

/// Repository settings file at the root of the GitOps repository.
pub const SETTINGS_FILE: &str = ".capstan.yaml";

/// Finding reported when a pull request's own `.capstan.yaml` does not parse.
pub const RULE_SETTINGS_INVALID: &str = "capstan-settings-invalid";

/// The only settings version that exists.
pub const SETTINGS_VERSION: u32 = 1;

/// `.capstan.yaml`, typed. An absent file means every default.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "Capstan repository settings (.capstan.yaml)")]
pub struct RepoSettings {
    /// Schema version; only `1` exists.
    #[serde(default = "version_one")]
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// How ArgoCD Applications name this repository (`spec.source.repoURL`).
    #[serde(default, rename = "repoURL")]
    pub repo_url: Option<String>,
    /// More spellings of the same repository (with and without `.git`, SSH).
    #[serde(default, rename = "repoURLs", deserialize_with = "null_default")]
    pub repo_urls: Vec<String>,
    /// The branch merges deploy from and this file is read from.
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub discovery: DiscoverySettings,
    /// In promotion order: earlier environments feed later ones.
    #[serde(default, deserialize_with = "sections::environments_list")]
    #[schemars(with = "Vec<sections::EnvironmentEntrySchema>")]
    pub environments: Vec<EnvironmentSettings>,
    /// Per-app overrides keyed by Application name or glob (`"podinfo-*"`).
    #[serde(default, deserialize_with = "null_default")]
    pub apps: indexmap::IndexMap<String, AppSettings>,
    #[serde(default, deserialize_with = "null_default")]
    pub render: RenderSettings,
    #[serde(default, deserialize_with = "null_default")]
    pub promotion: PromotionSettings,
    #[serde(default, deserialize_with = "null_default")]
    pub commands: CommandSettings,
    #[serde(default, deserialize_with = "null_default")]
    pub policy: PolicySection,
    #[serde(default, deserialize_with = "null_default")]
    pub trust: TrustSettings,
}

impl Default for RepoSettings {
    fn default() -> Self {
        RepoSettings {
            version: SETTINGS_VERSION,
            repo_url: None,
            repo_urls: Vec::new(),
            default_branch: None,
            discovery: DiscoverySettings::default(),
            environments: Vec::new(),
            apps: indexmap::IndexMap::new(),
            render: RenderSettings::default(),
            promotion: PromotionSettings::default(),
            commands: CommandSettings::default(),
            policy: PolicySection::default(),
            trust: TrustSettings::default(),
        }
    }
}

fn version_one() -> u32 {
    SETTINGS_VERSION
}

/// A section written as `key:` with nothing after it means the defaults, as an absent one does.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl RepoSettings {
    /// Parses the text of `.capstan.yaml`. An empty file (or one holding only comments) is the
    /// defaults. Errors name the key path, the line and column, and the nearest allowed key.
    pub fn parse(text: &str) -> Result<RepoSettings, SettingsError> {
        Self::parse_named(text, SETTINGS_FILE)
    }

    /// [`RepoSettings::parse`] with another file name in errors (the shipped policy defaults).
    pub fn parse_named(text: &str, file: &'static str) -> Result<RepoSettings, SettingsError> {
        // The shared YAML reader first: it bounds aliases and nesting and refuses duplicate
        // keys (which typed deserialization of a map would silently resolve to the last one).
        let doc =
            crate::yaml::parse_single(text, file).map_err(|e| SettingsError::from_yaml(file, e))?;
        if doc.is_null() {
            return Ok(RepoSettings::default());
        }
        if !doc.is_object() {
            return Err(SettingsError::new(
                file,
                "",
                "the top level must be a mapping of settings",
            ));
        }
        let de = yaml_serde::Deserializer::from_str(text);
        let settings: RepoSettings =
            serde_path_to_error::deserialize(de).map_err(|e| SettingsError::from_serde(file, e))?;
        settings.validate(file)?;
        Ok(settings)
    }

    /// Reads and parses `.capstan.yaml` from one commit's tree (or a folder); an absent file is
    /// the defaults. Returns whether the file existed.
    pub fn from_tree(fs: &dyn RepoFs) -> Result<(RepoSettings, bool), SettingsError> {
        let fs_err =
            |e: crate::repo_fs::FsError| SettingsError::new(SETTINGS_FILE, "", e.to_string());
        let path = RepoPath::new(SETTINGS_FILE).map_err(fs_err)?;
        match fs.kind(&path).map_err(fs_err)? {
            None => Ok((RepoSettings::default(), false)),
            Some(EntryKind::File) => {
                let text = fs.read_to_string(&path).map_err(fs_err)?;
                Ok((RepoSettings::parse(&text)?, true))
            }
            Some(EntryKind::Dir) => Err(SettingsError::new(
                SETTINGS_FILE,
                "",
                "is a folder, not a file",
            )),
        }
    }

    /// Checks that serde cannot express: values in range, paths inside the repository, reasons
    /// given. Deeper checks of a section that compiles into something else (promotion rules,
    /// command permissions) happen where it is compiled, with the same key paths.
    fn validate(&self, file: &'static str) -> Result<(), SettingsError> {
        if self.version != SETTINGS_VERSION {
            return Err(SettingsError::new(
                file,
                "version",
                format!(
                    "is {}; only version {SETTINGS_VERSION} exists",
                    self.version
                ),
            ));
        }
        self.render.validate(file)?;
        self.policy.validate(file)?;
        for (i, env) in self.environments.iter().enumerate() {
            if env.name.is_empty() {
                return Err(SettingsError::new(
                    file,
                    &format!("environments[{i}]"),
                    "needs a name",
                ));
            }
        }
        Ok(())
    }

    /// `repoURLs` then `repoURL`: every spelling of this repository the file gives.
    pub fn repo_urls(&self) -> Vec<String> {
        let mut out = self.repo_urls.clone();
        out.extend(self.repo_url.clone());
        out
    }

    /// `discovery.exclude` as repository paths. Entries that are not valid repository paths are
    /// dropped: they could never match anything inside the repository.
    pub fn discovery_exclude(&self) -> Vec<RepoPath> {
        self.discovery
            .exclude
            .iter()
            .filter_map(|p| RepoPath::new(p).ok())
            .filter(|p| !p.is_root())
            .collect()
    }

    /// Environment names in promotion order.
    pub fn environment_names(&self) -> Vec<String> {
        self.environments.iter().map(|e| e.name.clone()).collect()
    }
}

/// The JSON Schema of `.capstan.yaml`, generated from [`RepoSettings`] (published at
/// `docs/capstan-yaml.schema.json`).
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(RepoSettings);
    serde_json::to_value(&schema).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests;
