"""Named queries of the outbox: confirmation and preference-link mails waiting to go out."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from mailer.timeutil import to_db


def enqueue(
    conn: sqlite3.Connection,
    kind: str,
    *,
    signup_id: int | None = None,
    contact_id: int | None = None,
    language: str,
    now: datetime,
) -> int:
    stamp = to_db(now)
    cursor = conn.execute(
        "INSERT INTO outbox (kind, signup_id, contact_id, language, next_attempt_at,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (kind, signup_id, contact_id, language, stamp, stamp, stamp),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def due(conn: sqlite3.Connection, now: datetime, limit: int) -> list[sqlite3.Row]:
    """Mails due now, with the address they go to (from the signup or the contact)."""
    return conn.execute(
        "SELECT o.id, o.kind, o.signup_id, o.contact_id, o.language, o.status, o.attempts,"
        " o.created_at, coalesce(s.email, c.email) AS email,"
        " coalesce(s.email_ascii, c.email_ascii) AS email_ascii, s.expires_at, s.status AS"
        " signup_status FROM outbox o"
        " LEFT JOIN signups s ON s.id = o.signup_id"
        " LEFT JOIN contacts c ON c.id = o.contact_id"
        " WHERE o.status IN ('pending', 'deferred') AND o.next_attempt_at <= ?"
        " ORDER BY o.next_attempt_at, o.id LIMIT ?",
        (to_db(now), limit),
    ).fetchall()


def claim(conn: sqlite3.Connection, mail_id: int, status: str, now: datetime) -> bool:
    cursor = conn.execute(
        "UPDATE outbox SET status = 'sending', attempts = attempts + 1, updated_at = ?"
        " WHERE id = ? AND status = ?",
        (to_db(now), mail_id, status),
    )
    return cursor.rowcount == 1


def finish(
    conn: sqlite3.Connection,
    mail_id: int,
    status: str,
    now: datetime,
    *,
    detail: str | None = None,
    message_id: str | None = None,
    next_attempt_at: datetime | None = None,
) -> bool:
    stamp = to_db(now)
    cursor = conn.execute(
        "UPDATE outbox SET status = ?, last_error = ?, message_id = coalesce(?, message_id),"
        " next_attempt_at = ?, updated_at = ? WHERE id = ? AND status = 'sending'",
        (
            status,
            detail,
            message_id,
            to_db(next_attempt_at) if next_attempt_at else stamp,
            stamp,
            mail_id,
        ),
    )
    return cursor.rowcount == 1


def release_stale(conn: sqlite3.Connection, before: datetime, now: datetime) -> int:
    """Mails left in `sending` by a service that stopped: try them again now."""
    cursor = conn.execute(
        "UPDATE outbox SET status = 'deferred', next_attempt_at = ?, updated_at = ?,"
        " last_error = 'the service stopped while sending it'"
        " WHERE status = 'sending' AND updated_at <= ?",
        (to_db(now), to_db(now), to_db(before)),
    )
    return cursor.rowcount


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT status, count(*) FROM outbox GROUP BY status")
    return {str(r[0]): int(r[1]) for r in rows}


def prune(conn: sqlite3.Connection, before: datetime) -> int:
    cursor = conn.execute(
        "DELETE FROM outbox WHERE status IN ('sent', 'failed') AND updated_at <= ?",
        (to_db(before),),
    )
    return cursor.rowcount
