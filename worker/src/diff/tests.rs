#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::normalize::normalize;
use crate::objects::K8sObject;

fn obj(v: serde_json::Value) -> K8sObject {
    K8sObject::from_value(v).unwrap()
}

#[test]
fn json_pointers_unescape_and_reach_into_lists() {
    let o = obj(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "w", "annotations": {"example.com/a~b/c": "x", "keep": "y"}},
        "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "i:1"}]}}}
    }));
    let rules = vec![
        json!({"group": "apps", "kind": "Deployment", "jsonPointers": [
            "/metadata/annotations/example.com~1a~0b~1c",
            "/spec/template/spec/containers/0/image",
            "/does/not/exist"
        ]}),
    ];
    let n = normalize("app", &o.id, &o.value, &rules);
    assert_eq!(n["metadata"]["annotations"], json!({"keep": "y"}));
    assert_eq!(
        n["spec"]["template"]["spec"]["containers"][0],
        json!({"name": "a"})
    );
}

#[test]
fn rule_matching_follows_argocd() {
    let cm = obj(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "data": {"a": "1"}}),
    );
    let strip = |rule: serde_json::Value| {
        normalize("app", &cm.id, &cm.value, &[rule])
            .get("data")
            .is_none()
    };
    // No group means the core group.
    assert!(strip(
        json!({"kind": "ConfigMap", "jsonPointers": ["/data"]})
    ));
    assert!(!strip(
        json!({"group": "apps", "kind": "ConfigMap", "jsonPointers": ["/data"]})
    ));
    assert!(strip(
        json!({"group": "*", "kind": "*", "jsonPointers": ["/data"]})
    ));
    assert!(!strip(
        json!({"kind": "ConfigMap", "name": "other", "jsonPointers": ["/data"]})
    ));
    assert!(!strip(
        json!({"kind": "ConfigMap", "namespace": "elsewhere", "jsonPointers": ["/data"]})
    ));
    assert!(strip(
        json!({"kind": "ConfigMap", "name": "c", "namespace": "n", "jsonPointers": ["/data"]})
    ));
}

#[test]
fn only_argocd_tracking_metadata_is_dropped() {
    let o = obj(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "c",
            "labels": {"app.kubernetes.io/instance": "shop", "team": "a"},
            "annotations": {"argocd.argoproj.io/tracking-id": "shop:/ConfigMap:c"}
        }}),
    );
    let n = normalize("shop", &o.id, &o.value, &[]);
    assert_eq!(n["metadata"], json!({"name": "c", "labels": {"team": "a"}}));
    // The instance label set by the user to something else is content, not noise.
    let n = normalize("other-app", &o.id, &o.value, &[]);
    assert_eq!(
        n["metadata"]["labels"]["app.kubernetes.io/instance"],
        "shop"
    );
}
