//! What the API server's refusal of a dry-run apply means for the pull request: a Kubernetes
//! `Status` (code, reason, message, details.causes) mapped onto a report finding or a note.

use ::kube::core::Status;

use crate::objects::ObjectId;
use crate::report::{ReportFinding, Severity};

pub const RULE_ADMISSION: &str = "kube-dry-run/admission";
pub const RULE_IMMUTABLE: &str = "kube-dry-run/immutable";
pub const RULE_INVALID: &str = "kube-dry-run/invalid";
pub const RULE_UNKNOWN_KIND: &str = "kube-dry-run/unknown-kind";
pub const RULE_NAMESPACE: &str = "kube-dry-run/namespace";
pub const RULE_FORBIDDEN: &str = "kube-dry-run/forbidden";
pub const RULE_ERROR: &str = "kube-dry-run/error";

/// What a refusal amounts to.
#[derive(Clone, Debug)]
pub enum Rejection {
    Finding(ReportFinding),
    /// Not the change's fault (e.g. a namespace this same change creates); said in a note.
    Note(String),
}

fn finding(rule: &str, severity: Severity, id: &ObjectId, message: String) -> Rejection {
    Rejection::Finding(ReportFinding {
        rule_id: rule.into(),
        severity,
        object: id.to_string(),
        file: None,
        line: None,
        message,
    })
}

/// The kind is not served by the cluster. `defined_here`: a CRD in the same app defines it, so
/// it only does not exist *yet*.
pub fn unknown_kind(id: &ObjectId, api_version: &str, defined_here: bool) -> Rejection {
    if defined_here {
        return Rejection::Note(format!(
            "kube dry-run: {id} skipped: {api_version} {} is defined by a CRD in this change and not in the cluster yet",
            id.kind
        ));
    }
    finding(
        RULE_UNKNOWN_KIND,
        Severity::Deny,
        id,
        format!(
            "no such kind in the cluster: {api_version} {} is not served (missing CRD or removed API version)",
            id.kind
        ),
    )
}

/// Maps a refused dry-run apply. `namespaces_in_change`: namespaces the same app creates.
pub fn from_status(id: &ObjectId, status: &Status, namespaces_in_change: &[String]) -> Rejection {
    let msg = status.message.trim().to_string();
    let causes: Vec<String> = status
        .details
        .iter()
        .flat_map(|d| d.causes.iter())
        .map(|c| {
            if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            }
        })
        .collect();
    let detail_kind = status.details.as_ref().map(|d| d.kind.as_str());
    if msg.contains("admission webhook") || msg.contains("ValidatingAdmissionPolicy") {
        return finding(RULE_ADMISSION, Severity::Deny, id, msg);
    }
    if status.code == 422 || status.reason == "Invalid" {
        let immutable: Vec<&String> = causes.iter().filter(|c| c.contains("immutable")).collect();
        if !immutable.is_empty() || msg.contains("field is immutable") {
            let what = if immutable.is_empty() {
                msg.clone()
            } else {
                immutable
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            return finding(
                RULE_IMMUTABLE,
                Severity::Deny,
                id,
                format!("changes an immutable field (the object must be replaced): {what}"),
            );
        }
        let text = if causes.is_empty() {
            msg
        } else {
            causes.join("; ")
        };
        return finding(RULE_INVALID, Severity::Deny, id, text);
    }
    if status.code == 404 && detail_kind == Some("namespaces") {
        let ns = status
            .details
            .as_ref()
            .map(|d| d.name.clone())
            .unwrap_or_default();
        if namespaces_in_change.contains(&ns) {
            return Rejection::Note(format!(
                "kube dry-run: {id} skipped: namespace {ns} is created by this change"
            ));
        }
        return finding(
            RULE_NAMESPACE,
            Severity::Warn,
            id,
            format!(
                "namespace {ns} does not exist in the cluster (nothing in this app creates it; ArgoCD's CreateNamespace=true would)"
            ),
        );
    }
    if status.code == 403 || status.reason == "Forbidden" {
        return finding(
            RULE_FORBIDDEN,
            Severity::Warn,
            id,
            format!("Capstan may not dry-run this object (grant it patch on the resource): {msg}"),
        );
    }
    finding(
        RULE_ERROR,
        Severity::Warn,
        id,
        format!(
            "dry-run apply failed ({} {}): {msg}",
            status.code, status.reason
        ),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn id() -> ObjectId {
        ObjectId {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: Some("shop".into()),
            name: "web".into(),
        }
    }

    fn status(v: serde_json::Value) -> Status {
        serde_json::from_value(v).unwrap()
    }

    fn rule(r: &Rejection) -> &str {
        match r {
            Rejection::Finding(f) => &f.rule_id,
            Rejection::Note(_) => "note",
        }
    }

    #[test]
    fn webhook_and_policy_denials_are_admission_findings() {
        let webhook = status(
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "admission webhook \"validate.kyverno.svc-fail\" denied the request: image tag latest is not allowed",
            "reason": "BadRequest", "code": 400}),
        );
        let vap = status(
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit-binding' denied request: replicas must be at most 5",
            "reason": "Invalid", "code": 422,
            "details": {"name": "web", "group": "apps", "kind": "deployments"}}),
        );
        for s in [webhook, vap] {
            let r = from_status(&id(), &s, &[]);
            assert_eq!(rule(&r), RULE_ADMISSION);
            let Rejection::Finding(f) = r else { panic!() };
            assert_eq!(f.severity, Severity::Deny);
            assert_eq!(f.message, s.message);
        }
    }

    #[test]
    fn immutable_causes_are_named() {
        let s = status(
            json!({"status": "Failure", "reason": "Invalid", "code": 422,
            "message": "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: {...}: field is immutable",
            "details": {"name": "web", "group": "apps", "kind": "Deployment", "causes": [
                {"reason": "FieldValueInvalid", "message": "Invalid value: {\"matchLabels\":{\"app\":\"web2\"}}: field is immutable", "field": "spec.selector"}]}}),
        );
        let Rejection::Finding(f) = from_status(&id(), &s, &[]) else {
            panic!()
        };
        assert_eq!(f.rule_id, RULE_IMMUTABLE);
        assert!(
            f.message.contains("spec.selector: Invalid value"),
            "{}",
            f.message
        );
    }

    #[test]
    fn other_invalid_objects_list_their_causes() {
        let s = status(
            json!({"status": "Failure", "reason": "Invalid", "code": 422,
            "message": "Deployment.apps \"web\" is invalid",
            "details": {"causes": [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.template.spec.containers[0].image"}]}}),
        );
        let Rejection::Finding(f) = from_status(&id(), &s, &[]) else {
            panic!()
        };
        assert_eq!(f.rule_id, RULE_INVALID);
        assert_eq!(
            f.message,
            "spec.template.spec.containers[0].image: Required value"
        );
    }

    #[test]
    fn a_missing_namespace_is_a_note_when_the_change_creates_it() {
        let s = status(
            json!({"status": "Failure", "reason": "NotFound", "code": 404,
            "message": "namespaces \"shop\" not found",
            "details": {"name": "shop", "kind": "namespaces"}}),
        );
        assert_eq!(rule(&from_status(&id(), &s, &["shop".into()])), "note");
        let Rejection::Finding(f) = from_status(&id(), &s, &[]) else {
            panic!()
        };
        assert_eq!(
            (f.rule_id.as_str(), f.severity),
            (RULE_NAMESPACE, Severity::Warn)
        );
    }

    #[test]
    fn rbac_refusals_and_unknown_kinds() {
        let s = status(
            json!({"status": "Failure", "reason": "Forbidden", "code": 403,
            "message": "deployments.apps \"web\" is forbidden: User \"system:serviceaccount:capstan:capstan\" cannot patch resource \"deployments\""}),
        );
        assert_eq!(rule(&from_status(&id(), &s, &[])), RULE_FORBIDDEN);
        assert_eq!(
            rule(&unknown_kind(&id(), "apps/v1", false)),
            RULE_UNKNOWN_KIND
        );
        assert_eq!(rule(&unknown_kind(&id(), "apps/v1", true)), "note");
    }
}
