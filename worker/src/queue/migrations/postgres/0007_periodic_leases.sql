-- A periodic task (missed-event recovery) runs on one replica per period: the replica that takes
-- the task's lease runs it, the others skip that period. Expired leases are simply taken over.
CREATE TABLE periodic_leases (
    task       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
