-- Deliveries seen by the webhook intake, keyed by GitHub's X-GitHub-Delivery GUID (dedupe).
CREATE TABLE deliveries (
    delivery_id TEXT PRIMARY KEY NOT NULL,
    event       TEXT NOT NULL,
    action      TEXT,
    repo        TEXT,
    outcome     TEXT NOT NULL,
    detail      TEXT,
    received_at BIGINT NOT NULL
);

-- Durable jobs. Times are Unix milliseconds computed by the process, identical on both backends.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT NOT NULL,
    dedupe_key       TEXT NOT NULL,
    supersede_key    TEXT,
    delivery_id      TEXT REFERENCES deliveries (delivery_id),
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    run_after        BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    claimed_from     TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    finished_at      BIGINT
);

-- At most one live job per dedupe key; finished ones may repeat (e.g. a re-requested check).
CREATE UNIQUE INDEX jobs_live_dedupe ON jobs (dedupe_key) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_claimable ON jobs (kind, state, run_after);
CREATE INDEX jobs_supersede ON jobs (supersede_key) WHERE supersede_key IS NOT NULL;
CREATE INDEX jobs_delivery ON jobs (delivery_id);

-- One row per finished attempt, written in the same transaction that finishes the attempt.
CREATE TABLE job_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      BIGINT NOT NULL REFERENCES jobs (id),
    attempt     INTEGER NOT NULL,
    worker      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    error       TEXT,
    finished_at BIGINT NOT NULL
);
CREATE INDEX job_runs_job ON job_runs (job_id);
