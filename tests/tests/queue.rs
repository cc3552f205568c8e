//! The queue contract, run against SQLite and PostgreSQL alike.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use capstan_tests::backend::Backend;
use capstan_tests::both_backends;
use capstan_worker::jobs::{Command, PrCheck};
use capstan_worker::queue::{
    DeliveryOutcome, Finish, Heartbeat, JobState, NewDelivery, NewJob, Queue, RecordOutcome, now_ms,
};
use serde_json::json;

both_backends!(
    delivery_and_jobs_are_stored_once,
    concurrent_duplicate_deliveries_store_one_job,
    claim_lease_and_finish,
    expired_lease_is_reclaimed_and_fences_the_old_worker,
    retry_waits_for_run_after,
    live_dedupe_key_admits_one_job,
    newer_head_supersedes_queued_and_signals_running,
    release_gives_the_job_back_uncounted,
    claims_only_requested_kinds,
    depth_counts_by_kind_and_state,
    commands_of_one_pr_run_one_at_a_time_in_the_order_written,
    two_replicas_never_run_two_commands_of_one_pr_at_once,
);

fn delivery(id: &str) -> NewDelivery {
    NewDelivery {
        delivery_id: id.into(),
        event: "pull_request".into(),
        action: Some("opened".into()),
        repo: Some("acme/gitops".into()),
        outcome: DeliveryOutcome::Accepted,
        detail: None,
    }
}

fn job(kind: &str, key: &str) -> NewJob {
    NewJob::new(kind, key, json!({"repo": "acme/gitops"}))
}

fn pr_check(number: u64, sha: &str) -> NewJob {
    PrCheck {
        repo: "acme/gitops".into(),
        number,
        head_sha: sha.into(),
        head_ref: Some("feature".into()),
        base_ref: Some("main".into()),
        installation_id: None,
        trigger: "test".into(),
        sender: None,
    }
    .into_job()
}

fn kinds(k: &[&str]) -> Vec<String> {
    k.iter().map(|s| s.to_string()).collect()
}

const LEASE: Duration = Duration::from_secs(30);

async fn delivery_and_jobs_are_stored_once(b: &Backend) {
    let q = &b.queue;
    let first = q
        .record_delivery(&delivery("d-1"), &[job("ping", "k1"), job("ping", "k2")])
        .await
        .unwrap();
    let RecordOutcome::Stored { job_ids } = first else {
        panic!("{first:?}")
    };
    assert_eq!(job_ids.len(), 2);
    let again = q
        .record_delivery(&delivery("d-1"), &[job("ping", "k3")])
        .await
        .unwrap();
    match again {
        RecordOutcome::Duplicate { first } => {
            assert_eq!(first.outcome, "accepted");
            assert_eq!(first.repo.as_deref(), Some("acme/gitops"));
        }
        other => panic!("{other:?}"),
    }
    let jobs = q.jobs_for_delivery("d-1").await.unwrap();
    assert_eq!(
        jobs.iter()
            .map(|j| j.dedupe_key.as_str())
            .collect::<Vec<_>>(),
        ["k1", "k2"]
    );
    assert!(
        jobs.iter()
            .all(|j| j.state == JobState::Queued && j.attempts == 0)
    );
    assert_eq!(
        q.delivery("d-1").await.unwrap().unwrap().event,
        "pull_request"
    );
}

async fn concurrent_duplicate_deliveries_store_one_job(b: &Backend) {
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let q: Arc<dyn Queue> = b.queue.clone();
        tasks.push(tokio::spawn(async move {
            q.record_delivery(&delivery("dup"), &[pr_check(1, "aaa")])
                .await
        }));
    }
    let mut stored = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            RecordOutcome::Stored { job_ids } => {
                assert_eq!(job_ids.len(), 1);
                stored += 1;
            }
            RecordOutcome::Duplicate { .. } => {}
        }
    }
    assert_eq!(stored, 1);
    assert_eq!(b.queue.jobs_for_delivery("dup").await.unwrap().len(), 1);
}

async fn claim_lease_and_finish(b: &Backend) {
    let q = &b.queue;
    let id = q.enqueue(&job("ping", "one")).await.unwrap().unwrap();
    let claimed = q
        .claim("w1", &kinds(&["ping"]), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.job.id, id);
    assert!(!claimed.reclaimed);
    assert_eq!(claimed.job.state, JobState::Running);
    assert_eq!(claimed.job.attempts, 1);
    assert_eq!(claimed.job.lease_owner.as_deref(), Some("w1"));
    assert!(claimed.job.lease_expires_at.unwrap() > now_ms());
    assert!(
        q.claim("w2", &kinds(&["ping"]), LEASE)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        q.heartbeat(id, "w1", 1, LEASE).await.unwrap(),
        Heartbeat::Held { stop: false }
    );
    assert!(q.finish(id, "w1", 1, &Finish::Succeeded).await.unwrap());
    assert!(!q.finish(id, "w1", 1, &Finish::Succeeded).await.unwrap());
    let done = q.job(id).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert!(done.finished_at.is_some() && done.lease_owner.is_none());
    let runs = q.job_runs(id).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].outcome.as_str(), runs[0].attempt),
        ("succeeded", 1)
    );
}

async fn expired_lease_is_reclaimed_and_fences_the_old_worker(b: &Backend) {
    let q = &b.queue;
    let id = q.enqueue(&job("ping", "crashy")).await.unwrap().unwrap();
    q.claim("dead-worker", &kinds(&["ping"]), Duration::from_millis(50))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    let again = q
        .claim("w2", &kinds(&["ping"]), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.job.id, id);
    assert!(again.reclaimed);
    assert_eq!(again.job.attempts, 2);
    // The old holder wakes up late: it can neither extend nor finish.
    assert_eq!(
        q.heartbeat(id, "dead-worker", 1, LEASE).await.unwrap(),
        Heartbeat::Lost
    );
    assert!(
        !q.finish(id, "dead-worker", 1, &Finish::Succeeded)
            .await
            .unwrap()
    );
    assert!(q.finish(id, "w2", 2, &Finish::Succeeded).await.unwrap());
    assert_eq!(q.job_runs(id).await.unwrap().len(), 1);
}

async fn retry_waits_for_run_after(b: &Backend) {
    let q = &b.queue;
    let id = q.enqueue(&job("ping", "flaky")).await.unwrap().unwrap();
    q.claim("w", &kinds(&["ping"]), LEASE)
        .await
        .unwrap()
        .unwrap();
    let later = Finish::Retry {
        error: "network down".into(),
        run_after: now_ms() + 60_000,
    };
    assert!(q.finish(id, "w", 1, &later).await.unwrap());
    let j = q.job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Queued);
    assert_eq!(j.last_error.as_deref(), Some("network down"));
    assert!(
        q.claim("w", &kinds(&["ping"]), LEASE)
            .await
            .unwrap()
            .is_none()
    );

    let id2 = q.enqueue(&job("ping", "flaky-now")).await.unwrap().unwrap();
    q.claim("w", &kinds(&["ping"]), LEASE)
        .await
        .unwrap()
        .unwrap();
    let now = Finish::Retry {
        error: "blip".into(),
        run_after: now_ms() - 1,
    };
    assert!(q.finish(id2, "w", 1, &now).await.unwrap());
    let c = q
        .claim("w", &kinds(&["ping"]), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.job.id, c.job.attempts), (id2, 2));
    let runs = q.job_runs(id2).await.unwrap();
    assert_eq!(runs[0].outcome, "retry");
    assert_eq!(runs[0].error.as_deref(), Some("blip"));
}

async fn live_dedupe_key_admits_one_job(b: &Backend) {
    let q = &b.queue;
    let first = q.enqueue(&pr_check(3, "abc")).await.unwrap().unwrap();
    assert_eq!(q.enqueue(&pr_check(3, "abc")).await.unwrap(), None);
    q.claim("w", &kinds(&["pr_check"]), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        q.enqueue(&pr_check(3, "abc")).await.unwrap(),
        None,
        "running counts as live"
    );
    q.finish(first, "w", 1, &Finish::Succeeded).await.unwrap();
    // A re-requested check for a finished head runs again.
    let again = q.enqueue(&pr_check(3, "abc")).await.unwrap();
    assert!(again.is_some_and(|id| id != first));
}

async fn newer_head_supersedes_queued_and_signals_running(b: &Backend) {
    let q = &b.queue;
    let old = q.enqueue(&pr_check(9, "old")).await.unwrap().unwrap();
    let mid = q.enqueue(&pr_check(9, "mid")).await.unwrap().unwrap();
    let other_pr = q.enqueue(&pr_check(10, "x")).await.unwrap().unwrap();
    assert_eq!(
        q.job(old).await.unwrap().unwrap().state,
        JobState::Superseded
    );

    let running = q
        .claim("w", &kinds(&["pr_check"]), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(running.job.id, mid);
    let new = q.enqueue(&pr_check(9, "new")).await.unwrap().unwrap();
    assert_eq!(
        q.heartbeat(mid, "w", 1, LEASE).await.unwrap(),
        Heartbeat::Held { stop: true }
    );
    // Per-PR order: the new head waits while the old one still holds its lease; other PRs don't.
    let next = q
        .claim("w2", &kinds(&["pr_check"]), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.job.id, other_pr);
    assert!(
        q.claim("w3", &kinds(&["pr_check"]), LEASE)
            .await
            .unwrap()
            .is_none()
    );
    assert!(q.finish(mid, "w", 1, &Finish::Superseded).await.unwrap());
    let newest = q
        .claim("w3", &kinds(&["pr_check"]), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(newest.job.id, new);
    assert_eq!(
        q.job(mid).await.unwrap().unwrap().state,
        JobState::Superseded
    );
    assert_eq!(
        q.job(other_pr).await.unwrap().unwrap().state,
        JobState::Running
    );
}

async fn release_gives_the_job_back_uncounted(b: &Backend) {
    let q = &b.queue;
    let id = q.enqueue(&job("ping", "rel")).await.unwrap().unwrap();
    q.claim("w", &kinds(&["ping"]), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert!(!q.release(id, "someone-else", 1).await.unwrap());
    assert!(q.release(id, "w", 1).await.unwrap());
    let j = q.job(id).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Queued, 0));
    assert!(j.lease_owner.is_none());
    assert!(q.job_runs(id).await.unwrap().is_empty());
}

async fn claims_only_requested_kinds(b: &Backend) {
    let q = &b.queue;
    q.enqueue(&job("pr_merged", "m")).await.unwrap().unwrap();
    assert!(
        q.claim("w", &kinds(&["ping"]), LEASE)
            .await
            .unwrap()
            .is_none()
    );
    let c = q
        .claim("w", &kinds(&["ping", "pr_merged"]), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.job.kind, "pr_merged");
}

async fn depth_counts_by_kind_and_state(b: &Backend) {
    let q = &b.queue;
    q.ping().await.unwrap();
    for k in ["a", "b", "c"] {
        q.enqueue(&job("ping", k)).await.unwrap();
    }
    let id = q.enqueue(&job("command", "x")).await.unwrap().unwrap();
    q.claim("w", &kinds(&["command"]), LEASE).await.unwrap();
    q.finish(
        id,
        "w",
        1,
        &Finish::Failed {
            error: "bad".into(),
        },
    )
    .await
    .unwrap();
    let mut depth = q.depth().await.unwrap();
    depth.sort();
    assert_eq!(
        depth,
        vec![
            ("command".to_string(), JobState::Failed, 1),
            ("ping".to_string(), JobState::Queued, 3),
        ]
    );
    assert_eq!(
        q.job(id).await.unwrap().unwrap().last_error.as_deref(),
        Some("bad")
    );
}

/// Several processes open one SQLite file at once and close it again (the service starting while
/// an operator's CLI, or a second replica, comes and goes). Switching a fresh file to WAL, and
/// the last connection's checkpoint on close, take locks SQLite's busy timeout does not wait
/// for: every opener must still get a working queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_opened_and_closed_by_many_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/capstan.db", dir.path().display());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Openers that come and go, as the CLI does.
    let churn: Vec<_> = (0..3)
        .map(|c| {
            let (url, stop) = (url.clone(), stop.clone());
            tokio::spawn(async move {
                let mut opened = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let q = capstan_worker::queue::open(&url)
                        .await
                        .unwrap_or_else(|e| panic!("churning opener {c}: {e:#}"));
                    q.depth().await.unwrap();
                    opened += 1;
                }
                opened
            })
        })
        .collect();
    for i in 0..40 {
        let q = capstan_worker::queue::open(&url)
            .await
            .unwrap_or_else(|e| panic!("opener {i}: {e:#}"));
        q.enqueue(&job("ping", &format!("k{i}"))).await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for c in futures::future::join_all(churn).await {
        assert!(
            c.unwrap() > 0,
            "each churning opener got through at least once"
        );
    }
    let q = capstan_worker::queue::open(&url).await.unwrap();
    assert_eq!(
        q.depth().await.unwrap(),
        vec![("ping".to_string(), JobState::Queued, 40)]
    );
}

fn command(number: u64, comment_id: u64) -> NewJob {
    Command {
        repo: "acme/gitops".into(),
        number,
        comment_id,
        comment_version: "v1".into(),
        author: "alice".into(),
        author_association: Some("MEMBER".into()),
        lines: vec!["/capstan diff".into()],
        installation_id: None,
        written_at: None,
        default_branch: Some("main".into()),
    }
    .into_job()
}

/// The acceptance case of per-PR ordering across replicas: a command held open on one replica
/// makes the other wait for that pull request while it serves other pull requests, and the
/// commands of a pull request run in the order they were queued.
async fn commands_of_one_pr_run_one_at_a_time_in_the_order_written(b: &Backend) {
    // A second handle on the same database: another replica.
    let other = capstan_worker::queue::open(&b.url).await.unwrap();
    let (one, two) = (&b.queue, &other);
    let kinds = kinds(&["command"]);
    let first = one.enqueue(&command(7, 1)).await.unwrap().unwrap();
    let second = one.enqueue(&command(7, 2)).await.unwrap().unwrap();
    let third = one.enqueue(&command(7, 3)).await.unwrap().unwrap();
    let elsewhere = one.enqueue(&command(8, 1)).await.unwrap().unwrap();

    let held = one.claim("r1", &kinds, LEASE).await.unwrap().unwrap();
    assert_eq!(held.job.id, first);
    let served = two.claim("r2", &kinds, LEASE).await.unwrap().unwrap();
    assert_eq!(
        served.job.id, elsewhere,
        "the other replica serves other PRs"
    );
    assert!(
        two.claim("r2", &kinds, LEASE).await.unwrap().is_none(),
        "and waits for PR 7 while its first command runs"
    );
    // A failed attempt to be retried keeps its place: it runs again before the later commands.
    assert!(
        one.finish(
            first,
            "r1",
            1,
            &Finish::Retry {
                error: "flaky".into(),
                run_after: now_ms(),
            }
        )
        .await
        .unwrap()
    );
    let again = two.claim("r2", &kinds, LEASE).await.unwrap().unwrap();
    assert_eq!(again.job.id, first);
    assert!(one.claim("r1", &kinds, LEASE).await.unwrap().is_none());
    assert!(
        two.finish(first, "r2", 2, &Finish::Succeeded)
            .await
            .unwrap()
    );
    let next = one.claim("r1", &kinds, LEASE).await.unwrap().unwrap();
    assert_eq!(next.job.id, second);
    assert!(two.claim("r2", &kinds, LEASE).await.unwrap().is_none());
    assert!(
        one.finish(second, "r1", 1, &Finish::Succeeded)
            .await
            .unwrap()
    );
    let last = two.claim("r2", &kinds, LEASE).await.unwrap().unwrap();
    assert_eq!(last.job.id, third);
}

/// Many claimers on two replicas over a few pull requests: never two commands of one pull
/// request running at once, and each pull request's commands claimed in queued order.
async fn two_replicas_never_run_two_commands_of_one_pr_at_once(b: &Backend) {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    let replicas = [
        b.queue.clone(),
        capstan_worker::queue::open(&b.url).await.unwrap(),
    ];
    let mut queued: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for comment in 1..=6u64 {
        for pr in 1..=4u64 {
            let id = b
                .queue
                .enqueue(&command(pr, comment))
                .await
                .unwrap()
                .unwrap();
            queued.entry(pr).or_default().push(id);
        }
    }
    let running: Arc<Mutex<BTreeMap<u64, usize>>> = Arc::default();
    let claimed: Arc<Mutex<BTreeMap<u64, Vec<i64>>>> = Arc::default();
    let overlaps = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..8 {
        let q = replicas[w % 2].clone();
        let (running, claimed, overlaps) = (running.clone(), claimed.clone(), overlaps.clone());
        workers.push(tokio::spawn(async move {
            let name = format!("w{w}");
            let mut idle = 0;
            while idle < 50 {
                let Some(c) = q.claim(&name, &kinds(&["command"]), LEASE).await.unwrap() else {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                idle = 0;
                let pr = c.job.payload["number"].as_u64().unwrap();
                {
                    let mut r = running.lock().unwrap();
                    let n = r.entry(pr).or_default();
                    *n += 1;
                    if *n > 1 {
                        overlaps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                claimed
                    .lock()
                    .unwrap()
                    .entry(pr)
                    .or_default()
                    .push(c.job.id);
                tokio::time::sleep(Duration::from_millis(3)).await;
                *running.lock().unwrap().get_mut(&pr).unwrap() -= 1;
                assert!(
                    q.finish(c.job.id, &name, c.job.attempts, &Finish::Succeeded)
                        .await
                        .unwrap()
                );
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(overlaps.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(
        *claimed.lock().unwrap(),
        queued,
        "every command, in queued order per PR"
    );
}
