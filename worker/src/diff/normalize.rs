//! Normalisation before comparing: noise ArgoCD adds, redactions and the app's ignore rules.

use serde_json::{Map, Value};

use crate::objects::ObjectId;

/// What replaces a hidden value in every output.
pub const REDACTED: &str = "(redacted)";

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const TRACKING_ANNOTATIONS: [&str; 2] = [
    "argocd.argoproj.io/tracking-id",
    "argocd.argoproj.io/instance",
];
const TRACKING_LABELS: [&str; 1] = ["argocd.argoproj.io/instance"];
/// ArgoCD's label tracking writes the app name here; only that value is ArgoCD's noise.
const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

fn is_secret(id: &ObjectId) -> bool {
    id.group.is_empty() && id.kind == "Secret"
}

/// The object as compared: tracking metadata removed, last-applied redacted, ignore rules applied.
pub fn normalize(app: &str, id: &ObjectId, value: &Value, rules: &[Value]) -> Value {
    let mut v = value.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
            for k in TRACKING_ANNOTATIONS {
                ann.shift_remove(k);
            }
            if let Some(last) = ann.get_mut(LAST_APPLIED) {
                *last = Value::String(REDACTED.into());
            }
        }
        if let Some(Value::Object(labels)) = meta.get_mut("labels") {
            for k in TRACKING_LABELS {
                labels.shift_remove(k);
            }
            if labels.get(INSTANCE_LABEL).and_then(Value::as_str) == Some(app) {
                labels.shift_remove(INSTANCE_LABEL);
            }
        }
        for key in ["annotations", "labels"] {
            if meta
                .get(key)
                .is_some_and(|m| m.as_object().is_some_and(Map::is_empty))
            {
                meta.shift_remove(key);
            }
        }
    }
    for rule in rules.iter().filter(|r| matches(r, id)) {
        if let Some(Value::Array(ptrs)) = rule.get("jsonPointers") {
            for p in ptrs.iter().filter_map(Value::as_str) {
                remove_pointer(&mut v, p);
            }
        }
    }
    v
}

/// A rule without a group means the core group, as in ArgoCD.
fn group_matches(rule: &Value, actual: &str) -> bool {
    match rule.get("group").and_then(Value::as_str) {
        None => actual.is_empty(),
        Some("*") => true,
        Some(want) => want == actual,
    }
}

/// ArgoCD's matching: group and kind (`*` allowed; no group means the core group), name and
/// namespace only when given.
fn matches(rule: &Value, id: &ObjectId) -> bool {
    group_matches(rule, &id.group)
        && rule
            .get("kind")
            .and_then(Value::as_str)
            .is_none_or(|k| k == "*" || k == id.kind)
        && rule
            .get("name")
            .and_then(Value::as_str)
            .is_none_or(|n| n.is_empty() || n == id.name)
        && rule
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(|n| n.is_empty() || Some(n) == id.namespace.as_deref())
}

/// What the ignore rules ask for that this diff does not do.
pub fn rule_notes(rules: &[Value]) -> Vec<String> {
    let mut notes = Vec::new();
    for r in rules {
        if let Some(Value::Array(exprs)) = r.get("jqPathExpressions") {
            for e in exprs.iter().filter_map(Value::as_str) {
                notes.push(format!(
                    "ignoreDifferences jqPathExpressions not supported, not applied: {e}"
                ));
            }
        }
        if r.get("managedFieldsManagers").is_some() {
            notes.push(
                "ignoreDifferences managedFieldsManagers has no effect on rendered manifests (they carry no managed fields)"
                    .into(),
            );
        }
    }
    notes
}

/// Removes the target of an RFC 6901 JSON pointer, if present.
fn remove_pointer(v: &mut Value, pointer: &str) {
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let mut cur = v;
    for t in parents {
        let next = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match cur {
        Value::Object(m) => {
            m.shift_remove(last);
        }
        Value::Array(a) => {
            if let Ok(i) = last.parse::<usize>()
                && i < a.len()
            {
                a.remove(i);
            }
        }
        _ => {}
    }
}

/// The object with Secret values replaced; other kinds unchanged.
pub fn mask(id: &ObjectId, v: &Value) -> Value {
    let mut v = v.clone();
    if is_secret(id) {
        for field in ["data", "stringData"] {
            if let Some(Value::Object(m)) = v.get_mut(field) {
                for val in m.values_mut() {
                    *val = Value::String(REDACTED.into());
                }
            }
        }
    }
    v
}

/// `data.password: changed`, `stringData.token: added`, ... for a Secret; empty otherwise.
pub fn secret_key_changes(id: &ObjectId, base: &Value, head: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if !is_secret(id) {
        return out;
    }
    let empty = Map::new();
    for field in ["data", "stringData"] {
        let b = base.get(field).and_then(Value::as_object).unwrap_or(&empty);
        let h = head.get(field).and_then(Value::as_object).unwrap_or(&empty);
        let mut keys: Vec<&String> = b.keys().chain(h.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let what = match (b.get(k), h.get(k)) {
                (None, Some(_)) => "added",
                (Some(_), None) => "removed",
                (Some(x), Some(y)) if x != y => "changed",
                _ => continue,
            };
            out.push(format!("{field}.{k}: {what}"));
        }
    }
    out
}
