"""Named queries of contact status: the events, the compare-and-set, what the pages show."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from mailer.timeutil import to_db

ACTIONS = ("unsubscribe", "resubscribe")
SOURCES = ("one-click", "page", "cli", "bounce", "import")


def insert_event(
    conn: sqlite3.Connection,
    *,
    contact_id: int | None,
    campaign_id: int | None,
    action: str,
    source: str,
    now: datetime,
) -> int:
    cursor = conn.execute(
        "INSERT INTO unsubscribe_events (contact_id, campaign_id, action, source, at)"
        " VALUES (?, ?, ?, ?, ?)",
        (contact_id, campaign_id, action, source, to_db(now)),
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


def campaign_id_by_name(conn: sqlite3.Connection, name: str) -> int | None:
    row = conn.execute("SELECT id FROM campaigns WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row[0])


def last_event(conn: sqlite3.Connection, contact_id: int) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT e.id, e.contact_id, e.campaign_id, cp.name AS campaign, e.action, e.source, e.at"
        " FROM unsubscribe_events e LEFT JOIN campaigns cp ON cp.id = e.campaign_id"
        " WHERE e.contact_id = ? ORDER BY e.id DESC LIMIT 1",
        (contact_id,),
    ).fetchone()


def count_for_campaign(conn: sqlite3.Connection, campaign_id: int) -> int:
    """Unsubscribes through this campaign's links that were not undone later."""
    row = conn.execute(
        "SELECT count(*) FROM unsubscribe_events e"
        " WHERE e.campaign_id = ? AND e.action = 'unsubscribe'"
        " AND NOT EXISTS (SELECT 1 FROM unsubscribe_events r"
        "  WHERE r.contact_id = e.contact_id AND r.action = 'resubscribe' AND r.id > e.id)",
        (campaign_id,),
    ).fetchone()
    return int(row[0])


def list_events(
    conn: sqlite3.Connection, *, campaign_id: int | None, since: datetime | None
) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT e.id, e.at, e.action, e.source, e.contact_id, e.campaign_id,"
        " coalesce(cp.name, '') AS campaign, coalesce(c.email, '') AS email"
        " FROM unsubscribe_events e"
        " LEFT JOIN campaigns cp ON cp.id = e.campaign_id"
        " LEFT JOIN contacts c ON c.id = e.contact_id"
        " WHERE (? IS NULL OR e.campaign_id = ?) AND (? IS NULL OR e.at >= ?)"
        " ORDER BY e.at, e.id",
        (
            campaign_id,
            campaign_id,
            None if since is None else to_db(since),
            None if since is None else to_db(since),
        ),
    ).fetchall()
