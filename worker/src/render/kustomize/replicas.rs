//! `replicas`: sets spec.replicas of the named workloads.

use serde_json::Value;

use super::KustomizeError;
use super::loader::Kust;
use super::resource::{Res, obj_mut};

pub fn run(k: &Kust, ra: &mut [Res]) -> Result<(), KustomizeError> {
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
        for r in ra.iter_mut() {
            let orig = r
                .prev
                .first()
                .map(|p| p.1.clone())
                .unwrap_or_else(|| r.name().to_string());
            if orig != name && r.name() != name {
                continue;
            }
            let paths: &[&str] = match r.kind() {
                "Deployment" | "ReplicaSet" | "StatefulSet" | "ReplicationController" => &["spec"],
                _ => &[],
            };
            for p in paths {
                let spec = obj_mut(&mut r.v).entry(*p).or_insert(Value::Null);
                obj_mut(spec).insert("replicas".into(), Value::from(count));
            }
            if paths.is_empty()
                && let Some(spec) = r.v.get_mut("spec").and_then(Value::as_object_mut)
                && spec.contains_key("replicas")
            {
                spec.insert("replicas".into(), Value::from(count));
            }
        }
    }
    Ok(())
}
