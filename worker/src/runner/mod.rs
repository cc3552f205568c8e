//! The job loop: N workers claim jobs with a lease, keep it alive with heartbeats while the
//! handler runs, and finish the attempt (success, retry with backoff, failure, dead, superseded).
//!
//! Handlers are registered per job kind in a [`Registry`]; a worker only claims kinds it can run,
//! so a process built without a handler leaves those jobs for one that has it. On shutdown the
//! workers stop claiming, give running handlers `shutdown_grace` to finish, then abort them and
//! release their jobs back to the queue (the attempt is not counted).

pub mod metrics;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::Rng;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

pub use metrics::Metrics;

use crate::queue::{Claimed, Finish, Heartbeat, Job, Queue, now_ms};
use crate::retry::{Classify, Retry};

/// How a handler failed (see [`crate::retry`] for the policy, [`finish_for`] for the outcome).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth retrying (network, store hiccup): retried with backoff until `max_attempts`, then
    /// `dead`.
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
    /// An upstream asked for a wait: retried once `wait` has passed (with backoff when it named
    /// none), until `max_attempts`, then `dead`.
    #[error("rate limited: {error:#}")]
    RateLimited {
        error: anyhow::Error,
        wait: Option<Duration>,
    },
    /// Retrying cannot help (bad input, refused by policy): `failed` at once.
    #[error("{0:#}")]
    Permanent(anyhow::Error),
    /// The handler saw [`JobContext::should_stop`] and stopped at a step boundary.
    #[error("stopped before finishing")]
    Stopped,
}

/// An injected failure (test builds) is transient, as the store or network failure it stands for.
impl From<crate::failpoint::Injected> for JobError {
    fn from(e: crate::failpoint::Injected) -> Self {
        JobError::Transient(e.into())
    }
}

impl JobError {
    /// A domain error, retried or not as it says; its source chain is kept.
    pub fn from_error<E>(e: E) -> Self
    where
        E: Classify + std::error::Error + Send + Sync + 'static,
    {
        let retry = e.retry();
        Self::with_retry(retry, anyhow::Error::new(e))
    }

    /// `error` (a domain error with context added) as the kind `retry` says.
    pub fn with_retry(retry: Retry, error: anyhow::Error) -> Self {
        match retry {
            Retry::Transient => JobError::Transient(error),
            Retry::RateLimited { wait } => JobError::RateLimited { error, wait },
            Retry::Permanent => JobError::Permanent(error),
        }
    }
}

/// The one place a handler's result becomes the job's outcome: transient errors and rate
/// limits are retried (after the backoff or the wait asked for) until the job's attempts run
/// out, permanent errors fail the job at once. `now` is Unix ms.
pub fn finish_for(
    result: Result<(), JobError>,
    job: &Job,
    superseded: bool,
    config: &RunnerConfig,
    now: i64,
) -> Finish {
    let retry_at = |error: anyhow::Error, wait: Option<Duration>| {
        if job.attempts >= job.max_attempts {
            return Finish::Dead {
                error: format!(
                    "{error:#} (attempt {} of {})",
                    job.attempts, job.max_attempts
                ),
            };
        }
        let delay =
            wait.unwrap_or_else(|| backoff(job.attempts, config.backoff_base, config.backoff_max));
        Finish::Retry {
            error: format!("{error:#}"),
            run_after: now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
        }
    };
    match result {
        Ok(()) => Finish::Succeeded,
        Err(JobError::Stopped) if superseded => Finish::Superseded,
        Err(JobError::Stopped) => Finish::Cancelled {
            reason: "handler stopped".into(),
        },
        Err(JobError::Transient(e)) => retry_at(e, None),
        Err(JobError::RateLimited { error, wait }) => retry_at(error, wait),
        Err(JobError::Permanent(e)) => Finish::Failed {
            error: format!("{e:#}"),
        },
    }
}

/// What a handler gets: the job and a stop signal (superseded by a newer head, or shutdown).
#[derive(Clone)]
pub struct JobContext {
    pub job: Job,
    pub queue: Arc<dyn Queue>,
    stop: CancellationToken,
}

impl JobContext {
    pub fn new(job: Job, queue: Arc<dyn Queue>, stop: CancellationToken) -> Self {
        JobContext { job, queue, stop }
    }

    /// Check between steps; return [`JobError::Stopped`] when true.
    pub fn should_stop(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Resolves when the job should stop.
    pub async fn stopped(&self) {
        self.stop.cancelled().await
    }

    /// Decode the payload into the job kind's struct; a mismatch is a permanent failure.
    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(self.job.payload.clone()).map_err(|e| {
            JobError::Permanent(anyhow::anyhow!(
                "job {} ({}): payload does not decode: {e}",
                self.job.id,
                self.job.kind
            ))
        })
    }
}

/// Runs jobs of one kind from their raw payload (tests and probes; the service's handlers are
/// [`JobHandler`]s).
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn run(&self, ctx: JobContext) -> Result<(), JobError>;
}

/// A job kind: the name it is queued under and its payload, tied together so a handler can never
/// be registered under one kind and decode another's payload.
pub trait JobKind: serde::de::DeserializeOwned + Send + Sync + 'static {
    const NAME: &'static str;
}

/// Runs jobs of kind `J`, given the decoded payload (one that does not decode fails the job for
/// good before the handler runs).
#[async_trait]
pub trait JobHandler<J: JobKind>: Send + Sync + 'static {
    async fn run(&self, ctx: JobContext, job: J) -> Result<(), JobError>;
}

/// A [`JobHandler`] seen as a raw [`Handler`].
struct Typed<J, H> {
    handler: H,
    kind: std::marker::PhantomData<fn() -> J>,
}

#[async_trait]
impl<J: JobKind, H: JobHandler<J>> Handler for Typed<J, H> {
    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        let job: J = ctx.payload()?;
        self.handler.run(ctx, job).await
    }
}

/// Handlers by job kind.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<String, Arc<dyn Handler>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Register (or replace) the handler of job kind `J`, under `J::NAME`.
    pub fn register<J: JobKind>(&mut self, handler: impl JobHandler<J>) -> &mut Self {
        self.register_raw(
            J::NAME,
            Typed {
                handler,
                kind: std::marker::PhantomData,
            },
        )
    }

    /// Register (or replace) a handler of raw payloads under `kind`.
    pub fn register_raw(&mut self, kind: &str, handler: impl Handler) -> &mut Self {
        self.handlers.insert(kind.to_string(), Arc::new(handler));
        self
    }

    pub fn kinds(&self) -> Vec<String> {
        self.handlers.keys().cloned().collect()
    }

    pub fn get(&self, kind: &str) -> Option<Arc<dyn Handler>> {
        self.handlers.get(kind).cloned()
    }
}

/// Tuning of the job loop.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// Concurrent workers in this process.
    pub workers: usize,
    /// Lease length; heartbeats renew it every third of it.
    pub lease: Duration,
    /// Idle poll interval (intake in the same process wakes workers at once).
    pub poll_interval: Duration,
    /// First retry delay; doubled per attempt, capped at `backoff_max`, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long running handlers may keep going after shutdown starts.
    pub shutdown_grace: Duration,
    /// Identity of this process in lease owners (`<name>/<worker index>`).
    pub name: String,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            workers: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2),
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(500),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(30),
            name: format!(
                "capstan-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ),
        }
    }
}

/// Delay before retry number `attempt` (1-based): exponential, capped, with jitter in
/// [half, full] so a burst of failures does not retry in lockstep.
pub fn backoff(attempt: i32, base: Duration, max: Duration) -> Duration {
    let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = base.saturating_mul(2u32.saturating_pow(exp)).min(max);
    let half = full / 2;
    let jitter = rand::rng().random_range(0..=ms_u64(full - half));
    half + Duration::from_millis(jitter)
}

fn ms_u64(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The job loop of one process.
pub struct Runner {
    queue: Arc<dyn Queue>,
    registry: Arc<Registry>,
    config: RunnerConfig,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
}

impl Runner {
    pub fn new(
        queue: Arc<dyn Queue>,
        registry: Registry,
        config: RunnerConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Runner {
            queue,
            registry: Arc::new(registry),
            config,
            metrics,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Notify this to make idle workers look for work now (the intake does after a commit).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Run until `shutdown` is cancelled and every worker has finished or released its job.
    pub async fn run(self, shutdown: CancellationToken) {
        let kinds = self.registry.kinds();
        info!(
            workers = self.config.workers,
            kinds = ?kinds,
            backend = self.queue.backend(),
            "job runner started"
        );
        let this = Arc::new(self);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..this.config.workers.max(1) {
            let this = this.clone();
            let shutdown = shutdown.clone();
            let kinds = kinds.clone();
            let worker = format!("{}/{i}", this.config.name);
            tasks.spawn(async move { this.worker_loop(worker, kinds, shutdown).await });
        }
        while let Some(res) = tasks.join_next().await {
            if let Err(e) = res {
                error!(error = %e, "a worker task ended abnormally");
            }
        }
        info!("job runner stopped");
    }

    async fn worker_loop(&self, worker: String, kinds: Vec<String>, shutdown: CancellationToken) {
        if kinds.is_empty() {
            return;
        }
        while !shutdown.is_cancelled() {
            match self.queue.claim(&worker, &kinds, self.config.lease).await {
                Ok(Some(claimed)) => self.execute(&worker, claimed, &shutdown).await,
                Ok(None) => {
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                        _ = self.wake.notified() => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
                Err(e) => {
                    warn!(%worker, error = %e, "claiming a job failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.poll_interval * 4) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
            }
        }
    }

    async fn execute(&self, worker: &str, claimed: Claimed, shutdown: &CancellationToken) {
        let job = claimed.job;
        let span = info_span!(
            "job",
            job_id = job.id,
            kind = %job.kind,
            attempt = job.attempts,
            delivery_id = job.delivery_id.as_deref().unwrap_or("-"),
            repo = job.payload.get("repo").and_then(|v| v.as_str()).unwrap_or("-"),
            pr = job.payload.get("number").and_then(|v| v.as_u64()),
        );
        async {
            if claimed.reclaimed {
                self.metrics.lease_expired(&job.kind);
                warn!("previous lease expired; job re-claimed");
            }
            let started = Instant::now();
            let finish = self.attempt(worker, &job, shutdown).await;
            let Some(finish) = finish else { return };
            let outcome = finish.outcome();
            match self.queue.finish(job.id, worker, job.attempts, &finish).await {
                Ok(true) => {
                    self.metrics
                        .job_finished(&job.kind, outcome, started.elapsed().as_secs_f64());
                    match finish.error() {
                        Some(error) => warn!(outcome, error, "job attempt finished"),
                        None => info!(outcome, "job attempt finished"),
                    }
                }
                Ok(false) => warn!(outcome, "lease lost before finishing; result dropped"),
                Err(e) => error!(outcome, error = %e, "recording the job result failed; the lease will expire and the job run again"),
            }
        }
        .instrument(span)
        .await
    }

    /// Run one attempt. `None` means nothing is to be written (lease lost, or released).
    async fn attempt(
        &self,
        worker: &str,
        job: &Job,
        shutdown: &CancellationToken,
    ) -> Option<Finish> {
        if job.cancel_requested {
            return Some(Finish::Superseded);
        }
        if job.attempts > job.max_attempts {
            return Some(Finish::Dead {
                error: format!(
                    "gave up after {} attempts (the last ones lost their lease)",
                    job.max_attempts
                ),
            });
        }
        let Some(handler) = self.registry.get(&job.kind) else {
            return Some(Finish::Failed {
                error: format!("no handler registered for job kind {:?}", job.kind),
            });
        };
        let stop = CancellationToken::new();
        let ctx = JobContext::new(job.clone(), self.queue.clone(), stop.clone());
        let mut task = tokio::spawn(
            async move {
                crate::failpoint::hit(crate::failpoint::HOLDING_JOB_LEASE)?;
                handler.run(ctx).await
            }
            .instrument(tracing::Span::current()),
        );
        let beat_every = (self.config.lease / 3).max(Duration::from_millis(50));
        let mut beat =
            tokio::time::interval_at(tokio::time::Instant::now() + beat_every, beat_every);
        let mut superseded = false;
        let grace = self.config.shutdown_grace;
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::pin!(deadline);
        let result = loop {
            tokio::select! {
                res = &mut task => break res,
                _ = beat.tick() => {
                    match self.queue.heartbeat(job.id, worker, job.attempts, self.config.lease).await {
                        Ok(Heartbeat::Held { stop: true }) if !superseded => {
                            info!("superseded by a newer job; asking the handler to stop");
                            superseded = true;
                            stop.cancel();
                        }
                        Ok(Heartbeat::Held { .. }) => {}
                        Ok(Heartbeat::Lost) => {
                            warn!("lease lost to another worker; abandoning this attempt");
                            task.abort();
                            return None;
                        }
                        Err(e) => warn!(error = %e, "heartbeat failed; will retry"),
                    }
                }
                _ = &mut deadline => {
                    warn!(grace_secs = grace.as_secs(), "shutdown grace period over; releasing the job");
                    stop.cancel();
                    task.abort();
                    match self.queue.release(job.id, worker, job.attempts).await {
                        Ok(_) => {}
                        Err(e) => warn!(error = %e, "releasing failed; the lease will expire instead"),
                    }
                    return None;
                }
            }
        };
        Some(match result {
            Ok(result) => finish_for(result, job, superseded, &self.config, now_ms()),
            Err(join) if join.is_panic() => Finish::Failed {
                error: "the handler panicked".into(),
            },
            Err(_) => Finish::Cancelled {
                reason: "the handler task was cancelled".into(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn job(attempts: i32, max_attempts: i32) -> Job {
        Job {
            id: 1,
            kind: "pr_check".into(),
            dedupe_key: "k".into(),
            supersede_key: None,
            delivery_id: None,
            payload: serde_json::Value::Null,
            state: crate::queue::JobState::Running,
            attempts,
            max_attempts,
            run_after: 0,
            lease_owner: None,
            lease_expires_at: None,
            cancel_requested: false,
            last_error: None,
            created_at: 0,
            updated_at: 0,
            finished_at: None,
        }
    }

    fn config() -> RunnerConfig {
        RunnerConfig {
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(600),
            ..RunnerConfig::default()
        }
    }

    const NOW: i64 = 1_000_000;

    fn forge(e: crate::forge::ForgeError) -> Result<(), JobError> {
        Err(JobError::from_error(e))
    }

    #[test]
    fn transient_errors_retry_with_backoff() {
        let e = crate::forge::ForgeError::Other {
            repo: "a/b".into(),
            message: "502 Bad Gateway".into(),
        };
        match finish_for(forge(e), &job(2, 5), false, &config(), NOW) {
            // Attempt 2: backoff between half and all of twice the base.
            Finish::Retry { error, run_after } => {
                assert!(
                    (NOW + 10_000..=NOW + 20_000).contains(&run_after),
                    "{run_after}"
                );
                assert!(error.contains("502 Bad Gateway"), "{error}");
            }
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn rate_limits_retry_after_the_wait_they_asked_for() {
        let limited = |wait| crate::forge::ForgeError::RateLimited {
            repo: "a/b".into(),
            retry_after: wait,
            message: "secondary rate limit".into(),
        };
        let wait = Some(Duration::from_secs(1234));
        assert_eq!(
            finish_for(forge(limited(wait)), &job(1, 5), false, &config(), NOW),
            Finish::Retry {
                error:
                    "a/b: rate limited by the forge (retry after Some(1234s)): secondary rate limit"
                        .into(),
                run_after: NOW + 1_234_000,
            }
        );
        // Without a wait named, the backoff decides.
        match finish_for(forge(limited(None)), &job(1, 5), false, &config(), NOW) {
            Finish::Retry { run_after, .. } => {
                assert!(
                    (NOW + 5_000..=NOW + 10_000).contains(&run_after),
                    "{run_after}"
                )
            }
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn permanent_errors_fail_at_once() {
        let e = crate::forge::ForgeError::NotFound { repo: "a/b".into() };
        assert_eq!(
            finish_for(forge(e), &job(1, 5), false, &config(), NOW),
            Finish::Failed {
                error: "a/b: not found on the forge".into()
            }
        );
        let name = crate::git::RepoName::parse("../x").unwrap_err();
        assert!(matches!(
            finish_for(
                Err(JobError::from_error(name)),
                &job(1, 5),
                false,
                &config(),
                NOW
            ),
            Finish::Failed { .. }
        ));
    }

    #[test]
    fn retries_end_dead_when_the_attempts_run_out() {
        let e = || crate::forge::ForgeError::Other {
            repo: "a/b".into(),
            message: "timeout".into(),
        };
        match finish_for(forge(e()), &job(5, 5), false, &config(), NOW) {
            Finish::Dead { error } => assert!(error.contains("attempt 5 of 5"), "{error}"),
            other => panic!("expected dead, got {other:?}"),
        }
        let limited = crate::forge::ForgeError::RateLimited {
            repo: "a/b".into(),
            retry_after: Some(Duration::from_secs(1)),
            message: "x".into(),
        };
        assert!(matches!(
            finish_for(forge(limited), &job(5, 5), false, &config(), NOW),
            Finish::Dead { .. }
        ));
    }

    /// Counts the pings it is handed.
    struct Pings(Arc<std::sync::atomic::AtomicUsize>);

    #[async_trait]
    impl JobHandler<crate::jobs::Ping> for Pings {
        async fn run(&self, _ctx: JobContext, ping: crate::jobs::Ping) -> Result<(), JobError> {
            assert_eq!(ping.delivery_id, "d-1");
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn handlers_are_registered_under_their_jobs_name_and_get_its_payload() {
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut registry = Registry::new();
        registry.register::<crate::jobs::Ping>(Pings(seen.clone()));
        assert_eq!(registry.kinds(), vec![crate::jobs::PING.to_string()]);
        let handler = registry.get(crate::jobs::PING).unwrap();
        let queue = crate::queue::open("sqlite::memory:").await.unwrap();
        let ctx = |payload| {
            let mut j = job(1, 5);
            j.kind = crate::jobs::PING.into();
            j.payload = payload;
            JobContext::new(j, queue.clone(), CancellationToken::new())
        };
        let ping =
            serde_json::json!({"delivery_id": "d-1", "hook_id": 7, "zen": null, "repo": null});
        handler.run(ctx(ping)).await.unwrap();
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Another kind's payload never reaches the handler: the job fails for good.
        let other = serde_json::json!({"repo": "a/b", "number": 1});
        let err = handler.run(ctx(other)).await.unwrap_err();
        assert!(matches!(err, JobError::Permanent(_)), "{err}");
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn a_stopped_handler_is_superseded_or_cancelled() {
        assert_eq!(
            finish_for(Err(JobError::Stopped), &job(1, 5), true, &config(), NOW),
            Finish::Superseded
        );
        assert!(matches!(
            finish_for(Err(JobError::Stopped), &job(1, 5), false, &config(), NOW),
            Finish::Cancelled { .. }
        ));
        assert_eq!(
            finish_for(Ok(()), &job(1, 5), false, &config(), NOW),
            Finish::Succeeded
        );
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(60);
        for _ in 0..50 {
            let first = backoff(1, base, max);
            assert!(
                first >= Duration::from_secs(1) && first <= base,
                "{first:?}"
            );
            let third = backoff(3, base, max);
            assert!(third >= Duration::from_secs(4) && third <= Duration::from_secs(8));
            let late = backoff(40, base, max);
            assert!(late >= Duration::from_secs(30) && late <= max, "{late:?}");
        }
        let samples: std::collections::BTreeSet<_> =
            (0..50).map(|_| backoff(5, base, max)).collect();
        assert!(samples.len() > 1, "jitter must vary the delay");
    }
}
