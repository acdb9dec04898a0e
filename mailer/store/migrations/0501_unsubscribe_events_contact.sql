-- The unsubscribe service looks up a contact's latest event (undo, `contacts show`) and
-- whether an unsubscribe was later undone (`stats`): index events by contact, newest last.
CREATE INDEX IF NOT EXISTS unsubscribe_events_contact ON unsubscribe_events (contact_id, id);
