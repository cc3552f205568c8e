-- The promotion audit trail: one row per attempt (merge-triggered promotions are updated in
-- place when a retry or redelivery finds the same promotion key; each command is its own row).
CREATE TABLE promotions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    promotion_key  TEXT NOT NULL,
    repo           TEXT NOT NULL,
    app            TEXT NOT NULL,
    source_env     TEXT NOT NULL,
    target_env     TEXT NOT NULL,
    trigger_name   TEXT NOT NULL,
    actor          TEXT NOT NULL,
    source_pr      BIGINT,
    source_sha     TEXT NOT NULL,
    mode           TEXT NOT NULL,
    summary        TEXT NOT NULL,
    status         TEXT NOT NULL,
    detail         TEXT,
    result_pr      BIGINT,
    result_sha     TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX promotions_key ON promotions (promotion_key, id);
CREATE INDEX promotions_repo ON promotions (repo, app, id);
