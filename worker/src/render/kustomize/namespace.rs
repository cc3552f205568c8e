//! `namespace`: sets metadata.namespace on namespaced objects, renames Namespace objects and
//! sets APIService service namespaces. RoleBinding subjects and webhook services follow their
//! objects when name references are fixed (`nameref`).

use serde_json::Value;

use super::KustomizeError;
use super::loader::Kust;
use super::resource::{Res, is_cluster_scoped, obj_mut};

pub fn run(k: &Kust, ra: &mut [Res]) -> Result<(), KustomizeError> {
    let Some(ns) = k.str_field("namespace")?.filter(|s| !s.is_empty()) else {
        return Ok(());
    };
    for r in ra.iter_mut() {
        if r.kind() == "APIService" && r.group() == "apiregistration.k8s.io" {
            let spec = obj_mut(obj_mut(&mut r.v).entry("spec").or_insert(Value::Null));
            let svc = obj_mut(spec.entry("service").or_insert(Value::Null));
            svc.insert("namespace".into(), Value::String(ns.clone()));
        }
        if r.kind() == "CustomResourceDefinition"
            && r.group() == "apiextensions.k8s.io"
            && let Some(v) = r
                .v
                .pointer_mut("/spec/conversion/webhook/clientConfig/service/namespace")
        {
            *v = Value::String(ns.clone());
        }
        // kustomize records every object's id before this transformer, changed or not.
        r.remember();
        if r.kind() == "Namespace" && r.api_version() == "v1" {
            r.set_name(&ns);
            continue;
        }
        if !is_cluster_scoped(r.group(), r.version(), r.kind()) {
            r.set_namespace(&ns);
        }
        // Binding subjects named `default` (of any kind) get the namespace, created if absent.
        if matches!(r.kind(), "RoleBinding" | "ClusterRoleBinding")
            && let Some(Value::Array(subjects)) = obj_mut(&mut r.v).get_mut("subjects")
        {
            for s in subjects.iter_mut() {
                if let Value::Object(m) = s
                    && m.get("name").and_then(Value::as_str) == Some("default")
                {
                    m.insert("namespace".into(), Value::String(ns.clone()));
                }
            }
        }
    }
    Ok(())
}
