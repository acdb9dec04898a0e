-- Bounces and complaints: one row per returned failure (or complaint) and delivery, and
-- per hard answer at send time. The returned message itself is never stored (personal
-- data stays in the mailbox): only the status code, one diagnostic line with addresses
-- masked, and the time. The address is read through contact_id, so it is gone once the
-- contact is forgotten.
CREATE TABLE bounces (
    id           INTEGER PRIMARY KEY,
    message_key  TEXT,                       -- the returned message's identity; NULL at send
    delivery_id  INTEGER REFERENCES deliveries (id) ON DELETE SET NULL,
    campaign_id  INTEGER REFERENCES campaigns (id) ON DELETE SET NULL,
    contact_id   INTEGER REFERENCES contacts (id) ON DELETE SET NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('hard', 'soft', 'complaint')),
    status       TEXT,                       -- the enhanced status code, e.g. 5.1.1
    diagnostic   TEXT NOT NULL DEFAULT '',
    action       TEXT NOT NULL CHECK (action IN ('bounced', 'counted', 'unsubscribed', 'none')),
    origin       TEXT NOT NULL CHECK (origin IN ('send', 'mail')),
    received_at  TEXT NOT NULL,
    UNIQUE (message_key, delivery_id)
);
CREATE INDEX bounces_contact ON bounces (contact_id, kind, received_at);
CREATE INDEX bounces_campaign ON bounces (campaign_id, kind);
CREATE INDEX bounces_received ON bounces (received_at);
-- A returned message names its delivery by the Message-ID it carried.
CREATE INDEX deliveries_message_id ON deliveries (message_id) WHERE message_id IS NOT NULL;
