//! Conformance of the native kustomize engine with kustomize v5.5 (`kubectl kustomize`).
//!
//! Every directory under `tests/kustomize/cases/` is one case: a kustomization at its root plus
//! `expected.yaml` (kustomize's exact output) or `expected-error.txt` (kustomize refused it, so
//! the engine must refuse it too). When `kubectl` is on PATH the expected files are re-checked
//! against it, so the suite cannot drift from the oracle. `KUSTOMIZE_CASE=substr` narrows the run.
//!
//! Cases whose kustomization has `helmCharts` (`helm-*`) are built by kustomize with
//! `--enable-helm --helm-command H` and by the engine with Capstan's helm renderer over the same
//! helm: a real helm v3 when one is found (see [`render::helm::test_binary`]), else the test
//! engine `tests/support/helm` (Helm v4's own engine) behind `tests/kustomize/helm-v3-gate`,
//! which answers only kustomize v5.5's `helm version` gate (it refuses any helm but v3) and
//! passes every other call unchanged: the `helm template` flags kustomize uses are the same in
//! Helm 3 and 4.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use std::sync::Arc;

use capstan_worker::render;
use capstan_worker::render::charts::{ChartFetcher, ChartSettings};
use capstan_worker::render::helm::HelmExec;
use capstan_worker::render::kustomize::{ChartRenderer, KustomizeError, build_with};
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

/// True when the case's kustomizations inflate charts (kustomize then needs `--enable-helm`).
fn uses_helm(dir: &Path) -> bool {
    walk(dir).iter().any(|f| {
        f.file_name().is_some_and(|n| n == "kustomization.yaml")
            && std::fs::read_to_string(f).is_ok_and(|t| t.contains("helmChart"))
    })
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The helm both sides use, and the `--helm-command` kustomize gets (see the module doc).
fn helms() -> (PathBuf, PathBuf) {
    let engine = render::helm::test_binary().unwrap();
    let out = Command::new(&engine)
        .args(["version", "--short"])
        .output()
        .unwrap();
    let v3 = String::from_utf8_lossy(&out.stdout)
        .trim_start()
        .starts_with("v3.");
    let gate = if v3 {
        engine.clone()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kustomize/helm-v3-gate")
    };
    (engine, gate)
}

#[test]
fn native_engine_matches_kustomize_on_every_case() {
    let cases = cases();
    assert!(!cases.is_empty(), "no conformance cases found");
    let oracle = kubectl_available();
    let (mut exact, mut errors_matched) = (0, 0);
    let (engine, gate) = helms();
    let helm = HelmExec::new(
        engine.clone(),
        render::ExecLimits::default(),
        Arc::new(ChartFetcher::new(ChartSettings::default())),
    );
    let mut helm_exact = 0;
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
            let mut cmd = Command::new("kubectl");
            cmd.arg("kustomize");
            if uses_helm(dir) {
                cmd.arg("--enable-helm")
                    .arg("--helm-command")
                    .arg(&gate)
                    .env("CAPSTAN_TEST_HELM_ENGINE", &engine);
            }
            let out = cmd.arg(dir).output().unwrap();
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
        let got = build_with(&fs, &RepoPath::root(), Some(&helm as &dyn ChartRenderer));
        match (&expected, got) {
            (Some(e), Ok(out)) if &out.yaml == e => {
                exact += 1;
                if uses_helm(dir) {
                    helm_exact += 1;
                }
            }
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
        "kustomize conformance: {} cases, {} byte-exact outputs ({} of them helmCharts cases), {} refusals matched, {} failures (oracle re-check: {})",
        cases.len(),
        exact,
        helm_exact,
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
