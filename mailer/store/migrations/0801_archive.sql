-- The public archive: pictures stored by content and the staff's publish/withdraw choices.

-- Processed pictures (no metadata), published at /m/{name}; stored once per content.
CREATE TABLE images (
    name        TEXT PRIMARY KEY,            -- {sha256 prefix}.{ext}
    data        BLOB NOT NULL,
    width       INTEGER NOT NULL,            -- pixels
    height      INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);

-- `mailer archive add/remove`: wins over the campaign file's `archive` key.
CREATE TABLE archive_choices (
    campaign_id INTEGER PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    published   INTEGER NOT NULL CHECK (published IN (0, 1)),
    changed_at  TEXT NOT NULL
);
