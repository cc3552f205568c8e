//! `namespace`: sets metadata.namespace on namespaced objects, renames Namespace objects and
//! sets APIService service namespaces. RoleBinding subjects and webhook services follow their
//! objects when name references are fixed (`nameref`).

use serde_json::Value;

use super::KustomizeError;
use super::config::{FieldSpec, TransformerConfig, paths_for};
use super::fieldpath;
use super::loader::Kust;
use super::resource::{Res, is_cluster_scoped, obj_mut};

pub fn run(k: &Kust, ra: &mut [Res], cfg: &TransformerConfig) -> Result<(), KustomizeError> {
    let Some(ns) = k.str_field("namespace")?.filter(|s| !s.is_empty()) else {
        return Ok(());
    };
    for r in ra.iter_mut() {
        set_specs(r, &ns, &cfg.namespace);
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

/// Namespace fields named by field specs (`configurations:`, a NamespaceTransformer's
/// `fieldSpecs`). metadata/namespace is set by the caller on namespaced kinds only, and
/// kustomize honours a metadata/name spec only on `v1` objects (the Namespace itself).
pub(super) fn set_specs(r: &mut Res, ns: &str, specs: &[FieldSpec]) {
    let v1 = r.api_version() == "v1";
    let paths: Vec<(String, bool)> = paths_for(specs, r)
        .into_iter()
        .filter(|(p, _)| *p != "metadata/namespace")
        .map(|(p, c)| (p.to_string(), c))
        .collect();
    for (path, create) in paths {
        if path == "metadata/name" {
            if v1 {
                r.set_name(ns);
            }
            continue;
        }
        fieldpath::visit(&mut r.v, &path, create, &mut |v| {
            let scalar = match v {
                Value::Object(m) => m.is_empty(),
                Value::Array(_) => false,
                _ => true,
            };
            if scalar {
                *v = Value::String(ns.to_string());
            }
        });
    }
}
