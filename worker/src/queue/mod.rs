//! The durable job queue: deliveries and the jobs they produce, leases, retries, superseding.
//!
//! Two backends implement [`Queue`] with the same semantics and the same test suite: SQLite (the
//! embedded default, one file under the data dir, WAL) and PostgreSQL (several replicas claim with
//! `FOR UPDATE SKIP LOCKED`). Times are Unix milliseconds computed by the process, so both
//! backends store and compare the same numbers.
//!
//! Delivery guarantees: a delivery and its jobs are written in one transaction; a job is finished
//! by the holder of its lease only (the lease owner and attempt number fence late writers), and the
//! finishing transaction also appends the attempt to `job_runs`. A worker that dies leaves its
//! lease to expire, and the job is claimed again. Handlers therefore run at least once and finish
//! exactly once; their side effects must be idempotent (DESIGN.md §2).

mod batch_plan;
mod group;
mod model;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

pub use group::GroupCommit;
pub use model::{
    Claimed, DeliveryOutcome, DeliveryRecord, Finish, Heartbeat, Job, JobId, JobRun, JobState,
    NewDelivery, NewJob, RecordOutcome,
};

/// Errors of the queue. Every variant says which operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The database could not be reached or refused the operation; callers answer 503 / retry.
    #[error("queue store unavailable during {op}: {source}")]
    Unavailable {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// The schema migrations could not be applied.
    #[error("applying queue migrations to {backend}: {source}")]
    Migrate {
        backend: &'static str,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// The database URL is not one this build understands.
    #[error("unsupported database URL {url:?}: expected sqlite://PATH or postgres://…")]
    UnsupportedUrl { url: String },
    /// A stored row does not decode (a bug or a foreign write).
    #[error("job {id}: stored {field} is invalid: {detail}")]
    Corrupt {
        id: JobId,
        field: &'static str,
        detail: String,
    },
    /// The delivery was part of a group commit whose transaction failed: nothing of the batch
    /// was stored (the intake answers 503 to every member, and each redelivery stands alone).
    #[error("a batch of {members} deliveries was not stored: {source}")]
    Batch {
        members: usize,
        #[source]
        source: Arc<QueueError>,
    },
    /// The group-commit writer ended before answering (it stopped, or panicked).
    #[error("the delivery writer stopped before the delivery was stored")]
    WriterStopped,
    /// A job payload could not be serialized.
    #[error("encoding the payload of a {kind} job: {source}")]
    Payload {
        kind: String,
        #[source]
        source: serde_json::Error,
    },
}

impl QueueError {
    pub(crate) fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> QueueError {
        move |source| QueueError::Unavailable { op, source }
    }
}

/// The queue contract both backends fulfil.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`, for logs and metrics.
    fn backend(&self) -> &'static str;

    /// The pools behind this queue, for the record stores that share its database.
    fn db(&self) -> crate::store::Db;

    /// Cheap round trip to the store (`/readyz`).
    async fn ping(&self) -> Result<(), QueueError>;

    /// Store a delivery and its jobs in one transaction. A delivery id seen before stores nothing
    /// and reports how the first one ended.
    async fn record_delivery(
        &self,
        delivery: &NewDelivery,
        jobs: &[NewJob],
    ) -> Result<RecordOutcome, QueueError>;

    /// Store several deliveries, each with its jobs, in one transaction (group commit). The
    /// outcomes come back in order and are those of recording them one after another: a delivery
    /// id repeated inside the batch is stored once and the later ones are duplicates. On an
    /// error nothing of the batch is stored.
    async fn record_deliveries(
        &self,
        batch: &[(NewDelivery, Vec<NewJob>)],
    ) -> Result<Vec<RecordOutcome>, QueueError>;

    /// Enqueue one job outside a delivery (recovery, promotions). `None` when a live job with the
    /// same dedupe key already exists.
    async fn enqueue(&self, job: &NewJob) -> Result<Option<JobId>, QueueError>;

    /// Claim the next runnable job of one of `kinds`: a queued job whose `run_after` has passed,
    /// or a running one whose lease expired. Jobs of a PR wait while another job of the same PR
    /// holds a live lease, so per-PR order holds.
    async fn claim(
        &self,
        worker: &str,
        kinds: &[String],
        lease: Duration,
    ) -> Result<Option<Claimed>, QueueError>;

    /// Extend the lease; tells the worker whether it should stop (superseded) or lost the lease.
    async fn heartbeat(
        &self,
        id: JobId,
        worker: &str,
        attempt: i32,
        lease: Duration,
    ) -> Result<Heartbeat, QueueError>;

    /// Finish an attempt. Returns `false` (and changes nothing) when the lease is no longer held.
    async fn finish(
        &self,
        id: JobId,
        worker: &str,
        attempt: i32,
        finish: &Finish,
    ) -> Result<bool, QueueError>;

    /// Give a claimed job back without counting the attempt (graceful shutdown).
    async fn release(&self, id: JobId, worker: &str, attempt: i32) -> Result<bool, QueueError>;

    async fn job(&self, id: JobId) -> Result<Option<Job>, QueueError>;
    async fn jobs_for_delivery(&self, delivery_id: &str) -> Result<Vec<Job>, QueueError>;
    async fn jobs_by_dedupe_key(&self, dedupe_key: &str) -> Result<Vec<Job>, QueueError>;
    async fn job_runs(&self, id: JobId) -> Result<Vec<JobRun>, QueueError>;
    async fn delivery(&self, delivery_id: &str) -> Result<Option<DeliveryRecord>, QueueError>;

    /// Number of jobs per (kind, state), for the queue-depth gauge.
    async fn depth(&self) -> Result<Vec<(String, JobState, i64)>, QueueError>;

    /// Take the lease of the periodic `task` for `period` as `owner`: `true` when this replica
    /// should run the task now, `false` when another replica holds an unexpired lease. The
    /// lease ends slightly before the period so the next tick can take it again.
    async fn take_periodic(
        &self,
        task: &str,
        owner: &str,
        period: Duration,
    ) -> Result<bool, QueueError>;
}

/// When a periodic lease taken now for `period` expires (Unix ms): a tenth early, so the
/// replica's next tick, or another's, finds it free.
pub(crate) fn periodic_expiry(now: i64, period: Duration) -> i64 {
    let ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX);
    now.saturating_add(ms - ms / 10)
}

/// Open the queue named by `url` (`sqlite://PATH`, `sqlite::memory:`, `postgres://…`) and apply
/// the embedded migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Queue>, QueueError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteQueue::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgQueue::open(url).await?))
    } else {
        Err(QueueError::UnsupportedUrl {
            url: redact_url(url),
        })
    }
}

/// The database file a `sqlite:` URL names (`None` for other backends and in-memory
/// databases): read-only commands check it exists rather than let opening create it.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    if !url.starts_with("sqlite:") || url.contains(":memory:") {
        return None;
    }
    let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}

/// A URL with any password replaced, safe for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/capstan"),
            "postgres://app:***@db:5432/capstan"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(redact_url("sqlite://data/c.db"), "sqlite://data/c.db");
    }
}
