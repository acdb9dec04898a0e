-- Sending: relay quota counters kept across runs, and why a campaign stopped.

-- Messages handed to the relay, per second (for per_minute) and per minute (for per_day).
-- Old rows are pruned as new ones are written.
CREATE TABLE smtp_usage_second (
    second  TEXT PRIMARY KEY,               -- 'YYYY-MM-DDTHH:MM:SS' UTC
    used    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE smtp_usage_minute (
    minute  TEXT PRIMARY KEY,               -- 'YYYY-MM-DDTHH:MM' UTC
    used    INTEGER NOT NULL
) WITHOUT ROWID;

ALTER TABLE campaigns ADD COLUMN status_reason TEXT;
