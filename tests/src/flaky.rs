//! A queue whose store can be switched off or made to hang, to test what the intake does when
//! the database is down or stuck and what happens when it comes back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use capstan_worker::queue::{
    Claimed, DeliveryRecord, Finish, Heartbeat, Job, JobId, JobRun, JobState, NewDelivery, NewJob,
    Queue, QueueError, RecordOutcome,
};

pub struct Flaky {
    inner: Arc<dyn Queue>,
    down: AtomicBool,
    hanging: AtomicBool,
    /// The size of every batch handed to `record_deliveries`, in order.
    batches: Mutex<Vec<usize>>,
}

impl Flaky {
    pub fn new(inner: Arc<dyn Queue>) -> Arc<Self> {
        Arc::new(Flaky {
            inner,
            down: AtomicBool::new(false),
            hanging: AtomicBool::new(false),
            batches: Mutex::new(Vec::new()),
        })
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// While set, recording a delivery never completes (a store that accepts the connection and
    /// then stalls).
    pub fn set_hanging(&self, hanging: bool) {
        self.hanging.store(hanging, Ordering::SeqCst);
    }

    /// The sizes of the delivery batches the group commit handed over so far.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.batches.lock().map(|b| b.clone()).unwrap_or_default()
    }

    fn check(&self, op: &'static str) -> Result<(), QueueError> {
        if self.down.load(Ordering::SeqCst) {
            Err(QueueError::Unavailable {
                op,
                source: sqlx::Error::PoolTimedOut,
            })
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Queue for Flaky {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn db(&self) -> capstan_worker::store::Db {
        self.inner.db()
    }
    async fn ping(&self) -> Result<(), QueueError> {
        self.check("ping")?;
        self.inner.ping().await
    }
    async fn record_delivery(
        &self,
        d: &NewDelivery,
        jobs: &[NewJob],
    ) -> Result<RecordOutcome, QueueError> {
        self.check("recording a delivery")?;
        if self.hanging.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.record_delivery(d, jobs).await
    }
    async fn record_deliveries(
        &self,
        batch: &[(NewDelivery, Vec<NewJob>)],
    ) -> Result<Vec<RecordOutcome>, QueueError> {
        if let Ok(mut b) = self.batches.lock() {
            b.push(batch.len());
        }
        self.check("recording a batch of deliveries")?;
        if self.hanging.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.record_deliveries(batch).await
    }
    async fn enqueue(&self, job: &NewJob) -> Result<Option<JobId>, QueueError> {
        self.check("enqueue")?;
        self.inner.enqueue(job).await
    }
    async fn claim(
        &self,
        worker: &str,
        kinds: &[String],
        lease: Duration,
    ) -> Result<Option<Claimed>, QueueError> {
        self.check("claim")?;
        self.inner.claim(worker, kinds, lease).await
    }
    async fn heartbeat(
        &self,
        id: JobId,
        worker: &str,
        attempt: i32,
        lease: Duration,
    ) -> Result<Heartbeat, QueueError> {
        self.check("heartbeat")?;
        self.inner.heartbeat(id, worker, attempt, lease).await
    }
    async fn finish(
        &self,
        id: JobId,
        worker: &str,
        attempt: i32,
        finish: &Finish,
    ) -> Result<bool, QueueError> {
        self.check("finish")?;
        self.inner.finish(id, worker, attempt, finish).await
    }
    async fn release(&self, id: JobId, worker: &str, attempt: i32) -> Result<bool, QueueError> {
        self.check("release")?;
        self.inner.release(id, worker, attempt).await
    }
    async fn job(&self, id: JobId) -> Result<Option<Job>, QueueError> {
        self.inner.job(id).await
    }
    async fn jobs_for_delivery(&self, delivery_id: &str) -> Result<Vec<Job>, QueueError> {
        self.inner.jobs_for_delivery(delivery_id).await
    }
    async fn jobs_by_dedupe_key(&self, key: &str) -> Result<Vec<Job>, QueueError> {
        self.inner.jobs_by_dedupe_key(key).await
    }
    async fn job_runs(&self, id: JobId) -> Result<Vec<JobRun>, QueueError> {
        self.inner.job_runs(id).await
    }
    async fn delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, QueueError> {
        self.inner.delivery(id).await
    }
    async fn depth(&self) -> Result<Vec<(String, JobState, i64)>, QueueError> {
        self.check("depth")?;
        self.inner.depth().await
    }

    async fn take_periodic(
        &self,
        task: &str,
        owner: &str,
        period: Duration,
    ) -> Result<bool, QueueError> {
        self.check("take_periodic")?;
        self.inner.take_periodic(task, owner, period).await
    }
}
