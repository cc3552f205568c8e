//! End-to-end behaviour of the policy engine over rendered apps.
#![allow(clippy::unwrap_used)]

use capstan_worker::objects::parse_stream;
use capstan_worker::policy::findings::{Report, Severity};
use capstan_worker::policy::trace::SourceFile;
use capstan_worker::policy::{AppInput, PolicyEngine, PolicySources};

pub const GOOD: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: web
        image: ghcr.io/example/web:1.4.2
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
        resources:
          requests: {cpu: 50m, memory: 64Mi}
          limits: {cpu: 500m, memory: 128Mi}
        readinessProbe: {httpGet: {path: /ready, port: 8080}}
        livenessProbe: {httpGet: {path: /live, port: 8080}}
"#;

pub fn app(name: &str, yaml: &str) -> AppInput {
    AppInput {
        name: name.into(),
        objects: parse_stream(yaml, "rendered.yaml").unwrap(),
        ..Default::default()
    }
}

fn engine() -> PolicyEngine {
    PolicyEngine::new(&PolicySources::default()).unwrap()
}

fn rules(r: &Report, sev: Severity) -> Vec<String> {
    r.findings
        .iter()
        .filter(|f| f.severity == sev)
        .map(|f| f.rule.clone())
        .collect()
}

#[test]
fn a_well_formed_app_passes_every_layer() {
    let r = engine().check(&[app("shop", GOOD)]).unwrap();
    assert_eq!(
        r.findings,
        vec![],
        "{}",
        capstan_worker::policy::format::text(&r)
    );
    assert_eq!(r.objects_checked, 3);
}

#[test]
fn the_shipped_bundle_reports_a_bad_deployment() {
    let bad = GOOD.replace("ghcr.io/example/web:1.4.2", "nginx").replace(
        "allowPrivilegeEscalation: false",
        "allowPrivilegeEscalation: true",
    );
    let r = engine().check(&[app("shop", &bad)]).unwrap();
    let deny = rules(&r, Severity::Deny);
    assert_eq!(
        deny,
        vec!["image-tag", "pss-privilege-escalation"],
        "{}",
        capstan_worker::policy::format::text(&r)
    );
    assert!(!r.passed());
}
