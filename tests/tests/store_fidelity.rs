//! Render verification records on SQLite and PostgreSQL alike: mismatches (the pins of an engine
//! version) and the kustomizations verified under each engine version.
#![allow(clippy::unwrap_used)]

use capstan_tests::backend::Backend;
use capstan_tests::both_backends;
use capstan_worker::render::verify::{Mismatch, MismatchKind};
use capstan_worker::store::{FidelityStore, SqlFidelityStore};

both_backends!(mismatches_pin_per_engine_version_and_verified_sets_are_kept);

fn mismatch(path: &str, version: &str, at: i64) -> Mismatch {
    Mismatch {
        repo: "acme/gitops".into(),
        path: path.into(),
        engine_version: version.into(),
        kind: MismatchKind::Differs,
        first_difference: format!("document 1 (ConfigMap {path})"),
        seen_at: at,
    }
}

async fn mismatches_pin_per_engine_version_and_verified_sets_are_kept(b: &Backend) {
    let store = SqlFidelityStore::new(b.queue.db());
    store
        .record(&mismatch("apps/a", "v1", 1_000))
        .await
        .unwrap();
    store
        .record(&mismatch("apps/a", "v1", 2_000))
        .await
        .unwrap();
    store
        .record(&mismatch("apps/b", "v2", 3_000))
        .await
        .unwrap();

    let pins = store.pins("v1").await.unwrap();
    assert_eq!(pins.len(), 1);
    assert_eq!(pins[0].path, "apps/a");
    assert_eq!(pins[0].seen_at, 1_000, "the first sighting is kept");
    assert_eq!(store.pins("v3").await.unwrap(), Vec::new());

    let listed = store.list_mismatches(0).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].path, "apps/b", "newest first");
    let a = &listed[1];
    assert_eq!(
        (a.first_seen, a.last_seen, a.occurrences),
        (1_000, 2_000, 2)
    );
    assert_eq!(a.kind, MismatchKind::Differs);

    let seen = vec![
        ("acme/gitops".to_string(), "apps/a".to_string()),
        ("acme/gitops".to_string(), "apps/b".to_string()),
    ];
    store.mark_verified("v1", &seen).await.unwrap();
    store.mark_verified("v1", &seen[..1]).await.unwrap();
    let mut got = store.verified("v1").await.unwrap();
    got.sort();
    assert_eq!(got, seen);
    assert!(store.verified("v2").await.unwrap().is_empty());
}
