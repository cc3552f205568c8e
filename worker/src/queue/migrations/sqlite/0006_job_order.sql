-- Jobs that share an order key (the slash-commands of one pull request) run one at a time and
-- in the order they were queued, whichever replica claims them: a job waits while another of its
-- key is running or was queued before it and is not finished. The unique index makes two running
-- jobs of one key impossible even if two claims raced past the check.
ALTER TABLE jobs ADD COLUMN order_key TEXT;
CREATE INDEX jobs_order_key ON jobs (order_key, id) WHERE order_key IS NOT NULL;
CREATE UNIQUE INDEX jobs_one_running_per_order_key ON jobs (order_key)
    WHERE order_key IS NOT NULL AND state = 'running';
