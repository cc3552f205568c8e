//! Read-only views of the queue's own tables for the dashboard: recent webhook deliveries with
//! what became of them (the intake outcome and the jobs they queued). Nothing here writes.

use serde::Serialize;

use super::{Db, StoreError};
use crate::queue::DeliveryRecord;

/// One delivery as the overview lists it: the stored record and what became of its jobs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DeliveryActivity {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub delivery: DeliveryRecord,
    /// Jobs the delivery queued.
    pub jobs: i64,
    /// Of those, how many are finished successfully, failed for good, or still live.
    pub jobs_done: i64,
    pub jobs_failed: i64,
    pub jobs_live: i64,
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
        fetch_all!(
            self.db,
            "listing recent deliveries",
            DeliveryActivity,
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
        )
    }
}
