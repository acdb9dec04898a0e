"""Named queries of bounces and complaints: the records, the delivery a bounce names, counts."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from mailer.timeutil import to_db

KINDS = ("hard", "soft", "complaint")
ACTIONS = ("bounced", "counted", "unsubscribed", "none")

_DELIVERY = "SELECT id, campaign_id, contact_id FROM deliveries"


def delivery(conn: sqlite3.Connection, delivery_id: int) -> sqlite3.Row | None:
    return conn.execute(f"{_DELIVERY} WHERE id = ?", (delivery_id,)).fetchone()


def delivery_by_message_id(conn: sqlite3.Connection, message_id: str) -> sqlite3.Row | None:
    return conn.execute(
        f"{_DELIVERY} WHERE message_id = ? AND message_id IS NOT NULL", (message_id,)
    ).fetchone()


def delivery_of(conn: sqlite3.Connection, campaign_id: int, contact_id: int) -> sqlite3.Row | None:
    return conn.execute(
        f"{_DELIVERY} WHERE campaign_id = ? AND contact_id = ?", (campaign_id, contact_id)
    ).fetchone()


def contact_email(conn: sqlite3.Connection, contact_id: int) -> str | None:
    row = conn.execute("SELECT email FROM contacts WHERE id = ?", (contact_id,)).fetchone()
    return None if row is None else str(row[0])


def contact_status(conn: sqlite3.Connection, contact_id: int) -> str | None:
    row = conn.execute("SELECT status FROM contacts WHERE id = ?", (contact_id,)).fetchone()
    return None if row is None else str(row[0])


def campaign_name(conn: sqlite3.Connection, campaign_id: int) -> str | None:
    row = conn.execute("SELECT name FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
    return None if row is None else str(row[0])


def seen(conn: sqlite3.Connection, message_key: str) -> bool:
    """Whether a returned message with this identity was handled before."""
    row = conn.execute("SELECT 1 FROM bounces WHERE message_key = ? LIMIT 1", (message_key,))
    return row.fetchone() is not None


def insert(
    conn: sqlite3.Connection,
    *,
    message_key: str | None,
    delivery_id: int | None,
    campaign_id: int | None,
    contact_id: int | None,
    kind: str,
    status: str | None,
    diagnostic: str,
    action: str,
    origin: str,
    at: datetime,
) -> int | None:
    """Record one bounce; None when this message already counted for this delivery."""
    cursor = conn.execute(
        "INSERT INTO bounces (message_key, delivery_id, campaign_id, contact_id, kind, status,"
        " diagnostic, action, origin, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (message_key, delivery_id) DO NOTHING",
        (
            message_key,
            delivery_id,
            campaign_id,
            contact_id,
            kind,
            status,
            diagnostic,
            action,
            origin,
            to_db(at),
        ),
    )
    return cursor.lastrowid if cursor.rowcount == 1 else None


def set_action(conn: sqlite3.Connection, bounce_id: int, action: str) -> None:
    conn.execute("UPDATE bounces SET action = ? WHERE id = ?", (action, bounce_id))


def soft_days(conn: sqlite3.Connection, contact_id: int, since: datetime, until: datetime) -> int:
    """On how many different (UTC) days the contact bounced softly in [since, until]."""
    row = conn.execute(
        "SELECT count(DISTINCT substr(received_at, 1, 10)) FROM bounces"
        " WHERE contact_id = ? AND kind = 'soft' AND received_at >= ? AND received_at <= ?",
        (contact_id, to_db(since), to_db(until)),
    ).fetchone()
    return int(row[0])


_LIST = (
    "SELECT b.id, b.kind, b.status, b.diagnostic, b.action, b.origin, b.received_at,"
    " c.email AS email, cp.name AS campaign FROM bounces b"
    " LEFT JOIN contacts c ON c.id = b.contact_id"
    " LEFT JOIN campaigns cp ON cp.id = b.campaign_id"
)


def list_bounces(
    conn: sqlite3.Connection,
    *,
    campaign_id: int | None,
    since: datetime | None,
    kind: str | None,
) -> list[sqlite3.Row]:
    stamp = None if since is None else to_db(since)
    return conn.execute(
        f"{_LIST} WHERE (? IS NULL OR b.campaign_id = ?) AND (? IS NULL OR b.received_at >= ?)"
        " AND (? IS NULL OR b.kind = ?) ORDER BY b.received_at, b.id",
        (campaign_id, campaign_id, stamp, stamp, kind, kind),
    ).fetchall()


def last_of_contact(conn: sqlite3.Connection, contact_id: int) -> sqlite3.Row | None:
    return conn.execute(
        f"{_LIST} WHERE b.contact_id = ? ORDER BY b.received_at DESC, b.id DESC LIMIT 1",
        (contact_id,),
    ).fetchone()


def campaign_counts(conn: sqlite3.Connection, campaign_id: int) -> dict[str, int]:
    """Deliveries of the campaign with a record of each kind."""
    out = dict.fromkeys(KINDS, 0)
    rows = conn.execute(
        "SELECT kind, count(DISTINCT coalesce(delivery_id, -id)) FROM bounces"
        " WHERE campaign_id = ? GROUP BY kind",
        (campaign_id,),
    )
    for kind, count in rows:
        out[kind] = int(count)
    return out


def campaign_reasons(conn: sqlite3.Connection, campaign_id: int) -> list[tuple[str, str, int]]:
    """(kind, status code or '', deliveries) of the campaign's bounce and complaint records."""
    rows = conn.execute(
        "SELECT kind, coalesce(status, ''), count(DISTINCT coalesce(delivery_id, -id))"
        " FROM bounces WHERE campaign_id = ? GROUP BY kind, coalesce(status, '')"
        " ORDER BY 3 DESC, 1, 2",
        (campaign_id,),
    )
    return [(str(kind), str(status), int(n)) for kind, status, n in rows]
