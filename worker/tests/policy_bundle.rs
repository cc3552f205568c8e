//! The shipped bundle in `policies/`: its own unit tests pass, every rule has a failing and a
//! passing test, and the embedded copy lists every file.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use capstan_worker::policy::bundle::{SHIPPED_POLICIES, SHIPPED_SCHEMAS};
use capstan_worker::policy::rego::{PolicyFile, RegoPolicies};

fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

fn files_under(dir: &Path, ext: &str, out: &mut Vec<PolicyFile>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, ext, out);
        } else if p.to_string_lossy().ends_with(ext) {
            let rel = p.strip_prefix(policies_dir().parent().unwrap()).unwrap();
            out.push(PolicyFile {
                path: rel
                    .to_string_lossy()
                    .replace('\\', "/")
                    .replace("worker/../", ""),
                text: std::fs::read_to_string(&p).unwrap(),
            });
        }
    }
}

fn bundle() -> Vec<PolicyFile> {
    let mut v = Vec::new();
    files_under(&policies_dir(), ".rego", &mut v);
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v
}

#[test]
fn every_bundle_test_passes() {
    let files = bundle();
    let mut p = RegoPolicies::load(&files, &["main".into()], true).unwrap();
    let results = p.run_tests();
    let failed: Vec<_> = results.iter().filter(|t| !t.passed).collect();
    assert!(failed.is_empty(), "failing: {failed:#?}");
    assert!(results.len() >= 40, "only {} tests found", results.len());
}

#[test]
fn every_rule_has_a_failing_and_a_passing_test() {
    let files = bundle();
    let mut rules = BTreeSet::new();
    let mut tests = BTreeSet::new();
    for f in &files {
        if f.path.ends_with("_test.rego") {
            for line in f.text.lines() {
                if let Some(rest) = line.strip_prefix("test_") {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    tests.insert(name);
                }
            }
        } else {
            let mut rest = f.text.as_str();
            while let Some(i) = rest.find("\"rule\": \"") {
                let after = &rest[i + 9..];
                let end = after.find('"').unwrap();
                rules.insert(after[..end].to_string());
                rest = &after[end..];
            }
        }
    }
    assert!(rules.len() >= 15, "{rules:?}");
    for r in &rules {
        let stem = r.replace('-', "_");
        assert!(
            tests.contains(&format!("{stem}_allowed")),
            "no passing test for {r}"
        );
        assert!(
            tests.contains(&format!("{stem}_denied")) || tests.contains(&format!("{stem}_warned")),
            "no failing test for {r}"
        );
    }
}

#[test]
fn embedded_bundle_matches_the_folder() {
    let on_disk: BTreeSet<String> = bundle()
        .into_iter()
        .filter(|f| !f.path.ends_with("_test.rego"))
        .map(|f| f.path)
        .collect();
    let embedded: BTreeSet<String> = SHIPPED_POLICIES
        .iter()
        .map(|(p, _)| p.to_string())
        .collect();
    assert_eq!(on_disk, embedded);
    let mut schemas = Vec::new();
    files_under(&policies_dir().join("schemas"), ".yaml", &mut schemas);
    let on_disk: BTreeSet<String> = schemas.into_iter().map(|f| f.path).collect();
    let embedded: BTreeSet<String> = SHIPPED_SCHEMAS.iter().map(|(p, _)| p.to_string()).collect();
    assert_eq!(on_disk, embedded);
}

#[test]
fn every_rule_is_documented() {
    use capstan_worker::policy::{cross_app, deprecations, exceptions};
    let readme = std::fs::read_to_string(policies_dir().join("README.md")).unwrap();
    let mut rules: Vec<String> = [
        capstan_worker::policy::RULE_SCHEMA,
        capstan_worker::policy::RULE_UNKNOWN_KIND,
        capstan_worker::policy::RULE_BAD_CRD,
        capstan_worker::policy::RULE_REGO_ERROR,
        deprecations::RULE_REMOVED,
        deprecations::RULE_DEPRECATED,
        cross_app::RULE_DUPLICATE,
        cross_app::RULE_INGRESS_CONFLICT,
        cross_app::RULE_NAMESPACE,
        cross_app::RULE_PR_APP_NAMESPACE,
        cross_app::RULE_PR_APP_PROJECT,
        cross_app::RULE_PROJECT_WILDCARD,
        exceptions::RULE_MISSING_REASON,
        exceptions::RULE_UNUSED,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for f in bundle().iter().filter(|f| !f.path.ends_with("_test.rego")) {
        let mut rest = f.text.as_str();
        while let Some(i) = rest.find("\"rule\": \"") {
            let after = &rest[i + 9..];
            let end = after.find('"').unwrap();
            rules.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    for r in rules {
        assert!(
            readme.contains(&format!("\n### {r}\n")),
            "policies/README.md has no section for {r}"
        );
    }
}
