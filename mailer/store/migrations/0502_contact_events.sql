-- Events of every kind of contact status change, not only (un)subscribes: bounces,
-- complaints, unbounces, signups (with the consent version and its text's hash), consent
-- changes, and a one-line detail (a bounce's reply, a staff override). One source vocabulary.
--
-- SQLite cannot widen a CHECK, so the table is rebuilt: new table, copy, drop, rename.
-- This is safe inside the runner's one transaction with foreign keys on, because no table
-- references unsubscribe_events (a test checks PRAGMA foreign_key_list of every table):
-- dropping it cascades nothing. Its own references to contacts and campaigns stay as they were.
CREATE TABLE unsubscribe_events_new (
    id              INTEGER PRIMARY KEY,
    contact_id      INTEGER REFERENCES contacts (id) ON DELETE SET NULL,
    campaign_id     INTEGER REFERENCES campaigns (id) ON DELETE SET NULL,
    action          TEXT NOT NULL CHECK (action IN ('unsubscribe', 'resubscribe', 'bounce',
                        'unbounce', 'complaint', 'subscribe', 'consent')),
    source          TEXT NOT NULL CHECK (source IN ('import', 'cli', 'one-click', 'page',
                        'bounce', 'complaint', 'signup', 'preferences')),
    at              TEXT NOT NULL,
    detail          TEXT,                    -- one line: why, or what a staff override did
    consent_version TEXT,                    -- a signup or consent: the version agreed to
    consent_hash    TEXT                     -- and the SHA-256 of that version's text
);

INSERT INTO unsubscribe_events_new (id, contact_id, campaign_id, action, source, at)
    SELECT id, contact_id, campaign_id, action, source, at FROM unsubscribe_events ORDER BY id;

DROP TABLE unsubscribe_events;

ALTER TABLE unsubscribe_events_new RENAME TO unsubscribe_events;

CREATE INDEX unsubscribe_events_campaign ON unsubscribe_events (campaign_id, action);
CREATE INDEX unsubscribe_events_at ON unsubscribe_events (at);
CREATE INDEX unsubscribe_events_contact ON unsubscribe_events (contact_id, id);
