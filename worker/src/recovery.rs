//! Missed-event recovery. GitHub does not retry a failed webhook, so on start and every few
//! minutes Capstan lists open PRs and queues a `pr_check` for every head that has no finished
//! one (and none queued or running: the queue's dedupe key already prevents that duplicate).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::forge::{ForgeError, Inventory};
use crate::jobs::{PR_CHECK, PrCheck};
use crate::queue::{JobState, Queue, QueueError};

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("recovery could not list pull requests: {0}")]
    Forge(#[from] ForgeError),
    #[error("recovery could not use the queue: {0}")]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Injected(#[from] crate::failpoint::Injected),
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub repos: usize,
    pub open_prs: usize,
    /// PR heads that got a new `pr_check`.
    pub enqueued: Vec<(String, u64, String)>,
}

/// One pass over the repos the forge lists that `allowed` accepts.
pub async fn recover_once(
    queue: &dyn Queue,
    forge: &dyn Inventory,
    allowed: &(dyn Fn(&str) -> bool + Send + Sync),
) -> Result<RecoveryReport, RecoveryError> {
    let mut report = RecoveryReport::default();
    for repo in forge.repositories().await? {
        if !allowed(&repo) {
            continue;
        }
        report.repos += 1;
        for pr in forge.open_pull_requests(&repo).await? {
            report.open_prs += 1;
            let job = PrCheck {
                repo: pr.repo.clone(),
                number: pr.number,
                head_sha: pr.head_sha.clone(),
                head_ref: Some(pr.head_ref),
                base_ref: Some(pr.base_ref),
                installation_id: None,
                trigger: "recovery".into(),
                sender: None,
            };
            if ensure_checked(queue, job).await? {
                info!(repo = %pr.repo, pr = pr.number, head = %pr.head_sha, "recovered a missed pull request head");
                report.enqueued.push((pr.repo, pr.number, pr.head_sha));
            }
        }
    }
    Ok(report)
}

/// Queues `job` unless its head already has a `pr_check` that is queued, running or finished
/// (one superseded or cancelled does not count: nothing was reported for it). True when queued.
pub async fn ensure_checked(queue: &dyn Queue, job: PrCheck) -> Result<bool, QueueError> {
    let key = PrCheck::dedupe_key(&job.repo, job.number, &job.head_sha);
    let handled = queue.jobs_by_dedupe_key(&key).await?.iter().any(|j| {
        j.kind == PR_CHECK && !matches!(j.state, JobState::Superseded | JobState::Cancelled)
    });
    if handled {
        return Ok(false);
    }
    Ok(queue.enqueue(&job.into_job()).await?.is_some())
}

/// The periodic lease replicas share for recovery (see [`Queue::take_periodic`]).
pub const RECOVERY_TASK: &str = "missed-event-recovery";

/// Run [`recover_once`] now and then every `every` until `shutdown`. Replicas sharing a
/// database take turns: in each period only the one holding the recovery lease lists the pull
/// requests, so N replicas cost the forge's rate limit what one does.
pub async fn run_periodically(
    queue: Arc<dyn Queue>,
    forge: Arc<dyn Inventory>,
    allowed: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    every: Duration,
    owner: String,
    shutdown: CancellationToken,
) {
    loop {
        match queue.take_periodic(RECOVERY_TASK, &owner, every).await {
            Ok(true) => {
                let pass = async {
                    crate::failpoint::hit(crate::failpoint::HOLDING_RECOVERY_LEASE)?;
                    recover_once(queue.as_ref(), forge.as_ref(), allowed.as_ref()).await
                };
                match pass.await {
                    Ok(r) => info!(
                        repos = r.repos,
                        open_prs = r.open_prs,
                        enqueued = r.enqueued.len(),
                        "missed-event recovery pass done"
                    ),
                    Err(e) => warn!(error = %e, "missed-event recovery pass failed"),
                }
            }
            Ok(false) => debug!("missed-event recovery: another replica runs it this period"),
            Err(e) => warn!(error = %e, "missed-event recovery skipped: the queue is unavailable"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
