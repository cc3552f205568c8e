//! The promotion audit trail: every attempt to promote (on merge or by command), who or what
//! triggered it, what it changed and how it ended. Written by `promote`, read by the dashboard
//! and `capstan promotions`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;

pub type PromotionId = i64;

/// How a promotion attempt ended (or where it stands).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromotionStatus {
    /// Being computed or pushed.
    Pending,
    /// A promotion PR was opened or updated.
    Opened,
    /// Committed directly to the default branch.
    Committed,
    /// The target already had these values; nothing to do.
    NoChange,
    /// A conflicting edit on the target; reported on the source PR.
    Conflict,
    /// Refused: permission, moved head, unknown environment…
    Refused,
    Failed,
}

impl PromotionStatus {
    pub const ALL: [PromotionStatus; 7] = [
        PromotionStatus::Pending,
        PromotionStatus::Opened,
        PromotionStatus::Committed,
        PromotionStatus::NoChange,
        PromotionStatus::Conflict,
        PromotionStatus::Refused,
        PromotionStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PromotionStatus::Pending => "pending",
            PromotionStatus::Opened => "opened",
            PromotionStatus::Committed => "committed",
            PromotionStatus::NoChange => "no_change",
            PromotionStatus::Conflict => "conflict",
            PromotionStatus::Refused => "refused",
            PromotionStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// One promotion attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromotionRecord {
    pub id: PromotionId,
    /// `Capstan-Promotion-Id` trailer value: stable across retries and redeliveries.
    pub promotion_key: String,
    pub repo: String,
    pub app: String,
    pub source_env: String,
    pub target_env: String,
    /// `merge` or `command`.
    pub trigger: String,
    /// GitHub login, or `capstan` for automatic promotions.
    pub actor: String,
    pub source_pr: Option<u64>,
    pub source_sha: String,
    /// `pull-request` or `direct`.
    pub mode: String,
    /// Human summary of the edit, e.g. `images: podinfo 6.7.0 → 6.7.1`.
    pub summary: String,
    pub status: PromotionStatus,
    pub detail: Option<String>,
    pub result_pr: Option<u64>,
    pub result_sha: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// Which promotions to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct PromotionFilter {
    pub repo: Option<String>,
    pub app: Option<String>,
    pub target_env: Option<String>,
    pub status: Option<PromotionStatus>,
    /// At most this many (0 = 100).
    pub limit: usize,
}

#[async_trait]
pub trait PromotionStore: Send + Sync + 'static {
    async fn list_promotions(
        &self,
        filter: &PromotionFilter,
    ) -> Result<Vec<PromotionRecord>, StoreError>;
    async fn promotion(&self, id: PromotionId) -> Result<Option<PromotionRecord>, StoreError>;
}
