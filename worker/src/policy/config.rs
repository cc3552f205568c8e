//! Policy settings: the shipped defaults (`policies/settings.yaml`) overlaid by the `policy:`
//! section of the repository's `.capstan.yaml`, always as read from the default branch.

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
    /// Whether findings already on the base branch count (`policy.gate`).
    pub gate: Gate,
    /// Rule ids a `capstan.io/ignore` annotation may waive (`policy.waivable`).
    pub waivable: Vec<String>,
}

pub use crate::settings::{ConfigException, FailOn, Gate};
use crate::settings::{PolicySection, RepoSettings, SettingsError};

/// The shipped defaults.
pub const SHIPPED_SETTINGS: &str = include_str!("../../../policies/settings.yaml");

impl PolicySettings {
    /// Shipped defaults, then the repository's `policy:` section (as parsed into
    /// [`RepoSettings`]) on top.
    pub fn from_section(repo: &PolicySection) -> Result<Self, SettingsError> {
        let mut s = PolicySettings {
            target_version: Version(1, 34),
            packages: vec!["main".into()],
            paths: Vec::new(),
            shipped: true,
            cluster_namespaces: Vec::new(),
            argocd_namespace: "argocd".into(),
            exceptions: Vec::new(),
            fail_on: FailOn::Deny,
            gate: Gate::New,
            waivable: Vec::new(),
        };
        let shipped = RepoSettings::parse_named(SHIPPED_SETTINGS, "policies/settings.yaml")?;
        s.apply(&shipped.policy, "policies/settings.yaml")?;
        s.apply(repo, crate::settings::SETTINGS_FILE)?;
        Ok(s)
    }

    fn apply(&mut self, layer: &PolicySection, file: &'static str) -> Result<(), SettingsError> {
        if let Some(v) = &layer.kubernetes_version {
            // Checked when the file was parsed; a second look costs nothing and keeps this total.
            self.target_version = Version::parse(v).ok_or_else(|| {
                SettingsError::new(
                    file,
                    "policy.kubernetesVersion",
                    format!("is not a version: {v:?}"),
                )
            })?;
        }
        if let Some(p) = &layer.packages {
            self.packages = p.clone();
        }
        if let Some(p) = &layer.paths {
            self.paths = p.clone();
        }
        if let Some(bundles) = &layer.bundles {
            self.shipped = bundles.iter().any(|b| b == "builtin");
            self.paths
                .extend(bundles.iter().filter(|b| *b != "builtin").cloned());
        }
        if let Some(f) = layer.fail_on {
            self.fail_on = f;
        }
        if let Some(g) = layer.gate {
            self.gate = g;
        }
        if let Some(b) = layer.shipped {
            self.shipped = b;
        }
        if let Some(n) = &layer.cluster_namespaces {
            self.cluster_namespaces = n.clone();
        }
        if let Some(n) = &layer.argocd_namespace {
            self.argocd_namespace = n.clone();
        }
        if let Some(w) = &layer.waivable {
            self.waivable = w.clone();
        }
        self.exceptions.extend(layer.exceptions.iter().cloned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The repository's text through the one parser, then the layering.
    fn load(text: &str) -> Result<PolicySettings, SettingsError> {
        PolicySettings::from_section(&RepoSettings::parse(text)?.policy)
    }

    #[test]
    fn repo_settings_override_the_shipped_ones() {
        let s = load(
            "environments: [staging]\npolicy:\n  targetVersion: v1.31\n  packages: [main, org]\n  paths: [policy]\n",
        )
        .unwrap();
        assert_eq!(s.target_version, Version(1, 31));
        assert_eq!(s.packages, vec!["main", "org"]);
        assert_eq!(s.paths, vec!["policy"]);
        assert!(s.cluster_namespaces.iter().any(|n| n == "kube-system"));
    }

    #[test]
    fn bundles_and_kubernetes_version_spellings_are_accepted() {
        let s = load(
            "policy:\n  kubernetesVersion: \"1.33\"\n  bundles: [builtin, policies/]\n  failOn: warn\n  exceptions: []\n",
        )
        .unwrap();
        assert_eq!(s.target_version, Version(1, 33));
        assert!(s.shipped);
        assert_eq!(s.paths, vec!["policies/"]);
        assert_eq!(s.fail_on, FailOn::Warn);
        let s = load("policy:\n  bundles: [org-policies]\n").unwrap();
        assert!(!s.shipped);
    }

    #[test]
    fn exceptions_without_reason_and_unknown_keys_are_refused() {
        let e =
            load("policy:\n  exceptions:\n  - {rule: images-pinned, name: web, reason: \"\"}\n")
                .unwrap_err();
        assert!(e.to_string().contains("needs a reason"), "{e}");
        let e = load("policy:\n  targetVersoin: '1.30'\n").unwrap_err();
        assert!(e.to_string().contains("targetVersoin"), "{e}");
        let e = load("policy:\n  paths: [../elsewhere]\n").unwrap_err();
        assert!(e.to_string().contains("escapes"), "{e}");
    }
}
