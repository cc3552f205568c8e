//! The Kubernetes server-side dry-run against a mock API server that speaks the real discovery
//! and server-side-apply paths and answers with real `Status` objects.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use capstan_tests::fake_kube::{FakeKube, builtin_kinds, status};
use capstan_worker::kube::KubeDryRun;
use capstan_worker::objects::{K8sObject, ObjectId};
use capstan_worker::report::Severity;
use capstan_worker::services::{ClusterCheck, ClusterCheckRequest, ClusterFindings};
use serde_json::{Value, json};

const HEAD: &str = "2222222222222222222222222222222222222222";

fn obj(v: Value) -> K8sObject {
    K8sObject::from_value(v).unwrap()
}

fn config_map(name: &str) -> K8sObject {
    obj(json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "shop"}, "data": {"k": "v"}}))
}

fn deployment() -> K8sObject {
    obj(json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"selector": {"matchLabels": {"app": "web2"}},
                        "template": {"metadata": {"labels": {"app": "web2"}},
                                     "spec": {"containers": [{"name": "web", "image": "web:2"}]}}}}))
}

async fn run(k: &KubeDryRun, head: &[K8sObject], changed: &[ObjectId]) -> ClusterFindings {
    k.check_app(&ClusterCheckRequest {
        repo: "acme/gitops",
        pr: 3,
        app: "shop",
        environment: None,
        head_sha: HEAD,
        head_objects: head,
        changed,
    })
    .await
}

fn ids(objs: &[&K8sObject]) -> Vec<ObjectId> {
    objs.iter().map(|o| o.id.clone()).collect()
}

#[tokio::test]
async fn changed_objects_are_applied_with_dry_run_only_and_accepted() {
    let kube = FakeKube::start(builtin_kinds(), &["shop"]).await;
    let k = KubeDryRun::for_url(&kube.url()).unwrap();
    let (a, b, unchanged) = (config_map("a"), deployment(), config_map("same"));
    let head = vec![a.clone(), b.clone(), unchanged.clone()];
    let f = run(&k, &head, &ids(&[&a, &b])).await;
    assert!(f.findings.is_empty(), "{:?}", f.findings);
    assert!(
        f.notes
            .contains(&"kube dry-run: 2 accepted, 0 rejected".to_string()),
        "{:?}",
        f.notes
    );

    let writes = kube.writes();
    let paths: Vec<&str> = writes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "/api/v1/namespaces/shop/configmaps/a",
            "/apis/apps/v1/namespaces/shop/deployments/web"
        ]
    );
    for w in &writes {
        assert_eq!(w.method, "PATCH");
        assert_eq!(w.query_value("dryRun"), Some("All"), "{w:?}");
        assert_eq!(w.query_value("fieldManager"), Some("capstan"));
        assert_eq!(w.query_value("force"), Some("true"));
        assert_eq!(
            w.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(w.status, 200);
    }
    let sent: Value = serde_json::from_str(&writes[1].body).unwrap();
    assert_eq!(sent, b.value, "the head object is sent as rendered");
}

#[tokio::test]
async fn admission_denials_and_immutable_fields_become_deny_findings() {
    let kube = FakeKube::start(builtin_kinds(), &["shop"]).await;
    kube.refuse(
        "configmaps",
        "a",
        status(400, "BadRequest",
            "admission webhook \"validate.kyverno.svc-fail\" denied the request: label team is required", None),
    );
    kube.refuse(
        "configmaps",
        "b",
        status(422, "Invalid",
            "configmaps \"b\" is forbidden: ValidatingAdmissionPolicy 'no-big-configs' with binding 'no-big-configs' denied request: too many keys",
            Some(json!({"name": "b", "kind": "configmaps"}))),
    );
    kube.refuse(
        "deployments",
        "web",
        status(422, "Invalid",
            "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web2\"}}: field is immutable",
            Some(json!({"name": "web", "group": "apps", "kind": "Deployment", "causes": [
                {"reason": "FieldValueInvalid", "message": "Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web2\"}}: field is immutable", "field": "spec.selector"}]}))),
    );
    let k = KubeDryRun::for_url(&kube.url()).unwrap();
    let head = vec![config_map("a"), config_map("b"), deployment()];
    let all: Vec<&K8sObject> = head.iter().collect();
    let f = run(&k, &head, &ids(&all)).await;
    let got: Vec<(&str, &str, Severity)> = f
        .findings
        .iter()
        .map(|x| (x.rule_id.as_str(), x.object.as_str(), x.severity))
        .collect();
    assert_eq!(
        got,
        vec![
            ("kube-dry-run/admission", "ConfigMap shop/a", Severity::Deny),
            ("kube-dry-run/admission", "ConfigMap shop/b", Severity::Deny),
            (
                "kube-dry-run/immutable",
                "apps/Deployment shop/web",
                Severity::Deny
            ),
        ]
    );
    assert!(f.findings[0].message.contains("label team is required"));
    assert!(
        f.findings[2].message.contains("spec.selector"),
        "{}",
        f.findings[2].message
    );
    assert!(
        f.notes
            .contains(&"kube dry-run: 0 accepted, 3 rejected".to_string()),
        "{:?}",
        f.notes
    );
    assert!(
        kube.writes()
            .iter()
            .all(|w| w.query_value("dryRun") == Some("All"))
    );
}

#[tokio::test]
async fn unknown_kinds_are_findings_unless_the_change_brings_their_crd() {
    let kube = FakeKube::start(builtin_kinds(), &["shop"]).await;
    let k = KubeDryRun::for_url(&kube.url()).unwrap();
    let widget = obj(json!({"apiVersion": "example.com/v1", "kind": "Widget",
                            "metadata": {"name": "w", "namespace": "shop"}}));
    let f = run(&k, std::slice::from_ref(&widget), &ids(&[&widget])).await;
    assert_eq!(f.findings.len(), 1);
    assert_eq!(f.findings[0].rule_id, "kube-dry-run/unknown-kind");
    assert!(
        f.findings[0]
            .message
            .contains("no such kind in the cluster"),
        "{}",
        f.findings[0].message
    );
    assert!(
        kube.writes().is_empty(),
        "nothing is sent for a kind the cluster does not serve"
    );

    let crd = obj(
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"}, "scope": "Namespaced",
                 "versions": [{"name": "v1", "served": true, "storage": true}]}}),
    );
    let head = vec![widget.clone(), crd.clone()];
    let f = run(&k, &head, &ids(&[&widget, &crd])).await;
    assert!(f.findings.is_empty(), "{:?}", f.findings);
    assert!(
        f.notes
            .iter()
            .any(|n| n.contains("defined by a CRD in this change")),
        "{:?}",
        f.notes
    );
    // The CRD itself was applied first (cluster-scoped path), dry.
    let w = kube.writes();
    assert_eq!(w.len(), 1);
    assert_eq!(
        w[0].path,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com"
    );
}

#[tokio::test]
async fn a_missing_namespace_is_a_warning_unless_the_change_creates_it() {
    let kube = FakeKube::start(builtin_kinds(), &[]).await;
    let k = KubeDryRun::for_url(&kube.url()).unwrap();
    let cm = config_map("a");
    let f = run(&k, std::slice::from_ref(&cm), &ids(&[&cm])).await;
    assert_eq!(f.findings.len(), 1);
    assert_eq!(f.findings[0].rule_id, "kube-dry-run/namespace");
    assert_eq!(f.findings[0].severity, Severity::Warn);

    let ns = obj(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    let head = vec![cm.clone(), ns.clone()];
    let f = run(&k, &head, &ids(&[&cm, &ns])).await;
    assert!(f.findings.is_empty(), "{:?}", f.findings);
    assert!(
        f.notes
            .iter()
            .any(|n| n.contains("namespace shop is created by this change")),
        "{:?}",
        f.notes
    );
    let last_two: Vec<String> = kube
        .writes()
        .iter()
        .rev()
        .take(2)
        .map(|c| c.path.clone())
        .collect();
    assert_eq!(
        last_two,
        vec![
            "/api/v1/namespaces/shop/configmaps/a",
            "/api/v1/namespaces/shop"
        ]
    );
}

#[tokio::test]
async fn an_unreachable_cluster_is_a_note_and_nothing_unchanged_is_sent() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let k = KubeDryRun::for_url(&format!("http://127.0.0.1:{port}"))
        .unwrap()
        .with_timeout(Duration::from_secs(2));
    let cm = config_map("a");
    let f = run(&k, std::slice::from_ref(&cm), &ids(&[&cm])).await;
    assert!(f.findings.is_empty());
    assert!(
        f.notes
            .iter()
            .any(|n| n.starts_with("kube dry-run stopped: the cluster could not be asked")),
        "{:?}",
        f.notes
    );

    // No changed object: the cluster is not contacted at all.
    let kube = FakeKube::start(builtin_kinds(), &["shop"]).await;
    let k = KubeDryRun::for_url(&kube.url()).unwrap();
    let f = run(&k, std::slice::from_ref(&cm), &[]).await;
    assert!(f.notes.is_empty() && f.findings.is_empty());
    assert!(kube.calls().is_empty());
}
