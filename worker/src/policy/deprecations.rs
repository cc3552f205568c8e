//! Deprecated and removed Kubernetes apiVersions, by the minor version of each event.
//!
//! Facts from the Kubernetes deprecation guide and release notes. A `*List` kind follows its item
//! kind. `removed` is the first minor release that no longer serves the version.

use super::findings::{Finding, Severity};
use crate::objects::K8sObject;

/// A Kubernetes minor version (`1.34` → `Version(1, 34)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32);

impl Version {
    /// Parses `1.34`, `v1.34`, `v1.34.0`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().trim_start_matches('v').split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Version(major, minor))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// One deprecated apiVersion of one kind.
#[derive(Clone, Copy, Debug)]
pub struct Deprecation {
    pub api_version: &'static str,
    pub kind: &'static str,
    /// Minor release that announced the deprecation (`None` when it was never announced).
    pub deprecated: Option<u32>,
    /// First minor release that no longer serves it (`None` while still served).
    pub removed: Option<u32>,
    /// What to use instead (`None` when nothing replaces it).
    pub replacement: Option<&'static str>,
}

const fn d(
    api_version: &'static str,
    kind: &'static str,
    deprecated: Option<u32>,
    removed: Option<u32>,
    replacement: Option<&'static str>,
) -> Deprecation {
    Deprecation {
        api_version,
        kind,
        deprecated,
        removed,
        replacement,
    }
}

const APPS: Option<&str> = Some("apps/v1");
const NET: Option<&str> = Some("networking.k8s.io/v1");
const RBAC: Option<&str> = Some("rbac.authorization.k8s.io/v1");

/// The table. Kept sorted by removal release.
pub const TABLE: &[Deprecation] = &[
    // 1.16: the workload and policy types leave extensions/ and the apps betas.
    d("extensions/v1beta1", "Deployment", Some(9), Some(16), APPS),
    d("apps/v1beta1", "Deployment", Some(9), Some(16), APPS),
    d("apps/v1beta2", "Deployment", Some(9), Some(16), APPS),
    d("apps/v1beta1", "StatefulSet", Some(9), Some(16), APPS),
    d("apps/v1beta2", "StatefulSet", Some(9), Some(16), APPS),
    d("extensions/v1beta1", "DaemonSet", Some(9), Some(16), APPS),
    d("apps/v1beta2", "DaemonSet", Some(9), Some(16), APPS),
    d("extensions/v1beta1", "ReplicaSet", None, Some(16), APPS),
    d("apps/v1beta1", "ReplicaSet", None, Some(16), APPS),
    d("apps/v1beta2", "ReplicaSet", None, Some(16), APPS),
    d(
        "extensions/v1beta1",
        "NetworkPolicy",
        Some(9),
        Some(16),
        NET,
    ),
    d(
        "extensions/v1beta1",
        "PodSecurityPolicy",
        Some(10),
        Some(16),
        Some("policy/v1beta1"),
    ),
    // 1.17
    d(
        "scheduling.k8s.io/v1alpha1",
        "PriorityClass",
        Some(14),
        Some(17),
        Some("scheduling.k8s.io/v1"),
    ),
    // 1.22: the big beta clean-up.
    d("extensions/v1beta1", "Ingress", Some(14), Some(22), NET),
    d(
        "networking.k8s.io/v1beta1",
        "Ingress",
        Some(19),
        Some(22),
        NET,
    ),
    d(
        "networking.k8s.io/v1beta1",
        "IngressClass",
        Some(19),
        Some(22),
        NET,
    ),
    d(
        "scheduling.k8s.io/v1beta1",
        "PriorityClass",
        Some(14),
        Some(22),
        Some("scheduling.k8s.io/v1"),
    ),
    d(
        "apiextensions.k8s.io/v1beta1",
        "CustomResourceDefinition",
        Some(16),
        Some(22),
        Some("apiextensions.k8s.io/v1"),
    ),
    d(
        "admissionregistration.k8s.io/v1beta1",
        "MutatingWebhookConfiguration",
        Some(16),
        Some(22),
        Some("admissionregistration.k8s.io/v1"),
    ),
    d(
        "admissionregistration.k8s.io/v1beta1",
        "ValidatingWebhookConfiguration",
        Some(16),
        Some(22),
        Some("admissionregistration.k8s.io/v1"),
    ),
    d(
        "rbac.authorization.k8s.io/v1alpha1",
        "ClusterRole",
        Some(17),
        Some(22),
        RBAC,
    ),
    d(
        "rbac.authorization.k8s.io/v1alpha1",
        "ClusterRoleBinding",
        Some(17),
        Some(22),
        RBAC,
    ),
    d(
        "rbac.authorization.k8s.io/v1alpha1",
        "Role",
        Some(17),
        Some(22),
        RBAC,
    ),
    d(
        "rbac.authorization.k8s.io/v1alpha1",
        "RoleBinding",
        Some(17),
        Some(22),
        RBAC,
    ),
    d(
        "rbac.authorization.k8s.io/v1beta1",
        "ClusterRole",
        Some(17),
        Some(22),
        RBAC,
    ),
    d(
        "rbac.authorization.k8s.io/v1beta1",
        "ClusterRoleBinding",
        Some(17),
        Some(22),
        RBAC,
    ),
    d(
        "rbac.authorization.k8s.io/v1beta1",
        "Role",
        Some(17),
        Some(22),
        RBAC,
    ),
    d(
        "rbac.authorization.k8s.io/v1beta1",
        "RoleBinding",
        Some(17),
        Some(22),
        RBAC,
    ),
    d(
        "storage.k8s.io/v1beta1",
        "CSINode",
        Some(17),
        Some(22),
        Some("storage.k8s.io/v1"),
    ),
    d(
        "storage.k8s.io/v1beta1",
        "CSIDriver",
        Some(19),
        Some(22),
        Some("storage.k8s.io/v1"),
    ),
    d(
        "storage.k8s.io/v1beta1",
        "StorageClass",
        Some(6),
        Some(22),
        Some("storage.k8s.io/v1"),
    ),
    d(
        "storage.k8s.io/v1beta1",
        "VolumeAttachment",
        Some(13),
        Some(22),
        Some("storage.k8s.io/v1"),
    ),
    d(
        "apiregistration.k8s.io/v1beta1",
        "APIService",
        Some(10),
        Some(22),
        Some("apiregistration.k8s.io/v1"),
    ),
    d(
        "authentication.k8s.io/v1beta1",
        "TokenReview",
        Some(6),
        Some(22),
        Some("authentication.k8s.io/v1"),
    ),
    d(
        "authorization.k8s.io/v1beta1",
        "SubjectAccessReview",
        Some(6),
        Some(22),
        Some("authorization.k8s.io/v1"),
    ),
    d(
        "certificates.k8s.io/v1beta1",
        "CertificateSigningRequest",
        Some(19),
        Some(22),
        Some("certificates.k8s.io/v1"),
    ),
    d(
        "coordination.k8s.io/v1beta1",
        "Lease",
        Some(14),
        Some(22),
        Some("coordination.k8s.io/v1"),
    ),
    // 1.24: the audit configuration betas (files read by kube-apiserver, not served objects).
    d(
        "audit.k8s.io/v1alpha1",
        "Policy",
        Some(21),
        Some(24),
        Some("audit.k8s.io/v1"),
    ),
    d(
        "audit.k8s.io/v1alpha1",
        "Event",
        Some(21),
        Some(24),
        Some("audit.k8s.io/v1"),
    ),
    d(
        "audit.k8s.io/v1beta1",
        "Policy",
        Some(21),
        Some(24),
        Some("audit.k8s.io/v1"),
    ),
    d(
        "audit.k8s.io/v1beta1",
        "Event",
        Some(21),
        Some(24),
        Some("audit.k8s.io/v1"),
    ),
    // 1.25
    d(
        "policy/v1beta1",
        "PodSecurityPolicy",
        Some(21),
        Some(25),
        None,
    ),
    d(
        "policy/v1beta1",
        "PodDisruptionBudget",
        Some(21),
        Some(25),
        Some("policy/v1"),
    ),
    d(
        "batch/v1beta1",
        "CronJob",
        Some(21),
        Some(25),
        Some("batch/v1"),
    ),
    d(
        "discovery.k8s.io/v1beta1",
        "EndpointSlice",
        Some(21),
        Some(25),
        Some("discovery.k8s.io/v1"),
    ),
    d(
        "events.k8s.io/v1beta1",
        "Event",
        Some(19),
        Some(25),
        Some("events.k8s.io/v1"),
    ),
    d(
        "autoscaling/v2beta1",
        "HorizontalPodAutoscaler",
        Some(22),
        Some(25),
        Some("autoscaling/v2"),
    ),
    d(
        "node.k8s.io/v1beta1",
        "RuntimeClass",
        Some(22),
        Some(25),
        Some("node.k8s.io/v1"),
    ),
    // 1.26
    d(
        "autoscaling/v2beta2",
        "HorizontalPodAutoscaler",
        Some(23),
        Some(26),
        Some("autoscaling/v2"),
    ),
    d(
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "FlowSchema",
        Some(23),
        Some(26),
        Some("flowcontrol.apiserver.k8s.io/v1"),
    ),
    d(
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "PriorityLevelConfiguration",
        Some(23),
        Some(26),
        Some("flowcontrol.apiserver.k8s.io/v1"),
    ),
    // 1.27
    d(
        "storage.k8s.io/v1beta1",
        "CSIStorageCapacity",
        Some(24),
        Some(27),
        Some("storage.k8s.io/v1"),
    ),
    // 1.29
    d(
        "flowcontrol.apiserver.k8s.io/v1beta2",
        "FlowSchema",
        Some(26),
        Some(29),
        Some("flowcontrol.apiserver.k8s.io/v1"),
    ),
    d(
        "flowcontrol.apiserver.k8s.io/v1beta2",
        "PriorityLevelConfiguration",
        Some(26),
        Some(29),
        Some("flowcontrol.apiserver.k8s.io/v1"),
    ),
    // 1.32
    d(
        "flowcontrol.apiserver.k8s.io/v1beta3",
        "FlowSchema",
        Some(29),
        Some(32),
        Some("flowcontrol.apiserver.k8s.io/v1"),
    ),
    d(
        "flowcontrol.apiserver.k8s.io/v1beta3",
        "PriorityLevelConfiguration",
        Some(29),
        Some(32),
        Some("flowcontrol.apiserver.k8s.io/v1"),
    ),
    // 1.33: the alpha admission policies after their v1 release.
    d(
        "admissionregistration.k8s.io/v1alpha1",
        "ValidatingAdmissionPolicy",
        Some(30),
        Some(33),
        Some("admissionregistration.k8s.io/v1"),
    ),
    d(
        "admissionregistration.k8s.io/v1alpha1",
        "ValidatingAdmissionPolicyBinding",
        Some(30),
        Some(33),
        Some("admissionregistration.k8s.io/v1"),
    ),
    // 1.34: dynamic resource allocation's first alpha leaves as the API goes GA.
    d(
        "resource.k8s.io/v1alpha3",
        "ResourceClaim",
        Some(32),
        Some(34),
        Some("resource.k8s.io/v1"),
    ),
    d(
        "resource.k8s.io/v1alpha3",
        "ResourceClaimTemplate",
        Some(32),
        Some(34),
        Some("resource.k8s.io/v1"),
    ),
    d(
        "resource.k8s.io/v1alpha3",
        "ResourceSlice",
        Some(32),
        Some(34),
        Some("resource.k8s.io/v1"),
    ),
    d(
        "resource.k8s.io/v1alpha3",
        "DeviceClass",
        Some(32),
        Some(34),
        Some("resource.k8s.io/v1"),
    ),
    // Announced, still served in 1.34.
    d(
        "storage.k8s.io/v1alpha1",
        "VolumeAttributesClass",
        Some(31),
        Some(35),
        Some("storage.k8s.io/v1"),
    ),
    d(
        "storage.k8s.io/v1beta1",
        "VolumeAttributesClass",
        Some(34),
        None,
        Some("storage.k8s.io/v1"),
    ),
    d(
        "resource.k8s.io/v1beta1",
        "ResourceClaim",
        Some(33),
        Some(36),
        Some("resource.k8s.io/v1"),
    ),
    d(
        "resource.k8s.io/v1beta1",
        "ResourceClaimTemplate",
        Some(33),
        Some(36),
        Some("resource.k8s.io/v1"),
    ),
    d(
        "resource.k8s.io/v1beta1",
        "ResourceSlice",
        Some(33),
        Some(36),
        Some("resource.k8s.io/v1"),
    ),
    d(
        "resource.k8s.io/v1beta1",
        "DeviceClass",
        Some(33),
        Some(36),
        Some("resource.k8s.io/v1"),
    ),
    d(
        "storagemigration.k8s.io/v1alpha1",
        "StorageVersionMigration",
        Some(35),
        Some(35),
        Some("storagemigration.k8s.io/v1beta1"),
    ),
    d("v1", "ComponentStatus", Some(19), None, None),
    d(
        "v1",
        "Endpoints",
        Some(33),
        None,
        Some("discovery.k8s.io/v1 EndpointSlice"),
    ),
];

/// Looks up an apiVersion and kind; `FooList` matches `Foo`.
pub fn lookup(api_version: &str, kind: &str) -> Option<&'static Deprecation> {
    let base = kind.strip_suffix("List").unwrap_or(kind);
    TABLE
        .iter()
        .find(|d| d.api_version == api_version && (d.kind == kind || d.kind == base))
}

/// Rule id for an apiVersion the target cluster no longer serves.
pub const RULE_REMOVED: &str = "removed-api";
/// Rule id for an apiVersion announced for removal.
pub const RULE_DEPRECATED: &str = "deprecated-api";

/// The finding for one object at a target version, if any.
pub fn check(obj: &K8sObject, app: &str, target: Version) -> Option<Finding> {
    let d = lookup(&obj.api_version, &obj.id.kind)?;
    if target.0 != 1 {
        return None;
    }
    let instead = d
        .replacement
        .map(|r| format!("; use {r}"))
        .unwrap_or_else(|| "; nothing replaces it".into());
    let (rule, sev, msg) = match (d.removed, d.deprecated) {
        (Some(r), _) if target.1 >= r => (
            RULE_REMOVED,
            Severity::Deny,
            format!(
                "{} {} is not served since Kubernetes 1.{r} (target {target}){instead}",
                obj.api_version, obj.id.kind
            ),
        ),
        (removed, Some(dep)) if target.1 >= dep => (
            RULE_DEPRECATED,
            Severity::Warn,
            format!(
                "{} {} is deprecated since Kubernetes 1.{dep}{}{instead}",
                obj.api_version,
                obj.id.kind,
                removed
                    .map(|r| format!(" and removed in 1.{r}"))
                    .unwrap_or_default()
            ),
        ),
        _ => return None,
    };
    Some(
        Finding::new(rule, sev, app, msg)
            .on(&obj.id)
            .at_field("apiVersion"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn obj(api: &str, kind: &str) -> K8sObject {
        K8sObject::from_value(
            serde_json::json!({"apiVersion": api, "kind": kind, "metadata": {"name": "x"}}),
        )
        .unwrap()
    }

    #[test]
    fn removed_denies_deprecated_warns_current_passes() {
        let t = Version(1, 34);
        let f = check(&obj("policy/v1beta1", "PodDisruptionBudget"), "a", t).unwrap();
        assert_eq!(
            (f.rule.as_str(), f.severity),
            (RULE_REMOVED, Severity::Deny)
        );
        assert!(f.message.contains("use policy/v1"), "{}", f.message);
        let f = check(
            &obj("storage.k8s.io/v1beta1", "VolumeAttributesClass"),
            "a",
            t,
        )
        .unwrap();
        assert_eq!(
            (f.rule.as_str(), f.severity),
            (RULE_DEPRECATED, Severity::Warn)
        );
        assert!(check(&obj("apps/v1", "Deployment"), "a", t).is_none());
    }

    #[test]
    fn the_target_version_decides() {
        let o = obj("autoscaling/v2beta2", "HorizontalPodAutoscaler");
        assert!(check(&o, "a", Version(1, 22)).is_none());
        assert_eq!(
            check(&o, "a", Version(1, 23)).unwrap().severity,
            Severity::Warn
        );
        assert_eq!(
            check(&o, "a", Version(1, 26)).unwrap().severity,
            Severity::Deny
        );
        assert_eq!(Version::parse("v1.26.3"), Some(Version(1, 26)));
        assert_eq!(Version::parse("1.x"), None);
    }

    #[test]
    fn list_kinds_follow_their_items() {
        assert!(lookup("batch/v1beta1", "CronJobList").is_some());
    }
}
