-- `stats` and `campaign list` count a campaign's deliveries by status. With no index on
-- status (0402 dropped it: every message would rewrite it twice), that grouped a million
-- rows in a temporary B-tree (~0.5 s). The counts now come from two covering reads: the
-- total from the (campaign_id, contact_id) index, the open rows from deliveries_open, and
-- the outcomes other than `sent` from this index, which a message enters only when it
-- ends failed, unknown or skipped; `sent` is what is left. Sending a message never
-- writes to it.
CREATE INDEX deliveries_other ON deliveries (campaign_id, status)
    WHERE status IN ('failed', 'unknown', 'skipped');
