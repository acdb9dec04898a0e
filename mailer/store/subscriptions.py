"""Named queries of contact status: the events, the compare-and-set, what the pages show."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from mailer.timeutil import to_db

# The CHECK constraints of unsubscribe_events hold the same words (a test compares them).
ACTIONS = ("unsubscribe", "resubscribe", "bounce", "unbounce", "complaint", "subscribe", "consent")
SOURCES = ("import", "cli", "one-click", "page", "bounce", "complaint", "signup", "preferences")
# Events that say something about the status (a consent change alone does not).
_STATUS_ACTIONS = "('unsubscribe', 'resubscribe', 'bounce', 'unbounce', 'complaint', 'subscribe')"


def insert_event(
    conn: sqlite3.Connection,
    *,
    contact_id: int | None,
    campaign_id: int | None,
    action: str,
    source: str,
    now: datetime,
    detail: str | None = None,
    consent_version: str | None = None,
    consent_hash: str | None = None,
) -> int:
    cursor = conn.execute(
        "INSERT INTO unsubscribe_events (contact_id, campaign_id, action, source, at, detail,"
        " consent_version, consent_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            contact_id,
            campaign_id,
            action,
            source,
            to_db(now),
            detail,
            consent_version,
            consent_hash,
        ),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def change_status(
    conn: sqlite3.Connection, contact_id: int, old: str, new: str, now: datetime
) -> bool:
    """Move a contact from `old` to `new`; False when it was not in `old` (someone was first)."""
    stamp = to_db(now)
    cursor = conn.execute(
        "UPDATE contacts SET status = ?, status_changed_at = ?, updated_at = ?"
        " WHERE id = ? AND status = ?",
        (new, stamp, stamp, contact_id, old),
    )
    return cursor.rowcount == 1


def contact_for_page(conn: sqlite3.Connection, contact_id: int) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT id, email, language, status FROM contacts WHERE id = ?", (contact_id,)
    ).fetchone()


def campaign_for_page(conn: sqlite3.Connection, campaign_id: int) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT id, name, definition FROM campaigns WHERE id = ?", (campaign_id,)
    ).fetchone()


def last_event(conn: sqlite3.Connection, contact_id: int) -> sqlite3.Row | None:
    """The contact's latest status event (consent-only events left out)."""
    return conn.execute(
        "SELECT e.id, e.contact_id, e.campaign_id, cp.name AS campaign, e.action, e.source,"
        " e.at, e.detail FROM unsubscribe_events e"
        " LEFT JOIN campaigns cp ON cp.id = e.campaign_id"
        f" WHERE e.contact_id = ? AND e.action IN {_STATUS_ACTIONS}"
        " ORDER BY e.id DESC LIMIT 1",
        (contact_id,),
    ).fetchone()


def last_leave_or_return(conn: sqlite3.Connection, contact_id: int) -> sqlite3.Row | None:
    """The contact's latest unsubscribe, complaint, resubscribe or subscribe (action, source)."""
    return conn.execute(
        "SELECT action, source FROM unsubscribe_events WHERE contact_id = ?"
        " AND action IN ('unsubscribe', 'complaint', 'resubscribe', 'subscribe')"
        " ORDER BY id DESC LIMIT 1",
        (contact_id,),
    ).fetchone()


def count_for_campaign(conn: sqlite3.Connection, campaign_id: int) -> int:
    """Unsubscribes through this campaign's links that were not undone later."""
    row = conn.execute(
        "SELECT count(*) FROM unsubscribe_events e"
        " WHERE e.campaign_id = ? AND e.action = 'unsubscribe'"
        " AND NOT EXISTS (SELECT 1 FROM unsubscribe_events r WHERE r.contact_id = e.contact_id"
        "  AND r.action IN ('resubscribe', 'subscribe') AND r.id > e.id)",
        (campaign_id,),
    ).fetchone()
    return int(row[0])


def list_events(
    conn: sqlite3.Connection,
    *,
    campaign_id: int | None,
    since: datetime | None,
    actions: tuple[str, ...] = ACTIONS,
) -> list[sqlite3.Row]:
    marks = ",".join("?" * len(actions))
    stamp = None if since is None else to_db(since)
    return conn.execute(
        "SELECT e.id, e.at, e.action, e.source, e.contact_id, e.campaign_id, e.detail,"
        " coalesce(cp.name, '') AS campaign, coalesce(c.email, '') AS email"
        " FROM unsubscribe_events e"
        " LEFT JOIN campaigns cp ON cp.id = e.campaign_id"
        " LEFT JOIN contacts c ON c.id = e.contact_id"
        " WHERE (? IS NULL OR e.campaign_id = ?) AND (? IS NULL OR e.at >= ?)"
        f" AND e.action IN ({marks}) ORDER BY e.at, e.id",
        (campaign_id, campaign_id, stamp, stamp, *actions),
    ).fetchall()
