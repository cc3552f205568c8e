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
        if r.kind() == "Namespace" {
            r.set_name(&ns);
            continue;
        }
        if !is_cluster_scoped(r.group(), r.version(), r.kind()) {
            r.set_namespace(&ns);
        }
    }
    Ok(())
}
