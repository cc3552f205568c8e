//! regorus' virtual machine must say exactly what the interpreter says; it is only faster.
#![allow(clippy::unwrap_used)]

use capstan_worker::objects::parse_stream;
use capstan_worker::policy::bench::synthetic_apps;
use capstan_worker::policy::bundle::SHIPPED_POLICIES;
use capstan_worker::policy::rego::{PolicyFile, RegoPolicies};

const EXTRA: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: team-0}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          hostPID: true
          volumes: [{name: root, hostPath: {path: /}}]
          containers:
          - name: job
            image: busybox:latest
            securityContext: {capabilities: {add: [SYS_ADMIN]}, privileged: true, runAsUser: 0}
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: web, namespace: team-0}
spec:
  entryPoints: [web]
  routes: [{match: Host(`a.example.com`), kind: Rule}]
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: team-0}
stringData: {password: hunter2}
---
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: team-0}
spec: {type: LoadBalancer, externalIPs: [1.2.3.4], ports: [{port: 80}]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: all}
rules: [{apiGroups: ["*"], resources: ["*"], verbs: ["*"]}]
"#;

fn files(extra: &[(&str, &str)]) -> Vec<PolicyFile> {
    SHIPPED_POLICIES
        .iter()
        .chain(extra)
        .map(|(p, t)| PolicyFile {
            path: p.to_string(),
            text: t.to_string(),
        })
        .collect()
}

#[test]
fn vm_and_interpreter_agree_on_the_shipped_bundle_and_repository_policies() {
    let org = (
        "org/labels.rego",
        "package org\n\ndeny[msg] {\n  not input.metadata.labels.team\n  msg := sprintf(\"%s has no team\", [input.metadata.name])\n}\n",
    );
    let fs = files(&[org]);
    let packages = vec!["main".to_string(), "org".to_string()];
    let mut vm = RegoPolicies::load(&fs, &packages, false).unwrap();
    assert!(vm.uses_vm(), "the shipped bundle should compile for the VM");
    let mut interp = vm.clone();
    interp.disable_vm();
    let mut apps = synthetic_apps(400, 2);
    apps[0]
        .objects
        .extend(parse_stream(EXTRA, "extra.yaml").unwrap());
    let cluster = serde_json::json!({"networkPolicyNamespaces": {"team-0": true}});
    let mut compared = 0;
    for app in &apps {
        for p in [&mut vm, &mut interp] {
            p.set_app(
                &app.name,
                app.destination_namespace.as_deref(),
                &app.objects,
                &cluster,
            )
            .unwrap();
        }
        for obj in &app.objects {
            let mut a = vm.eval(&app.name, obj).unwrap();
            let mut b = interp.eval(&app.name, obj).unwrap();
            a.sort();
            b.sort();
            assert_eq!(a, b, "{}", obj.id);
            compared += a.len();
        }
    }
    assert!(compared > 200, "only {compared} findings compared");
    assert_eq!(
        vm.vm_fallbacks(),
        0,
        "the VM must have evaluated every object itself"
    );
}
