//! The sections of [`super::RepoSettings`]. Every struct refuses unknown keys; every default is
//! written here once (and in docs/capstan-yaml.md, which a test keeps in step).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::{SettingsError, null_default};
use crate::commands::Permission;

/// `discovery:`: where Applications and ApplicationSets are looked for.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DiscoverySettings {
    /// Folders (relative to the root, matched by path component) never searched.
    #[serde(default, deserialize_with = "null_default")]
    pub exclude: Vec<String>,
}

/// One entry of `environments:`; a bare string is the short form of `{name: <string>}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvironmentFields {
    /// `staging`, `production`, ...; unique.
    pub name: String,
    /// Shown on the dashboard.
    #[serde(default)]
    pub description: String,
    /// Folder inside an app holding this environment's kustomization (default `overlays/<name>`).
    #[serde(default)]
    pub overlay: Option<String>,
    /// After a merge, ask ArgoCD to sync the affected Applications of this environment.
    #[serde(default)]
    pub argocd_sync: bool,
    /// Changes are expected only through promotions.
    #[serde(default)]
    pub protected: bool,
}

/// An environment, in promotion order.
pub type EnvironmentSettings = EnvironmentFields;

/// Either `- staging` or `- {name: staging, ...}`; a mapping keeps serde's exact errors.
pub(crate) fn environments_list<'de, D>(d: D) -> Result<Vec<EnvironmentFields>, D::Error>
where
    D: Deserializer<'de>,
{
    Option::<Vec<EnvironmentEntry>>::deserialize(d)
        .map(|v| v.unwrap_or_default().into_iter().map(|e| e.0).collect())
}

struct EnvironmentEntry(EnvironmentFields);

/// The two spellings of an environment, for the schema only.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum EnvironmentEntrySchema {
    Name(String),
    Full(EnvironmentFields),
}

impl<'de> Deserialize<'de> for EnvironmentEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EnvironmentEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an environment name or a mapping with `name`")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(EnvironmentEntry(EnvironmentFields {
                    name: s.to_string(),
                    ..EnvironmentFields::default()
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                EnvironmentFields::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(EnvironmentEntry)
            }
        }
        d.deserialize_any(V)
    }
}

/// Per-app overrides (`apps.<name or glob>`).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppSettings {
    /// GitHub users or teams mentioned in the app's section of the report.
    #[serde(default, deserialize_with = "null_default")]
    pub owners: Vec<String>,
    /// Renderer for this app (default `render.backend`).
    #[serde(default)]
    pub render: Option<AppRender>,
    #[serde(default, deserialize_with = "null_default")]
    pub diff: AppDiffSettings,
    #[serde(default, deserialize_with = "null_default")]
    pub policy: AppPolicySettings,
}

/// `apps.<name>.render`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AppRender {
    Native,
    Kustomize,
    Helm,
    Argocd,
    /// List the app but do not render it.
    Skip,
}

/// `apps.<name>.diff`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppDiffSettings {
    /// Kinds whose diff lists the changed keys instead of the full YAML.
    #[serde(default, deserialize_with = "null_default")]
    pub summarize_kinds: Vec<String>,
    /// JSON pointers left out of the diff.
    #[serde(default, deserialize_with = "null_default")]
    pub ignore: Vec<String>,
}

/// `apps.<name>.policy`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppPolicySettings {
    /// Rule ids that do not apply to this app.
    #[serde(default, deserialize_with = "null_default")]
    pub skip: Vec<String>,
}

/// `render:`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RenderSettings {
    #[serde(default)]
    pub backend: RenderBackend,
    #[serde(default)]
    pub fallback: RenderFallback,
    #[serde(default)]
    pub helm: HelmMode,
    /// Whether renders are checked against a second renderer.
    #[serde(default)]
    pub verify: RenderVerify,
    /// With `verify: sample`, the share of apps checked (0 to 1).
    #[serde(default = "default_verify_share")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub verify_share: f64,
    /// With `verify: sample`, the most time the service's sampled verifications may take, as a
    /// share of the native engine's render time (0 to 1). Kustomizations seen for the first time
    /// after an engine change are verified regardless.
    #[serde(default = "default_verify_budget")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub verify_budget: f64,
    /// The check conclusion when some app could not be rendered.
    #[serde(default)]
    pub not_checked: NotChecked,
}

fn default_verify_share() -> f64 {
    0.1
}

fn default_verify_budget() -> f64 {
    0.05
}

impl Default for RenderSettings {
    fn default() -> Self {
        RenderSettings {
            backend: RenderBackend::default(),
            fallback: RenderFallback::default(),
            helm: HelmMode::default(),
            verify: RenderVerify::default(),
            verify_share: default_verify_share(),
            verify_budget: default_verify_budget(),
            not_checked: NotChecked::default(),
        }
    }
}

impl RenderSettings {
    pub(super) fn validate(&self, file: &'static str) -> Result<(), SettingsError> {
        for (key, value) in [
            ("render.verifyShare", self.verify_share),
            ("render.verifyBudget", self.verify_budget),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(SettingsError::new(
                    file,
                    key,
                    format!("is {value}; it must be between 0 and 1"),
                ));
            }
        }
        Ok(())
    }
}

/// `render.backend`: the default renderer for Git sources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RenderBackend {
    #[default]
    Native,
    Kustomize,
    Argocd,
}

/// `render.fallback`: used when the native engine reports an unsupported feature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RenderFallback {
    #[default]
    Kustomize,
    None,
}

/// `render.helm`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HelmMode {
    #[default]
    Auto,
    Off,
}

/// `render.verify`: cross-check renders against a second renderer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RenderVerify {
    Off,
    /// A share of the apps (`render.verifyShare`), chosen per commit.
    #[default]
    Sample,
    Always,
}

/// `render.notChecked`: the check conclusion when some app could not be rendered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotChecked {
    #[default]
    Neutral,
    Failure,
}

/// `promotion:` as written; validated and compiled by `promote::Rules::from_settings`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PromotionSettings {
    /// `pull-request` (default) or `direct` (`commit` is accepted for direct).
    #[serde(default)]
    pub mode: Option<String>,
    /// `merge` (default) or `command`.
    #[serde(default)]
    pub trigger: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub rules: Vec<PromotionRuleSettings>,
}

/// `promotion.rules[]`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PromotionRuleSettings {
    pub name: String,
    /// App name, or a glob when both paths hold `{app}`.
    pub app: String,
    pub from: PromotionEnd,
    pub to: PromotionEnd,
    pub copy: Vec<CopySpec>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub trigger: Option<String>,
    /// Same as `conditions.requireHealthy`.
    #[serde(default)]
    pub require_healthy: Option<bool>,
    #[serde(default)]
    pub conditions: Option<PromotionConditions>,
}

/// `promotion.rules[].from` / `.to`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PromotionEnd {
    pub environment: String,
    pub path: String,
}

/// `promotion.rules[].copy[]`: `images`, `{images: [..]}`, `{field: {file, path}}`, `{file: p}`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CopySpec {
    Word(String),
    Map(BTreeMap<String, serde_json::Value>),
}

/// `promotion.rules[].conditions`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PromotionConditions {
    #[serde(default)]
    pub require_healthy: Option<bool>,
    /// `30s`, `10m`, `2h`, `1d`.
    #[serde(default)]
    pub soak: Option<String>,
    #[serde(default)]
    pub approvals: Option<u32>,
}

/// `commands:` as written; validated into a `commands::CommandConfig` by `into_config`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandSettings {
    /// Comment prefix (`/capstan`). The repository's value wins over the service's
    /// `--command-prefix`, which is only the default.
    pub prefix: Option<String>,
    /// Also accept `/diff`, `/promote …` without the prefix.
    #[serde(default)]
    pub bare: bool,
    /// Command name → least GitHub permission (`read` < `triage` < `write` < `maintain` <
    /// `admin`).
    #[serde(default, deserialize_with = "null_default")]
    pub permissions: BTreeMap<String, String>,
}

/// `policy:`: the shipped defaults (`policies/settings.yaml`, same shape) with the repository's
/// values on top; every key optional so a layer only says what it changes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicySection {
    /// Target cluster version (`"1.34"`); `targetVersion` is accepted too.
    #[serde(default, alias = "targetVersion")]
    pub kubernetes_version: Option<String>,
    /// `builtin` and folders of Rego policies in this repository.
    #[serde(default)]
    pub bundles: Option<Vec<String>>,
    #[serde(default)]
    pub fail_on: Option<FailOn>,
    /// Which findings of a pull request count: `new` (default) those the change brings, with
    /// the ones already on the base branch listed apart; `all` every finding of a touched app.
    #[serde(default)]
    pub gate: Option<Gate>,
    /// Rego packages whose rules count.
    #[serde(default)]
    pub packages: Option<Vec<String>>,
    /// Policy folders (added to those in `bundles`).
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    /// Whether the shipped bundle is loaded.
    #[serde(default)]
    pub shipped: Option<bool>,
    /// Namespaces every cluster has without an app creating them.
    #[serde(default)]
    pub cluster_namespaces: Option<Vec<String>>,
    /// ArgoCD's own namespace.
    #[serde(default)]
    pub argocd_namespace: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub exceptions: Vec<ConfigException>,
    /// Rule ids a `capstan.io/ignore` annotation may waive (as written on the base branch).
    #[serde(default)]
    pub waivable: Option<Vec<String>>,
}

impl PolicySection {
    pub(super) fn validate(&self, file: &'static str) -> Result<(), SettingsError> {
        if let Some(v) = &self.kubernetes_version
            && crate::policy::deprecations::Version::parse(v).is_none()
        {
            return Err(SettingsError::new(
                file,
                "policy.kubernetesVersion",
                format!("is not a version: {v:?}"),
            ));
        }
        for (key, list) in [("paths", &self.paths), ("bundles", &self.bundles)] {
            for (i, p) in list.iter().flatten().enumerate() {
                if key == "bundles" && p == "builtin" {
                    continue;
                }
                if let Err(e) = crate::repo_fs::RepoPath::new(p) {
                    return Err(SettingsError::new(
                        file,
                        &format!("policy.{key}[{i}]"),
                        e.to_string(),
                    ));
                }
            }
        }
        for (i, e) in self.exceptions.iter().enumerate() {
            if e.reason.trim().is_empty() {
                return Err(SettingsError::new(
                    file,
                    &format!("policy.exceptions[{i}]"),
                    format!("(the exception for rule {:?}) needs a reason", e.rule),
                ));
            }
        }
        Ok(())
    }
}

/// Which findings of a change count toward its check (`policy.gate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Gate {
    /// Only findings the change introduces: present at head, absent at base for the same app,
    /// rule, object and field.
    New,
    /// Every finding of every app the change touches.
    All,
}

/// The severity from which a check fails (`policy.failOn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailOn {
    Deny,
    Warn,
    Never,
}

/// One entry of `policy.exceptions`: which findings it covers (every given field must match)
/// and why. The reason is required.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigException {
    pub rule: String,
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// Object patterns `namespace/Kind/name` (cluster-scoped: `Kind/name`); `*` matches any run
    /// of characters. Any one matching is enough.
    #[serde(default, deserialize_with = "null_default")]
    pub objects: Vec<String>,
    pub reason: String,
}

/// `trust:`: who gets the checks that touch the cluster (ArgoCD render at the head, kube
/// server-side dry-run, live diff). Offline render, diff and policy run for everyone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrustSettings {
    #[serde(default)]
    pub cluster_checks: ClusterChecks,
    /// Least GitHub permission of a pull request's author for `clusterChecks: trusted`.
    #[serde(default = "default_min_permission")]
    pub min_permission: Permission,
}

fn default_min_permission() -> Permission {
    Permission::Write
}

impl Default for TrustSettings {
    fn default() -> Self {
        TrustSettings {
            cluster_checks: ClusterChecks::default(),
            min_permission: default_min_permission(),
        }
    }
}

/// `trust.clusterChecks`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClusterChecks {
    /// Authors with at least `trust.minPermission`, or after an authorized `/capstan ok-to-test`.
    #[default]
    Trusted,
    /// Every pull request, forks included.
    Everyone,
    /// No pull request.
    Never,
}
