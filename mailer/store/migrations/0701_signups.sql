-- Signups (07xx): pending signups apart from contacts, the consent texts on record, the
-- limits against bots and list-bombing, quiet refusals, the outbox of confirmation and
-- preference-link mails, and the lists a person left on the preference page.

-- Every consent text ever agreed to, by version: its hash goes into each signup's event.
CREATE TABLE consent_texts (
    version     TEXT PRIMARY KEY,
    text_hash   TEXT NOT NULL,               -- SHA-256 of the texts (JSON, keys sorted)
    texts       TEXT NOT NULL,               -- JSON: language -> text
    recorded_at TEXT NOT NULL
);

-- AUTOINCREMENT: a confirmation token names a signup id; a purged id is never reused.
CREATE TABLE signups (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    email           TEXT NOT NULL,
    email_ascii     TEXT NOT NULL,
    email_key       TEXT NOT NULL,
    name            TEXT NOT NULL DEFAULT '',
    organization    TEXT NOT NULL DEFAULT '',
    language        TEXT NOT NULL,
    lists           TEXT NOT NULL DEFAULT '[]',  -- JSON list of KIND:SLUG chosen
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'confirmed', 'expired')),
    consent_version TEXT NOT NULL,
    client_address  TEXT,                    -- only with signup.record_client_address
    requested_at    TEXT NOT NULL,
    expires_at      INTEGER NOT NULL,        -- Unix seconds, as in the token
    confirmed_at    TEXT,
    contact_id      INTEGER REFERENCES contacts (id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX signups_one_pending ON signups (email_key) WHERE status = 'pending';
CREATE INDEX signups_status ON signups (status, expires_at);

-- What the limits count: mails to an address, posts from a client; keyed hashes only.
CREATE TABLE signup_limits (
    kind    TEXT NOT NULL CHECK (kind IN ('address', 'client')),
    key     TEXT NOT NULL,
    at      TEXT NOT NULL
);
CREATE INDEX signup_limits_key ON signup_limits (kind, key, at);

-- Quiet refusals per day and reason, for `signups list`.
CREATE TABLE signup_refusals (
    day     TEXT NOT NULL,
    reason  TEXT NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (day, reason)
) WITHOUT ROWID;

-- Confirmation and preference-link mails, sent by `mailer serve` within seconds. The
-- address is read from the signup or the contact when the mail goes out: forgetting either
-- removes its mail.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('confirm', 'preferences')),
    signup_id       INTEGER REFERENCES signups (id) ON DELETE CASCADE,
    contact_id      INTEGER REFERENCES contacts (id) ON DELETE CASCADE,
    language        TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'deferred', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    message_id      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    CHECK ((kind = 'confirm') = (signup_id IS NOT NULL)),
    CHECK ((kind = 'preferences') = (contact_id IS NOT NULL))
);
CREATE INDEX outbox_open ON outbox (next_attempt_at, id)
    WHERE status IN ('pending', 'sending', 'deferred');

-- A list the person left on the preference page: an import never puts them back.
CREATE TABLE list_departures (
    contact_id  INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    list_id     INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    at          TEXT NOT NULL,
    PRIMARY KEY (contact_id, list_id)
) WITHOUT ROWID;
