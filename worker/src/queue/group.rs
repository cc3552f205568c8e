//! Group commit for the intake: concurrent deliveries are handed to one writer task, which stores
//! whatever has queued up in one transaction ([`Queue::record_deliveries`]) and then answers each
//! of them. A request is answered only after its batch committed, so "2xx only after commit"
//! holds as with one transaction per delivery; the gain is one commit (and one turn of the
//! store's single writer) for many deliveries.
//!
//! The writer never waits to fill a batch: it takes the first delivery, plus every other one
//! already queued, up to the batch size. An idle service therefore commits each delivery at once,
//! and batches grow only while a commit is in flight, which is when they help.

use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, debug, debug_span};

use super::{NewDelivery, NewJob, Queue, QueueError, RecordOutcome};

/// Deliveries waiting for the writer; past it senders wait (the intake's concurrency limit sheds
/// load long before).
const QUEUE_CAPACITY: usize = 4096;

type Reply = oneshot::Sender<Result<RecordOutcome, QueueError>>;

struct Pending {
    delivery: NewDelivery,
    jobs: Vec<NewJob>,
    reply: Reply,
}

/// Stores deliveries through one writer task, at most `max_batch` per transaction. With
/// `max_batch` 1 no task is started and each delivery is its own transaction, as before group
/// commit.
pub struct GroupCommit {
    queue: Arc<dyn Queue>,
    max_batch: usize,
    /// Started by the first delivery, so building the intake needs no runtime; the task ends
    /// when this sender is dropped.
    sender: OnceLock<mpsc::Sender<Pending>>,
}

impl GroupCommit {
    pub fn new(queue: Arc<dyn Queue>, max_batch: usize) -> Self {
        GroupCommit {
            queue,
            max_batch: max_batch.max(1),
            sender: OnceLock::new(),
        }
    }

    /// Store one delivery and its jobs; returns once the transaction that holds it committed (or
    /// failed, in which case nothing of its batch is stored).
    pub async fn record(
        &self,
        delivery: NewDelivery,
        jobs: Vec<NewJob>,
    ) -> Result<RecordOutcome, QueueError> {
        if self.max_batch == 1 {
            return self.queue.record_delivery(&delivery, &jobs).await;
        }
        let sender = self.sender.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
            tokio::spawn(write_batches(self.queue.clone(), rx, self.max_batch));
            tx
        });
        let (reply, answer) = oneshot::channel();
        sender
            .send(Pending {
                delivery,
                jobs,
                reply,
            })
            .await
            .map_err(|_| QueueError::WriterStopped)?;
        answer.await.map_err(|_| QueueError::WriterStopped)?
    }
}

/// The writer task: one transaction per batch, then every member gets its own outcome, or the
/// batch's error.
async fn write_batches(queue: Arc<dyn Queue>, mut rx: mpsc::Receiver<Pending>, max_batch: usize) {
    let mut pending = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut pending, max_batch).await > 0 {
        let (entries, mut replies): (Vec<_>, Vec<_>) = pending
            .drain(..)
            .map(|p| ((p.delivery, p.jobs), p.reply))
            .unzip();
        let members = entries.len();
        let span = debug_span!("delivery_batch", members);
        let batch = queue.record_deliveries(&entries).instrument(span);
        // A store that stalls must not hold the deliveries behind this batch for ever: once
        // every member has given up (answered 503 at its deadline), the batch is dropped, which
        // rolls it back, and the writer moves on.
        let all_gave_up = async {
            for reply in &mut replies {
                reply.closed().await;
            }
        };
        let result = tokio::select! {
            r = batch => r,
            () = all_gave_up => {
                debug!(members, "every member of a delivery batch gave up; batch abandoned");
                continue;
            }
        };
        match result {
            Ok(outcomes) if outcomes.len() == members => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // The requester may have given up (its deadline); the delivery is stored
                    // anyway and its redelivery will be a duplicate.
                    let _ = reply.send(Ok(outcome));
                }
            }
            Ok(outcomes) => {
                // A backend that broke the contract: say so to every member rather than guess
                // which outcome is whose.
                let err = Arc::new(QueueError::Corrupt {
                    id: 0,
                    field: "batch outcomes",
                    detail: format!("{} outcomes for {members} deliveries", outcomes.len()),
                });
                answer_all(replies, &err);
            }
            Err(e) => {
                debug!(error = %e, members, "delivery batch failed; nothing of it stored");
                answer_all(replies, &Arc::new(e));
            }
        }
    }
}

fn answer_all(replies: Vec<Reply>, err: &Arc<QueueError>) {
    let members = replies.len();
    for reply in replies {
        let _ = reply.send(Err(QueueError::Batch {
            members,
            source: err.clone(),
        }));
    }
}
