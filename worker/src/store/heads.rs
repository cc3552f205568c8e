//! When Capstan learned of a pull request's head, read from the queue's own `pr_check` jobs (one
//! per `pull_request` event, re-request or recovery, all sharing the PR's supersede key). Nothing
//! here writes: the jobs are the record, so no second table can drift from what was queued.

use super::{Db, StoreError};
use crate::jobs::{PR_CHECK, PrCheck};

/// How far back the history is read: a PR pushed more often than this within its lifetime only
/// loses the oldest entries, which can only make [`HeadHistory::current_since`] later (stricter).
const HISTORY_LIMIT: i64 = 500;

#[derive(sqlx::FromRow)]
struct HeadRow {
    payload: String,
    created_at: i64,
}

/// Reads the head history of pull requests through the shared [`Db`].
#[derive(Clone, Debug)]
pub struct HeadHistory {
    db: Db,
}

impl HeadHistory {
    pub fn new(db: Db) -> Self {
        HeadHistory { db }
    }

    /// Since when (Unix milliseconds) `head` has been the PR's head without interruption as far
    /// as Capstan knows: the time of the oldest job of the newest unbroken run of jobs for
    /// `head`. `None` when the newest job is for another head, or there is none: Capstan has not
    /// seen `head` become the head, so nobody can claim to have seen it before a given moment.
    pub async fn current_since(
        &self,
        repo: &str,
        pr: u64,
        head: &str,
    ) -> Result<Option<i64>, StoreError> {
        let history = self.history(repo, pr).await?;
        Ok(since(
            history.iter().map(|(p, at)| {
                (
                    p.as_ref().map(|p| p.head_sha.clone()).unwrap_or_default(),
                    *at,
                )
            }),
            head,
        ))
    }
}

/// The trigger of the check an authorized `/capstan ok-to-test` queues: its sender approved
/// cluster checks for its head.
pub const OK_TO_TEST_TRIGGER: &str = "command.ok-to-test";

impl HeadHistory {
    /// Who approved cluster checks for `head` of the PR with `/capstan ok-to-test`, if anyone.
    /// Only the command handler queues checks with [`OK_TO_TEST_TRIGGER`], after authorizing
    /// the commenter, so the queue is the record.
    pub async fn approved_by(
        &self,
        repo: &str,
        pr: u64,
        head: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .history(repo, pr)
            .await?
            .into_iter()
            .filter_map(|(p, _)| p)
            .find(|p| p.trigger == OK_TO_TEST_TRIGGER && p.head_sha == head)
            .map(|p| p.sender.unwrap_or_default()))
    }
}

impl HeadHistory {
    /// The PR's `pr_check` jobs, newest first, with when each was queued. A payload that does not
    /// decode counts as a head nobody knows (it breaks a run of sightings, never extends one).
    async fn history(
        &self,
        repo: &str,
        pr: u64,
    ) -> Result<Vec<(Option<PrCheck>, i64)>, StoreError> {
        let rows = fetch_all!(
            self.db,
            "reading a pull request's head history",
            HeadRow,
            "SELECT payload, created_at FROM jobs WHERE kind = $1 AND supersede_key = $2 \
             ORDER BY id DESC LIMIT $3",
            PR_CHECK,
            PrCheck::supersede_key(repo, pr),
            HISTORY_LIMIT
        )?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    serde_json::from_str::<PrCheck>(&r.payload).ok(),
                    r.created_at,
                )
            })
            .collect())
    }
}

/// The pure walk of [`HeadHistory::current_since`] over (head, time) pairs, newest first.
fn since(newest_first: impl Iterator<Item = (String, i64)>, head: &str) -> Option<i64> {
    let mut first = None;
    for (sha, at) in newest_first {
        if sha != head {
            break;
        }
        first = Some(first.map_or(at, |f: i64| f.min(at)));
    }
    first
}

#[cfg(test)]
mod tests {
    use super::since;

    fn walk(h: &[(&str, i64)], head: &str) -> Option<i64> {
        since(h.iter().map(|(s, t)| (s.to_string(), *t)), head)
    }

    #[test]
    fn the_newest_unbroken_run_of_the_head_counts() {
        assert_eq!(walk(&[("b", 30), ("b", 20), ("a", 10)], "b"), Some(20));
        // Force-pushed back to an older head: only the return counts, not the first sighting.
        assert_eq!(walk(&[("a", 40), ("b", 20), ("a", 10)], "a"), Some(40));
        assert_eq!(walk(&[("b", 20), ("a", 10)], "a"), None);
        assert_eq!(walk(&[], "a"), None);
    }
}
