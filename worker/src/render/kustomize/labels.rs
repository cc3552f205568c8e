//! commonLabels, labels (includeSelectors / includeTemplates) and commonAnnotations, on the
//! field specs kustomize uses by default.

use serde_json::Value;

use super::KustomizeError;
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

fn set_all(r: &mut Res, specs: &[Spec], pairs: &[(String, String)]) {
    let kind = r.kind().to_string();
    let group = r.group().to_string();
    for (k, g, path, create) in specs {
        if *k != kind || (!g.is_empty() && *g != group) {
            continue;
        }
        fieldpath::visit(&mut r.v, path, *create, &mut |v| {
            let m = obj_mut(v);
            for (a, b) in pairs {
                m.insert(a.clone(), Value::String(b.clone()));
            }
        });
    }
}

fn set_meta(r: &mut Res, field: &str, pairs: &[(String, String)]) {
    let meta = r.meta_mut();
    let m = obj_mut(meta.entry(field).or_insert(Value::Null));
    for (a, b) in pairs {
        m.insert(a.clone(), Value::String(b.clone()));
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

pub fn run(k: &Kust, ra: &mut [Res]) -> Result<(), KustomizeError> {
    let common = string_map(k.field("commonLabels"), &k.file, "commonLabels")?;
    if !common.is_empty() {
        for r in ra.iter_mut() {
            set_meta(r, "labels", &common);
            set_all(r, SELECTORS, &common);
            set_all(r, &affinity_specs(), &common);
            set_all(r, TEMPLATES, &common);
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
            set_meta(r, "labels", &pairs);
            if sel {
                set_all(r, SELECTORS, &pairs);
                set_all(r, &affinity_specs(), &pairs);
            }
            if sel || tpl {
                set_all(r, TEMPLATES, &pairs);
            }
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

pub fn run_annotations(k: &Kust, ra: &mut [Res]) -> Result<(), KustomizeError> {
    let pairs = string_map(k.field("commonAnnotations"), &k.file, "commonAnnotations")?;
    if pairs.is_empty() {
        return Ok(());
    }
    for r in ra.iter_mut() {
        set_meta(r, "annotations", &pairs);
        set_all(r, ANNOTATION_TEMPLATES, &pairs);
    }
    Ok(())
}
