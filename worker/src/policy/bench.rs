//! Synthetic apps for `capstan policy bench`: a realistic mix of kinds, some compliant, some not,
//! so every layer (schema, deprecations, Rego, cross-app, tracing) does real work.

use serde_json::{Value, json};

use super::AppInput;
use super::trace::SourceFile;
use crate::objects::K8sObject;

fn deployment(ns: &str, i: usize, good: bool) -> Value {
    let image = if good {
        format!("ghcr.io/example/svc-{i}:1.{i}.0")
    } else {
        format!("example/svc-{i}")
    };
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": format!("svc-{i}"), "namespace": ns, "labels": {"app": format!("svc-{i}")}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": format!("svc-{i}")}},
            "template": {
                "metadata": {"labels": {"app": format!("svc-{i}")}},
                "spec": {
                    "securityContext": {"runAsNonRoot": good, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "app", "image": image,
                        "ports": [{"containerPort": 8080, "name": "http"}],
                        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                        "env": [{"name": "MODE", "value": "prod"}],
                    }],
                },
            },
        },
    })
}

fn object(ns: &str, i: usize) -> Value {
    match i % 8 {
        0 | 1 => deployment(ns, i, i % 16 != 1),
        2 => json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("svc-{i}"), "namespace": ns},
            "spec": {"selector": {"app": format!("svc-{i}")}, "ports": [{"port": 80, "targetPort": "http"}]}}),
        3 => json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cfg-{i}"), "namespace": ns},
            "data": {"config.yaml": "level: info\n", "feature": "on"}}),
        4 => json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": format!("web-{i}"), "namespace": ns},
            "spec": {"tls": [{"hosts": [format!("h{i}.example.com")], "secretName": "tls"}],
                "rules": [{"host": format!("h{i}.example.com"), "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": format!("svc-{i}"), "port": {"number": 80}}}}]}}]}}),
        5 => json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": format!("reader-{i}"), "namespace": ns},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]}),
        6 => json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": format!("sa-{i}"), "namespace": ns}}),
        _ => json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": format!("pdb-{i}"), "namespace": ns},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": format!("svc-{i}")}}}}),
    }
}

/// `objects` objects spread over `apps` apps, each app with its own namespace, a Namespace object
/// and a NetworkPolicy, plus one input file per app for tracing.
pub fn synthetic_apps(objects: usize, apps: usize) -> Vec<AppInput> {
    let apps = apps.max(1);
    let per_app = objects.div_ceil(apps);
    let mut out = Vec::new();
    let mut made = 0;
    for a in 0..apps {
        let ns = format!("team-{a}");
        let mut values = vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "default-deny", "namespace": ns},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}),
        ];
        while values.len() < per_app && made + values.len() < objects {
            values.push(object(&ns, made + values.len()));
        }
        made += values.len();
        let text: String = values
            .iter()
            .map(|v| {
                format!(
                    "---\n{}",
                    serde_json::to_string_pretty(v).unwrap_or_default()
                )
            })
            .collect();
        let parsed: Vec<K8sObject> = values
            .into_iter()
            .filter_map(|v| K8sObject::from_value(v).ok())
            .collect();
        out.push(AppInput {
            name: format!("app-{a}"),
            objects: parsed,
            files: vec![SourceFile {
                path: format!("apps/app-{a}/all.yaml"),
                text,
            }],
            destination_namespace: Some(ns),
            creates_namespace: false,
            cluster: None,
        });
    }
    out
}
