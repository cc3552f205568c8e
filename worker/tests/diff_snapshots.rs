//! Per-object diff: added/removed/changed objects, Secret masking in every output format,
//! ignoreDifferences and ArgoCD noise.
#![allow(clippy::unwrap_used)]

use base64::Engine;
use capstan_worker::diff::{DiffReport, diff_objects};
use capstan_worker::objects::{K8sObject, parse_stream};
use serde_json::json;

fn objs(yaml: &str) -> Vec<K8sObject> {
    parse_stream(yaml, "test.yaml").unwrap()
}

fn all_formats(r: &DiffReport) -> Vec<(&'static str, String)> {
    vec![
        ("text", r.to_text()),
        ("markdown", r.to_markdown()),
        ("json", r.to_json()),
        ("markdown-folded", r.to_markdown_within(400)),
    ]
}

const BASE: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
  labels:
    app.kubernetes.io/instance: shop
  annotations:
    argocd.argoproj.io/tracking-id: "shop:/ConfigMap:shop/settings"
data:
  color: blue
  size: large
  mode: fast
  tier: gold
  zone: a
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  template:
    spec:
      containers:
      - name: web
        image: web:1.0
---
apiVersion: v1
kind: Service
metadata:
  name: legacy
  namespace: shop
spec:
  ports:
  - port: 80
"#;

const HEAD: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
  labels:
    app.kubernetes.io/instance: shop
  annotations:
    argocd.argoproj.io/tracking-id: "shop:/ConfigMap:shop/settings-moved"
data:
  color: green
  size: large
  mode: fast
  tier: gold
  zone: a
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  template:
    spec:
      containers:
      - name: web
        image: web:1.0
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
spec:
  rules:
  - host: shop.example.com
"#;

#[test]
fn added_removed_and_changed_objects() {
    let app = diff_objects("shop", &objs(BASE), &objs(HEAD), &[]);
    let report = DiffReport { apps: vec![app] };
    assert!(report.has_changes());
    let text = report.to_text();
    // The unchanged Deployment is not listed; tracking metadata never shows.
    assert!(!text.contains("Deployment"), "{text}");
    assert!(!text.contains("tracking-id"), "{text}");
    insta::assert_snapshot!("changes_text", text);
    insta::assert_snapshot!("changes_markdown", report.to_markdown());
    insta::assert_snapshot!("changes_json", report.to_json());
}

#[test]
fn identical_renders_have_no_diff() {
    let app = diff_objects("shop", &objs(BASE), &objs(BASE), &[]);
    assert!(!app.has_changes());
    assert!(!DiffReport { apps: vec![app] }.has_changes());
}

#[test]
fn secret_values_never_appear_in_any_format() {
    let old_raw = "hunter2-old-passphrase";
    let new_raw = "correct-horse-battery-staple";
    let token = "tok-5f2a9c-plaintext";
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secret = |pw: &str, extra: bool, tok: &str| {
        let mut s = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{{\"data\":{{\"password\":\"{}\"}}}}'\ntype: Opaque\ndata:\n  password: {}\n  user: {}\n",
            b64(pw),
            b64(pw),
            b64("admin")
        );
        if extra {
            s.push_str(&format!("  api-key: {}\n", b64(pw)));
        }
        s.push_str(&format!("stringData:\n  token: {tok}\n"));
        s
    };
    let base = objs(&secret(old_raw, false, token));
    let head = objs(&secret(new_raw, true, &format!("{token}-v2")));
    // A removed and an added Secret must be masked too.
    let mut base_all = base.clone();
    base_all.extend(objs(
        &secret(old_raw, false, token).replace("name: db", "name: gone"),
    ));
    let mut head_all = head.clone();
    head_all.extend(objs(
        &secret(new_raw, false, token).replace("name: db", "name: fresh"),
    ));
    let app = diff_objects("shop", &base_all, &head_all, &[]);
    let changed = app.changes.iter().find(|c| c.id.name == "db").unwrap();
    assert_eq!(
        changed.secret_keys,
        vec![
            "data.api-key: added",
            "data.password: changed",
            "stringData.token: changed"
        ]
    );
    let report = DiffReport { apps: vec![app] };
    for (format, out) in all_formats(&report) {
        assert!(out.contains("data.password: changed"), "{format}: {out}");
        for value in [old_raw, new_raw, token, "admin"] {
            for form in [value.to_string(), b64(value)] {
                assert!(!out.contains(&form), "{format} leaks {form}:\n{out}");
            }
        }
    }
    insta::assert_snapshot!("secret_text", report.to_text());
}

#[test]
fn ignore_differences_fields_are_not_shown() {
    let base = objs(BASE);
    let head_yaml = BASE
        .replace("replicas: 2", "replicas: 7")
        .replace("image: web:1.0", "image: web:2.0");
    let head = objs(&head_yaml);
    let rules = vec![
        json!({"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}),
        json!({"group": "apps", "kind": "Deployment", "jqPathExpressions": [".spec.template.metadata"]}),
        json!({"kind": "ConfigMap", "name": "other", "jsonPointers": ["/data"]}),
    ];
    let app = diff_objects("shop", &base, &head, &rules);
    let report = DiffReport { apps: vec![app] };
    let text = report.to_text();
    assert!(text.contains("web:2.0"), "{text}");
    assert!(!text.contains("replicas"), "{text}");
    assert!(text.contains("jqPathExpressions not supported"), "{text}");
    insta::assert_snapshot!("ignore_differences_text", text);

    // Only the ignored field changing: no diff at all.
    let only_replicas = objs(&BASE.replace("replicas: 2", "replicas: 9"));
    let app = diff_objects("shop", &base, &only_replicas, &rules);
    assert!(!app.has_changes(), "{:?}", app.changes);
    // Without the rule the same change is shown.
    let app = diff_objects("shop", &base, &only_replicas, &[]);
    assert!(app.has_changes());
}

#[test]
fn markdown_folds_the_largest_diff_to_fit() {
    let app = diff_objects("shop", &objs(BASE), &objs(HEAD), &[]);
    let report = DiffReport { apps: vec![app] };
    let full = report.to_markdown();
    let small = report.to_markdown_within(full.len() - 1);
    assert!(small.len() < full.len());
    assert!(small.contains("folded to fit"), "{small}");
}
