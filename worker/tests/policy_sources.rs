//! Policy sources: the repository's own Rego folders, broken policies, and which commit's
//! policies judge a pull request.
#![allow(clippy::unwrap_used)]

use capstan_worker::objects::parse_stream;
use capstan_worker::policy::findings::Severity;
use capstan_worker::policy::{AppInput, PolicyEngine, PolicyError, PolicySources};
use capstan_worker::repo_fs::MemFs;

const CAPSTAN_YAML: &str = "policy:\n  bundles: [builtin, org-policies]\n  packages: [main, org]\n";

const V0_RULE: &str = "package org\n\n# Team names are required.\ndeny[msg] {\n  not input.metadata.labels.team\n  msg := sprintf(\"%s %s has no team label\", [input.kind, input.metadata.name])\n}\n";
const V1_RULE: &str = "package main\n\nimport rego.v1\n\n# ConfigMaps named tmp-* are leftovers.\nwarn contains msg if {\n  input.kind == \"ConfigMap\"\n  startswith(input.metadata.name, \"tmp-\")\n  msg := \"temporary ConfigMap\"\n}\n";

fn objects() -> Vec<AppInput> {
    vec![AppInput {
        name: "shop".into(),
        objects: parse_stream(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: a}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: tmp-x, namespace: shop}\n",
            "r.yaml",
        )
        .unwrap(),
        ..Default::default()
    }]
}

#[test]
fn repository_policies_in_both_syntaxes_and_configured_packages_count() {
    let fs = MemFs::new()
        .with(".capstan.yaml", CAPSTAN_YAML)
        .with("org-policies/labels.rego", V0_RULE)
        .with("org-policies/tmp.rego", V1_RULE)
        .with("org-policies/README.md", "not a policy");
    let sources = PolicySources::read(&fs).unwrap();
    assert_eq!(sources.files.len(), 2);
    let engine = PolicyEngine::new(&sources).unwrap();
    let r = engine.check(&objects()).unwrap();
    let got: Vec<_> = r
        .findings
        .iter()
        .map(|f| (f.severity, f.rule.as_str(), f.message.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                Severity::Deny,
                "org.deny",
                "ConfigMap tmp-x has no team label"
            ),
            (Severity::Warn, "main.warn", "temporary ConfigMap"),
        ]
    );
}

#[test]
fn a_policy_with_a_syntax_error_fails_with_file_and_line() {
    let broken = "package main\n\nimport rego.v1\n\ndeny contains msg if {\n  input.kind == \"Pod\"\n  msg := \n}\n";
    let fs = MemFs::new()
        .with(".capstan.yaml", CAPSTAN_YAML)
        .with("org-policies/ok.rego", V1_RULE)
        .with("org-policies/broken.rego", broken);
    let sources = PolicySources::read(&fs).unwrap();
    let err = PolicyEngine::new(&sources).err().unwrap();
    match &err {
        PolicyError::Rego(capstan_worker::policy::rego::RegoError::Syntax {
            file, line, ..
        }) => {
            assert_eq!(file, "org-policies/broken.rego");
            assert!((7..=8).contains(line), "line {line}: {err}");
        }
        other => panic!("expected a syntax error, got {other}"),
    }
    assert!(
        err.to_string().starts_with("org-policies/broken.rego:"),
        "{err}"
    );
}

#[test]
fn a_missing_policy_folder_is_an_error_not_an_empty_bundle() {
    let fs = MemFs::new().with(".capstan.yaml", CAPSTAN_YAML);
    let err = PolicySources::read(&fs).unwrap_err();
    assert!(err.to_string().contains("org-policies"), "{err}");
}

/// The pull request relaxes the rules (removes the team-label rule and adds an exception for the
/// ConfigMap); judged by the default branch's policies, its objects still fail.
#[test]
fn a_pull_request_is_judged_by_the_default_branch_policies() {
    let default_branch = MemFs::new()
        .with(".capstan.yaml", CAPSTAN_YAML)
        .with("org-policies/labels.rego", V0_RULE);
    let pull_request = MemFs::new()
        .with(
            ".capstan.yaml",
            format!("{CAPSTAN_YAML}  exceptions:\n  - {{rule: main.warn, reason: mine}}\n"),
        )
        .with("org-policies/labels.rego", "package org\n");
    let apps = objects();

    let judged = PolicyEngine::new(&PolicySources::read(&default_branch).unwrap())
        .unwrap()
        .check(&apps)
        .unwrap();
    assert_eq!(judged.deny_count(), 1);
    assert!(judged.suppressed.is_empty());

    // What the PR's own policies would have said: nothing. That is why callers read sources from
    // the default branch.
    let self_judged = PolicyEngine::new(&PolicySources::read(&pull_request).unwrap())
        .unwrap()
        .check(&apps)
        .unwrap();
    assert_eq!(self_judged.deny_count(), 0);
}

#[test]
fn the_vm_runs_only_the_verified_shipped_bundle() {
    let shipped = PolicyEngine::new(&PolicySources::default()).unwrap();
    assert!(shipped.rego_uses_vm());
    let fs = MemFs::new()
        .with(".capstan.yaml", CAPSTAN_YAML)
        .with("org-policies/labels.rego", V0_RULE);
    let with_repo = PolicyEngine::new(&PolicySources::read(&fs).unwrap()).unwrap();
    assert!(!with_repo.rego_uses_vm());
}

#[test]
fn repository_rules_link_to_their_own_doc_or_nothing() {
    let with_doc = "package main\nimport rego.v1\nwarn contains {\"msg\": \"m\", \"rule\": \"org-x\", \"doc\": \"https://wiki.example.com/org-x\"} if input.kind == \"ConfigMap\"\n";
    let fs = MemFs::new()
        .with(".capstan.yaml", CAPSTAN_YAML)
        .with("org-policies/labels.rego", V0_RULE)
        .with("org-policies/doc.rego", with_doc);
    let r = PolicyEngine::new(&PolicySources::read(&fs).unwrap())
        .unwrap()
        .check(&objects())
        .unwrap();
    let doc = |rule: &str| {
        r.findings
            .iter()
            .find(|f| f.rule == rule)
            .unwrap()
            .doc
            .clone()
    };
    assert_eq!(doc("org-x"), "https://wiki.example.com/org-x");
    assert_eq!(doc("org.deny"), "");
}

#[test]
fn a_policy_that_fails_on_an_object_denies_visibly() {
    let failing = "package main\nimport rego.v1\ndeny contains msg if {\n  input.kind == \"ConfigMap\"\n  n := to_number(input.metadata.name)\n  msg := sprintf(\"%v\", [n])\n}\n";
    let fs = MemFs::new()
        .with(
            ".capstan.yaml",
            "policy:\n  bundles: [builtin, org-policies]\n",
        )
        .with("org-policies/failing.rego", failing);
    let r = PolicyEngine::new(&PolicySources::read(&fs).unwrap())
        .unwrap()
        .check(&objects())
        .unwrap();
    let f = r.findings.iter().find(|f| f.rule == "rego-error");
    let f = f.unwrap_or_else(|| panic!("{}", capstan_worker::policy::format::text(&r)));
    assert_eq!(f.severity, Severity::Deny);
    assert!(f.message.contains("data.main.deny"), "{}", f.message);
    // The same rule on an object it can handle is fine.
    let ok = vec![AppInput {
        name: "shop".into(),
        objects: parse_stream(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '42', namespace: kube-system}\n",
            "r.yaml",
        )
        .unwrap(),
        ..Default::default()
    }];
    let r = PolicyEngine::new(&PolicySources::read(&fs).unwrap())
        .unwrap()
        .check(&ok)
        .unwrap();
    assert_eq!(
        r.findings.iter().filter(|f| f.rule == "rego-error").count(),
        0
    );
    assert_eq!(
        r.deny_count(),
        1,
        "{}",
        capstan_worker::policy::format::text(&r)
    );
}

#[test]
fn an_unreadable_crd_warns_and_a_readable_one_does_not() {
    let crd = |spec: &str| {
        vec![AppInput {
            name: "crds".into(),
            objects: parse_stream(
                &format!("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: widgets.example.com}}\nspec: {spec}\n"),
                "crd.yaml",
            )
            .unwrap(),
            ..Default::default()
        }]
    };
    let engine = PolicyEngine::new(&PolicySources::default()).unwrap();
    let r = engine
        .check(&crd("{group: example.com, scope: Cluster}"))
        .unwrap();
    let got: Vec<_> = r
        .findings
        .iter()
        .map(|f| (f.rule.as_str(), f.field.as_deref().unwrap_or("")))
        .collect();
    // The Kubernetes schema says what is missing; the CRD layer says it could not use it.
    assert_eq!(
        got,
        vec![
            ("schema", "spec.names"),
            ("schema", "spec.versions"),
            ("invalid-crd", "")
        ]
    );
    let r = engine
        .check(&crd("{group: example.com, scope: Cluster, names: {kind: Widget, plural: widgets}, versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]}"))
        .unwrap();
    assert!(
        r.findings.is_empty(),
        "{}",
        capstan_worker::policy::format::text(&r)
    );
}
