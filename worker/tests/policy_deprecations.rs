//! The deprecated/removed apiVersion table checked against Fairwinds pluto's table.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use capstan_worker::policy::deprecations::{Version, lookup};

fn fixture() -> Option<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/deprecations/pluto-versions.yaml");
    std::fs::read_to_string(root).ok()
}

/// Where this project's table deliberately differs from pluto's, and why.
const KNOWN_DIFFERENCES: &[(&str, &str, &str, &str)] = &[
    // Kubernetes 1.26 stopped serving flowcontrol v1beta1 (deprecation guide, "v1.26" section);
    // pluto lists 1.29 for the two kinds.
    (
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "FlowSchema",
        "removed",
        "served until 1.25",
    ),
    (
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "PriorityLevelConfiguration",
        "removed",
        "served until 1.25",
    ),
    // v1beta1 was deprecated when v1beta2 arrived in 1.23.
    (
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "FlowSchema",
        "deprecated",
        "v1beta2 in 1.23",
    ),
    (
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "PriorityLevelConfiguration",
        "deprecated",
        "v1beta2 in 1.23",
    ),
    // Deprecation of v1beta2 was announced with v1beta3 in 1.26, of v1beta3 with v1 in 1.29.
    (
        "flowcontrol.apiserver.k8s.io/v1beta2",
        "FlowSchema",
        "deprecated",
        "announced in 1.26",
    ),
    (
        "flowcontrol.apiserver.k8s.io/v1beta2",
        "PriorityLevelConfiguration",
        "deprecated",
        "announced in 1.26",
    ),
    (
        "flowcontrol.apiserver.k8s.io/v1beta3",
        "FlowSchema",
        "deprecated",
        "announced in 1.29",
    ),
    (
        "flowcontrol.apiserver.k8s.io/v1beta3",
        "PriorityLevelConfiguration",
        "deprecated",
        "announced in 1.29",
    ),
    // The alpha admission policies were deprecated when v1 shipped (1.30).
    (
        "admissionregistration.k8s.io/v1alpha1",
        "ValidatingAdmissionPolicy",
        "deprecated",
        "v1 in 1.30",
    ),
    (
        "admissionregistration.k8s.io/v1alpha1",
        "ValidatingAdmissionPolicyBinding",
        "deprecated",
        "v1 in 1.30",
    ),
];

/// Entries in pluto that are not Kubernetes kinds.
const NOT_A_KIND: &[&str] = &["FlowControl"];

fn minor(v: Option<&serde_json::Value>) -> Option<u32> {
    let s = v?.as_str()?;
    if s.is_empty() {
        return None;
    }
    Version::parse(s).map(|v| v.1)
}

#[test]
fn table_agrees_with_pluto_for_every_kubernetes_entry() {
    let Some(text) = fixture() else {
        println!("skipped: ../shared/fixtures/deprecations/pluto-versions.yaml not found");
        return;
    };
    let doc = capstan_worker::yaml::parse_single(&text, "pluto-versions.yaml").unwrap();
    let entries = doc["deprecated-versions"].as_array().unwrap();
    let mut checked = 0;
    let mut problems = Vec::new();
    for e in entries {
        if e["component"] != "k8s" {
            continue;
        }
        let api = e["version"].as_str().unwrap();
        let kind = e["kind"].as_str().unwrap();
        if NOT_A_KIND.contains(&kind) {
            continue;
        }
        checked += 1;
        let Some(ours) = lookup(api, kind) else {
            problems.push(format!("missing: {api} {kind}"));
            continue;
        };
        let known = |field: &str| {
            KNOWN_DIFFERENCES
                .iter()
                .any(|(a, k, f, _)| *a == api && *k == kind.trim_end_matches("List") && *f == field)
        };
        let removed = minor(e.get("removed-in"));
        if removed != ours.removed && !known("removed") {
            problems.push(format!(
                "{api} {kind}: removed {removed:?} in pluto, {:?} here",
                ours.removed
            ));
        }
        let deprecated = minor(e.get("deprecated-in"));
        if deprecated.is_some() && deprecated != ours.deprecated && !known("deprecated") {
            problems.push(format!(
                "{api} {kind}: deprecated {deprecated:?} in pluto, {:?} here",
                ours.deprecated
            ));
        }
    }
    assert!(checked > 80, "only {checked} entries read");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
