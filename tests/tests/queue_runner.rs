//! The job runner over both backends: retries, dead letters, lease-expiry reclaim, superseding,
//! graceful shutdown.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use capstan_tests::backend::Backend;
use capstan_tests::both_backends;
use capstan_worker::jobs::PrCheck;
use capstan_worker::queue::{JobId, JobState, NewJob, Queue};
use capstan_worker::runner::{
    Handler, JobContext, JobError, Metrics, Registry, Runner, RunnerConfig,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

both_backends!(
    runs_jobs_and_records_each_attempt,
    two_runners_share_one_queue_without_double_runs,
    transient_errors_back_off_then_go_dead,
    permanent_errors_and_panics_fail_at_once,
    dead_workers_job_is_reclaimed_after_its_lease_expires,
    a_job_that_keeps_killing_its_worker_goes_dead,
    newer_head_stops_the_running_check,
    shutdown_lets_running_jobs_finish,
    shutdown_releases_jobs_that_overrun_the_grace_period,
);

fn config(workers: usize) -> RunnerConfig {
    RunnerConfig {
        workers,
        lease: Duration::from_millis(600),
        poll_interval: Duration::from_millis(20),
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        shutdown_grace: Duration::from_secs(5),
        ..RunnerConfig::default()
    }
}

/// Counts runs; fails according to `mode`.
#[derive(Clone)]
struct Probe {
    runs: Arc<AtomicUsize>,
    mode: &'static str,
}

impl Probe {
    fn new(mode: &'static str) -> Self {
        Probe {
            runs: Arc::new(AtomicUsize::new(0)),
            mode,
        }
    }
}

#[async_trait]
impl Handler for Probe {
    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        match self.mode {
            "ok" => Ok(()),
            "transient" => Err(JobError::Transient(anyhow::anyhow!("upstream 502"))),
            "permanent" => Err(JobError::Permanent(anyhow::anyhow!("bad input"))),
            "panic" => panic!("handler bug"),
            "slow" => {
                tokio::time::sleep(Duration::from_millis(400)).await;
                Ok(())
            }
            "forever" => {
                ctx.stopped().await;
                // Ignores the stop request, like a handler stuck in a long call.
                std::future::pending::<()>().await;
                Ok(())
            }
            "until_stopped" => {
                ctx.stopped().await;
                Err(JobError::Stopped)
            }
            other => panic!("unknown mode {other}"),
        }
    }
}

/// Start a runner in the background; returns its shutdown token and join handle.
fn start(
    q: &Arc<dyn Queue>,
    registry: Registry,
    cfg: RunnerConfig,
    metrics: Arc<Metrics>,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let runner = Runner::new(q.clone(), registry, cfg, metrics);
    let token = shutdown.clone();
    (shutdown, tokio::spawn(runner.run(token)))
}

/// Poll until the job reaches `state` (bounded; the bound is a hang guard, not a timing claim).
async fn wait_for(q: &Arc<dyn Queue>, id: JobId, state: JobState) {
    for _ in 0..1000 {
        if q.job(id).await.unwrap().unwrap().state == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "job {id} never reached {state}: {:?}",
        q.job(id).await.unwrap()
    );
}

fn ping_job(key: &str) -> NewJob {
    NewJob::new("probe", key, json!({"repo": "acme/gitops"}))
}

async fn runs_jobs_and_records_each_attempt(b: &Backend) {
    let q = &b.queue;
    let probe = Probe::new("ok");
    let mut reg = Registry::new();
    reg.register_raw("probe", probe.clone());
    let metrics = Arc::new(Metrics::new());
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            q.enqueue(&ping_job(&format!("k{i}")))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let (stop, handle) = start(q, reg, config(3), metrics.clone());
    for id in &ids {
        wait_for(q, *id, JobState::Succeeded).await;
    }
    stop.cancel();
    handle.await.unwrap();
    assert_eq!(probe.runs.load(Ordering::SeqCst), 20);
    for id in ids {
        assert_eq!(q.job_runs(id).await.unwrap().len(), 1);
    }
    assert!(
        metrics
            .render(None)
            .contains("capstan_jobs_total{kind=\"probe\",outcome=\"succeeded\"} 20")
    );
}

async fn transient_errors_back_off_then_go_dead(b: &Backend) {
    let q = &b.queue;
    let probe = Probe::new("transient");
    let mut reg = Registry::new();
    reg.register_raw("probe", probe.clone());
    let id = q
        .enqueue(&ping_job("flaky").max_attempts(3))
        .await
        .unwrap()
        .unwrap();
    let (stop, handle) = start(q, reg, config(1), Arc::new(Metrics::new()));
    wait_for(q, id, JobState::Dead).await;
    stop.cancel();
    handle.await.unwrap();
    let runs = q.job_runs(id).await.unwrap();
    let outcomes: Vec<_> = runs.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "retry", "dead"]);
    assert_eq!(probe.runs.load(Ordering::SeqCst), 3);
    let job = q.job(id).await.unwrap().unwrap();
    assert!(job.last_error.unwrap().contains("upstream 502"));
}

async fn permanent_errors_and_panics_fail_at_once(b: &Backend) {
    let q = &b.queue;
    let mut reg = Registry::new();
    reg.register_raw("permanent", Probe::new("permanent"));
    reg.register_raw("panics", Probe::new("panic"));
    let a = q
        .enqueue(&NewJob::new("permanent", "p", json!({})))
        .await
        .unwrap()
        .unwrap();
    let c = q
        .enqueue(&NewJob::new("panics", "x", json!({})))
        .await
        .unwrap()
        .unwrap();
    let (stop, handle) = start(q, reg, config(2), Arc::new(Metrics::new()));
    wait_for(q, a, JobState::Failed).await;
    wait_for(q, c, JobState::Failed).await;
    stop.cancel();
    handle.await.unwrap();
    assert_eq!(q.job_runs(a).await.unwrap().len(), 1);
    let panicked = q.job(c).await.unwrap().unwrap();
    assert!(panicked.last_error.unwrap().contains("panicked"));
}

async fn dead_workers_job_is_reclaimed_after_its_lease_expires(b: &Backend) {
    let q = &b.queue;
    let id = q.enqueue(&ping_job("orphan")).await.unwrap().unwrap();
    // A worker claims it and dies: no heartbeat, no finish.
    q.claim(
        "crashed-worker",
        &["probe".to_string()],
        Duration::from_millis(200),
    )
    .await
    .unwrap()
    .unwrap();
    let probe = Probe::new("ok");
    let mut reg = Registry::new();
    reg.register_raw("probe", probe.clone());
    let metrics = Arc::new(Metrics::new());
    let (stop, handle) = start(q, reg, config(1), metrics.clone());
    wait_for(q, id, JobState::Succeeded).await;
    stop.cancel();
    handle.await.unwrap();
    assert_eq!(probe.runs.load(Ordering::SeqCst), 1);
    let runs = q.job_runs(id).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].attempt, 2);
    assert_ne!(runs[0].worker, "crashed-worker");
    assert!(
        metrics
            .render(None)
            .contains("capstan_job_lease_expiries_total{kind=\"probe\"} 1")
    );
}

async fn newer_head_stops_the_running_check(b: &Backend) {
    let q = &b.queue;
    let check = |sha: &str| {
        PrCheck {
            repo: "acme/gitops".into(),
            number: 4,
            head_sha: sha.into(),
            head_ref: None,
            base_ref: None,
            installation_id: None,
            trigger: "test".into(),
            sender: None,
        }
        .into_job()
    };
    let mut reg = Registry::new();
    reg.register_raw("pr_check", Probe::new("until_stopped"));
    let old = q.enqueue(&check("old")).await.unwrap().unwrap();
    let cfg = RunnerConfig {
        shutdown_grace: Duration::from_millis(50),
        ..config(2)
    };
    let (stop, handle) = start(q, reg, cfg, Arc::new(Metrics::new()));
    wait_for(q, old, JobState::Running).await;
    let new = q.enqueue(&check("new")).await.unwrap().unwrap();
    wait_for(q, old, JobState::Superseded).await;
    // The new head runs next (and waits for its own stop signal, which never comes).
    wait_for(q, new, JobState::Running).await;
    assert_eq!(q.job_runs(old).await.unwrap()[0].outcome, "superseded");
    stop.cancel();
    handle.await.unwrap();
}

async fn shutdown_lets_running_jobs_finish(b: &Backend) {
    let q = &b.queue;
    let probe = Probe::new("slow");
    let mut reg = Registry::new();
    reg.register_raw("probe", probe.clone());
    let running = q.enqueue(&ping_job("slow-1")).await.unwrap().unwrap();
    let (stop, handle) = start(q, reg, config(1), Arc::new(Metrics::new()));
    wait_for(q, running, JobState::Running).await;
    let waiting = q.enqueue(&ping_job("slow-2")).await.unwrap().unwrap();
    stop.cancel();
    handle.await.unwrap();
    // The running job finished; nothing new was claimed after the signal.
    assert_eq!(
        q.job(running).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
    assert_eq!(
        q.job(waiting).await.unwrap().unwrap().state,
        JobState::Queued
    );
    assert_eq!(probe.runs.load(Ordering::SeqCst), 1);
}

async fn shutdown_releases_jobs_that_overrun_the_grace_period(b: &Backend) {
    let q = &b.queue;
    let mut reg = Registry::new();
    reg.register_raw("probe", Probe::new("forever"));
    let id = q.enqueue(&ping_job("stuck")).await.unwrap().unwrap();
    let cfg = RunnerConfig {
        shutdown_grace: Duration::from_millis(100),
        ..config(1)
    };
    let (stop, handle) = start(q, reg, cfg, Arc::new(Metrics::new()));
    wait_for(q, id, JobState::Running).await;
    stop.cancel();
    handle.await.unwrap();
    let job = q.job(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Queued, 0));
    assert!(job.lease_owner.is_none());
}

async fn a_job_that_keeps_killing_its_worker_goes_dead(b: &Backend) {
    let q = &b.queue;
    let id = q
        .enqueue(&ping_job("poison").max_attempts(1))
        .await
        .unwrap()
        .unwrap();
    // Its only allowed attempt died with the worker.
    q.claim(
        "crashed-worker",
        &["probe".to_string()],
        Duration::from_millis(100),
    )
    .await
    .unwrap()
    .unwrap();
    let probe = Probe::new("ok");
    let mut reg = Registry::new();
    reg.register_raw("probe", probe.clone());
    let (stop, handle) = start(q, reg, config(1), Arc::new(Metrics::new()));
    wait_for(q, id, JobState::Dead).await;
    stop.cancel();
    handle.await.unwrap();
    assert_eq!(
        probe.runs.load(Ordering::SeqCst),
        0,
        "not run again past max_attempts"
    );
    let job = q.job(id).await.unwrap().unwrap();
    assert!(job.last_error.unwrap().contains("lost their lease"));
}

/// Two processes' runners (as with several replicas) on one store: every job runs exactly once.
async fn two_runners_share_one_queue_without_double_runs(b: &Backend) {
    let q = &b.queue;
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(
            q.enqueue(&ping_job(&format!("shared-{i}")))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let probes = [Probe::new("ok"), Probe::new("ok")];
    let mut handles = Vec::new();
    for (n, probe) in probes.iter().enumerate() {
        let mut reg = Registry::new();
        reg.register_raw("probe", probe.clone());
        let cfg = RunnerConfig {
            name: format!("replica-{n}"),
            ..config(3)
        };
        handles.push(start(q, reg, cfg, Arc::new(Metrics::new())));
    }
    for id in &ids {
        wait_for(q, *id, JobState::Succeeded).await;
    }
    for (stop, handle) in handles {
        stop.cancel();
        handle.await.unwrap();
    }
    let total: usize = probes.iter().map(|p| p.runs.load(Ordering::SeqCst)).sum();
    assert_eq!(total, ids.len());
    for id in ids {
        let runs = q.job_runs(id).await.unwrap();
        assert_eq!(runs.len(), 1, "job {id}: {runs:?}");
    }
}
