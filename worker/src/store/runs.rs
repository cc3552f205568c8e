//! PR runs: one record per pull-request head, with the full report as JSON (the dashboard's
//! `/runs/{id}` page and the link target when a comment is split), and per-PR holds
//! (`/capstan hold`), which keep the check failing until `/capstan unhold`.
//!
//! Every `pr_check` attempt at a head (a job retry, another job for the same head: a
//! redelivery, missed-event recovery, `/capstan diff`) opens the head's run again and is recorded
//! as an attempt inside it. The run reads as its latest attempt: status, error, counts, report,
//! the base it compared. An older attempt that ends after a newer one opened only records its own
//! ending, so the run never goes back to an outcome that is no longer the latest.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Db, StoreError};
use crate::queue::now_ms;
use crate::report::RunReport;

pub type RunId = i64;

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    /// No deny, no render error.
    Success,
    /// A deny finding, a render error or a hold.
    Failure,
    /// Nothing to judge (no app affected).
    Neutral,
    /// A newer head arrived first; nothing was posted for this one.
    Superseded,
    /// The run itself could not finish (git, forge, store); `error` says why.
    Error,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Running,
        RunStatus::Success,
        RunStatus::Failure,
        RunStatus::Neutral,
        RunStatus::Superseded,
        RunStatus::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Failure => "failure",
            RunStatus::Neutral => "neutral",
            RunStatus::Superseded => "superseded",
            RunStatus::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// An attempt being started.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub repo: String,
    pub pr: u64,
    pub head_sha: String,
    /// What asked for it (`pull_request.synchronize`, `command.diff`, `recovery`, …).
    pub trigger: String,
    /// The queue job running it.
    pub job_id: Option<i64>,
}

/// One attempt of a run, as [`RunStore::create_run`] opened it; what the attempt records later
/// names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct AttemptId {
    pub run: RunId,
    /// 1 for the run's first attempt.
    pub attempt: i64,
}

/// A stored attempt of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunAttempt {
    pub attempt: i64,
    pub job_id: Option<i64>,
    pub trigger: String,
    pub status: RunStatus,
    /// Unix milliseconds.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
}

/// How an attempt ended.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub error: Option<String>,
    pub report: Option<RunReport>,
    /// GitHub comment ids of the sticky comment's parts, in part order.
    pub comment_ids: Vec<u64>,
}

/// A stored run. Counts are taken from the report when it is stored.
#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    pub id: RunId,
    pub repo: String,
    pub pr: u64,
    pub head_sha: String,
    /// The base branch tip the latest attempt fetched; `None` until its fetch is done.
    pub base_sha: Option<String>,
    /// The commit the latest attempt's diff compared the head against (the merge base of head
    /// and `base_sha`); `None` until its fetch is done.
    pub merge_base: Option<String>,
    /// The latest attempt's trigger and job.
    pub trigger: String,
    pub job_id: Option<i64>,
    pub status: RunStatus,
    /// When the latest attempt started; Unix milliseconds.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub apps: i64,
    pub denies: i64,
    pub warns: i64,
    pub render_errors: i64,
    pub error: Option<String>,
    pub check_run_id: Option<u64>,
    pub comment_ids: Vec<u64>,
    /// How many attempts the run has had.
    pub attempts: i64,
    /// Every attempt, first first. Only filled by [`RunStore::run`]; listings leave it out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempt_history: Vec<RunAttempt>,
    /// Only filled by [`RunStore::run`]; listings leave it out.
    pub report: Option<RunReport>,
}

impl RunRecord {
    pub fn duration_ms(&self) -> Option<i64> {
        self.finished_at.map(|f| f - self.started_at)
    }
}

/// Which runs to list, newest first (one row per head).
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub repo: Option<String>,
    pub pr: Option<u64>,
    pub status: Option<RunStatus>,
    /// At most this many (0 = 50).
    pub limit: usize,
}

/// A `/capstan hold` in force on a PR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub repo: String,
    pub pr: u64,
    pub held_by: String,
    pub held_at: i64,
}

#[async_trait]
pub trait RunStore: Send + Sync + 'static {
    /// Open the run of this head (creating it, or reopening it when the head has one) and start
    /// a new attempt in it. Concurrent calls for one head end with one run and distinct attempts.
    async fn create_run(&self, run: &NewRun) -> Result<AttemptId, StoreError>;
    async fn set_check_run(&self, at: AttemptId, check_run_id: u64) -> Result<(), StoreError>;
    /// What the attempt compared: the base branch tip it fetched and the merge base its diff used.
    async fn record_base(
        &self,
        at: AttemptId,
        base_sha: &str,
        merge_base: &str,
    ) -> Result<(), StoreError>;
    async fn finish_run(&self, at: AttemptId, outcome: &RunOutcome) -> Result<(), StoreError>;
    /// One run with its report and attempts; a run id from before runs were merged per head
    /// finds the run its attempt now belongs to.
    async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError>;
    /// The check run an attempt of run `id` created, without reading the run's report.
    async fn check_run_id(&self, id: RunId) -> Result<Option<u64>, StoreError>;
    /// Runs without their reports, newest first.
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError>;
    /// The newest finished run of a PR that posted a comment (to find and edit its parts).
    async fn last_posted_run(&self, repo: &str, pr: u64) -> Result<Option<RunRecord>, StoreError>;
    async fn hold(&self, repo: &str, pr: u64) -> Result<Option<Hold>, StoreError>;
    /// Place a hold; an existing hold keeps its first holder. Returns the hold in force.
    async fn set_hold(&self, repo: &str, pr: u64, by: &str) -> Result<Hold, StoreError>;
    /// Lift a hold; `false` when there was none.
    async fn clear_hold(&self, repo: &str, pr: u64) -> Result<bool, StoreError>;
}

/// [`RunStore`] on the queue's database.
#[derive(Clone, Debug)]
pub struct SqlRunStore {
    db: Db,
}

impl SqlRunStore {
    pub fn new(db: Db) -> Self {
        SqlRunStore { db }
    }
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: i64,
    repo: String,
    pr: i64,
    head_sha: String,
    base_sha: Option<String>,
    merge_base: Option<String>,
    trigger_name: String,
    job_id: Option<i64>,
    status: String,
    started_at: i64,
    finished_at: Option<i64>,
    apps: i64,
    denies: i64,
    warns: i64,
    render_errors: i64,
    error: Option<String>,
    check_run_id: Option<i64>,
    comment_ids: String,
    attempts: i64,
    report: Option<String>,
}

impl RunRow {
    fn into_record(self, with_report: bool) -> Result<RunRecord, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            what: "run",
            id: self.id,
            detail,
        };
        let status = RunStatus::parse(&self.status)
            .ok_or_else(|| corrupt(format!("unknown status {:?}", self.status)))?;
        let comment_ids: Vec<u64> = serde_json::from_str(&self.comment_ids)
            .map_err(|e| corrupt(format!("comment_ids: {e}")))?;
        let report = match (&self.report, with_report) {
            (Some(json), true) => Some(
                serde_json::from_str::<RunReport>(json)
                    .map_err(|e| corrupt(format!("report: {e}")))?,
            ),
            _ => None,
        };
        Ok(RunRecord {
            id: self.id,
            repo: self.repo,
            pr: u64::try_from(self.pr).unwrap_or_default(),
            head_sha: self.head_sha,
            base_sha: self.base_sha,
            merge_base: self.merge_base,
            trigger: self.trigger_name,
            job_id: self.job_id,
            status,
            started_at: self.started_at,
            finished_at: self.finished_at,
            apps: self.apps,
            denies: self.denies,
            warns: self.warns,
            render_errors: self.render_errors,
            error: self.error,
            check_run_id: self.check_run_id.and_then(|v| u64::try_from(v).ok()),
            comment_ids,
            attempts: self.attempts,
            attempt_history: Vec::new(),
            report,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    run_id: i64,
    attempt: i64,
    job_id: Option<i64>,
    trigger_name: String,
    status: String,
    started_at: i64,
    finished_at: Option<i64>,
    error: Option<String>,
}

impl TryFrom<AttemptRow> for RunAttempt {
    type Error = StoreError;

    fn try_from(r: AttemptRow) -> Result<Self, StoreError> {
        let status = RunStatus::parse(&r.status).ok_or_else(|| StoreError::Corrupt {
            what: "run attempt of run",
            id: r.run_id,
            detail: format!("attempt {}: unknown status {:?}", r.attempt, r.status),
        })?;
        Ok(RunAttempt {
            attempt: r.attempt,
            job_id: r.job_id,
            trigger: r.trigger_name,
            status,
            started_at: r.started_at,
            finished_at: r.finished_at,
            error: r.error,
        })
    }
}

/// Creates the head's run or reopens it for a new attempt, in one statement: the unique index on
/// (repo, pr, head_sha) makes a concurrent creation for the same head take the reopening path
/// (PostgreSQL waits for the first insert to commit; SQLite has one writer), and `attempts`
/// numbers the new attempt. A reopened run forgets the previous attempt's outcome and base, and
/// keeps its check run and comments: they are still on the pull request and the new attempt
/// updates them.
const OPEN_RUN: &str = "INSERT INTO runs (repo, pr, head_sha, trigger_name, job_id, status, \
     started_at, comment_ids, attempts) VALUES ($1, $2, $3, $4, $5, 'running', $6, '[]', 1) \
     ON CONFLICT (repo, pr, head_sha) DO UPDATE SET attempts = runs.attempts + 1, \
     trigger_name = excluded.trigger_name, job_id = excluded.job_id, status = 'running', \
     started_at = excluded.started_at, finished_at = NULL, error = NULL, report = NULL, \
     apps = 0, denies = 0, warns = 0, render_errors = 0, base_sha = NULL, merge_base = NULL \
     RETURNING id, attempts";

const OPEN_ATTEMPT: &str = "INSERT INTO run_attempts (run_id, attempt, job_id, trigger_name, \
     status, started_at) VALUES ($1, $2, $3, $4, 'running', $5)";

#[derive(sqlx::FromRow)]
struct HoldRow {
    repo: String,
    pr: i64,
    held_by: String,
    held_at: i64,
}

impl From<HoldRow> for Hold {
    fn from(r: HoldRow) -> Self {
        Hold {
            repo: r.repo,
            pr: u64::try_from(r.pr).unwrap_or_default(),
            held_by: r.held_by,
            held_at: r.held_at,
        }
    }
}

const COLUMNS: &str = "id, repo, pr, head_sha, base_sha, merge_base, trigger_name, job_id, status, \
     started_at, finished_at, apps, denies, warns, render_errors, error, check_run_id, \
     comment_ids, attempts";

fn pr_i64(pr: u64) -> i64 {
    i64::try_from(pr).unwrap_or(i64::MAX)
}

#[async_trait]
impl RunStore for SqlRunStore {
    async fn create_run(&self, run: &NewRun) -> Result<AttemptId, StoreError> {
        let (open_run, open_attempt) = (self.db.sql(OPEN_RUN), self.db.sql(OPEN_ATTEMPT));
        let now = now_ms();
        // The run and its new attempt appear together or not at all.
        macro_rules! in_transaction {
            ($pool:expr) => {
                async {
                    let mut tx = $pool.begin().await?;
                    let (id, attempt): (i64, i64) = sqlx::query_as(open_run)
                        .bind(&run.repo)
                        .bind(pr_i64(run.pr))
                        .bind(&run.head_sha)
                        .bind(&run.trigger)
                        .bind(run.job_id)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?;
                    sqlx::query(open_attempt)
                        .bind(id)
                        .bind(attempt)
                        .bind(run.job_id)
                        .bind(&run.trigger)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok::<_, sqlx::Error>(AttemptId { run: id, attempt })
                }
                .await
            };
        }
        match &self.db {
            Db::Sqlite { writer, .. } => in_transaction!(writer),
            Db::Postgres(pool) => in_transaction!(pool),
        }
        .map_err(StoreError::db("opening a run"))
    }

    async fn set_check_run(&self, at: AttemptId, check_run_id: u64) -> Result<(), StoreError> {
        let cr = i64::try_from(check_run_id).unwrap_or(i64::MAX);
        execute!(
            self.db,
            "recording a check run",
            "UPDATE runs SET check_run_id = $1 WHERE id = $2 AND attempts = $3",
            cr,
            at.run,
            at.attempt
        )?;
        Ok(())
    }

    async fn record_base(
        &self,
        at: AttemptId,
        base_sha: &str,
        merge_base: &str,
    ) -> Result<(), StoreError> {
        execute!(
            self.db,
            "recording the compared base",
            "UPDATE runs SET base_sha = $1, merge_base = $2 WHERE id = $3 AND attempts = $4",
            base_sha,
            merge_base,
            at.run,
            at.attempt
        )?;
        Ok(())
    }

    async fn finish_run(&self, at: AttemptId, outcome: &RunOutcome) -> Result<(), StoreError> {
        let (apps, denies, warns, errors) = match &outcome.report {
            Some(r) => (
                r.apps.len(),
                r.deny_count(),
                r.warn_count(),
                r.render_error_count(),
            ),
            None => (0, 0, 0, 0),
        };
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        // Reports quote upstream text (tool stderr, ArgoCD messages); the dashboard shows them,
        // so they are scrubbed as stored.
        let report = outcome
            .report
            .as_ref()
            .and_then(|r| serde_json::to_value(r).ok())
            .map(|mut v| {
                crate::scrub::scrub_json(&mut v);
                v.to_string()
            });
        let error = outcome.error.as_deref().map(crate::scrub::scrub_string);
        let comment_ids =
            serde_json::to_string(&outcome.comment_ids).unwrap_or_else(|_| "[]".into());
        let now = now_ms();
        execute!(
            self.db,
            "finishing a run attempt",
            "UPDATE run_attempts SET status = $1, error = $2, finished_at = $3 \
             WHERE run_id = $4 AND attempt = $5",
            outcome.status.as_str(),
            &error,
            now,
            at.run,
            at.attempt
        )?;
        // An attempt that posted nothing (it failed first) leaves the comment of an earlier one
        // where it is: it is still on the pull request, and the next run edits it.
        execute!(
            self.db,
            "finishing a run",
            "UPDATE runs SET status = $1, error = $2, report = $3, \
             comment_ids = CASE WHEN $4 = '[]' THEN comment_ids ELSE $4 END, apps = $5, \
             denies = $6, warns = $7, render_errors = $8, finished_at = $9 \
             WHERE id = $10 AND attempts = $11",
            outcome.status.as_str(),
            &error,
            report,
            comment_ids,
            count(apps),
            count(denies),
            count(warns),
            count(errors),
            now,
            at.run,
            at.attempt
        )?;
        Ok(())
    }

    async fn check_run_id(&self, id: RunId) -> Result<Option<u64>, StoreError> {
        let rows = fetch_all!(
            self.db,
            "reading a run's check run",
            (Option<i64>,),
            "SELECT check_run_id FROM runs WHERE id = $1",
            id
        )?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|(c,)| c)
            .and_then(|c| u64::try_from(c).ok()))
    }

    async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        let rows = fetch_all!(
            self.db,
            "reading a run",
            RunRow,
            &format!(
                "SELECT {COLUMNS}, report FROM runs WHERE id = $1 OR id = \
                 (SELECT run_id FROM run_attempts WHERE former_run_id = $1) \
                 ORDER BY id = $1 DESC LIMIT 1"
            ),
            id
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let mut run = row.into_record(true)?;
        let attempts = fetch_all!(
            self.db,
            "reading a run's attempts",
            AttemptRow,
            "SELECT run_id, attempt, job_id, trigger_name, status, started_at, finished_at, \
             error FROM run_attempts WHERE run_id = $1 ORDER BY attempt",
            run.id
        )?;
        run.attempt_history = attempts
            .into_iter()
            .map(RunAttempt::try_from)
            .collect::<Result<_, _>>()?;
        Ok(Some(run))
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let limit = if filter.limit == 0 { 50 } else { filter.limit };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = fetch_all!(
            self.db,
            "listing runs",
            RunRow,
            &format!(
                "SELECT {COLUMNS}, NULL AS report FROM runs \
                 WHERE ($1 IS NULL OR repo = $1) AND ($2 IS NULL OR pr = $2) \
                 AND ($3 IS NULL OR status = $3) ORDER BY id DESC LIMIT $4"
            ),
            filter.repo.as_deref(),
            filter.pr.map(pr_i64),
            filter.status.map(RunStatus::as_str),
            limit
        )?;
        rows.into_iter().map(|r| r.into_record(false)).collect()
    }

    async fn last_posted_run(&self, repo: &str, pr: u64) -> Result<Option<RunRecord>, StoreError> {
        let rows = fetch_all!(
            self.db,
            "finding the last posted run",
            RunRow,
            &format!(
                "SELECT {COLUMNS}, NULL AS report FROM runs WHERE repo = $1 AND pr = $2 \
                 AND comment_ids <> '[]' ORDER BY id DESC LIMIT 1"
            ),
            repo,
            pr_i64(pr)
        )?;
        rows.into_iter()
            .next()
            .map(|r| r.into_record(false))
            .transpose()
    }

    async fn hold(&self, repo: &str, pr: u64) -> Result<Option<Hold>, StoreError> {
        let rows = fetch_all!(
            self.db,
            "reading a hold",
            HoldRow,
            "SELECT repo, pr, held_by, held_at FROM holds WHERE repo = $1 AND pr = $2",
            repo,
            pr_i64(pr)
        )?;
        Ok(rows.into_iter().next().map(Hold::from))
    }

    async fn set_hold(&self, repo: &str, pr: u64, by: &str) -> Result<Hold, StoreError> {
        execute!(
            self.db,
            "placing a hold",
            "INSERT INTO holds (repo, pr, held_by, held_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (repo, pr) DO NOTHING",
            repo,
            pr_i64(pr),
            by,
            now_ms()
        )?;
        self.hold(repo, pr).await?.ok_or(StoreError::Corrupt {
            what: "hold",
            id: pr_i64(pr),
            detail: "the hold vanished right after it was placed".into(),
        })
    }

    async fn clear_hold(&self, repo: &str, pr: u64) -> Result<bool, StoreError> {
        let n = execute!(
            self.db,
            "lifting a hold",
            "DELETE FROM holds WHERE repo = $1 AND pr = $2",
            repo,
            pr_i64(pr)
        )?;
        Ok(n > 0)
    }
}
