-- Click counting (tracking.clicks): the links of a campaign are registered at the freeze and
-- clicks are counted per link, never per person. Unique counts come from a keyed hash of the
-- delivery under a random key of the campaign's own; the hashes and the key are deleted
-- `tracking.keep_days` after the freeze, after which only the counts remain. No row here
-- names a contact.

-- A campaign frozen with click counting on (no row: sent without it, `clicks` is null).
CREATE TABLE click_campaigns (
    campaign_id   INTEGER PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    hash_key      BLOB,                         -- random; NULL once the hashes are purged
    tracked_at    TEXT NOT NULL,                -- the freeze
    purged_at     TEXT,                         -- hashes deleted: only the counts remain
    unique_clicks INTEGER NOT NULL DEFAULT 0    -- deliveries that followed any link
);

-- The counted links of a campaign, in the order they appear in the newsletter: the only
-- URLs /l/ ever redirects to.
CREATE TABLE campaign_links (
    id            INTEGER PRIMARY KEY,
    campaign_id   INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    url           TEXT NOT NULL,
    clicks        INTEGER NOT NULL DEFAULT 0,
    unique_clicks INTEGER NOT NULL DEFAULT 0,
    early         INTEGER NOT NULL DEFAULT 0,   -- within ignore_first_seconds: mail scanners
    UNIQUE (campaign_id, url),
    UNIQUE (campaign_id, position)
);

-- One row per campaign, link (0: any link of the campaign) and keyed hash of a delivery.
CREATE TABLE click_hashes (
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    link_id     INTEGER NOT NULL,
    hash        BLOB NOT NULL,
    PRIMARY KEY (campaign_id, link_id, hash)
) WITHOUT ROWID;
