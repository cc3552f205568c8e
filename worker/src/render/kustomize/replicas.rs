//! `replicas`: sets spec.replicas of the named workloads.

use serde_json::Value;

use super::KustomizeError;
use super::config::{TransformerConfig, paths_for};
use super::fieldpath;
use super::loader::Kust;
use super::resource::{Res, obj_mut};

pub fn run(k: &Kust, ra: &mut [Res], cfg: &TransformerConfig) -> Result<(), KustomizeError> {
    let Some(list) = k.field("replicas") else {
        return Ok(());
    };
    let Value::Array(items) = list else {
        return Err(KustomizeError::invalid(
            &k.file,
            "replicas: expected a list",
        ));
    };
    for item in items {
        let name = item.get("name").and_then(Value::as_str).unwrap_or("");
        let count = item.get("count").and_then(Value::as_i64).ok_or_else(|| {
            KustomizeError::invalid(&k.file, "replicas: count must be an integer")
        })?;
        let mut workload = false;
        for r in ra.iter_mut() {
            let orig = r
                .prev
                .first()
                .map(|p| p.1.clone())
                .unwrap_or_else(|| r.name().to_string());
            if orig != name && r.name() != name {
                continue;
            }
            // Kinds and fields added by `configurations:`.
            let extra: Vec<(String, bool)> = paths_for(&cfg.replicas, r)
                .into_iter()
                .map(|(p, c)| (p.to_string(), c))
                .collect();
            for (path, create) in &extra {
                workload = true;
                fieldpath::visit(&mut r.v, path, *create, &mut |v| *v = Value::from(count));
            }
            if !matches!(
                r.kind(),
                "Deployment" | "ReplicaSet" | "StatefulSet" | "ReplicationController"
            ) {
                continue;
            }
            workload = true;
            let spec = obj_mut(&mut r.v).entry("spec").or_insert(Value::Null);
            obj_mut(spec).insert("replicas".into(), Value::from(count));
        }
        // kustomize refuses a replicas entry that reaches no workload, matched by name or not.
        if !workload {
            return Err(KustomizeError::invalid(
                &k.file,
                format!(
                    "resource with name {name} does not match a config with the following GVK [Deployment StatefulSet ReplicaSet ReplicationController]"
                ),
            ));
        }
    }
    Ok(())
}
