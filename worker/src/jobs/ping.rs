//! The `ping` handler: GitHub sends a ping when a hook is created or edited. Bookkeeping only — it
//! logs that the hook reached Capstan, and its finished run is the proof in `job_runs`.

use async_trait::async_trait;
use tracing::info;

use super::Ping;
use crate::runner::{JobContext, JobError, JobHandler};

pub struct PingHandler;

#[async_trait]
impl JobHandler<Ping> for PingHandler {
    async fn run(&self, _ctx: JobContext, ping: Ping) -> Result<(), JobError> {
        info!(
            hook_id = ping.hook_id,
            repo = ping.repo.as_deref().unwrap_or("-"),
            zen = ping.zen.as_deref().unwrap_or(""),
            "webhook ping received"
        );
        Ok(())
    }
}
