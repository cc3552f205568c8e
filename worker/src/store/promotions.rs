//! The promotion audit trail: every attempt to promote (on merge or by command), who or what
//! triggered it, what it changed and how it ended. Written by `promote`, read by the dashboard
//! and `capstan promotions`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Db, StoreError};
use crate::queue::now_ms;

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

/// [`PromotionStore`] on the queue's database, with the writes the promotion engine needs.
#[derive(Clone, Debug)]
pub struct SqlPromotionStore {
    db: Db,
}

/// How an attempt ended, written over a pending record.
#[derive(Clone, Debug)]
pub struct PromotionOutcome {
    pub status: PromotionStatus,
    pub summary: String,
    pub detail: Option<String>,
    pub result_pr: Option<u64>,
    pub result_sha: Option<String>,
}

#[derive(sqlx::FromRow)]
struct PromotionRow {
    id: i64,
    promotion_key: String,
    repo: String,
    app: String,
    source_env: String,
    target_env: String,
    trigger_name: String,
    actor: String,
    source_pr: Option<i64>,
    source_sha: String,
    mode: String,
    summary: String,
    status: String,
    detail: Option<String>,
    result_pr: Option<i64>,
    result_sha: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl PromotionRow {
    fn into_record(self) -> Result<PromotionRecord, StoreError> {
        let status = PromotionStatus::parse(&self.status).ok_or_else(|| StoreError::Corrupt {
            what: "promotion",
            id: self.id,
            detail: format!("unknown status {:?}", self.status),
        })?;
        let pr = |v: Option<i64>| v.and_then(|n| u64::try_from(n).ok());
        Ok(PromotionRecord {
            id: self.id,
            promotion_key: self.promotion_key,
            repo: self.repo,
            app: self.app,
            source_env: self.source_env,
            target_env: self.target_env,
            trigger: self.trigger_name,
            actor: self.actor,
            source_pr: pr(self.source_pr),
            source_sha: self.source_sha,
            mode: self.mode,
            summary: self.summary,
            status,
            detail: self.detail,
            result_pr: pr(self.result_pr),
            result_sha: self.result_sha,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const COLUMNS: &str = "id, promotion_key, repo, app, source_env, target_env, trigger_name, actor, \
     source_pr, source_sha, mode, summary, status, detail, result_pr, result_sha, created_at, \
     updated_at";

fn opt_i64(v: Option<u64>) -> Option<i64> {
    v.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// Reads go to the reader pool (SQLite) or the pool (PostgreSQL).
macro_rules! fetch_rows {
    ($db:expr, $op:literal, $sql:expr $(, $bind:expr)*) => {{
        let sql = $db.sql($sql);
        match &$db {
            Db::Sqlite { reader, .. } => sqlx::query_as::<_, PromotionRow>(sql)$(.bind($bind))*
                .fetch_all(reader).await,
            Db::Postgres(pool) => sqlx::query_as::<_, PromotionRow>(sql)$(.bind($bind))*
                .fetch_all(pool).await,
        }
        .map_err(StoreError::db($op))?
        .into_iter()
        .map(PromotionRow::into_record)
        .collect::<Result<Vec<_>, StoreError>>()
    }};
}

impl SqlPromotionStore {
    pub fn new(db: Db) -> Self {
        SqlPromotionStore { db }
    }

    /// Store a new attempt (its `id`, `created_at` and `updated_at` are assigned here).
    pub async fn insert(&self, rec: &PromotionRecord) -> Result<PromotionId, StoreError> {
        let sql = self.db.sql(
            "INSERT INTO promotions (promotion_key, repo, app, source_env, target_env, \
             trigger_name, actor, source_pr, source_sha, mode, summary, status, detail, \
             result_pr, result_sha, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, \
             $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) RETURNING id",
        );
        macro_rules! insert_on {
            ($pool:expr) => {
                sqlx::query_as::<_, (i64,)>(sql)
                    .bind(&rec.promotion_key)
                    .bind(&rec.repo)
                    .bind(&rec.app)
                    .bind(&rec.source_env)
                    .bind(&rec.target_env)
                    .bind(&rec.trigger)
                    .bind(&rec.actor)
                    .bind(opt_i64(rec.source_pr))
                    .bind(&rec.source_sha)
                    .bind(&rec.mode)
                    .bind(crate::scrub::scrub_string(&rec.summary))
                    .bind(rec.status.as_str())
                    .bind(rec.detail.as_deref().map(crate::scrub::scrub_string))
                    .bind(opt_i64(rec.result_pr))
                    .bind(&rec.result_sha)
                    .bind(now_ms())
                    .fetch_one($pool)
                    .await
            };
        }
        let id = match &self.db {
            Db::Sqlite { writer, .. } => insert_on!(writer),
            Db::Postgres(pool) => insert_on!(pool),
        }
        .map_err(StoreError::db("recording a promotion"))?;
        Ok(id.0)
    }

    /// Record how attempt `id` ended.
    pub async fn finish(&self, id: PromotionId, out: &PromotionOutcome) -> Result<(), StoreError> {
        let sql = self.db.sql(
            "UPDATE promotions SET status = $1, summary = $2, detail = $3, result_pr = $4, \
             result_sha = $5, updated_at = $6 WHERE id = $7",
        );
        macro_rules! update_on {
            ($pool:expr) => {
                sqlx::query(sql)
                    .bind(out.status.as_str())
                    .bind(crate::scrub::scrub_string(&out.summary))
                    .bind(out.detail.as_deref().map(crate::scrub::scrub_string))
                    .bind(opt_i64(out.result_pr))
                    .bind(&out.result_sha)
                    .bind(now_ms())
                    .bind(id)
                    .execute($pool)
                    .await
                    .map(|_| ())
            };
        }
        match &self.db {
            Db::Sqlite { writer, .. } => update_on!(writer),
            Db::Postgres(pool) => update_on!(pool),
        }
        .map_err(StoreError::db("finishing a promotion"))?;
        Ok(())
    }

    /// The newest attempt with this promotion key.
    pub async fn find_by_key(&self, key: &str) -> Result<Option<PromotionRecord>, StoreError> {
        let rows = fetch_rows!(
            self.db,
            "finding a promotion",
            &format!(
                "SELECT {COLUMNS} FROM promotions WHERE promotion_key = $1 ORDER BY id DESC LIMIT 1"
            ),
            key
        )?;
        Ok(rows.into_iter().next())
    }
}

#[async_trait]
impl PromotionStore for SqlPromotionStore {
    async fn list_promotions(
        &self,
        filter: &PromotionFilter,
    ) -> Result<Vec<PromotionRecord>, StoreError> {
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        fetch_rows!(
            self.db,
            "listing promotions",
            &format!(
                "SELECT {COLUMNS} FROM promotions WHERE ($1 IS NULL OR repo = $1) \
                 AND ($2 IS NULL OR app = $2) AND ($3 IS NULL OR target_env = $3) \
                 AND ($4 IS NULL OR status = $4) ORDER BY id DESC LIMIT $5"
            ),
            filter.repo.as_deref(),
            filter.app.as_deref(),
            filter.target_env.as_deref(),
            filter.status.map(PromotionStatus::as_str),
            limit
        )
    }

    async fn promotion(&self, id: PromotionId) -> Result<Option<PromotionRecord>, StoreError> {
        let rows = fetch_rows!(
            self.db,
            "reading a promotion",
            &format!("SELECT {COLUMNS} FROM promotions WHERE id = $1"),
            id
        )?;
        Ok(rows.into_iter().next())
    }
}
