//! The PR handler's side of render verification ([`crate::render::verify`]): pins and verified
//! kustomizations loaded from the store before a run, new records saved after it, and the
//! verifications a `sample`-mode run deferred, run once its report is posted.
//!
//! Store trouble never fails a run: verification is a safety net around the render, and the
//! in-memory pins still hold in this process. It is logged.

use std::sync::Arc;

use tracing::{info, warn};

use crate::render::Renderer;
use crate::render::verify::Mismatch;
use crate::store::SqlFidelityStore;

/// Loads the pins of the current engine version (every run: another replica may have pinned
/// since) and, once per process, the kustomizations already verified.
pub async fn load(store: &SqlFidelityStore, renderer: &Renderer) {
    let f = renderer.fidelity();
    match store.pins(f.engine_version()).await {
        Ok(pins) => f.load_pins(pins),
        Err(e) => warn!(error = %e, "render verification: could not read the pins"),
    }
    if !f.first_seen_tracked() {
        match store.verified(f.engine_version()).await {
            Ok(seen) => f.load_seen(seen),
            Err(e) => warn!(error = %e, "render verification: could not read the verified set"),
        }
    }
}

/// Writes the mismatches and verified kustomizations not yet saved.
pub async fn save(store: &SqlFidelityStore, renderer: &Renderer) {
    let f = renderer.fidelity();
    let (mismatches, seen) = f.take_unsaved();
    for m in &mismatches {
        if let Err(e) = store.record(m).await {
            warn!(error = %e, path = %m.path, "render verification: could not record a mismatch");
        }
    }
    if let Err(e) = store.mark_verified(f.engine_version(), &seen).await {
        warn!(error = %e, "render verification: could not record verified kustomizations");
    }
}

/// Runs the verifications deferred for `repo` (on the blocking pool) and saves what they found.
/// The mismatches returned are pinned already: a new run renders them with the binary.
pub async fn verify_deferred(
    store: &SqlFidelityStore,
    renderer: &Arc<Renderer>,
    repo: &str,
) -> Vec<Mismatch> {
    let r = renderer.clone();
    let repo_owned = repo.to_string();
    let found = match tokio::task::spawn_blocking(move || r.verify_pending(&repo_owned)).await {
        Ok(found) => found,
        Err(e) => {
            warn!(error = %e, "render verification task failed");
            Vec::new()
        }
    };
    save(store, renderer).await;
    if !found.is_empty() {
        info!(
            mismatches = found.len(),
            "deferred render verification found mismatches; checking again with the binary"
        );
    }
    found
}
