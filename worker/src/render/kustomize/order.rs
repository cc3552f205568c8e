//! Output order: kustomize's legacy kind order (default) or `sortOptions`.

use serde_json::Value;

use super::KustomizeError;
use super::loader::Kust;
use super::resource::Res;

const FIRST: [&str; 22] = [
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];
const LAST: [&str; 2] = [
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

fn rank(kind: &str, first: &[String], last: &[String]) -> i64 {
    if let Some(i) = first.iter().position(|k| k == kind) {
        return i as i64 - first.len() as i64;
    }
    if let Some(i) = last.iter().position(|k| k == kind) {
        return i as i64 + 1;
    }
    0
}

fn gvk_string(r: &Res) -> String {
    let or = |s: &str, d: &str| {
        if s.is_empty() {
            d.to_string()
        } else {
            s.to_string()
        }
    };
    format!(
        "{}_{}_{}",
        or(r.group(), "~G"),
        or(r.version(), "~V"),
        or(r.kind(), "~K")
    )
}

pub fn sort(k: &Kust, ra: &mut [Res]) -> Result<(), KustomizeError> {
    let opts = k.field("sortOptions");
    let order = opts
        .and_then(|o| o.get("order"))
        .and_then(Value::as_str)
        .unwrap_or("legacy");
    match order {
        "fifo" => return Ok(()),
        "legacy" => {}
        other => {
            return Err(KustomizeError::invalid(
                &k.file,
                format!("unknown sortOptions.order {other}"),
            ));
        }
    }
    let list = |f: &str| -> Option<Vec<String>> {
        opts.and_then(|o| o.pointer(&format!("/legacySortOptions/{f}")))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
    };
    let first = list("orderFirst").unwrap_or_else(|| FIRST.iter().map(|s| s.to_string()).collect());
    let last = list("orderLast").unwrap_or_else(|| LAST.iter().map(|s| s.to_string()).collect());
    ra.sort_by(|a, b| {
        let (ra_, rb) = (rank(a.kind(), &first, &last), rank(b.kind(), &first, &last));
        let (ga, gb) = (gvk_string(a), gvk_string(b));
        let key = |r: &Res| {
            let ns = if r.namespace().is_empty() {
                "~X"
            } else {
                r.namespace()
            };
            let nm = if r.name().is_empty() { "~N" } else { r.name() };
            format!("{}|{}|{}", gvk_string(r), ns, nm)
        };
        if ga != gb {
            ra_.cmp(&rb).then_with(|| ga.cmp(&gb))
        } else {
            key(a).cmp(&key(b))
        }
    });
    Ok(())
}
