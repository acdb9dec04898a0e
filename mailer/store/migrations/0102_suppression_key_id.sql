-- Which secret keyed each suppression hash (a short fingerprint, not the secret), so that a
-- secret dropped from the configuration is noticed instead of silently un-forgetting people.
ALTER TABLE suppressions ADD COLUMN key_id TEXT;
