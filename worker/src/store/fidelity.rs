//! Render verification records: kustomizations whose native render did not match the kustomize
//! binary (a row of the current engine version pins the kustomization to the binary), and the
//! kustomizations verified at least once per engine version. Written by the PR handler from
//! [`crate::render::verify::Fidelity`], read back by it at the start of each run and by the
//! dashboard's `/fidelity` page.

use async_trait::async_trait;
use serde::Serialize;

use super::{Db, StoreError};
use crate::render::verify::{Mismatch, MismatchKind};

/// One recorded mismatch, as `/fidelity` lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MismatchRecord {
    pub id: i64,
    pub repo: String,
    pub path: String,
    pub engine_version: String,
    pub kind: MismatchKind,
    pub first_difference: String,
    /// Unix milliseconds.
    pub first_seen: i64,
    pub last_seen: i64,
    /// How many verifications found it (across processes).
    pub occurrences: i64,
}

#[async_trait]
pub trait FidelityStore: Send + Sync + 'static {
    /// Newest first, at most `limit` (0 = 100).
    async fn list_mismatches(&self, limit: usize) -> Result<Vec<MismatchRecord>, StoreError>;
}

/// [`FidelityStore`] on the queue's database, with the handler's reads and writes.
#[derive(Clone, Debug)]
pub struct SqlFidelityStore {
    db: Db,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    repo: String,
    path: String,
    engine_version: String,
    kind: String,
    first_difference: String,
    first_seen: i64,
    last_seen: i64,
    occurrences: i64,
}

impl Row {
    fn into_record(self) -> Result<MismatchRecord, StoreError> {
        let kind = MismatchKind::parse(&self.kind).ok_or_else(|| StoreError::Corrupt {
            what: "render mismatch",
            id: self.id,
            detail: format!("unknown kind {:?}", self.kind),
        })?;
        Ok(MismatchRecord {
            id: self.id,
            repo: self.repo,
            path: self.path,
            engine_version: self.engine_version,
            kind,
            first_difference: self.first_difference,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            occurrences: self.occurrences,
        })
    }
}

const COLUMNS: &str = "id, repo, path, engine_version, kind, first_difference, first_seen, \
     last_seen, occurrences";

impl SqlFidelityStore {
    pub fn new(db: Db) -> Self {
        SqlFidelityStore { db }
    }

    /// Records a mismatch; the same kustomization under the same engine version keeps its first
    /// record and counts the occurrence.
    pub async fn record(&self, m: &Mismatch) -> Result<(), StoreError> {
        execute!(
            self.db,
            "recording a render mismatch",
            "INSERT INTO render_mismatches (repo, path, engine_version, kind, first_difference, \
             first_seen, last_seen, occurrences) VALUES ($1, $2, $3, $4, $5, $6, $6, 1) \
             ON CONFLICT (repo, path, engine_version) DO UPDATE SET \
             last_seen = excluded.last_seen, occurrences = render_mismatches.occurrences + 1",
            &m.repo,
            &m.path,
            &m.engine_version,
            m.kind.as_str(),
            &m.first_difference,
            m.seen_at
        )?;
        Ok(())
    }

    /// The pins of `engine_version`: every mismatch recorded under it.
    pub async fn pins(&self, engine_version: &str) -> Result<Vec<Mismatch>, StoreError> {
        let rows = fetch_all!(
            self.db,
            "reading render pins",
            Row,
            &format!("SELECT {COLUMNS} FROM render_mismatches WHERE engine_version = $1"),
            engine_version
        )?;
        rows.into_iter()
            .map(|r| {
                let r = r.into_record()?;
                Ok(Mismatch {
                    repo: r.repo,
                    path: r.path,
                    engine_version: r.engine_version,
                    kind: r.kind,
                    first_difference: r.first_difference,
                    seen_at: r.first_seen,
                })
            })
            .collect()
    }

    /// Marks kustomizations as verified under `engine_version`.
    pub async fn mark_verified(
        &self,
        engine_version: &str,
        seen: &[(String, String)],
    ) -> Result<(), StoreError> {
        for (repo, path) in seen {
            execute!(
                self.db,
                "recording a verified kustomization",
                "INSERT INTO render_verified (repo, path, engine_version) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
                repo,
                path,
                engine_version
            )?;
        }
        Ok(())
    }

    /// Kustomizations verified under `engine_version`, as (repo, path).
    pub async fn verified(
        &self,
        engine_version: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        fetch_all!(
            self.db,
            "reading verified kustomizations",
            (String, String),
            "SELECT repo, path FROM render_verified WHERE engine_version = $1",
            engine_version
        )
    }
}

#[async_trait]
impl FidelityStore for SqlFidelityStore {
    async fn list_mismatches(&self, limit: usize) -> Result<Vec<MismatchRecord>, StoreError> {
        let limit = if limit == 0 { 100 } else { limit };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        fetch_all!(
            self.db,
            "listing render mismatches",
            Row,
            &format!(
                "SELECT {COLUMNS} FROM render_mismatches ORDER BY last_seen DESC, id DESC LIMIT $1"
            ),
            limit
        )?
        .into_iter()
        .map(Row::into_record)
        .collect()
    }
}
