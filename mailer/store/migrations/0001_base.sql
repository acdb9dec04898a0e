-- The base schema. Later changes go in new files (0002_…, numbered per area: 01xx
-- contacts, 03xx newsletters, 04xx sending, 05xx unsubscribe service); never edit an
-- applied migration.

CREATE TABLE contacts (
    id              INTEGER PRIMARY KEY,
    email           TEXT NOT NULL,           -- normalised, as printed (Unicode domain)
    email_ascii     TEXT NOT NULL,           -- the form used on the wire (IDNA domain)
    email_key       TEXT NOT NULL UNIQUE,    -- case-insensitive identity
    name            TEXT NOT NULL DEFAULT '',
    organization    TEXT NOT NULL DEFAULT '',
    language        TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'subscribed'
                    CHECK (status IN ('subscribed', 'unsubscribed', 'bounced')),
    attributes      TEXT NOT NULL DEFAULT '{}',   -- JSON object of other CSV columns
    consent_source  TEXT NOT NULL DEFAULT '',
    consent_at      TEXT,
    status_changed_at TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX contacts_status ON contacts (status);
CREATE INDEX contacts_language ON contacts (language);

-- Forgotten addresses: only a keyed hash (HMAC-SHA256 of the email_key), never the address.
CREATE TABLE suppressions (
    hash        TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE lists (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    slug        TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (kind, slug)
);

CREATE TABLE memberships (
    list_id     INTEGER NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    contact_id  INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    PRIMARY KEY (list_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX memberships_contact ON memberships (contact_id, list_id);

CREATE TABLE segments (
    name        TEXT PRIMARY KEY,
    expression  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE campaigns (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    source_path TEXT NOT NULL,
    definition  TEXT NOT NULL,               -- JSON of the checked campaign file
    segment     TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'draft'
                CHECK (status IN ('draft', 'scheduled', 'sending', 'paused', 'sent', 'cancelled')),
    send_at     TEXT,                        -- UTC
    created_at  TEXT NOT NULL,
    frozen_at   TEXT,                        -- content and audience written
    finished_at TEXT,
    lease_owner TEXT,                        -- the run that holds the campaign
    lease_until TEXT
);

-- The rendered content, frozen per language when sending starts.
CREATE TABLE campaign_variants (
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    language    TEXT NOT NULL,
    content     TEXT NOT NULL,               -- JSON written by mailer.render
    PRIMARY KEY (campaign_id, language)
);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id      INTEGER REFERENCES contacts (id) ON DELETE SET NULL,
    language        TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'deferred',
                                      'unknown', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    first_attempt_at TEXT,
    last_error      TEXT,
    message_id      TEXT,
    owner           TEXT,                    -- the run that moved it to 'sending'
    updated_at      TEXT NOT NULL,
    sent_at         TEXT,
    UNIQUE (campaign_id, contact_id)
);
CREATE INDEX deliveries_status ON deliveries (campaign_id, status, id);
CREATE INDEX deliveries_sent_at ON deliveries (sent_at);

-- Unsubscribe and resubscribe events, for stats and reporting.
CREATE TABLE unsubscribe_events (
    id          INTEGER PRIMARY KEY,
    contact_id  INTEGER REFERENCES contacts (id) ON DELETE SET NULL,
    campaign_id INTEGER REFERENCES campaigns (id) ON DELETE SET NULL,
    action      TEXT NOT NULL CHECK (action IN ('unsubscribe', 'resubscribe')),
    source      TEXT NOT NULL CHECK (source IN ('one-click', 'page', 'cli', 'bounce', 'import')),
    at          TEXT NOT NULL
);
CREATE INDEX unsubscribe_events_campaign ON unsubscribe_events (campaign_id, action);
CREATE INDEX unsubscribe_events_at ON unsubscribe_events (at);
