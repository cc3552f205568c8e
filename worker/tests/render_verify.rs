//! Render verification against the kustomize binary, with a test hook that breaks the native
//! engine's output on purpose: the break is caught, the binary's output is used, the
//! kustomization stays pinned to the binary on the next render until the engine version changes,
//! deferred (`sample`) verifications find it too, and an engine error where the binary succeeds is
//! treated the same way.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use capstan_worker::render::verify::{EngineHook, MismatchKind};
use capstan_worker::render::{
    KustomizeOptions, RenderConfig, RenderError, RenderSource, Renderer, Scope, SourceKind,
    VerifyMode, VerifySettings,
};
use capstan_worker::repo_fs::{MemFs, RepoPath};

/// The binary is the oracle: without it there is nothing to verify against.
fn kubectl() -> bool {
    let found = capstan_worker::render::exec::which("kubectl").is_some();
    if !found {
        println!("skipped: kubectl is not on PATH");
    }
    found
}

fn tree(value: &str) -> MemFs {
    MemFs::new()
        .with("app/kustomization.yaml", "namespace: shop\nresources:\n- cm.yaml\n")
        .with(
            "app/cm.yaml",
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  level: {value}\n"),
        )
}

fn source() -> RenderSource {
    RenderSource {
        path: RepoPath::new("app").unwrap(),
        kind: SourceKind::Kustomize(KustomizeOptions::default()),
        namespace: None,
        release_name: "app".into(),
    }
}

/// A hook that, while `on`, changes the engine's output the way a subtle engine bug would.
fn breaking_hook(on: Arc<AtomicBool>) -> EngineHook {
    EngineHook(Arc::new(move |_path, out| {
        let y = out?;
        Ok(if on.load(Ordering::Relaxed) {
            y.replace("namespace: shop", "namespace: wrong")
        } else {
            y
        })
    }))
}

fn scope(repo: &str, verify: VerifyMode, share: f64, defer: bool) -> Scope {
    Scope {
        repo: repo.into(),
        settings: VerifySettings {
            verify,
            verify_share: share,
            ..VerifySettings::default()
        },
        defer,
    }
}

fn renderer(on: &Arc<AtomicBool>, version: &str) -> Renderer {
    Renderer::new(RenderConfig {
        engine_version: Some(version.into()),
        engine_hook: Some(breaking_hook(on.clone())),
        ..RenderConfig::default()
    })
}

#[test]
fn a_broken_engine_output_is_caught_the_binary_is_used_and_the_pin_holds() {
    if !kubectl() {
        return;
    }
    let on = Arc::new(AtomicBool::new(true));
    let base = renderer(&on, "test-1");
    let r = base.scoped(scope("acme/gitops", VerifyMode::Always, 0.0, false));
    let out = r.render(&tree("info"), &source()).unwrap();
    assert_eq!(out.backend, "kustomize", "{:?}", out.notes);
    assert!(out.yaml.contains("namespace: shop"), "{}", out.yaml);
    assert!(
        out.notes.iter().any(|n| n.contains("pinned to the binary")),
        "{:?}",
        out.notes
    );
    let pin = r
        .fidelity()
        .pin("acme/gitops", &RepoPath::new("app").unwrap())
        .unwrap();
    assert_eq!(pin.kind, MismatchKind::Differs);
    assert!(
        pin.first_difference
            .starts_with("document 1 (ConfigMap settings)"),
        "{}",
        pin.first_difference
    );
    assert!(
        pin.first_difference.contains("-  namespace: wrong"),
        "{}",
        pin.first_difference
    );
    let (unsaved, _) = r.fidelity().take_unsaved();
    assert_eq!(unsaved.len(), 1);
    assert_eq!(unsaved[0].engine_version, "test-1");

    // Next render, engine fixed and verification off: the pin still sends it to the binary.
    on.store(false, Ordering::Relaxed);
    let off = base.scoped(scope("acme/gitops", VerifyMode::Off, 0.0, false));
    let again = off.render(&tree("debug"), &source()).unwrap();
    assert_eq!(again.backend, "kustomize");
    assert!(
        again.notes.iter().any(|n| n.contains("pinned")),
        "{:?}",
        again.notes
    );
    // The pin is per repository.
    let other = base.scoped(scope("acme/other", VerifyMode::Off, 0.0, false));
    assert_eq!(
        other.render(&tree("debug"), &source()).unwrap().backend,
        "native"
    );

    // A new engine version starts unpinned: pins recorded under the old one do not apply.
    let upgraded = renderer(&on, "test-2");
    upgraded.fidelity().load_pins(unsaved);
    let fresh = upgraded.scoped(scope("acme/gitops", VerifyMode::Off, 0.0, false));
    assert_eq!(
        fresh.render(&tree("debug"), &source()).unwrap().backend,
        "native"
    );
    // While the same version keeps it pinned when loaded from the store.
    let restarted = renderer(&on, "test-1");
    restarted.fidelity().load_pins(vec![pin]);
    let again = restarted.scoped(scope("acme/gitops", VerifyMode::Off, 0.0, false));
    assert_eq!(
        again.render(&tree("warn"), &source()).unwrap().backend,
        "kustomize"
    );
}

#[test]
fn sampled_verification_can_be_deferred_and_still_pins() {
    if !kubectl() {
        return;
    }
    let on = Arc::new(AtomicBool::new(true));
    let base = renderer(&on, "test-1");
    let r = base.scoped(scope("acme/gitops", VerifyMode::Sample, 1.0, true));
    let before = capstan_worker::render::verify::mismatches_counted();
    // Deferred: the report is built from the engine's output at once...
    let out = r.render(&tree("info"), &source()).unwrap();
    assert_eq!(out.backend, "native");
    // ...and the verification run afterwards finds the mismatch and pins the kustomization.
    let found = base.verify_pending("acme/gitops");
    assert_eq!(found.len(), 1);
    assert!(capstan_worker::render::verify::mismatches_counted() > before);
    assert!(
        capstan_worker::render::verify::metrics_text()
            .contains("capstan_render_verifications_total{outcome=\"differs\"}")
    );
    assert!(base.verify_pending("acme/gitops").is_empty());
    // The same input again: the cached native render is not served for a pinned kustomization.
    let rerun = r.render(&tree("info"), &source()).unwrap();
    assert_eq!(rerun.backend, "kustomize");
    assert!(rerun.yaml.contains("namespace: shop"));

    // A share of 0 verifies nothing unless the kustomization is new to a tracked engine version.
    on.store(false, Ordering::Relaxed);
    let quiet = renderer(&on, "test-3");
    let s = quiet.scoped(scope("acme/gitops", VerifyMode::Sample, 0.0, true));
    s.render(&tree("a"), &source()).unwrap();
    assert!(quiet.verify_pending("acme/gitops").is_empty());
    quiet.fidelity().load_seen(Vec::new());
    s.render(&tree("b"), &source()).unwrap();
    assert!(
        quiet.verify_pending("acme/gitops").is_empty(),
        "a match found nothing to pin"
    );
    let (_, seen) = quiet.fidelity().take_unsaved();
    assert_eq!(seen, vec![("acme/gitops".to_string(), "app".to_string())]);
    s.render(&tree("c"), &source()).unwrap();
    assert!(
        quiet.fidelity().take_pending("acme/gitops").is_empty(),
        "seen once: not verified again"
    );
}

#[test]
fn sampled_verifications_keep_to_the_budget_first_renders_do_not() {
    if !kubectl() {
        return;
    }
    let on = Arc::new(AtomicBool::new(true));
    let base = renderer(&on, "test-budget");
    let r = base.scoped(Scope {
        repo: "acme/budget".into(),
        settings: VerifySettings {
            verify: VerifyMode::Sample,
            verify_share: 1.0,
            verify_budget: 0.0,
            ..VerifySettings::default()
        },
        defer: true,
    });
    let over = |text: String| {
        text.lines()
            .find(|l| l.contains("outcome=\"over_budget\""))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = over(capstan_worker::render::verify::metrics_text());
    // Sampled, but no budget: the binary is not run, and the left-out render is counted.
    r.render(&tree("a"), &source()).unwrap();
    assert!(base.verify_pending("acme/budget").is_empty());
    assert!(over(capstan_worker::render::verify::metrics_text()) > before);
    assert!(
        base.fidelity()
            .pin("acme/budget", &RepoPath::new("app").unwrap())
            .is_none()
    );
    // The first render after an engine change is verified whatever the budget.
    base.fidelity().load_seen(Vec::new());
    r.render(&tree("b"), &source()).unwrap();
    let found = base.verify_pending("acme/budget");
    assert_eq!(found.len(), 1, "the broken output is caught");
    assert_eq!(found[0].kind, MismatchKind::Differs);
}

#[test]
fn an_engine_error_where_the_binary_succeeds_is_a_mismatch() {
    if !kubectl() {
        return;
    }
    let r = Renderer::new(RenderConfig {
        engine_version: Some("test-1".into()),
        engine_hook: Some(EngineHook(Arc::new(|path, _| {
            Err(RenderError::Invalid {
                file: path.to_string(),
                message: "engine bug".into(),
            })
        }))),
        ..RenderConfig::default()
    })
    .scoped(scope("acme/gitops", VerifyMode::Off, 0.0, false));
    let out = r.render(&tree("info"), &source()).unwrap();
    assert_eq!(out.backend, "kustomize");
    let pin = r
        .fidelity()
        .pin("acme/gitops", &RepoPath::new("app").unwrap())
        .unwrap();
    assert_eq!(pin.kind, MismatchKind::EngineError);
    assert!(pin.first_difference.contains("engine bug"));
    // An error of both is the engine's error, not a mismatch.
    let broken = MemFs::new().with("app/kustomization.yaml", "resources:\n- missing.yaml\n");
    assert!(r.render(&broken, &source()).is_err());
}
