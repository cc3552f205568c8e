//! What a batch of jobs does to the store, worked out before it is written, so a backend can
//! write a whole batch with a few set-wise statements instead of two statements per job.
//!
//! The meaning is fixed by the one-by-one path: for each job in order, first every live job with
//! the same supersede key and another dedupe key is superseded (queued) or asked to stop
//! (running), then the job is inserted unless a live job already has its dedupe key. The plan
//! replays exactly that over the live rows the batch can touch, which the caller reads inside
//! the same write transaction, so nothing changes under it.

use super::NewJob;

/// A queued or running job already stored whose supersede key or dedupe key the batch shares.
#[derive(Clone, Debug)]
pub(crate) struct LiveRow {
    pub id: i64,
    pub dedupe_key: String,
    pub supersede_key: Option<String>,
    pub running: bool,
}

/// The writes of one batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Stored rows that a job of the batch supersedes (queued) or asks to stop (running), in
    /// ascending id order, each once.
    pub touched: Vec<i64>,
    /// The jobs to insert, as indexes into the batch's jobs in insertion order, each with whether
    /// a later job of the same batch already supersedes it.
    pub inserts: Vec<(usize, bool)>,
    /// For each job of the batch: its position in `inserts`, or `None` when a live job with its
    /// dedupe key existed (the one-by-one path's `ON CONFLICT DO NOTHING`).
    pub placed: Vec<Option<usize>>,
}

struct Row<'a> {
    stored: Option<i64>,
    dedupe_key: &'a str,
    supersede_key: Option<&'a str>,
    /// Queued or running.
    live: bool,
    /// Running: asked to stop rather than superseded, so it stays live.
    running: bool,
}

pub(crate) fn plan(jobs: &[&NewJob], live: &[LiveRow]) -> Plan {
    let mut rows: Vec<Row<'_>> = live
        .iter()
        .map(|r| Row {
            stored: Some(r.id),
            dedupe_key: &r.dedupe_key,
            supersede_key: r.supersede_key.as_deref(),
            live: true,
            running: r.running,
        })
        .collect();
    let mut out = Plan::default();
    // Positions in `rows` of the batch's own rows, in insertion order.
    let mut inserted_rows = Vec::new();
    for (index, job) in jobs.iter().enumerate() {
        if let Some(key) = job.supersede_key.as_deref() {
            for row in rows.iter_mut().filter(|r| {
                r.live && r.supersede_key == Some(key) && r.dedupe_key != job.dedupe_key
            }) {
                row.live = row.running;
                if let Some(id) = row.stored {
                    out.touched.push(id);
                }
            }
        }
        if rows
            .iter()
            .any(|r| r.live && r.dedupe_key == job.dedupe_key)
        {
            out.placed.push(None);
        } else {
            out.placed.push(Some(out.inserts.len()));
            out.inserts.push((index, false));
            inserted_rows.push(rows.len());
            rows.push(Row {
                stored: None,
                dedupe_key: &job.dedupe_key,
                supersede_key: job.supersede_key.as_deref(),
                live: true,
                running: false,
            });
        }
    }
    for (insert, row) in out.inserts.iter_mut().zip(inserted_rows) {
        insert.1 = !rows[row].live;
    }
    out.touched.sort_unstable();
    out.touched.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(dedupe: &str, supersede: Option<&str>) -> NewJob {
        let j = NewJob::new("pr_check", dedupe, serde_json::Value::Null);
        match supersede {
            Some(k) => j.superseding(k),
            None => j,
        }
    }

    fn stored(id: i64, dedupe: &str, supersede: &str, running: bool) -> LiveRow {
        LiveRow {
            id,
            dedupe_key: dedupe.into(),
            supersede_key: Some(supersede.into()),
            running,
        }
    }

    #[test]
    fn a_newer_head_supersedes_the_older_one_in_the_same_batch() {
        let (a, b) = (job("pr#1@a", Some("pr#1")), job("pr#1@b", Some("pr#1")));
        let p = plan(&[&a, &b], &[]);
        assert_eq!(p.inserts, [(0, true), (1, false)]);
        assert_eq!(p.placed, [Some(0), Some(1)]);
        assert!(p.touched.is_empty());
    }

    #[test]
    fn a_head_already_live_is_not_inserted_again() {
        let a = job("pr#1@a", Some("pr#1"));
        let p = plan(&[&a], &[stored(7, "pr#1@a", "pr#1", false)]);
        assert_eq!(p.placed, [None]);
        assert!(p.inserts.is_empty() && p.touched.is_empty());
    }

    #[test]
    fn a_superseded_stored_job_frees_its_dedupe_key_but_a_running_one_does_not() {
        // b supersedes the stored queued a; a's head arriving again is then a new job.
        let (b, a) = (job("pr#1@b", Some("pr#1")), job("pr#1@a", Some("pr#1")));
        let queued = plan(&[&b, &a], &[stored(7, "pr#1@a", "pr#1", false)]);
        assert_eq!(queued.touched, [7]);
        assert_eq!(queued.inserts, [(0, true), (1, false)]);
        // Running, a is only asked to stop and still holds its key; a arriving again still
        // supersedes b first, as the one-by-one path's UPDATE before its INSERT does.
        let running = plan(&[&b, &a], &[stored(7, "pr#1@a", "pr#1", true)]);
        assert_eq!(running.touched, [7]);
        assert_eq!(running.inserts, [(0, true)]);
        assert_eq!(running.placed, [Some(0), None]);
    }

    #[test]
    fn jobs_without_a_supersede_key_only_deduplicate() {
        let (a, a2) = (job("ping:1", None), job("ping:1", None));
        let p = plan(&[&a, &a2], &[]);
        assert_eq!(p.inserts, [(0, false)]);
        assert_eq!(p.placed, [Some(0), None]);
    }
}
