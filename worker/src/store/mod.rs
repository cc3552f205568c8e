//! Durable records beside the job queue: PR runs and holds (this module), promotions
//! (`promote::audit`). They live in the queue's database so one backup, one migration set and
//! one connection pool cover all of Capstan's state.
//!
//! [`Db`] is the shared handle: each store writes its SQL once with `$n` placeholders and
//! [`Db::sql`] adapts it to SQLite's `?n`.

// The stores' SQL helpers, defined before the store modules so that each of them uses the same.

/// Runs one statement on the writer with the same binds on both backends; the rows affected.
macro_rules! execute {
    ($db:expr, $op:literal, $sql:expr $(, $bind:expr)*) => {{
        let sql = $db.sql($sql);
        match &$db {
            Db::Sqlite { writer, .. } => sqlx::query(sql)$(.bind($bind))*.execute(writer).await
                .map(|r| r.rows_affected()),
            Db::Postgres(pool) => sqlx::query(sql)$(.bind($bind))*.execute(pool).await
                .map(|r| r.rows_affected()),
        }
        .map_err(StoreError::db($op))
    }};
}

/// Fetch rows of `$row` (reads go to the reader pool).
macro_rules! fetch_all {
    ($db:expr, $op:literal, $row:ty, $sql:expr $(, $bind:expr)*) => {{
        let sql = $db.sql($sql);
        match &$db {
            Db::Sqlite { reader, .. } => sqlx::query_as::<_, $row>(sql)$(.bind($bind))*
                .fetch_all(reader).await,
            Db::Postgres(pool) => sqlx::query_as::<_, $row>(sql)$(.bind($bind))*
                .fetch_all(pool).await,
        }
        .map_err(StoreError::db($op))
    }};
}

pub mod activity;
pub mod fidelity;
pub mod heads;
pub mod promotions;
pub mod runs;

use sqlx::{PgPool, SqlitePool};

pub use fidelity::{FidelityStore, MismatchRecord, SqlFidelityStore};
pub use heads::HeadHistory;
pub use promotions::{
    PromotionFilter, PromotionId, PromotionOutcome, PromotionRecord, PromotionStatus,
    PromotionStore, SqlPromotionStore,
};
pub use runs::{
    AttemptId, Hold, NewRun, RunAttempt, RunFilter, RunId, RunOutcome, RunRecord, RunStatus,
    RunStore,
};

/// The queue's connection pools, shared with the other stores.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite {
        /// Concurrent readers (WAL).
        reader: SqlitePool,
        /// The single writer connection every write must use.
        writer: SqlitePool,
    },
    Postgres(PgPool),
}

impl Db {
    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Adapt a query written with `$1, $2…` to this backend (SQLite spells them `?1, ?2…`).
    /// Queries must not contain `$` elsewhere. Only constant query text goes through here (values
    /// are always bound), which is what makes the [`sqlx::AssertSqlSafe`] true.
    pub fn sql(&self, query: &str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(match self {
            Db::Sqlite { .. } => query.replace('$', "?"),
            Db::Postgres(_) => query.to_string(),
        })
    }
}

/// Errors of the record stores.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable during {op}: {source}")]
    Unavailable {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("stored {what} {id} is invalid: {detail}")]
    Corrupt {
        what: &'static str,
        id: i64,
        detail: String,
    },
}

impl StoreError {
    pub(crate) fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Unavailable { op, source }
    }
}
