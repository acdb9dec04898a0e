-- Runs in a row that the relay stopped with an answer about our own sending limit (5.4.5,
-- 5.7.233, a 4.7.x or 421 naming a rate or quota). Each such run puts its recipient back
-- and ends; a run that sends anything starts the count again. When the count reaches
-- smtp.pause_after the campaign pauses instead of asking the relay every few minutes forever.
ALTER TABLE campaigns ADD COLUMN quota_stops INTEGER NOT NULL DEFAULT 0;
