-- One run per (repo, PR, head): a retried job or another job for a head already checked reopens
-- its run, and each pr_check attempt is a row of run_attempts. The run row reads as its latest
-- attempt (`attempts` counts them and numbers the next one). `base_sha` becomes the base branch
-- tip the attempt fetched and `merge_base` the commit its diff compared against (both NULL
-- until the fetch is done).
ALTER TABLE runs ADD COLUMN merge_base TEXT;
ALTER TABLE runs ADD COLUMN attempts BIGINT NOT NULL DEFAULT 1;

CREATE TABLE run_attempts (
    run_id        BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    attempt       BIGINT NOT NULL,
    job_id        BIGINT,
    trigger_name  TEXT NOT NULL,
    status        TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    error         TEXT,
    -- The id a migrated attempt had as a run of its own: links posted before this migration
    -- (check-run details, comments) still find their run.
    former_run_id BIGINT UNIQUE,
    PRIMARY KEY (run_id, attempt)
);

-- Every existing row becomes one attempt, in id order, of the newest row of its head, which
-- stays the run (its outcome is the latest).
INSERT INTO run_attempts (run_id, attempt, job_id, trigger_name, status, started_at,
                          finished_at, error, former_run_id)
SELECT MAX(id) OVER w, ROW_NUMBER() OVER (w ORDER BY id), job_id, trigger_name, status,
       started_at, finished_at, error, id
FROM runs
WINDOW w AS (PARTITION BY repo, pr, head_sha);

-- What an older attempt posted is still on the pull request when the newest row posted nothing
-- (it failed first): the run keeps it so that the next run edits the same comment.
UPDATE runs SET
    attempts = (SELECT COUNT(*) FROM run_attempts a WHERE a.run_id = runs.id),
    check_run_id = COALESCE(check_run_id, (
        SELECT o.check_run_id FROM runs o
        WHERE o.repo = runs.repo AND o.pr = runs.pr AND o.head_sha = runs.head_sha
          AND o.check_run_id IS NOT NULL
        ORDER BY o.id DESC LIMIT 1)),
    comment_ids = COALESCE((
        SELECT o.comment_ids FROM runs o
        WHERE o.repo = runs.repo AND o.pr = runs.pr AND o.head_sha = runs.head_sha
          AND o.comment_ids <> '[]'
        ORDER BY o.id DESC LIMIT 1), '[]')
WHERE id IN (SELECT run_id FROM run_attempts);

DELETE FROM runs WHERE id NOT IN (SELECT run_id FROM run_attempts);

CREATE UNIQUE INDEX runs_head ON runs (repo, pr, head_sha);
