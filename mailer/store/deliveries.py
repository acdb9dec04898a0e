"""Named queries on deliveries: the audience freeze and every state transition.

Each transition is `UPDATE … WHERE id = ? AND status = ?` and returns whether it happened,
so a row that another run (or the web service, for contacts) changed is never overwritten.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from mailer.timeutil import to_db

DELIVERY_STATUSES = ("pending", "sending", "sent", "failed", "deferred", "unknown", "skipped")
OPEN_STATUSES = ("pending", "sending", "deferred")


def insert_audience(
    conn: sqlite3.Connection,
    campaign_id: int,
    *,
    where: str,
    params: Sequence[object],
    languages: Sequence[str],
    default_language: str,
    now: datetime,
) -> int:
    """Insert one pending row per subscribed contact matching `where` (over alias `c`).

    `where` is SQL made by mailer.audience.segments.compile_segment from a parsed expression, never
    user text; its values are in `params`. A contact reads its own language when the
    campaign has that variant, else the default.
    """
    marks = ", ".join("?" for _ in languages) or "NULL"
    cursor = conn.execute(
        "INSERT OR IGNORE INTO deliveries (campaign_id, contact_id, language, status, updated_at)"
        f" SELECT ?, c.id, CASE WHEN c.language IN ({marks}) THEN c.language ELSE ? END,"
        f" 'pending', ? FROM contacts c WHERE c.status = 'subscribed' AND ({where})"
        " ORDER BY c.id",
        (campaign_id, *languages, default_language, to_db(now), *params),
    )
    return cursor.rowcount


def audience_sample(
    conn: sqlite3.Connection, *, where: str, params: Sequence[object], limit: int
) -> list[sqlite3.Row]:
    """The first subscribed contacts matching `where`, for a dry run of an unfrozen campaign."""
    return conn.execute(
        "SELECT c.id AS contact_id, c.email, c.email_ascii, c.name, c.language FROM contacts c"
        f" WHERE c.status = 'subscribed' AND ({where}) ORDER BY c.id LIMIT ?",
        (*params, limit),
    ).fetchall()


def frozen_sample(conn: sqlite3.Connection, campaign_id: int, limit: int) -> list[sqlite3.Row]:
    """The first recipients of a frozen campaign (any state)."""
    return conn.execute(
        "SELECT d.contact_id, c.email, c.email_ascii, c.name, d.language FROM deliveries d"
        " JOIN contacts c ON c.id = d.contact_id WHERE d.campaign_id = ? ORDER BY d.id LIMIT ?",
        (campaign_id, limit),
    ).fetchall()


def counts(conn: sqlite3.Connection, campaign_id: int) -> dict[str, int]:
    out = dict.fromkeys(DELIVERY_STATUSES, 0)
    rows = conn.execute(
        "SELECT status, count(*) FROM deliveries WHERE campaign_id = ? GROUP BY status",
        (campaign_id,),
    )
    for status, count in rows:
        out[status] = count
    return out


def fetch_batch(
    conn: sqlite3.Connection,
    campaign_id: int,
    *,
    after_id: int,
    statuses: Sequence[str],
    deferred_due: datetime | None,
    limit: int,
    owner: str | None = None,
) -> list[sqlite3.Row]:
    """The next rows to send, in id order: `statuses`, plus deferred rows that are due.

    With `deferred_due` None, deferred rows are included only when listed in `statuses`;
    with `owner`, only rows last claimed by that run.
    """
    marks = ", ".join("?" for _ in statuses) or "NULL"
    due = to_db(deferred_due) if deferred_due else None
    return conn.execute(
        "SELECT d.id, d.contact_id, d.language, d.status, d.attempts, d.first_attempt_at,"
        " c.email, c.email_ascii, c.name FROM deliveries d"
        " LEFT JOIN contacts c ON c.id = d.contact_id"
        # The literal IN term lets SQLite use the partial index deliveries_open.
        " WHERE d.status IN ('pending', 'sending', 'deferred')"
        f" AND d.campaign_id = ? AND d.id > ? AND (d.status IN ({marks})"
        " OR (d.status = 'deferred' AND d.next_attempt_at <= ?))"
        " AND (? IS NULL OR d.owner = ?) ORDER BY d.id LIMIT ?",
        (campaign_id, after_id, *statuses, due, owner, owner, limit),
    ).fetchall()


def contact_status(conn: sqlite3.Connection, contact_id: int | None) -> str | None:
    if contact_id is None:
        return None
    row = conn.execute("SELECT status FROM contacts WHERE id = ?", (contact_id,)).fetchone()
    return row[0] if row else None


def claim(
    conn: sqlite3.Connection, delivery_id: int, expected: str, owner: str, now: datetime
) -> bool:
    """pending|deferred → sending, owned by this run; committed before the message goes out."""
    stamp = to_db(now)
    cursor = conn.execute(
        "UPDATE deliveries SET status = 'sending', owner = ?, attempts = attempts + 1,"
        " first_attempt_at = coalesce(first_attempt_at, ?), updated_at = ?"
        " WHERE id = ? AND status = ?",
        (owner, stamp, stamp, delivery_id, expected),
    )
    return cursor.rowcount == 1


def skip(
    conn: sqlite3.Connection, delivery_id: int, expected: str, reason: str, now: datetime
) -> bool:
    cursor = conn.execute(
        "UPDATE deliveries SET status = 'skipped', last_error = ?, updated_at = ?"
        " WHERE id = ? AND status = ?",
        (reason, to_db(now), delivery_id, expected),
    )
    return cursor.rowcount == 1


def mark_sent(
    conn: sqlite3.Connection,
    delivery_id: int,
    owner: str,
    message_id: str,
    now: datetime,
) -> bool:
    stamp = to_db(now)
    cursor = conn.execute(
        "UPDATE deliveries SET status = 'sent', message_id = ?, last_error = NULL,"
        " sent_at = ?, updated_at = ? WHERE id = ? AND status = 'sending' AND owner = ?",
        (message_id, stamp, stamp, delivery_id, owner),
    )
    return cursor.rowcount == 1


def mark_outcome(
    conn: sqlite3.Connection,
    delivery_id: int,
    owner: str,
    status: str,
    detail: str,
    now: datetime,
    *,
    next_attempt_at: datetime | None = None,
    message_id: str | None = None,
) -> bool:
    """sending → failed | deferred | unknown, with the server's words."""
    cursor = conn.execute(
        "UPDATE deliveries SET status = ?, last_error = ?, next_attempt_at = ?,"
        " message_id = coalesce(?, message_id), updated_at = ?"
        " WHERE id = ? AND status = 'sending' AND owner = ?",
        (
            status,
            detail,
            to_db(next_attempt_at) if next_attempt_at else None,
            message_id,
            to_db(now),
            delivery_id,
            owner,
        ),
    )
    return cursor.rowcount == 1


def stale_sending(conn: sqlite3.Connection, campaign_id: int) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT d.id, c.email FROM deliveries d LEFT JOIN contacts c ON c.id = d.contact_id"
        " WHERE d.status IN ('pending', 'sending', 'deferred')"
        " AND d.campaign_id = ? AND d.status = 'sending' ORDER BY d.id",
        (campaign_id,),
    ).fetchall()


def mark_stale_unknown(
    conn: sqlite3.Connection, delivery_id: int, reason: str, now: datetime
) -> bool:
    """sending → unknown for a row whose run died: the server may hold the message."""
    cursor = conn.execute(
        "UPDATE deliveries SET status = 'unknown', last_error = ?, updated_at = ?"
        " WHERE id = ? AND status = 'sending'",
        (reason, to_db(now), delivery_id),
    )
    return cursor.rowcount == 1


def requeue_unknown(conn: sqlite3.Connection, campaign_id: int, now: datetime) -> int:
    """unknown → pending, on the operator's explicit request (--resend-unknown)."""
    cursor = conn.execute(
        "UPDATE deliveries SET status = 'pending', updated_at = ?"
        " WHERE campaign_id = ? AND status = 'unknown'",
        (to_db(now), campaign_id),
    )
    return cursor.rowcount


def open_count(conn: sqlite3.Connection, campaign_id: int, due: datetime | None = None) -> int:
    """Rows still to do: pending, sending, deferred (only those due when `due` is given)."""
    if due is None:
        row = conn.execute(
            "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'sending', 'deferred')"
            " AND campaign_id = ?",
            (campaign_id,),
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'sending', 'deferred')"
            " AND campaign_id = ? AND (status = 'pending'"
            " OR (status = 'deferred' AND next_attempt_at <= ?))",
            (campaign_id, to_db(due)),
        ).fetchone()
    return int(row[0])


def audience_count(conn: sqlite3.Connection, *, where: str, params: Sequence[object]) -> int:
    row = conn.execute(
        f"SELECT count(*) FROM contacts c WHERE c.status = 'subscribed' AND ({where})",
        tuple(params),
    ).fetchone()
    return int(row[0])
