//! commonLabels, labels (includeSelectors / includeTemplates) and commonAnnotations, on the
//! field specs kustomize uses by default.

use serde_json::Value;

use super::KustomizeError;
use super::config::{TransformerConfig, paths_for};
use super::fieldpath;
use super::loader::{Kust, string_map};
use super::resource::{Res, obj_mut};

/// (kind, group or "" for any, path, create)
type Spec = (&'static str, &'static str, &'static str, bool);

const AFFINITY: [&str; 4] = [
    "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
];

const SELECTORS: &[Spec] = &[
    ("ReplicationController", "", "spec/selector", true),
    ("Deployment", "", "spec/selector/matchLabels", true),
    ("ReplicaSet", "", "spec/selector/matchLabels", true),
    ("DaemonSet", "", "spec/selector/matchLabels", true),
    ("StatefulSet", "apps", "spec/selector/matchLabels", true),
    ("Job", "batch", "spec/selector/matchLabels", false),
    (
        "CronJob",
        "batch",
        "spec/jobTemplate/spec/selector/matchLabels",
        false,
    ),
    (
        "PodDisruptionBudget",
        "policy",
        "spec/selector/matchLabels",
        false,
    ),
    (
        "NetworkPolicy",
        "networking.k8s.io",
        "spec/podSelector/matchLabels",
        false,
    ),
    (
        "NetworkPolicy",
        "networking.k8s.io",
        "spec/ingress/from/podSelector/matchLabels",
        false,
    ),
    (
        "NetworkPolicy",
        "networking.k8s.io",
        "spec/egress/to/podSelector/matchLabels",
        false,
    ),
    ("Service", "", "spec/selector", true),
    (
        "Deployment",
        "apps",
        "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels",
        false,
    ),
    (
        "StatefulSet",
        "apps",
        "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels",
        false,
    ),
];

const TEMPLATES: &[Spec] = &[
    (
        "ReplicationController",
        "",
        "spec/template/metadata/labels",
        true,
    ),
    ("Deployment", "", "spec/template/metadata/labels", true),
    ("ReplicaSet", "", "spec/template/metadata/labels", true),
    ("DaemonSet", "", "spec/template/metadata/labels", true),
    ("StatefulSet", "apps", "spec/template/metadata/labels", true),
    (
        "StatefulSet",
        "apps",
        "spec/volumeClaimTemplates[]/metadata/labels",
        true,
    ),
    ("Job", "batch", "spec/template/metadata/labels", true),
    ("CronJob", "batch", "spec/jobTemplate/metadata/labels", true),
    (
        "CronJob",
        "batch",
        "spec/jobTemplate/spec/template/metadata/labels",
        true,
    ),
];

const ANNOTATION_TEMPLATES: &[Spec] = &[
    (
        "ReplicationController",
        "",
        "spec/template/metadata/annotations",
        true,
    ),
    ("Deployment", "", "spec/template/metadata/annotations", true),
    ("ReplicaSet", "", "spec/template/metadata/annotations", true),
    ("DaemonSet", "", "spec/template/metadata/annotations", true),
    (
        "StatefulSet",
        "apps",
        "spec/template/metadata/annotations",
        true,
    ),
    ("Job", "batch", "spec/template/metadata/annotations", true),
    (
        "CronJob",
        "batch",
        "spec/jobTemplate/metadata/annotations",
        true,
    ),
    (
        "CronJob",
        "batch",
        "spec/jobTemplate/spec/template/metadata/annotations",
        true,
    ),
];

fn applicable(r: &Res, specs: &[Spec]) -> Vec<(&'static str, bool)> {
    let (kind, group) = (r.kind(), r.group());
    specs
        .iter()
        .filter(|(k, g, _, _)| *k == kind && (g.is_empty() || *g == group))
        .map(|(_, _, p, c)| (*p, *c))
        .collect()
}

/// Sets `pairs` in the maps at `paths`, the way kustomize's label and annotation filters do:
/// an existing entry is overwritten in place (so every place that shares its value node follows,
/// see `Res::aliases`), while the entries it creates for one key in one object all share one new
/// node.
pub(super) fn apply_pairs(r: &mut Res, paths: &[(&str, bool)], pairs: &[(String, String)]) {
    let mut maps = Vec::new();
    for (path, create) in paths {
        maps.extend(fieldpath::pointers(&mut r.v, path, *create));
    }
    for (key, val) in pairs {
        let mut created = Vec::new();
        for m in &maps {
            let ptr = format!("{m}/{}", fieldpath::escape(key));
            let Some(target) = r.v.pointer_mut(m) else {
                continue;
            };
            let map = obj_mut(target);
            if map.contains_key(key.as_str()) {
                r.set_shared(&ptr, Value::String(val.clone()));
            } else {
                map.insert(key.clone(), Value::String(val.clone()));
                created.push(ptr);
            }
        }
        if created.len() > 1 {
            r.aliases.push(created);
        }
    }
}

fn affinity_specs() -> Vec<Spec> {
    let mut v = Vec::new();
    for kind in ["Deployment", "StatefulSet"] {
        for p in AFFINITY {
            v.push((kind, "apps", p, false));
        }
    }
    v
}

pub fn run(k: &Kust, ra: &mut [Res], cfg: &TransformerConfig) -> Result<(), KustomizeError> {
    let common = string_map(k.field("commonLabels"), &k.file, "commonLabels")?;
    if !common.is_empty() {
        for r in ra.iter_mut() {
            let mut paths = vec![("metadata/labels", true)];
            paths.extend(applicable(r, SELECTORS));
            paths.extend(applicable(r, &affinity_specs()));
            paths.extend(applicable(r, TEMPLATES));
            paths.extend(paths_for(&cfg.common_labels, r));
            apply_pairs(r, &paths, &common);
        }
    }
    let Some(list) = k.field("labels") else {
        return Ok(());
    };
    let Value::Array(items) = list else {
        return Err(KustomizeError::invalid(&k.file, "labels: expected a list"));
    };
    for item in items {
        let fields = match item.get("fields") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(f)) => f.clone(),
            Some(_) => {
                return Err(KustomizeError::invalid(
                    &k.file,
                    "labels.fields: expected a list",
                ));
            }
        };
        let pairs = string_map(item.get("pairs"), &k.file, "labels.pairs")?;
        let flag = |f: &str| item.get(f).and_then(Value::as_bool).unwrap_or(false);
        let (sel, tpl) = (flag("includeSelectors"), flag("includeTemplates"));
        for r in ra.iter_mut() {
            let mut paths = vec![("metadata/labels", true)];
            if sel {
                paths.extend(applicable(r, SELECTORS));
                paths.extend(applicable(r, &affinity_specs()));
            }
            if sel || tpl {
                paths.extend(applicable(r, TEMPLATES));
            }
            paths.extend(paths_for(&cfg.labels, r));
            if sel {
                paths.extend(paths_for(&cfg.common_labels, r));
            } else if tpl {
                paths.extend(paths_for(&cfg.template_labels, r));
            }
            apply_pairs(r, &paths, &pairs);
            for f in &fields {
                let get = |n: &str| f.get(n).and_then(Value::as_str).unwrap_or("");
                let path = get("path");
                if path.is_empty()
                    || (!get("kind").is_empty() && get("kind") != r.kind())
                    || (!get("group").is_empty() && get("group") != r.group())
                    || (!get("version").is_empty() && get("version") != r.version())
                {
                    continue;
                }
                let create = f.get("create").and_then(Value::as_bool).unwrap_or(false);
                fieldpath::visit(&mut r.v, path, create, &mut |v| {
                    let m = obj_mut(v);
                    for (a, b) in &pairs {
                        m.insert(a.clone(), Value::String(b.clone()));
                    }
                });
            }
        }
    }
    Ok(())
}

pub fn run_annotations(
    k: &Kust,
    ra: &mut [Res],
    cfg: &TransformerConfig,
) -> Result<(), KustomizeError> {
    let pairs = string_map(k.field("commonAnnotations"), &k.file, "commonAnnotations")?;
    if pairs.is_empty() {
        return Ok(());
    }
    for r in ra.iter_mut() {
        let mut paths = vec![("metadata/annotations", true)];
        paths.extend(applicable(r, ANNOTATION_TEMPLATES));
        paths.extend(paths_for(&cfg.common_annotations, r));
        apply_pairs(r, &paths, &pairs);
    }
    Ok(())
}
