-- Cheaper writes while sending: a row's state changes twice per message, and every index
-- that holds `status` or `sent_at` changed with it. One partial index on the rows still to
-- do (pending, sending, deferred) replaces them: claiming a row (pending → sending) leaves
-- it untouched, and an outcome only removes the row from it.
DROP INDEX IF EXISTS deliveries_status;
DROP INDEX IF EXISTS deliveries_sent_at;
CREATE INDEX deliveries_open ON deliveries (campaign_id, id)
    WHERE status IN ('pending', 'sending', 'deferred');
