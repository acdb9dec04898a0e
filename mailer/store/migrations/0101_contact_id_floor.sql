-- The id of a deleted (forgotten) contact is never given to a later contact: an old
-- unsubscribe link carries (campaign id, contact id) and must not act on someone else.
-- SQLite would otherwise reuse the highest id after its row is deleted.
CREATE TABLE contact_id_floor (
    single  INTEGER PRIMARY KEY CHECK (single = 1),
    value   INTEGER NOT NULL
);

CREATE TRIGGER contacts_keep_id_floor AFTER DELETE ON contacts
BEGIN
    INSERT INTO contact_id_floor (single, value) VALUES (1, OLD.id)
        ON CONFLICT (single) DO UPDATE SET value = max(value, excluded.value);
END;
