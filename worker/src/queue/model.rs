//! The queue's records, shared by both backends.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::QueueError;

pub type JobId = i64;

/// Lifecycle of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    /// Failed permanently (a non-retryable error).
    Failed,
    /// Replaced by a job for a newer head of the same PR.
    Superseded,
    Cancelled,
    /// Retryable failures exhausted `max_attempts`.
    Dead,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Superseded,
        JobState::Cancelled,
        JobState::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Superseded => "superseded",
            JobState::Cancelled => "cancelled",
            JobState::Dead => "dead",
        }
    }

    /// A job in this state will not run again.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown job state {s:?}"))
    }
}

/// A job to insert.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    pub kind: String,
    /// At most one queued-or-running job exists per dedupe key.
    pub dedupe_key: String,
    /// Jobs sharing this key (one PR) supersede each other: inserting a job marks queued jobs with
    /// the same supersede key and another dedupe key `superseded`, and asks running ones to stop.
    pub supersede_key: Option<String>,
    /// Jobs sharing this key (the commands of one PR) run one at a time, in queued order, on
    /// whichever replica: none supersedes another.
    pub order_key: Option<String>,
    pub payload: serde_json::Value,
    pub max_attempts: i32,
    /// Not before this time (Unix ms); `None` = now.
    pub run_after: Option<i64>,
}

impl NewJob {
    pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;

    pub fn new(kind: &str, dedupe_key: impl Into<String>, payload: serde_json::Value) -> Self {
        NewJob {
            kind: kind.to_string(),
            dedupe_key: dedupe_key.into(),
            supersede_key: None,
            order_key: None,
            payload,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            run_after: None,
        }
    }

    pub fn superseding(mut self, key: impl Into<String>) -> Self {
        self.supersede_key = Some(key.into());
        self
    }

    pub fn ordered(mut self, key: impl Into<String>) -> Self {
        self.order_key = Some(key.into());
        self
    }

    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = n.max(1);
        self
    }
}

/// How the intake classified a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// Produced jobs.
    Accepted,
    /// An event or action Capstan does not act on.
    Ignored,
    /// A valid signature but a payload missing required fields.
    Rejected,
}

impl DeliveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Accepted => "accepted",
            DeliveryOutcome::Ignored => "ignored",
            DeliveryOutcome::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "accepted" => Some(DeliveryOutcome::Accepted),
            "ignored" => Some(DeliveryOutcome::Ignored),
            "rejected" => Some(DeliveryOutcome::Rejected),
            _ => None,
        }
    }
}

/// A delivery to record.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub delivery_id: String,
    pub event: String,
    pub action: Option<String>,
    pub repo: Option<String>,
    pub outcome: DeliveryOutcome,
    pub detail: Option<String>,
}

/// A stored delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DeliveryRecord {
    pub delivery_id: String,
    pub event: String,
    pub action: Option<String>,
    pub repo: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
    pub received_at: i64,
}

/// Result of [`super::Queue::record_delivery`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordOutcome {
    /// First sight of this delivery: stored with these jobs (live duplicates are skipped).
    Stored { job_ids: Vec<JobId> },
    /// Seen before; nothing was written.
    Duplicate { first: DeliveryRecord },
}

/// A job as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Job {
    pub id: JobId,
    pub kind: String,
    pub dedupe_key: String,
    pub supersede_key: Option<String>,
    pub delivery_id: Option<String>,
    pub payload: serde_json::Value,
    pub state: JobState,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_after: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub cancel_requested: bool,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

/// The row as both backends return it; decoded into [`Job`] with validation.
#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    pub id: i64,
    pub kind: String,
    pub dedupe_key: String,
    pub supersede_key: Option<String>,
    pub delivery_id: Option<String>,
    pub payload: String,
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_after: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub claimed_from: Option<String>,
    pub cancel_requested: bool,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

impl JobRow {
    pub(crate) fn into_job(self) -> Result<Job, QueueError> {
        let state = self.state.parse().map_err(|detail| QueueError::Corrupt {
            id: self.id,
            field: "state",
            detail,
        })?;
        let payload = serde_json::from_str(&self.payload).map_err(|e| QueueError::Corrupt {
            id: self.id,
            field: "payload",
            detail: e.to_string(),
        })?;
        Ok(Job {
            id: self.id,
            kind: self.kind,
            dedupe_key: self.dedupe_key,
            supersede_key: self.supersede_key,
            delivery_id: self.delivery_id,
            payload,
            state,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            run_after: self.run_after,
            lease_owner: self.lease_owner,
            lease_expires_at: self.lease_expires_at,
            cancel_requested: self.cancel_requested,
            last_error: self.last_error,
            created_at: self.created_at,
            updated_at: self.updated_at,
            finished_at: self.finished_at,
        })
    }

    pub(crate) fn into_claimed(self) -> Result<Claimed, QueueError> {
        let reclaimed = self.claimed_from.as_deref() == Some("running");
        Ok(Claimed {
            job: self.into_job()?,
            reclaimed,
        })
    }
}

/// A job handed to a worker.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub job: Job,
    /// The previous holder's lease had expired (it crashed or hung).
    pub reclaimed: bool,
}

/// Answer to a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heartbeat {
    /// Lease extended; `stop` when a newer job superseded this one.
    Held { stop: bool },
    /// Someone else holds the job now (our lease expired); stop without writing.
    Lost,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finish {
    Succeeded,
    /// A transient error; queue again not before `run_after` (Unix ms).
    Retry {
        error: String,
        run_after: i64,
    },
    Failed {
        error: String,
    },
    Dead {
        error: String,
    },
    Superseded,
    Cancelled {
        reason: String,
    },
}

impl Finish {
    pub fn state(&self) -> JobState {
        match self {
            Finish::Succeeded => JobState::Succeeded,
            Finish::Retry { .. } => JobState::Queued,
            Finish::Failed { .. } => JobState::Failed,
            Finish::Dead { .. } => JobState::Dead,
            Finish::Superseded => JobState::Superseded,
            Finish::Cancelled { .. } => JobState::Cancelled,
        }
    }

    /// Name recorded in `job_runs.outcome` and in metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Finish::Succeeded => "succeeded",
            Finish::Retry { .. } => "retry",
            Finish::Failed { .. } => "failed",
            Finish::Dead { .. } => "dead",
            Finish::Superseded => "superseded",
            Finish::Cancelled { .. } => "cancelled",
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Finish::Retry { error, .. } | Finish::Failed { error } | Finish::Dead { error } => {
                Some(error)
            }
            Finish::Cancelled { reason } => Some(reason),
            Finish::Succeeded | Finish::Superseded => None,
        }
    }

    pub(crate) fn run_after(&self) -> Option<i64> {
        match self {
            Finish::Retry { run_after, .. } => Some(*run_after),
            _ => None,
        }
    }
}

/// One finished attempt of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct JobRun {
    pub job_id: i64,
    pub attempt: i32,
    pub worker: String,
    pub outcome: String,
    pub error: Option<String>,
    pub finished_at: i64,
}
