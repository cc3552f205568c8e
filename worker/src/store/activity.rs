//! Read-only views of the queue's own tables for the dashboard: recent webhook deliveries with
//! what became of them (the intake outcome and the jobs they queued). Nothing here writes.

use serde::Serialize;

use super::{Db, StoreError};

/// One delivery as the overview lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeliveryActivity {
    pub delivery_id: String,
    pub event: String,
    pub action: Option<String>,
    pub repo: Option<String>,
    /// The intake's verdict (`queued`, `ignored`, `duplicate`, …).
    pub outcome: String,
    pub detail: Option<String>,
    /// Unix milliseconds.
    pub received_at: i64,
    /// Jobs the delivery queued.
    pub jobs: i64,
    /// Of those, how many are finished successfully, failed for good, or still live.
    pub jobs_done: i64,
    pub jobs_failed: i64,
    pub jobs_live: i64,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    delivery_id: String,
    event: String,
    action: Option<String>,
    repo: Option<String>,
    outcome: String,
    detail: Option<String>,
    received_at: i64,
    jobs: i64,
    jobs_done: i64,
    jobs_failed: i64,
    jobs_live: i64,
}

/// Reads the queue tables through the shared [`Db`].
#[derive(Clone, Debug)]
pub struct ActivityStore {
    db: Db,
}

impl ActivityStore {
    pub fn new(db: Db) -> Self {
        ActivityStore { db }
    }

    /// The newest `limit` deliveries (at most 500), newest first, with their jobs' states.
    pub async fn recent_deliveries(
        &self,
        limit: usize,
    ) -> Result<Vec<DeliveryActivity>, StoreError> {
        let limit = i64::try_from(limit.clamp(1, 500)).unwrap_or(500);
        // The job counts are correlated subqueries over `jobs_delivery`: cheap for one page of
        // deliveries, and the same SQL on both backends.
        let rows = fetch_all!(
            self.db,
            "listing recent deliveries",
            DeliveryRow,
            "SELECT d.delivery_id, d.event, d.action, d.repo, d.outcome, d.detail, d.received_at, \
             (SELECT COUNT(*) FROM jobs j WHERE j.delivery_id = d.delivery_id) AS jobs, \
             (SELECT COUNT(*) FROM jobs j WHERE j.delivery_id = d.delivery_id \
                AND j.state IN ('succeeded', 'cancelled', 'superseded')) AS jobs_done, \
             (SELECT COUNT(*) FROM jobs j WHERE j.delivery_id = d.delivery_id \
                AND j.state IN ('failed', 'dead')) AS jobs_failed, \
             (SELECT COUNT(*) FROM jobs j WHERE j.delivery_id = d.delivery_id \
                AND j.state IN ('queued', 'running')) AS jobs_live \
             FROM deliveries d ORDER BY d.received_at DESC, d.delivery_id DESC LIMIT $1",
            limit
        )?;
        Ok(rows
            .into_iter()
            .map(|r| DeliveryActivity {
                delivery_id: r.delivery_id,
                event: r.event,
                action: r.action,
                repo: r.repo,
                outcome: r.outcome,
                detail: r.detail,
                received_at: r.received_at,
                jobs: r.jobs,
                jobs_done: r.jobs_done,
                jobs_failed: r.jobs_failed,
                jobs_live: r.jobs_live,
            })
            .collect())
    }
}
