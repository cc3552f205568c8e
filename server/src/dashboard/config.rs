//! Dashboard settings in the seed's schema (`applications/system/capstan/dashboard.yaml`, mounted
//! from the `capstan-dashboard` ConfigMap): name, namespace, port, customizations (theme, links,
//! metrics) and serviceDiscovery. Unknown keys are refused so a typo does not silently do nothing.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DashboardConfig {
    #[serde(default = "default_name")]
    pub name: String,
    /// Where Capstan runs; the ConfigMap registry is read from here.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub customizations: Customizations,
    #[serde(default)]
    pub service_discovery: ServiceDiscovery,
}

fn default_name() -> String {
    "Capstan".into()
}
fn default_namespace() -> String {
    "capstan".into()
}
fn default_port() -> u16 {
    8080
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            name: default_name(),
            namespace: default_namespace(),
            port: default_port(),
            customizations: Customizations::default(),
            service_discovery: ServiceDiscovery::default(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Customizations {
    #[serde(default)]
    pub theme: Theme,
    #[serde(default)]
    pub links: Vec<StaticLink>,
    #[serde(default)]
    pub metrics: MetricsSources,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Theme {
    /// `auto`, `light` or `dark` (the page follows the viewer's preference for `auto`).
    pub mode: Option<String>,
    pub primary_color: Option<String>,
    pub title: Option<String>,
    /// http(s) URL of a logo image.
    pub logo: Option<String>,
}

/// A link from the config: shown in the registry after its health check passes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticLink {
    pub name: String,
    pub url: String,
    pub description: Option<String>,
    /// Probed instead of `url` when set (e.g. an in-cluster health endpoint).
    pub health: Option<String>,
    pub group: Option<String>,
    pub icon: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsSources {
    #[serde(default)]
    pub enabled: bool,
    pub prometheus_url: Option<String>,
    pub grafana_url: Option<String>,
    pub refresh_seconds: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceDiscovery {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Namespaces whose annotated Services and Ingresses are listed and probed. Empty: none
    /// (anyone who can create a Service there chooses what Capstan requests); `"*"`: all.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Hosts health probes may reach besides an object's own Service names (e.g. the public
    /// host of an annotated Ingress). Addresses are vetted all the same.
    #[serde(default)]
    pub probe_hosts: Vec<String>,
    /// Private networks probes may reach: the cluster's Service CIDR (default K3s's
    /// `10.43.0.0/16`). Loopback, link-local and metadata addresses are never reachable.
    #[serde(default)]
    pub service_cidrs: Option<Vec<String>>,
}

impl ServiceDiscovery {
    /// The parsed `serviceCidrs`, `None` when unset (the default applies).
    pub fn parsed_service_cidrs(&self) -> Result<Option<Vec<ipnet::IpNet>>, String> {
        self.service_cidrs
            .as_ref()
            .map(|cidrs| {
                cidrs
                    .iter()
                    .map(|c| {
                        c.trim()
                            .parse::<ipnet::IpNet>()
                            .map_err(|e| format!("serviceDiscovery.serviceCidrs: {c:?}: {e}"))
                    })
                    .collect()
            })
            .transpose()
    }
}

fn yes() -> bool {
    true
}

impl Default for ServiceDiscovery {
    fn default() -> Self {
        ServiceDiscovery {
            enabled: true,
            namespaces: Vec::new(),
            probe_hosts: Vec::new(),
            service_cidrs: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DashboardConfigError {
    #[error("dashboard config {path}: {reason}")]
    Invalid { path: String, reason: String },
}

impl DashboardConfig {
    /// Parse the YAML text of the file or ConfigMap entry; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, DashboardConfigError> {
        let invalid = |reason: String| DashboardConfigError::Invalid {
            path: origin.to_string(),
            reason,
        };
        let value =
            capstan_worker::yaml::parse_single(text, origin).map_err(|e| invalid(e.to_string()))?;
        let cfg: DashboardConfig = if value.is_null() {
            DashboardConfig::default()
        } else {
            serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?
        };
        cfg.service_discovery
            .parsed_service_cidrs()
            .map_err(invalid)?;
        for link in &cfg.customizations.links {
            if !super::layout::is_http_url(&link.url) {
                return Err(invalid(format!(
                    "link {:?}: url {:?} is not an http(s) URL",
                    link.name, link.url
                )));
            }
        }
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Self, DashboardConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| DashboardConfigError::Invalid {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The configured link whose name is `name` (case-insensitive), e.g. ArgoCD or Grafana.
    pub fn link(&self, name: &str) -> Option<&StaticLink> {
        self.customizations
            .links
            .iter()
            .find(|l| l.name.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_deployed_config_parses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../applications/system/capstan/dashboard.yaml"
        );
        let cfg = DashboardConfig::load(Path::new(path)).unwrap();
        assert_eq!(cfg.port, 8080);
        assert!(cfg.link("argocd").is_some());
        assert!(
            cfg.service_discovery
                .namespaces
                .contains(&"argocd".to_string())
        );
    }

    #[test]
    fn typos_and_script_links_are_refused() {
        let err = DashboardConfig::parse("nmae: x\n", "t.yaml").unwrap_err();
        assert!(err.to_string().contains("nmae"), "{err}");
        let err = DashboardConfig::parse(
            "customizations:\n  links:\n    - name: x\n      url: javascript:alert(1)\n",
            "t.yaml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("not an http(s) URL"), "{err}");
    }
}
