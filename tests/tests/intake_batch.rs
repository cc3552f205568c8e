//! Group commit at the intake, on both backends: deliveries that arrive together share one
//! transaction, are answered only after it commits, deduplicate inside it, and fail together.
//!
//! The tests run on a current-thread runtime: all requests of a burst reach the writer's queue
//! before the writer task runs, so they form one batch, which the spy in [`Flaky`] confirms
//! (the asserted batch sizes). A batch is made to fail by a real trigger in the database that
//! refuses one delivery id, so the other members are rolled back by the database itself.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use capstan_server::app::{AppState, router};
use capstan_tests::backend::Backend;
use capstan_tests::flaky::Flaky;
use capstan_tests::webhook::{SECRET, pr_opened, send, signed};
use capstan_worker::queue::{DeliveryOutcome, JobState, NewDelivery, NewJob, Queue, RecordOutcome};
use capstan_worker::store::Db;

macro_rules! both_backends_current_thread {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "current_thread")]
                async fn $name() {
                    let b = capstan_tests::backend::Backend::sqlite().await;
                    super::$name(&b).await;
                    b.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "current_thread")]
                async fn $name() {
                    let Some(b) = capstan_tests::backend::Backend::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&b).await;
                    b.cleanup().await;
                }
            )*
        }
    };
}

both_backends_current_thread!(
    one_id_twice_in_one_batch_stores_one_delivery_and_one_job,
    a_failing_batch_answers_503_to_every_member_and_stores_none,
    batch_size_one_gives_each_delivery_its_own_transaction,
    a_batch_supersedes_like_deliveries_recorded_one_by_one,
);

/// The same generated deliveries recorded in batches on one store and one by one on another end
/// in the same outcomes and the same jobs, states and stop requests: a batch is only a faster way
/// to write what the deliveries would have written one after the other.
#[tokio::test(flavor = "current_thread")]
async fn generated_batches_store_what_one_by_one_stores_sqlite() {
    let batched = Backend::sqlite().await;
    let single = Backend::sqlite().await;
    batches_match_one_by_one(&batched, &single).await;
    batched.cleanup().await;
    single.cleanup().await;
}

#[tokio::test(flavor = "current_thread")]
async fn generated_batches_store_what_one_by_one_stores_postgres() {
    let Some(batched) = Backend::postgres("gen_batched").await else {
        return;
    };
    let Some(single) = Backend::postgres("gen_single").await else {
        return;
    };
    batches_match_one_by_one(&batched, &single).await;
    batched.cleanup().await;
    single.cleanup().await;
}

/// A small xorshift generator: the cases are the same on every run and machine.
struct Gen(u64);

impl Gen {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What a store holds of one job, without ids and times (which differ between the two stores).
type JobView = (
    Option<String>,
    String,
    String,
    Option<String>,
    JobState,
    bool,
);

async fn batches_match_one_by_one(batched: &Backend, single: &Backend) {
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    let mut ids = Vec::new();
    for round in 0..40 {
        let size = 1 + g.below(10) as usize;
        let batch: Vec<(NewDelivery, Vec<NewJob>)> = (0..size)
            .map(|_| {
                // Few ids, PRs and heads, so duplicates, repeated heads and supersedes are common.
                let id = format!("d{}", g.below(60));
                let jobs = (0..g.below(3))
                    .map(|_| {
                        let pr = g.below(4);
                        let head = g.below(3);
                        let job = NewJob::new(
                            "pr_check",
                            format!("pr_check:acme/gitops#{pr}@{head}"),
                            serde_json::json!({ "pr": pr, "head": head }),
                        );
                        if g.below(4) == 0 {
                            job
                        } else {
                            job.superseding(format!("pr:acme/gitops#{pr}"))
                        }
                    })
                    .collect();
                let mut delivery = check_of(&id, "x").0;
                delivery.delivery_id = id.clone();
                ids.push(id);
                (delivery, jobs)
            })
            .collect();
        let got = batched.queue.record_deliveries(&batch).await.unwrap();
        let mut want = Vec::new();
        for (delivery, jobs) in &batch {
            want.push(single.queue.record_delivery(delivery, jobs).await.unwrap());
        }
        let shape = |o: &RecordOutcome| match o {
            RecordOutcome::Stored { job_ids } => format!("stored {} jobs", job_ids.len()),
            RecordOutcome::Duplicate { first } => format!("duplicate of {}", first.delivery_id),
        };
        assert_eq!(
            got.iter().map(shape).collect::<Vec<_>>(),
            want.iter().map(shape).collect::<Vec<_>>(),
            "round {round}: outcomes"
        );
        // Now and then a worker takes the oldest queued job on both stores, so later supersedes
        // meet running jobs (which they ask to stop) as well as queued ones.
        if round % 3 == 2 {
            let kinds = ["pr_check".to_string()];
            let lease = std::time::Duration::from_secs(60);
            let a = batched.queue.claim("w", &kinds, lease).await.unwrap();
            let b = single.queue.claim("w", &kinds, lease).await.unwrap();
            assert_eq!(
                a.map(|c| c.job.dedupe_key),
                b.map(|c| c.job.dedupe_key),
                "round {round}: the claimed job"
            );
        }
    }
    ids.sort();
    ids.dedup();
    let view = |jobs: Vec<capstan_worker::queue::Job>| -> Vec<JobView> {
        jobs.into_iter()
            .map(|j| {
                (
                    j.delivery_id,
                    j.kind,
                    j.dedupe_key,
                    j.supersede_key,
                    j.state,
                    j.cancel_requested,
                )
            })
            .collect()
    };
    for id in &ids {
        let a = batched.queue.jobs_for_delivery(id).await.unwrap();
        let b = single.queue.jobs_for_delivery(id).await.unwrap();
        assert_eq!(view(a), view(b), "jobs of delivery {id}");
    }
}

/// The intake over a spy that records the batches it is handed.
fn app(b: &Backend, batch_max: usize) -> (Router, Arc<Flaky>) {
    let spy = Flaky::new(b.queue.clone());
    let queue: Arc<dyn Queue> = spy.clone();
    let state = AppState::new(queue, vec![SECRET.to_string()]).with_intake_batch_max(batch_max);
    (router(Arc::new(state), true), spy)
}

/// Sends the deliveries `(id, PR number)` at once and returns their statuses in the same order.
async fn burst(app: &Router, deliveries: &[(&str, u64)]) -> Vec<StatusCode> {
    let sends = deliveries.iter().map(|(id, pr)| {
        let body = pr_opened(*pr, &format!("{pr:040}"));
        async move { send(app, signed("pull_request", id, &body, SECRET)).await.0 }
    });
    futures::future::join_all(sends).await
}

/// A trigger that makes inserting the delivery `refused` fail inside the transaction.
async fn refuse_delivery(b: &Backend) {
    match b.queue.db() {
        Db::Sqlite { writer, .. } => {
            sqlx::query(
                "CREATE TRIGGER refuse BEFORE INSERT ON deliveries \
                 WHEN NEW.delivery_id = 'refused' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
            )
            .execute(&writer)
            .await
            .unwrap();
        }
        Db::Postgres(pool) => {
            sqlx::query(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.delivery_id = 'refused' THEN RAISE EXCEPTION 'refused by the test'; END IF; \
                 RETURN NEW; END $$",
            )
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(
                "CREATE TRIGGER refuse BEFORE INSERT ON deliveries \
                 FOR EACH ROW EXECUTE FUNCTION refuse()",
            )
            .execute(&pool)
            .await
            .unwrap();
        }
    }
}

async fn accept_every_delivery(b: &Backend) {
    let sql = match b.queue.db() {
        Db::Sqlite { .. } => "DROP TRIGGER refuse",
        Db::Postgres(_) => "DROP TRIGGER refuse ON deliveries",
    };
    match b.queue.db() {
        Db::Sqlite { writer, .. } => {
            sqlx::query(sql).execute(&writer).await.unwrap();
        }
        Db::Postgres(pool) => {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
    }
}

async fn jobs_of(b: &Backend, delivery: &str) -> usize {
    b.queue.jobs_for_delivery(delivery).await.unwrap().len()
}

async fn one_id_twice_in_one_batch_stores_one_delivery_and_one_job(b: &Backend) {
    let (app, spy) = app(b, 16);
    let statuses = burst(&app, &[("twice", 21), ("twice", 21), ("other", 22)]).await;
    assert_eq!(spy.batch_sizes(), vec![3], "the burst is one batch");
    // The first of the pair is stored, the second is its duplicate; the other one is stored.
    assert_eq!(
        statuses,
        vec![StatusCode::ACCEPTED, StatusCode::OK, StatusCode::ACCEPTED]
    );
    assert_eq!(jobs_of(b, "twice").await, 1);
    assert_eq!(jobs_of(b, "other").await, 1);
    let depth: i64 = b.queue.depth().await.unwrap().iter().map(|d| d.2).sum();
    assert_eq!(depth, 2, "one job per distinct delivery");
}

async fn a_failing_batch_answers_503_to_every_member_and_stores_none(b: &Backend) {
    let (app, spy) = app(b, 16);
    refuse_delivery(b).await;
    let members = [("first", 31), ("refused", 32), ("last", 33)];
    let statuses = burst(&app, &members).await;
    assert_eq!(spy.batch_sizes(), vec![3], "the burst is one batch");
    assert_eq!(statuses, vec![StatusCode::SERVICE_UNAVAILABLE; 3]);
    for (id, _) in members {
        assert!(b.queue.delivery(id).await.unwrap().is_none(), "{id} stored");
        assert_eq!(jobs_of(b, id).await, 0, "{id} has a job");
    }
    assert!(b.queue.depth().await.unwrap().is_empty());

    // GitHub redelivers each failed delivery: now every one is stored, once.
    accept_every_delivery(b).await;
    let statuses = burst(&app, &members).await;
    assert_eq!(statuses, vec![StatusCode::ACCEPTED; 3]);
    let statuses = burst(&app, &members).await;
    assert_eq!(
        statuses,
        vec![StatusCode::OK; 3],
        "the second redelivery is a duplicate"
    );
    for (id, _) in members {
        let stored = b.queue.delivery(id).await.unwrap().unwrap();
        assert_eq!(stored.outcome, DeliveryOutcome::Accepted.as_str());
        assert_eq!(jobs_of(b, id).await, 1, "{id}");
    }
    assert_eq!(spy.batch_sizes(), vec![3, 3, 3]);
}

async fn batch_size_one_gives_each_delivery_its_own_transaction(b: &Backend) {
    let (app, spy) = app(b, 1);
    refuse_delivery(b).await;
    let statuses = burst(&app, &[("first", 41), ("refused", 42), ("last", 43)]).await;
    assert_eq!(
        statuses,
        vec![
            StatusCode::ACCEPTED,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::ACCEPTED
        ]
    );
    assert!(spy.batch_sizes().is_empty(), "no batch was formed");
    assert_eq!(jobs_of(b, "first").await, 1);
    assert_eq!(jobs_of(b, "last").await, 1);
    assert!(b.queue.delivery("refused").await.unwrap().is_none());
}

fn check_of(delivery: &str, head: &str) -> (NewDelivery, Vec<NewJob>) {
    (
        NewDelivery {
            delivery_id: delivery.into(),
            event: "pull_request".into(),
            action: Some("synchronize".into()),
            repo: Some("acme/gitops".into()),
            outcome: DeliveryOutcome::Accepted,
            detail: None,
        },
        vec![
            NewJob::new(
                "pr_check",
                format!("pr_check:acme/gitops#5@{head}"),
                serde_json::json!({ "head": head }),
            )
            .superseding("pr:acme/gitops#5"),
        ],
    )
}

async fn a_batch_supersedes_like_deliveries_recorded_one_by_one(b: &Backend) {
    let batch = [
        check_of("head-a", "aaaa"),
        check_of("head-b", "bbbb"),
        check_of("head-b", "bbbb"),
    ];
    let outcomes = b.queue.record_deliveries(&batch).await.unwrap();
    assert!(matches!(outcomes[0], RecordOutcome::Stored { ref job_ids } if job_ids.len() == 1));
    assert!(matches!(outcomes[1], RecordOutcome::Stored { ref job_ids } if job_ids.len() == 1));
    assert!(matches!(outcomes[2], RecordOutcome::Duplicate { .. }));
    let older = b.queue.jobs_for_delivery("head-a").await.unwrap();
    let newer = b.queue.jobs_for_delivery("head-b").await.unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(newer.len(), 1);
    assert_eq!(
        older[0].state,
        JobState::Superseded,
        "the older head is superseded"
    );
    assert_eq!(newer[0].state, JobState::Queued);
}
