//! `renovate.json` must keep up with the tree: every version pinned here — operator and ArgoCD
//! Helm charts, the K3s release, the Dockerfile's build arguments, CI's PyPI tools, container
//! images — is matched by a Renovate manager. The pins are found by this test's own reading of
//! the tree (YAML and line scans), never by the managers' regexes, so a new pin in a new form is
//! reported instead of silently left behind.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use capstan_tests::repo_root;
use capstan_worker::yaml::parse_documents;
use regex::Regex;
use serde_json::Value;

/// One pinned version: where, what (when the file names it) and the value.
#[derive(Debug, Clone)]
struct Pin {
    file: String,
    dep: Option<String>,
    value: String,
}

/// Renovate writes file patterns as `/regex/`; anything else is a glob we do not use.
fn pattern(p: &str) -> Regex {
    let inner = p
        .strip_prefix('/')
        .and_then(|r| r.strip_suffix('/'))
        .unwrap_or_else(|| panic!("{p}: use the /regex/ form"));
    Regex::new(inner).unwrap()
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap()
}

fn files_under(root: &Path, dir: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    for e in entries.flatten() {
        let rel = format!("{dir}/{}", e.file_name().to_string_lossy());
        if e.path().is_dir() {
            files_under(root, &rel, out);
        } else {
            out.push(rel);
        }
    }
}

/// Every version the tree pins, found without the managers' regexes.
fn regex_pins(root: &Path) -> Vec<Pin> {
    let mut pins = Vec::new();
    let mut yaml = Vec::new();
    for dir in ["argocd", "infrastructure", "applications", "bootstrap"] {
        files_under(root, dir, &mut yaml);
    }
    yaml.retain(|f| f.ends_with(".yaml") || f.ends_with(".yml"));
    yaml.sort();
    for f in &yaml {
        let Ok(docs) = parse_documents(&read(root, f), f) else {
            continue;
        };
        for d in docs {
            // operator.yaml: chart.name / chart.version.
            if f.ends_with("/operator.yaml") && d["chart"]["version"].is_string() {
                pins.push(Pin {
                    file: f.clone(),
                    dep: d["chart"]["name"].as_str().map(String::from),
                    value: d["chart"]["version"].as_str().unwrap().into(),
                });
            }
            // K3s' HelmChart objects.
            if d["kind"] == "HelmChart" && d["spec"]["version"].is_string() {
                pins.push(Pin {
                    file: f.clone(),
                    dep: d["spec"]["chart"].as_str().map(String::from),
                    value: d["spec"]["version"].as_str().unwrap().into(),
                });
            }
            // The cluster config's K3s release.
            if d["cluster"]["version"].is_string() {
                pins.push(Pin {
                    file: f.clone(),
                    dep: Some("k3s-io/k3s".into()),
                    value: d["cluster"]["version"].as_str().unwrap().into(),
                });
            }
        }
    }
    // Dockerfile build arguments named *_VERSION, except the image's own version.
    for line in read(root, "Dockerfile").lines() {
        if let Some(arg) = line.strip_prefix("ARG ")
            && let Some((name, value)) = arg.split_once('=')
            && name.ends_with("_VERSION")
            && name != "CAPSTAN_VERSION"
        {
            pins.push(Pin {
                file: "Dockerfile".into(),
                dep: None,
                value: value.trim().into(),
            });
        }
    }
    // PyPI pins in CI.
    for word in read(root, ".ci/run").split(|c: char| c.is_whitespace() || "()\"'".contains(c)) {
        if let Some((name, version)) = word.split_once("==") {
            pins.push(Pin {
                file: ".ci/run".into(),
                dep: Some(name.into()),
                value: version.into(),
            });
        }
    }
    pins
}

/// Files that pin container images (an `image:` with a tag, or a kustomization's `newTag`).
fn image_files(root: &Path) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    let mut all = Vec::new();
    for dir in ["argocd", "infrastructure", "applications", "bootstrap"] {
        files_under(root, dir, &mut all);
    }
    all.sort();
    for f in all
        .iter()
        .filter(|f| f.ends_with(".yaml") || f.ends_with(".yml"))
    {
        let text = read(root, f);
        if text.lines().any(|l| {
            let l = l.trim_start().trim_start_matches("- ");
            l.starts_with("image: ") && l.contains(':')
        }) {
            out.push((f.clone(), "kubernetes"));
        }
        if text.lines().any(|l| l.trim_start().starts_with("newTag:")) {
            out.push((f.clone(), "kustomize"));
        }
    }
    for line in read(root, "Dockerfile").lines() {
        if line.starts_with("FROM ") {
            out.push(("Dockerfile".into(), "dockerfile"));
            break;
        }
    }
    out
}

/// Pins no regex manager matches, as sentences.
fn unmatched(config: &Value, root: &Path, pins: &[Pin]) -> Vec<String> {
    let mut problems = Vec::new();
    let managers = config["customManagers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for pin in pins {
        let text = read(root, &pin.file);
        let hit = managers.iter().any(|m| {
            let applies = m["managerFilePatterns"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| pattern(p.as_str().unwrap()).is_match(&pin.file));
            let has_datasource = m["datasourceTemplate"].is_string()
                || m["matchStrings"].to_string().contains("(?<datasource>");
            applies
                && has_datasource
                && m["matchStrings"].as_array().into_iter().flatten().any(|s| {
                    let re = Regex::new(s.as_str().unwrap()).unwrap();
                    re.captures_iter(&text).any(|c| {
                        let dep = c
                            .name("depName")
                            .map(|d| d.as_str().to_string())
                            .or_else(|| m["depNameTemplate"].as_str().map(String::from));
                        c.name("currentValue").map(|v| v.as_str()) == Some(pin.value.as_str())
                            && dep.is_some()
                            && (pin.dep.is_none() || dep == pin.dep)
                    })
                })
        });
        if !hit {
            problems.push(format!(
                "{}: {} {} is matched by no Renovate manager",
                pin.file,
                pin.dep.as_deref().unwrap_or("version"),
                pin.value
            ));
        }
    }
    problems
}

/// Image files whose built-in manager is not enabled or does not look at them.
fn uncovered_images(config: &Value, files: &[(String, &str)]) -> Vec<String> {
    let enabled: Vec<&str> = config["enabledManagers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    files
        .iter()
        .filter(|(f, manager)| {
            !enabled.contains(manager)
                || !config[*manager]["managerFilePatterns"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| pattern(p.as_str().unwrap()).is_match(f))
        })
        .map(|(f, manager)| format!("{f}: its images are not read by Renovate's {manager} manager"))
        .collect()
}

fn config() -> Value {
    serde_json::from_str(&read(&repo_root(), "renovate.json")).unwrap()
}

#[test]
fn every_pinned_version_is_matched_by_a_renovate_manager() {
    let root = repo_root();
    let config = config();
    let pins = regex_pins(&root);
    // The inventory really covers each kind of pin.
    for (what, f) in [
        ("operator charts", "infrastructure/operators/"),
        ("ArgoCD's HelmChart", "argocd/installation/helmchart.yaml"),
        ("the K3s release", "bootstrap/configs/cluster-config.yaml"),
        ("Dockerfile build arguments", "Dockerfile"),
        ("CI tools", ".ci/run"),
    ] {
        assert!(
            pins.iter().any(|p| p.file.starts_with(f)),
            "no pin found for {what}"
        );
    }
    let problems = unmatched(&config, &root, &pins);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let images = image_files(&root);
    assert!(images.iter().any(|(_, m)| *m == "kubernetes"));
    assert!(images.iter().any(|(_, m)| *m == "kustomize"));
    let problems = uncovered_images(&config, &images);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_pin_in_a_form_no_manager_knows_is_reported() {
    let root = repo_root();
    let config = config();
    let dir = tempfile::tempdir().unwrap();
    // A copy of the operators with one chart pinned in a way the regex does not expect.
    let op = read(&root, "infrastructure/operators/cert-manager/operator.yaml");
    let moved = op.replacen("  version: ", "  # pinned\n  version: ", 1);
    let rel = "infrastructure/operators/cert-manager/operator.yaml";
    std::fs::create_dir_all(dir.path().join("infrastructure/operators/cert-manager")).unwrap();
    std::fs::write(dir.path().join(rel), &moved).unwrap();
    let pins: Vec<Pin> = regex_pins(&root)
        .into_iter()
        .filter(|p| p.file == rel)
        .collect();
    assert_eq!(pins.len(), 1);
    let problems = unmatched(&config, dir.path(), &pins);
    assert!(
        problems.iter().any(|p| p.contains("cert-manager")),
        "{problems:?}"
    );

    // Dropping a manager leaves its pins unmatched; disabling kustomize leaves its files.
    let mut no_k3s = config.clone();
    no_k3s["customManagers"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["depNameTemplate"] != "k3s-io/k3s");
    let problems = unmatched(&no_k3s, &root, &regex_pins(&root));
    assert!(
        problems.iter().any(|p| p.contains("k3s-io/k3s")),
        "{problems:?}"
    );
    let mut no_kustomize = config;
    no_kustomize["enabledManagers"] =
        serde_json::json!(["kubernetes", "dockerfile", "custom.regex"]);
    let problems = uncovered_images(&no_kustomize, &image_files(&root));
    assert!(
        problems.iter().any(|p| p.contains("kustomize manager")),
        "{problems:?}"
    );
}

#[test]
fn updates_are_grouped_and_capstans_own_image_is_left_alone() {
    let config = config();
    let rules = config["packageRules"].as_array().unwrap();
    let group_of = |f: &dyn Fn(&Value) -> bool| -> Vec<String> {
        rules
            .iter()
            .filter(|r| f(r))
            .filter_map(|r| r["groupName"].as_str().map(String::from))
            .collect()
    };
    let has =
        |r: &Value, key: &str, v: &str| r[key].as_array().into_iter().flatten().any(|x| x == v);
    assert_eq!(
        group_of(&|r| has(r, "matchPackageNames", "k3s-io/k3s")),
        ["K3s"]
    );
    assert_eq!(
        group_of(&|r| has(r, "matchManagers", "kubernetes")),
        ["container images"]
    );
    assert_eq!(
        group_of(&|r| has(r, "matchFileNames", ".ci/run")),
        ["CI tools"]
    );
    // Charts are never grouped: each bump must fail chart_security until its templates are read.
    assert!(group_of(&|r| has(r, "matchDatasources", "helm")).is_empty());
    assert!(rules.iter().any(
        |r| has(r, "matchPackageNames", "ghcr.io/capstan-gitops/capstan") && r["enabled"] == false
    ));
}
