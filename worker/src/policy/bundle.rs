//! The shipped policy bundle (`policies/`), embedded so the engine works on any repository and
//! never reads the folder at run time. `tests/policy_bundle.rs` checks this list against the
//! folder, so a new file cannot be forgotten.

macro_rules! shipped {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../../", $path)))),*]
    };
}

/// Rego files (tests excluded: `capstan policy test` reads them from disk).
pub const SHIPPED_POLICIES: &[(&str, &str)] = shipped![
    "policies/lib/k8s.rego",
    "policies/main/images.rego",
    "policies/main/ingress.rego",
    "policies/main/network_policy.rego",
    "policies/main/pod_security.rego",
    "policies/main/probes.rego",
    "policies/main/rbac.rego",
    "policies/main/resources.rego",
    "policies/main/secrets.rego",
    "policies/main/services.rego",
];

/// CRD schemas in the compact form (see `worker/data/k8s-schema/generate.py`).
pub const SHIPPED_SCHEMAS: &[(&str, &str)] = shipped![
    "policies/schemas/argocd.yaml",
    "policies/schemas/cert-manager.yaml",
    "policies/schemas/helm-cattle.yaml",
    "policies/schemas/monitoring.yaml",
    "policies/schemas/traefik.yaml",
];
