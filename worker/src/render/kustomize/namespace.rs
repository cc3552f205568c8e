//! `namespace`: sets metadata.namespace on namespaced objects and the namespace of
//! ServiceAccount subjects in (Cluster)RoleBindings.

use serde_json::Value;

use super::KustomizeError;
use super::loader::Kust;
use super::resource::{Res, is_cluster_scoped, obj_mut};

pub fn run(k: &Kust, ra: &mut [Res]) -> Result<(), KustomizeError> {
    let Some(ns) = k.str_field("namespace")?.filter(|s| !s.is_empty()) else {
        return Ok(());
    };
    let eff = |s: &str| {
        if s.is_empty() {
            "default".to_string()
        } else {
            s.to_string()
        }
    };
    let service_accounts: Vec<(String, String)> = ra
        .iter()
        .filter(|r| r.kind() == "ServiceAccount")
        .map(|r| (r.name().to_string(), eff(r.namespace())))
        .collect();
    let services: Vec<(String, String)> = ra
        .iter()
        .filter(|r| r.kind() == "Service")
        .map(|r| (r.name().to_string(), eff(r.namespace())))
        .collect();
    for r in ra.iter_mut() {
        if matches!(
            r.kind(),
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration"
        ) && let Some(Value::Array(hooks)) = r.v.get_mut("webhooks")
        {
            for h in hooks {
                if let Some(svc) = h.pointer_mut("/clientConfig/service")
                    && let Some(m) = svc.as_object_mut()
                {
                    let name = m.get("name").and_then(Value::as_str).unwrap_or("");
                    let sns = eff(m.get("namespace").and_then(Value::as_str).unwrap_or(""));
                    if services.iter().any(|(n, s)| n == name && *s == sns) {
                        m.insert("namespace".into(), Value::String(ns.clone()));
                    }
                }
            }
        }
        if r.kind() == "APIService" && r.group() == "apiregistration.k8s.io" {
            let spec = obj_mut(obj_mut(&mut r.v).entry("spec").or_insert(Value::Null));
            let svc = obj_mut(spec.entry("service").or_insert(Value::Null));
            svc.insert("namespace".into(), Value::String(ns.clone()));
        }
        if r.kind() == "Namespace" {
            r.set_name(&ns);
            continue;
        }
        let old_ns = r.namespace().to_string();
        if !is_cluster_scoped(r.kind()) {
            r.set_namespace(&ns);
        }
        if matches!(r.kind(), "RoleBinding" | "ClusterRoleBinding")
            && let Some(Value::Array(subjects)) = r.v.get_mut("subjects")
        {
            for s in subjects {
                let is_sa = s.get("kind").and_then(Value::as_str) == Some("ServiceAccount");
                let sns = s.get("namespace").and_then(Value::as_str).unwrap_or("");
                let name = s.get("name").and_then(Value::as_str).unwrap_or("");
                let sns = if sns.is_empty() {
                    eff(&old_ns)
                } else {
                    sns.to_string()
                };
                if is_sa
                    && service_accounts
                        .iter()
                        .any(|(n, ns)| n == name && *ns == sns)
                    && let Some(m) = s.as_object_mut()
                {
                    m.insert("namespace".into(), Value::String(ns.clone()));
                }
            }
        }
    }
    Ok(())
}
