-- One row per pr_check attempt at a head; the report is the RunReport as JSON.
CREATE TABLE runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    repo          TEXT NOT NULL,
    pr            BIGINT NOT NULL,
    head_sha      TEXT NOT NULL,
    base_sha      TEXT,
    trigger_name  TEXT NOT NULL,
    job_id        BIGINT,
    status        TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    apps          BIGINT NOT NULL DEFAULT 0,
    denies        BIGINT NOT NULL DEFAULT 0,
    warns         BIGINT NOT NULL DEFAULT 0,
    render_errors BIGINT NOT NULL DEFAULT 0,
    error         TEXT,
    check_run_id  BIGINT,
    comment_ids   TEXT NOT NULL DEFAULT '[]',
    report        TEXT
);
CREATE INDEX runs_pr ON runs (repo, pr, id);
CREATE INDEX runs_status ON runs (status, id);

-- /capstan hold: at most one per PR; the check stays failing while it exists.
CREATE TABLE holds (
    repo     TEXT NOT NULL,
    pr       BIGINT NOT NULL,
    held_by  TEXT NOT NULL,
    held_at  BIGINT NOT NULL,
    PRIMARY KEY (repo, pr)
);
