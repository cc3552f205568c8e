//! The promotion audit store on SQLite and PostgreSQL alike.
#![allow(clippy::unwrap_used)]

use capstan_tests::backend::Backend;
use capstan_tests::both_backends;
use capstan_worker::store::{
    PromotionFilter, PromotionOutcome, PromotionRecord, PromotionStatus, PromotionStore,
    SqlPromotionStore,
};

both_backends!(records_are_written_finished_found_and_filtered);

fn record(key: &str, app: &str, target: &str) -> PromotionRecord {
    PromotionRecord {
        id: 0,
        promotion_key: key.into(),
        repo: "acme/gitops".into(),
        app: app.into(),
        source_env: "staging".into(),
        target_env: target.into(),
        trigger: "merge".into(),
        actor: "capstan".into(),
        source_pr: Some(12),
        source_sha: "a".repeat(40),
        mode: "pull-request".into(),
        summary: String::new(),
        status: PromotionStatus::Pending,
        detail: None,
        result_pr: None,
        result_sha: None,
        created_at: 0,
        updated_at: 0,
    }
}

async fn records_are_written_finished_found_and_filtered(b: &Backend) {
    let store = SqlPromotionStore::new(b.queue.db());
    let a = store
        .insert(&record("k1", "web", "production"))
        .await
        .unwrap();
    let c = store.insert(&record("k2", "api", "staging")).await.unwrap();
    store
        .finish(
            a,
            &PromotionOutcome {
                status: PromotionStatus::Opened,
                summary: "images web: newTag 1 → 2".into(),
                detail: Some("note".into()),
                result_pr: Some(40),
                result_sha: Some("b".repeat(40)),
            },
        )
        .await
        .unwrap();
    let found = store.find_by_key("k1").await.unwrap().unwrap();
    assert_eq!(
        (found.id, found.status, found.result_pr),
        (a, PromotionStatus::Opened, Some(40))
    );
    assert_eq!(found.summary, "images web: newTag 1 → 2");
    assert!(found.updated_at >= found.created_at && found.created_at > 0);
    assert!(store.find_by_key("nope").await.unwrap().is_none());
    assert_eq!(store.promotion(c).await.unwrap().unwrap().app, "api");
    let all = store
        .list_promotions(&PromotionFilter::default())
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![c, a],
        "newest first"
    );
    let only = |f: PromotionFilter| {
        let store = store.clone();
        async move {
            store
                .list_promotions(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        only(PromotionFilter {
            app: Some("web".into()),
            ..Default::default()
        })
        .await,
        vec![a]
    );
    assert_eq!(
        only(PromotionFilter {
            target_env: Some("staging".into()),
            ..Default::default()
        })
        .await,
        vec![c]
    );
    assert_eq!(
        only(PromotionFilter {
            status: Some(PromotionStatus::Pending),
            ..Default::default()
        })
        .await,
        vec![c]
    );
    assert_eq!(
        only(PromotionFilter {
            repo: Some("other/repo".into()),
            ..Default::default()
        })
        .await,
        Vec::<i64>::new()
    );
    assert_eq!(
        only(PromotionFilter {
            limit: 1,
            ..Default::default()
        })
        .await,
        vec![c]
    );
}
