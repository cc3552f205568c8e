//! Policy settings: the shipped defaults (`policies/settings.yaml`) overlaid by the `policy:`
//! section of the repository's `.capstan.yaml`, always as read from the default branch.

use serde::Deserialize;

use super::deprecations::Version;

/// Settings of the built-in checks and of the Rego layer.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicySettings {
    pub target_version: Version,
    /// Packages whose `deny`/`warn`/`violation` rules count.
    pub packages: Vec<String>,
    /// The repository's own policy folders (Rego files and `schemas/`).
    pub paths: Vec<String>,
    /// Whether the shipped bundle is loaded.
    pub shipped: bool,
    /// Namespaces that exist in the cluster without any app creating them.
    pub cluster_namespaces: Vec<String>,
    /// ArgoCD's own namespace.
    pub argocd_namespace: String,
    pub exceptions: Vec<ConfigException>,
    /// Which severity fails the check.
    pub fail_on: FailOn,
}

/// The severity from which a check fails (`failOn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailOn {
    Deny,
    Warn,
    Never,
}

/// One entry of `policy.exceptions`: which findings it covers (every given field must match)
/// and why. The reason is required.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
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
    #[serde(default)]
    pub objects: Vec<String>,
    pub reason: String,
}

/// The shape of the YAML, every field optional so a layer only says what it changes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Layer {
    #[serde(alias = "kubernetesVersion")]
    target_version: Option<String>,
    /// `builtin` (the shipped bundle) and repository folders, in one list.
    bundles: Option<Vec<String>>,
    fail_on: Option<FailOn>,
    packages: Option<Vec<String>>,
    paths: Option<Vec<String>>,
    shipped: Option<bool>,
    cluster_namespaces: Option<Vec<String>>,
    argocd_namespace: Option<String>,
    #[serde(default)]
    exceptions: Vec<ConfigException>,
}

/// Settings that could not be read; names the file and the key.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

/// The shipped defaults.
pub const SHIPPED_SETTINGS: &str = include_str!("../../../policies/settings.yaml");

impl PolicySettings {
    /// Shipped defaults, then the repository's `.capstan.yaml` (if any) on top.
    pub fn load(capstan_yaml: Option<&str>) -> Result<Self, ConfigError> {
        let mut s = PolicySettings {
            target_version: Version(1, 34),
            packages: vec!["main".into()],
            paths: Vec::new(),
            shipped: true,
            cluster_namespaces: Vec::new(),
            argocd_namespace: "argocd".into(),
            exceptions: Vec::new(),
            fail_on: FailOn::Deny,
        };
        s.apply(SHIPPED_SETTINGS, "policies/settings.yaml")?;
        if let Some(text) = capstan_yaml {
            s.apply(text, ".capstan.yaml")?;
        }
        Ok(s)
    }

    fn apply(&mut self, text: &str, file: &str) -> Result<(), ConfigError> {
        let err = |message: String| ConfigError {
            file: file.to_string(),
            message,
        };
        let doc = crate::yaml::parse_single(text, file).map_err(|e| err(e.message))?;
        let section = match doc.get("policy") {
            Some(v) => v.clone(),
            None => return Ok(()),
        };
        if section.is_null() {
            return Ok(());
        }
        let layer: Layer =
            serde_json::from_value(section).map_err(|e| err(format!("policy: {e}")))?;
        if let Some(v) = layer.target_version {
            self.target_version = Version::parse(&v)
                .ok_or_else(|| err(format!("policy.targetVersion: not a version: {v:?}")))?;
        }
        if let Some(p) = layer.packages {
            self.packages = p;
        }
        if let Some(p) = layer.paths {
            for path in &p {
                crate::repo_fs::RepoPath::new(path)
                    .map_err(|e| err(format!("policy.paths: {e}")))?;
            }
            self.paths = p;
        }
        if let Some(bundles) = layer.bundles {
            self.shipped = bundles.iter().any(|b| b == "builtin");
            let paths: Vec<String> = bundles.into_iter().filter(|b| b != "builtin").collect();
            for path in &paths {
                crate::repo_fs::RepoPath::new(path)
                    .map_err(|e| err(format!("policy.bundles: {e}")))?;
            }
            self.paths.extend(paths);
        }
        if let Some(f) = layer.fail_on {
            self.fail_on = f;
        }
        if let Some(b) = layer.shipped {
            self.shipped = b;
        }
        if let Some(n) = layer.cluster_namespaces {
            self.cluster_namespaces = n;
        }
        if let Some(n) = layer.argocd_namespace {
            self.argocd_namespace = n;
        }
        for e in layer.exceptions {
            if e.reason.trim().is_empty() {
                return Err(err(format!(
                    "policy.exceptions: the exception for rule {:?} needs a reason",
                    e.rule
                )));
            }
            self.exceptions.push(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn repo_settings_override_the_shipped_ones() {
        let s = PolicySettings::load(Some(
            "environments: [staging]\npolicy:\n  targetVersion: v1.31\n  packages: [main, org]\n  paths: [policy]\n",
        ))
        .unwrap();
        assert_eq!(s.target_version, Version(1, 31));
        assert_eq!(s.packages, vec!["main", "org"]);
        assert_eq!(s.paths, vec!["policy"]);
        assert!(s.cluster_namespaces.iter().any(|n| n == "kube-system"));
    }

    #[test]
    fn bundles_and_kubernetes_version_spellings_are_accepted() {
        let s = PolicySettings::load(Some(
            "policy:\n  kubernetesVersion: \"1.33\"\n  bundles: [builtin, policies/]\n  failOn: warn\n  exceptions: []\n",
        ))
        .unwrap();
        assert_eq!(s.target_version, Version(1, 33));
        assert!(s.shipped);
        assert_eq!(s.paths, vec!["policies/"]);
        assert_eq!(s.fail_on, FailOn::Warn);
        let s = PolicySettings::load(Some("policy:\n  bundles: [org-policies]\n")).unwrap();
        assert!(!s.shipped);
    }

    #[test]
    fn exceptions_without_reason_and_unknown_keys_are_refused() {
        let e = PolicySettings::load(Some(
            "policy:\n  exceptions:\n  - {rule: images-pinned, name: web, reason: \"\"}\n",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("needs a reason"), "{e}");
        let e = PolicySettings::load(Some("policy:\n  targetVersoin: '1.30'\n")).unwrap_err();
        assert!(e.to_string().contains("targetVersoin"), "{e}");
        let e = PolicySettings::load(Some("policy:\n  paths: [../elsewhere]\n")).unwrap_err();
        assert!(e.to_string().contains("escapes"), "{e}");
    }
}
