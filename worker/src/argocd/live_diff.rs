//! What a pull request will change in the cluster: the app's manifests as ArgoCD renders them at
//! the head commit, against the live objects ArgoCD manages (`normalizedLiveState`).
//!
//! The live side is projected onto the fields the manifests set before comparing: the API server
//! and controllers fill in defaults, status and bookkeeping that git never holds, and showing those
//! would bury the real change. Objects only in the cluster are what a pruning sync removes; they
//! are shown whole, without status and server-set metadata. Secret values are masked by the diff
//! module as everywhere else.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::client::{ArgoClient, ArgoError, Revision};
use super::model::ResourceDiff;
use crate::diff::{AppDiff, diff_objects};
use crate::objects::{K8sObject, ObjectId};

/// Said in every live diff, so nobody reads a missing default as "unchanged in the cluster".
pub const PROJECTION_NOTE: &str = "live diff: compares the fields set in git with the cluster; \
     fields only the cluster sets (defaults, status) are not shown";

/// Metadata the API server sets; never part of what git declares.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Fetches both sides and diffs them. When ArgoCD cannot render the head (a revision its repo
/// server cannot resolve yet, a render error) and `own_render` is not empty, Capstan's own render
/// of the head stands in for ArgoCD's, and a note says so.
pub async fn live_diff(
    client: &ArgoClient,
    app: &str,
    revision: &Revision,
    own_render: &[K8sObject],
) -> Result<AppDiff, ArgoError> {
    let mut notes = Vec::new();
    let manifests = match client.manifests(app, revision).await {
        Ok(m) => m.manifests,
        Err(
            e @ (ArgoError::Status { .. } | ArgoError::NotFound { .. } | ArgoError::Decode { .. }),
        ) if !own_render.is_empty() => {
            notes.push(format!(
                "live diff: ArgoCD could not render the head ({e}); Capstan's own render is compared with the cluster instead"
            ));
            own_render.iter().map(|o| o.value.to_string()).collect()
        }
        Err(e) => return Err(e),
    };
    let managed = client.managed_resources(app).await?;
    let mut head = Vec::new();
    for (i, m) in manifests.iter().enumerate() {
        match serde_json::from_str::<Value>(m)
            .map_err(|e| e.to_string())
            .and_then(K8sObject::from_value)
        {
            Ok(o) => head.push(o),
            Err(e) => notes.push(format!("live diff: manifest {} skipped: {e}", i + 1)),
        }
    }
    let mut live = Vec::new();
    for item in managed.items.iter().filter(|i| !i.hook) {
        match live_object(item) {
            Ok(Some(o)) => live.push(o),
            Ok(None) => {}
            Err(e) => notes.push(format!(
                "live diff: live state of {} skipped: {e}",
                item.resource.object_id()
            )),
        }
    }
    Ok(diff_live(app, live, head, notes))
}

/// Diffs live objects against head manifests (the pure part of [`live_diff`]).
pub fn diff_live(
    app: &str,
    live: Vec<K8sObject>,
    mut head: Vec<K8sObject>,
    mut notes: Vec<String>,
) -> AppDiff {
    adopt_live_namespaces(&mut head, &live);
    let desired: BTreeMap<&ObjectId, &Value> = head.iter().map(|o| (&o.id, &o.value)).collect();
    let live: Vec<K8sObject> = live
        .into_iter()
        .map(|mut o| {
            o.value = match desired.get(&o.id) {
                Some(d) => project(&o.value, d),
                None => without_server_fields(o.value),
            };
            o
        })
        .collect();
    let mut d = diff_objects(app, &live, &head, &[]);
    for c in &mut d.changes {
        c.diff = relabel(&c.diff);
    }
    notes.push(PROJECTION_NOTE.to_string());
    d.notes.extend(notes);
    d
}

/// The live object, or `None` when it does not exist in the cluster (yet).
fn live_object(item: &ResourceDiff) -> Result<Option<K8sObject>, String> {
    let Some(text) = item.normalized_live_state.as_deref() else {
        return Ok(None);
    };
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if v.is_null() {
        return Ok(None);
    }
    K8sObject::from_value(v).map(Some)
}

/// ArgoCD renders namespaced objects without a namespace when the app's destination supplies it;
/// the live object has one. Adopt it when exactly one live object matches otherwise.
fn adopt_live_namespaces(head: &mut [K8sObject], live: &[K8sObject]) {
    for o in head.iter_mut().filter(|o| o.id.namespace.is_none()) {
        let mut matches = live.iter().filter(|l| {
            l.id.namespace.is_some()
                && l.id.group == o.id.group
                && l.id.kind == o.id.kind
                && l.id.name == o.id.name
        });
        if let (Some(m), None) = (matches.next(), matches.next()) {
            o.id.namespace = m.id.namespace.clone();
        }
    }
}

/// `live` reduced to the shape of `desired`: maps keep only the desired keys, lists of the same
/// length are projected item by item, anything else is kept as it is live.
fn project(live: &Value, desired: &Value) -> Value {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => Value::Object(
            d.iter()
                .filter_map(|(k, dv)| l.get(k).map(|lv| (k.clone(), project(lv, dv))))
                .collect::<Map<String, Value>>(),
        ),
        (Value::Array(l), Value::Array(d)) if l.len() == d.len() => {
            Value::Array(l.iter().zip(d).map(|(lv, dv)| project(lv, dv)).collect())
        }
        _ => live.clone(),
    }
}

fn without_server_fields(mut v: Value) -> Value {
    if let Some(obj) = v.as_object_mut() {
        obj.remove("status");
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in SERVER_METADATA {
                meta.remove(*k);
            }
        }
    }
    v
}

/// The diff module labels its sides `base/` and `head/`; here the old side is the cluster.
fn relabel(diff: &str) -> String {
    match diff.strip_prefix("--- base/") {
        Some(rest) => format!("--- live/{rest}"),
        None => diff.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::diff::ObjectChangeKind;
    use serde_json::json;

    fn obj(v: Value) -> K8sObject {
        K8sObject::from_value(v).unwrap()
    }

    #[test]
    fn defaults_and_status_do_not_show_but_real_changes_do() {
        let live = obj(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": "7"},
            "spec": {"replicas": 2, "progressDeadlineSeconds": 600,
                     "template": {"spec": {"containers": [{"name": "web", "image": "web:1", "imagePullPolicy": "IfNotPresent"}]}}},
            "status": {"readyReplicas": 2}
        }));
        let head = obj(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 2,
                     "template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}
        }));
        let d = diff_live("shop", vec![live], vec![head], Vec::new());
        assert_eq!(d.changes.len(), 1, "{d:?}");
        let c = &d.changes[0];
        assert_eq!(c.change, ObjectChangeKind::Changed);
        assert_eq!(c.id.namespace.as_deref(), Some("shop"));
        assert!(
            c.diff.starts_with("--- live/apps/Deployment shop/web"),
            "{}",
            c.diff
        );
        let removed = |t: &str| c.diff.lines().any(|l| l.starts_with('-') && l.contains(t));
        let added = |t: &str| c.diff.lines().any(|l| l.starts_with('+') && l.contains(t));
        assert!(
            removed("image: web:1") && added("image: web:2"),
            "{}",
            c.diff
        );
        for noise in [
            "progressDeadlineSeconds",
            "imagePullPolicy",
            "readyReplicas",
            "resourceVersion",
        ] {
            assert!(!c.diff.contains(noise), "{noise} leaked: {}", c.diff);
        }
        assert!(d.notes.iter().any(|n| n == PROJECTION_NOTE));
    }

    #[test]
    fn cluster_only_objects_are_removed_without_status_and_new_ones_added() {
        let old = obj(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "old", "namespace": "shop", "uid": "u2", "managedFields": [{"manager": "argocd"}]},
            "data": {"k": "v"}
        }));
        let new = obj(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "new", "namespace": "shop"}, "data": {"k": "v"}
        }));
        let d = diff_live("shop", vec![old], vec![new], Vec::new());
        let kinds: Vec<_> = d
            .changes
            .iter()
            .map(|c| (c.id.name.as_str(), c.change.clone()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("new", ObjectChangeKind::Added),
                ("old", ObjectChangeKind::Removed)
            ]
        );
        let removed = &d.changes[1].diff;
        assert!(
            !removed.contains("managedFields") && !removed.contains("uid"),
            "{removed}"
        );
    }

    #[test]
    fn secret_values_from_the_cluster_are_masked() {
        let live = obj(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "shop"}, "data": {"password": "b2xkLXNlY3JldA=="}}));
        let head = obj(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "shop"}, "data": {"password": "bmV3LXNlY3JldA=="}}));
        let d = diff_live("shop", vec![live], vec![head], Vec::new());
        assert_eq!(d.changes.len(), 1);
        let c = &d.changes[0];
        assert!(
            !c.diff.contains("b2xk") && !c.diff.contains("bmV3"),
            "{}",
            c.diff
        );
        assert_eq!(c.secret_keys, vec!["data.password: changed".to_string()]);
    }

    #[test]
    fn an_object_absent_from_the_cluster_has_no_live_state() {
        let item = ResourceDiff {
            resource: super::super::model::ResourceRef {
                kind: "ConfigMap".into(),
                name: "x".into(),
                ..Default::default()
            },
            normalized_live_state: Some("null".into()),
            ..Default::default()
        };
        assert!(live_object(&item).unwrap().is_none());
        let bad = ResourceDiff {
            normalized_live_state: Some("{not json".into()),
            ..item
        };
        assert!(live_object(&bad).is_err());
    }
}
