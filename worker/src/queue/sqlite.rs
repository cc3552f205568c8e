//! SQLite backend: the embedded default. One file, WAL, `synchronous = NORMAL` (a commit survives a
//! process crash; a power loss may drop the last commits, as documented in the README).
//!
//! SQLite admits one writer at a time, so every write goes through a single pooled connection
//! and readers use their own pool. A claim first finds a candidate with a read, then takes it with
//! one `UPDATE … RETURNING` that re-checks it is still claimable; idle workers never hold the write
//! lock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::batch_plan::{self, LiveRow};
use super::model::JobRow;
use super::{
    Claimed, DeliveryRecord, Finish, Heartbeat, Job, JobId, JobRun, JobState, NewDelivery, NewJob,
    Queue, QueueError, RecordOutcome, ms, now_ms,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/queue/migrations/sqlite");

/// The next claimable job of the given kinds (`?2`, a JSON array) at time `?1`: queued and due, or
/// running with an expired lease; a PR's job waits while another job of that PR holds a lease.
const CANDIDATE_SQL: &str = "SELECT j.id FROM jobs j \
     WHERE j.kind IN (SELECT value FROM json_each(?2)) \
       AND ((j.state = 'queued' AND j.run_after <= ?1) \
         OR (j.state = 'running' AND j.lease_expires_at < ?1)) \
       AND (j.supersede_key IS NULL OR NOT EXISTS ( \
         SELECT 1 FROM jobs r WHERE r.supersede_key = j.supersede_key \
           AND r.id <> j.id AND r.state = 'running' AND r.lease_expires_at >= ?1)) \
       AND (j.order_key IS NULL OR NOT EXISTS ( \
         SELECT 1 FROM jobs o WHERE o.order_key = j.order_key AND o.id <> j.id \
           AND (o.state = 'running' OR (o.state = 'queued' AND o.id < j.id)))) \
     ORDER BY j.run_after, j.id LIMIT 1";

pub struct SqliteQueue {
    /// Readers (WAL lets them run beside the writer).
    pool: SqlitePool,
    /// One connection for every write: SQLite admits one writer at a time anyway, and waiting in
    /// the pool's queue is fair and prompt where `busy_timeout` sleeps and retries.
    writer: SqlitePool,
    /// Background WAL checkpointer; aborted on drop.
    checkpointer: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for SqliteQueue {
    fn drop(&mut self) {
        if let Some(task) = self.checkpointer.take() {
            task.abort();
        }
    }
}

/// Rows (or listed keys) per statement of a batch write: at most 13 parameters a row stays well
/// under SQLite's 32,766 bound parameters.
const ROWS_PER_STATEMENT: usize = 1000;

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// How long opening waits for another opener of the same file, like the busy timeout.
const OPEN_PATIENCE: Duration = Duration::from_secs(10);

/// Connect, waiting out another process that is opening the same file. Each new connection sets
/// `journal_mode=WAL`; on a fresh file that switch needs an exclusive lock which SQLite reports as
/// busy at once instead of waiting `busy_timeout`, so a second opener (the service and an
/// operator's CLI, or two replicas) would fail to start.
async fn connect(
    pool: SqlitePoolOptions,
    options: SqliteConnectOptions,
) -> Result<SqlitePool, QueueError> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        match pool.clone().connect_with(options.clone()).await {
            Ok(p) => return Ok(p),
            Err(e) if is_busy(&e) && started.elapsed() < OPEN_PATIENCE => {
                tracing::debug!(error = %e, "sqlite file busy while opening; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(250));
            }
            Err(e) => return Err(QueueError::db("opening sqlite")(e)),
        }
    }
}

/// SQLITE_BUSY, or one of its extended codes (the primary code is the low byte).
fn is_busy(e: &sqlx::Error) -> bool {
    let Some(code) = e.as_database_error().and_then(|d| d.code()) else {
        return false;
    };
    code.parse::<i32>().is_ok_and(|c| c & 0xff == 5)
}

impl SqliteQueue {
    /// Open (creating when missing) the database at `url` (`sqlite://PATH` or `sqlite::memory:`).
    pub async fn open(url: &str) -> Result<Self, QueueError> {
        let in_memory = url.contains(":memory:");
        let options = SqliteConnectOptions::from_str(url)
            .map_err(QueueError::db("parsing the sqlite URL"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // Checkpoints run in the background (below) rather than inside whichever commit crosses
        // the WAL size threshold, which would stall that delivery for the checkpoint's fsync.
        let writer_options = if in_memory {
            options.clone()
        } else {
            options.clone().pragma("wal_autocheckpoint", "0")
        };
        let writer = connect(
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(10)),
            writer_options,
        )
        .await?;
        // SQLite migrations take no lock: two processes starting on a fresh file may race, and
        // the loser sees the winner's tables. Retrying then finds them recorded and applies
        // nothing twice.
        let mut attempt = 0;
        loop {
            match MIGRATOR.run(&writer).await {
                Ok(()) => break,
                Err(_) if attempt < 5 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(source) => {
                    return Err(QueueError::Migrate {
                        backend: "sqlite",
                        source,
                    });
                }
            }
        }
        // Each in-memory connection is its own database: there, readers share the writer.
        let pool = if in_memory {
            writer.clone()
        } else {
            connect(
                SqlitePoolOptions::new()
                    .max_connections(4)
                    .min_connections(1),
                options,
            )
            .await?
        };
        let checkpointer = (!in_memory).then(|| {
            let readers = pool.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
                loop {
                    tick.tick().await;
                    // PASSIVE never blocks the writer; a busy or failed pass is retried next tick.
                    if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                        .execute(&readers)
                        .await
                    {
                        tracing::debug!(error = %e, "WAL checkpoint skipped");
                    }
                }
            })
        });
        Ok(SqliteQueue {
            pool,
            writer,
            checkpointer,
        })
    }

    /// One delivery and its jobs inside `tx`: a delivery id already stored (or stored earlier in
    /// the same transaction) stores nothing and reports how the first one ended.
    async fn record_in(
        tx: &mut Transaction<'static, Sqlite>,
        delivery: &NewDelivery,
        jobs: &[NewJob],
        now: i64,
    ) -> Result<RecordOutcome, QueueError> {
        let inserted: Option<String> = sqlx::query_scalar(
            "INSERT INTO deliveries (delivery_id, event, action, repo, outcome, detail, received_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id",
        )
        .bind(&delivery.delivery_id)
        .bind(&delivery.event)
        .bind(&delivery.action)
        .bind(&delivery.repo)
        .bind(delivery.outcome.as_str())
        .bind(&delivery.detail)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await
        .map_err(QueueError::db("recording a delivery"))?;
        if inserted.is_none() {
            let first: DeliveryRecord =
                sqlx::query_as("SELECT * FROM deliveries WHERE delivery_id = ?1")
                    .bind(&delivery.delivery_id)
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(QueueError::db("reading a duplicate delivery"))?;
            return Ok(RecordOutcome::Duplicate { first });
        }
        let mut job_ids = Vec::with_capacity(jobs.len());
        for job in jobs {
            if let Some(id) = Self::insert_job(tx, job, Some(&delivery.delivery_id), now).await? {
                job_ids.push(id);
            }
        }
        Ok(RecordOutcome::Stored { job_ids })
    }

    /// A whole batch inside `tx` with a few set-wise statements, writing what recording its
    /// deliveries one by one with [`Self::record_in`] would (the plan in `batch_plan` replays
    /// that order). Each statement is a round trip to SQLite's connection thread, and two per job
    /// was most of what a delivery cost under load.
    async fn record_batch_in(
        tx: &mut Transaction<'static, Sqlite>,
        batch: &[(NewDelivery, Vec<NewJob>)],
        now: i64,
    ) -> Result<Vec<RecordOutcome>, QueueError> {
        let mut new_ids: HashSet<String> = HashSet::new();
        for chunk in batch.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO deliveries (delivery_id, event, action, repo, outcome, detail, \
                 received_at) ",
            );
            q.push_values(chunk, |mut row, (d, _)| {
                row.push_bind(&d.delivery_id)
                    .push_bind(&d.event)
                    .push_bind(&d.action)
                    .push_bind(&d.repo)
                    .push_bind(d.outcome.as_str())
                    .push_bind(&d.detail)
                    .push_bind(now);
            });
            q.push(" ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id");
            let ids: Vec<String> = q
                .build_query_scalar()
                .persistent(false)
                .fetch_all(&mut **tx)
                .await
                .map_err(QueueError::db("recording a batch of deliveries"))?;
            new_ids.extend(ids);
        }
        // The first member with a newly stored id is the stored one; any other is a duplicate
        // (of an earlier delivery, or of that member).
        let stored: Vec<bool> = batch
            .iter()
            .map(|(d, _)| new_ids.remove(&d.delivery_id))
            .collect();
        let duplicates: Vec<&str> = batch
            .iter()
            .zip(&stored)
            .filter(|(_, s)| !**s)
            .map(|((d, _), _)| d.delivery_id.as_str())
            .collect();
        let mut firsts: HashMap<String, DeliveryRecord> = HashMap::new();
        for chunk in duplicates.chunks(ROWS_PER_STATEMENT) {
            let mut q =
                QueryBuilder::<Sqlite>::new("SELECT * FROM deliveries WHERE delivery_id IN (");
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            q.push(")");
            let rows: Vec<DeliveryRecord> = q
                .build_query_as()
                .persistent(false)
                .fetch_all(&mut **tx)
                .await
                .map_err(QueueError::db("reading duplicate deliveries"))?;
            firsts.extend(rows.into_iter().map(|r| (r.delivery_id.clone(), r)));
        }

        // The stored members' jobs, in order, with the delivery each belongs to.
        let jobs: Vec<(usize, &NewJob)> = batch
            .iter()
            .enumerate()
            .filter(|(i, _)| stored[*i])
            .flat_map(|(i, (_, jobs))| jobs.iter().map(move |j| (i, j)))
            .collect();
        let live = Self::live_rows(tx, jobs.iter().map(|(_, j)| *j)).await?;
        let job_refs: Vec<&NewJob> = jobs.iter().map(|(_, j)| *j).collect();
        let plan = batch_plan::plan(&job_refs, &live);

        for chunk in plan.touched.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "UPDATE jobs SET \
                   state = CASE WHEN state = 'queued' THEN 'superseded' ELSE state END, \
                   finished_at = CASE WHEN state = 'queued' THEN ",
            );
            q.push_bind(now);
            q.push(
                " ELSE finished_at END, \
                   cancel_requested = (cancel_requested OR state = 'running'), updated_at = ",
            );
            q.push_bind(now);
            q.push(" WHERE state IN ('queued', 'running') AND id IN (");
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            q.push(")");
            q.build()
                .persistent(false)
                .execute(&mut **tx)
                .await
                .map_err(QueueError::db("superseding older jobs"))?;
        }

        let mut inserted: Vec<i64> = Vec::with_capacity(plan.inserts.len());
        for chunk in plan.inserts.chunks(ROWS_PER_STATEMENT) {
            let mut rows = Vec::with_capacity(chunk.len());
            for &(index, superseded) in chunk {
                let (member, job) = jobs[index];
                let payload =
                    serde_json::to_string(&job.payload).map_err(|source| QueueError::Payload {
                        kind: job.kind.clone(),
                        source,
                    })?;
                rows.push((job, &batch[member].0.delivery_id, payload, superseded));
            }
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO jobs (kind, dedupe_key, supersede_key, delivery_id, payload, state, \
                 attempts, max_attempts, run_after, created_at, updated_at, order_key, \
                 finished_at) ",
            );
            q.push_values(rows, |mut row, (job, delivery_id, payload, superseded)| {
                let state = if superseded {
                    JobState::Superseded
                } else {
                    JobState::Queued
                };
                row.push_bind(&job.kind)
                    .push_bind(&job.dedupe_key)
                    .push_bind(&job.supersede_key)
                    .push_bind(delivery_id)
                    .push_bind(payload)
                    .push_bind(state.as_str())
                    .push_bind(0_i32)
                    .push_bind(job.max_attempts)
                    .push_bind(job.run_after.unwrap_or(now))
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(&job.order_key)
                    .push_bind(superseded.then_some(now));
            });
            // No ON CONFLICT: the plan already left out every job a live one holds the key of,
            // so a conflict here is a planning error and fails the batch loudly.
            q.push(" RETURNING id");
            let ids: Vec<i64> = q
                .build_query_scalar()
                .persistent(false)
                .fetch_all(&mut **tx)
                .await
                .map_err(QueueError::db("inserting a batch of jobs"))?;
            inserted.extend(ids);
        }
        if inserted.len() != plan.inserts.len() {
            return Err(QueueError::Corrupt {
                id: 0,
                field: "batch job ids",
                detail: format!(
                    "{} ids for {} inserted jobs",
                    inserted.len(),
                    plan.inserts.len()
                ),
            });
        }
        // AUTOINCREMENT ids grow in insertion order, whatever order RETURNING lists them in.
        inserted.sort_unstable();

        let mut job_ids: Vec<Vec<JobId>> = vec![Vec::new(); batch.len()];
        for ((member, _), placed) in jobs.iter().zip(&plan.placed) {
            if let Some(position) = placed {
                job_ids[*member].push(inserted[*position]);
            }
        }
        batch
            .iter()
            .zip(stored)
            .zip(job_ids)
            .map(|(((d, _), stored), job_ids)| {
                if stored {
                    Ok(RecordOutcome::Stored { job_ids })
                } else {
                    firsts
                        .get(&d.delivery_id)
                        .cloned()
                        .map(|first| RecordOutcome::Duplicate { first })
                        .ok_or_else(|| QueueError::Corrupt {
                            id: 0,
                            field: "batch duplicates",
                            detail: format!(
                                "delivery {:?} is neither new nor stored",
                                d.delivery_id
                            ),
                        })
                }
            })
            .collect()
    }

    /// The queued and running jobs sharing a dedupe key or a supersede key with `jobs`.
    async fn live_rows<'a>(
        tx: &mut Transaction<'static, Sqlite>,
        jobs: impl Iterator<Item = &'a NewJob>,
    ) -> Result<Vec<LiveRow>, QueueError> {
        let mut dedupe: Vec<&str> = Vec::new();
        let mut supersede: Vec<&str> = Vec::new();
        for job in jobs {
            dedupe.push(&job.dedupe_key);
            supersede.extend(job.supersede_key.as_deref());
        }
        dedupe.sort_unstable();
        dedupe.dedup();
        supersede.sort_unstable();
        supersede.dedup();
        let mut found: BTreeMap<i64, LiveRow> = BTreeMap::new();
        for (column, keys) in [("dedupe_key", &dedupe), ("supersede_key", &supersede)] {
            for chunk in keys.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "SELECT id, dedupe_key, supersede_key, state = 'running' FROM jobs \
                     WHERE state IN ('queued', 'running') AND ",
                );
                q.push(column).push(" IN (");
                let mut list = q.separated(", ");
                for key in chunk {
                    list.push_bind(*key);
                }
                q.push(")");
                let rows: Vec<(i64, String, Option<String>, bool)> = q
                    .build_query_as()
                    .persistent(false)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(QueueError::db("reading the jobs a batch touches"))?;
                for (id, dedupe_key, supersede_key, running) in rows {
                    found.insert(
                        id,
                        LiveRow {
                            id,
                            dedupe_key,
                            supersede_key,
                            running,
                        },
                    );
                }
            }
        }
        Ok(found.into_values().collect())
    }

    async fn insert_job(
        tx: &mut Transaction<'static, Sqlite>,
        job: &NewJob,
        delivery_id: Option<&str>,
        now: i64,
    ) -> Result<Option<JobId>, QueueError> {
        if let Some(key) = &job.supersede_key {
            // One statement: queued jobs of older heads are superseded, running ones are asked
            // to stop at their next heartbeat.
            sqlx::query(
                "UPDATE jobs SET \
                   state = CASE WHEN state = 'queued' THEN 'superseded' ELSE state END, \
                   finished_at = CASE WHEN state = 'queued' THEN ?1 ELSE finished_at END, \
                   cancel_requested = (cancel_requested OR state = 'running'), \
                   updated_at = ?1 \
                 WHERE supersede_key = ?2 AND dedupe_key <> ?3 \
                   AND state IN ('queued', 'running')",
            )
            .bind(now)
            .bind(key)
            .bind(&job.dedupe_key)
            .execute(&mut **tx)
            .await
            .map_err(QueueError::db("superseding older jobs"))?;
        }
        let payload =
            serde_json::to_string(&job.payload).map_err(|source| QueueError::Payload {
                kind: job.kind.clone(),
                source,
            })?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO jobs (kind, dedupe_key, supersede_key, delivery_id, payload, state, \
               attempts, max_attempts, run_after, created_at, updated_at, order_key) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'queued', 0, ?6, ?7, ?8, ?8, ?9) \
             ON CONFLICT (dedupe_key) WHERE state IN ('queued', 'running') DO NOTHING \
             RETURNING id",
        )
        .bind(&job.kind)
        .bind(&job.dedupe_key)
        .bind(&job.supersede_key)
        .bind(delivery_id)
        .bind(payload)
        .bind(job.max_attempts)
        .bind(job.run_after.unwrap_or(now))
        .bind(now)
        .bind(&job.order_key)
        .fetch_optional(&mut **tx)
        .await
        .map_err(QueueError::db("inserting a job"))?;
        Ok(id)
    }

    async fn fetch_jobs(
        &self,
        sql: &'static str,
        key: &str,
        op: &'static str,
    ) -> Result<Vec<Job>, QueueError> {
        let rows: Vec<JobRow> = sqlx::query_as(sql)
            .bind(key)
            .fetch_all(&self.pool)
            .await
            .map_err(QueueError::db(op))?;
        rows.into_iter().map(JobRow::into_job).collect()
    }
}

#[async_trait]
impl Queue for SqliteQueue {
    fn db(&self) -> crate::store::Db {
        crate::store::Db::Sqlite {
            reader: self.pool.clone(),
            writer: self.writer.clone(),
        }
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), QueueError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(QueueError::db("ping"))?;
        Ok(())
    }

    async fn record_delivery(
        &self,
        delivery: &NewDelivery,
        jobs: &[NewJob],
    ) -> Result<RecordOutcome, QueueError> {
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(QueueError::db("beginning a delivery"))?;
        let outcome = Self::record_in(&mut tx, delivery, jobs, now_ms()).await?;
        tx.commit()
            .await
            .map_err(QueueError::db("committing a delivery"))?;
        Ok(outcome)
    }

    async fn record_deliveries(
        &self,
        batch: &[(NewDelivery, Vec<NewJob>)],
    ) -> Result<Vec<RecordOutcome>, QueueError> {
        let now = now_ms();
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(QueueError::db("beginning a batch of deliveries"))?;
        let outcomes = if let [(delivery, jobs)] = batch {
            vec![Self::record_in(&mut tx, delivery, jobs, now).await?]
        } else {
            Self::record_batch_in(&mut tx, batch, now).await?
        };
        tx.commit()
            .await
            .map_err(QueueError::db("committing a batch of deliveries"))?;
        Ok(outcomes)
    }

    async fn enqueue(&self, job: &NewJob) -> Result<Option<JobId>, QueueError> {
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(QueueError::db("beginning an enqueue"))?;
        let id = Self::insert_job(&mut tx, job, None, now_ms()).await?;
        tx.commit()
            .await
            .map_err(QueueError::db("committing an enqueue"))?;
        Ok(id)
    }

    async fn claim(
        &self,
        worker: &str,
        kinds: &[String],
        lease: Duration,
    ) -> Result<Option<Claimed>, QueueError> {
        let now = now_ms();
        let kinds = serde_json::to_string(kinds).map_err(|source| QueueError::Payload {
            kind: "claim filter".into(),
            source,
        })?;
        // Look for a candidate with a plain read first: an UPDATE takes SQLite's write lock even
        // when nothing matches, and idle workers must not compete with the intake for it.
        let candidate: Option<i64> = sqlx::query_scalar(CANDIDATE_SQL)
            .bind(now)
            .bind(&kinds)
            .fetch_optional(&self.pool)
            .await
            .map_err(QueueError::db("finding a claimable job"))?;
        let Some(candidate) = candidate else {
            return Ok(None);
        };
        // Claim it if it is still claimable (another worker may have been faster).
        let row: Option<JobRow> = sqlx::query_as(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = ?1, \
               lease_expires_at = ?2, claimed_from = state, updated_at = ?3 \
             WHERE id = ?4 \
               AND ((state = 'queued' AND run_after <= ?3) \
                 OR (state = 'running' AND lease_expires_at < ?3)) \
               AND (supersede_key IS NULL OR NOT EXISTS ( \
                 SELECT 1 FROM jobs r WHERE r.supersede_key = jobs.supersede_key \
                   AND r.id <> jobs.id AND r.state = 'running' AND r.lease_expires_at >= ?3)) \
               AND (order_key IS NULL OR NOT EXISTS ( \
                 SELECT 1 FROM jobs o WHERE o.order_key = jobs.order_key AND o.id <> jobs.id \
                   AND (o.state = 'running' OR (o.state = 'queued' AND o.id < jobs.id)))) \
             RETURNING *",
        )
        .bind(worker)
        .bind(now.saturating_add(ms(lease)))
        .bind(now)
        .bind(candidate)
        .fetch_optional(&self.writer)
        .await
        .map_err(QueueError::db("claiming a job"))?;
        row.map(JobRow::into_claimed).transpose()
    }

    async fn heartbeat(
        &self,
        id: JobId,
        worker: &str,
        attempt: i32,
        lease: Duration,
    ) -> Result<Heartbeat, QueueError> {
        let now = now_ms();
        let stop: Option<bool> = sqlx::query_scalar(
            "UPDATE jobs SET lease_expires_at = ?1, updated_at = ?2 \
             WHERE id = ?3 AND lease_owner = ?4 AND attempts = ?5 AND state = 'running' \
             RETURNING cancel_requested",
        )
        .bind(now.saturating_add(ms(lease)))
        .bind(now)
        .bind(id)
        .bind(worker)
        .bind(attempt)
        .fetch_optional(&self.writer)
        .await
        .map_err(QueueError::db("extending a lease"))?;
        Ok(match stop {
            Some(stop) => Heartbeat::Held { stop },
            None => Heartbeat::Lost,
        })
    }

    async fn finish(
        &self,
        id: JobId,
        worker: &str,
        attempt: i32,
        finish: &Finish,
    ) -> Result<bool, QueueError> {
        let now = now_ms();
        let state = finish.state();
        let finished_at = state.is_final().then_some(now);
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(QueueError::db("beginning a finish"))?;
        let updated = sqlx::query(
            "UPDATE jobs SET state = ?1, last_error = COALESCE(?2, last_error), \
               run_after = COALESCE(?3, run_after), lease_owner = NULL, lease_expires_at = NULL, \
               updated_at = ?4, finished_at = ?5 \
             WHERE id = ?6 AND lease_owner = ?7 AND attempts = ?8 AND state = 'running'",
        )
        .bind(state.as_str())
        // Job errors are shown on the dashboard: no secret may be stored in one.
        .bind(finish.error().map(crate::scrub::scrub_string))
        .bind(finish.run_after())
        .bind(now)
        .bind(finished_at)
        .bind(id)
        .bind(worker)
        .bind(attempt)
        .execute(&mut *tx)
        .await
        .map_err(QueueError::db("finishing a job"))?
        .rows_affected();
        if updated == 0 {
            tx.rollback()
                .await
                .map_err(QueueError::db("ending a stale finish"))?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO job_runs (job_id, attempt, worker, outcome, error, finished_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(id)
        .bind(attempt)
        .bind(worker)
        .bind(finish.outcome())
        // Job errors are shown on the dashboard: no secret may be stored in one.
        .bind(finish.error().map(crate::scrub::scrub_string))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(QueueError::db("recording a job run"))?;
        tx.commit()
            .await
            .map_err(QueueError::db("committing a finish"))?;
        Ok(true)
    }

    async fn release(&self, id: JobId, worker: &str, attempt: i32) -> Result<bool, QueueError> {
        let updated = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = attempts - 1, lease_owner = NULL, \
               lease_expires_at = NULL, updated_at = ?1 \
             WHERE id = ?2 AND lease_owner = ?3 AND attempts = ?4 AND state = 'running'",
        )
        .bind(now_ms())
        .bind(id)
        .bind(worker)
        .bind(attempt)
        .execute(&self.writer)
        .await
        .map_err(QueueError::db("releasing a job"))?
        .rows_affected();
        Ok(updated > 0)
    }

    async fn job(&self, id: JobId) -> Result<Option<Job>, QueueError> {
        let row: Option<JobRow> = sqlx::query_as("SELECT * FROM jobs WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(QueueError::db("reading a job"))?;
        row.map(JobRow::into_job).transpose()
    }

    async fn jobs_for_delivery(&self, delivery_id: &str) -> Result<Vec<Job>, QueueError> {
        self.fetch_jobs(
            "SELECT * FROM jobs WHERE delivery_id = ?1 ORDER BY id",
            delivery_id,
            "reading a delivery's jobs",
        )
        .await
    }

    async fn jobs_by_dedupe_key(&self, dedupe_key: &str) -> Result<Vec<Job>, QueueError> {
        self.fetch_jobs(
            "SELECT * FROM jobs WHERE dedupe_key = ?1 ORDER BY id",
            dedupe_key,
            "reading jobs by dedupe key",
        )
        .await
    }

    async fn job_runs(&self, id: JobId) -> Result<Vec<JobRun>, QueueError> {
        sqlx::query_as(
            "SELECT job_id, attempt, worker, outcome, error, finished_at FROM job_runs \
             WHERE job_id = ?1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(QueueError::db("reading job runs"))
    }

    async fn delivery(&self, delivery_id: &str) -> Result<Option<DeliveryRecord>, QueueError> {
        sqlx::query_as("SELECT * FROM deliveries WHERE delivery_id = ?1")
            .bind(delivery_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(QueueError::db("reading a delivery"))
    }

    async fn depth(&self) -> Result<Vec<(String, JobState, i64)>, QueueError> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state")
                .fetch_all(&self.pool)
                .await
                .map_err(QueueError::db("counting jobs"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(kind, state, n)| state.parse().ok().map(|s| (kind, s, n)))
            .collect())
    }

    async fn take_periodic(
        &self,
        task: &str,
        owner: &str,
        period: Duration,
    ) -> Result<bool, QueueError> {
        let now = now_ms();
        let taken: Option<String> = sqlx::query_scalar(
            "INSERT INTO periodic_leases (task, owner, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (task) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE periodic_leases.expires_at <= ?4 \
             RETURNING owner",
        )
        .bind(task)
        .bind(owner)
        .bind(super::periodic_expiry(now, period))
        .bind(now)
        .fetch_optional(&self.writer)
        .await
        .map_err(QueueError::db("taking a periodic lease"))?;
        Ok(taken.is_some())
    }
}
