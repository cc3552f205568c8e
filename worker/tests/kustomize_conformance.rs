//! Conformance of the native kustomize engine with kustomize v5.5 (`kubectl kustomize`).
//!
//! Every directory under `tests/kustomize/cases/` is one case: a kustomization at its root plus
//! `expected.yaml` (kustomize's exact output) or `expected-error.txt` (kustomize refused it, so
//! the engine must refuse it too). When `kubectl` is on PATH the expected files are re-checked
//! against it, so the suite cannot drift from the oracle. `KUSTOMIZE_CASE=substr` narrows the run.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use capstan_worker::render::kustomize::{KustomizeError, build};
use capstan_worker::repo_fs::{DirFs, RepoPath};

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kustomize/cases");
    let filter = std::env::var("KUSTOMIZE_CASE").unwrap_or_default();
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(&filter))
        .collect();
    v.sort();
    v
}

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn native_engine_matches_kustomize_on_every_case() {
    let cases = cases();
    assert!(!cases.is_empty(), "no conformance cases found");
    let oracle = kubectl_available();
    let (mut exact, mut errors_matched) = (0, 0);
    let mut failures = Vec::new();
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let expected = std::fs::read_to_string(dir.join("expected.yaml")).ok();
        let expected_err = std::fs::read_to_string(dir.join("expected-error.txt")).ok();
        assert!(
            expected.is_some() != expected_err.is_some(),
            "{name}: needs exactly one of expected.yaml / expected-error.txt"
        );
        if oracle {
            let out = Command::new("kubectl")
                .arg("kustomize")
                .arg(dir)
                .output()
                .unwrap();
            match &expected {
                Some(e) => assert!(
                    out.status.success() && &String::from_utf8_lossy(&out.stdout) == e,
                    "{name}: expected.yaml is stale; run worker/tests/kustomize/regen.sh {name}"
                ),
                None => assert!(
                    !out.status.success(),
                    "{name}: kustomize now accepts this case; run regen.sh {name}"
                ),
            }
        }
        let fs = DirFs::new(dir).unwrap();
        let got = build(&fs, &RepoPath::root());
        match (&expected, got) {
            (Some(e), Ok(out)) if &out.yaml == e => exact += 1,
            (Some(e), Ok(out)) => failures.push(format!(
                "{name}: output differs\n--- expected\n{e}\n--- got\n{}",
                out.yaml
            )),
            (Some(_), Err(err)) => failures.push(format!("{name}: failed: {err}")),
            (None, Err(KustomizeError::Unsupported { feature, .. })) => failures.push(format!(
                "{name}: kustomize refuses this, engine says unsupported ({feature})"
            )),
            (None, Err(err)) => {
                let msg = err.to_string();
                assert!(!msg.is_empty());
                errors_matched += 1;
            }
            (None, Ok(_)) => failures.push(format!(
                "{name}: kustomize refuses this ({}) but the engine built it",
                expected_err.as_deref().unwrap_or("").trim()
            )),
        }
    }
    println!(
        "kustomize conformance: {} cases, {} byte-exact outputs, {} refusals matched, {} failures (oracle re-check: {})",
        cases.len(),
        exact,
        errors_matched,
        failures.len(),
        if oracle {
            "kubectl"
        } else {
            "skipped: kubectl not on PATH"
        }
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
