"""Named queries on deliveries: the audience freeze and every state transition.

Each transition is `UPDATE … WHERE id = ? AND status = ?` and returns whether it happened,
so a row that another run (or the web service, for contacts) changed is never overwritten.
Every move is checked against mailer.states before it is written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from mailer.states import DeliveryStatus, delivery_sources
from mailer.timeutil import to_db

D = DeliveryStatus


def _move(source: DeliveryStatus | str, target: DeliveryStatus) -> tuple[str, str]:
    """(source, target) as stored values, when mailer.states allows the move."""
    start = DeliveryStatus(source).value
    if start not in delivery_sources(target):
        raise ValueError(f"a delivery cannot move from {start} to {target.value}")
    return start, target.value


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
        f" ?, ? FROM contacts c WHERE c.status = 'subscribed' AND ({where})"
        " ORDER BY c.id",
        (campaign_id, *languages, default_language, D.PENDING.value, to_db(now), *params),
    )
    return cursor.rowcount


def audience_sample(
    conn: sqlite3.Connection, *, where: str, params: Sequence[object], limit: int
) -> list[sqlite3.Row]:
    """The first subscribed contacts matching `where`, for a dry run of an unfrozen campaign."""
    return conn.execute(
        "SELECT c.id AS contact_id, c.email, c.email_ascii, c.name, c.first_name, c.language"
        " FROM contacts c"
        f" WHERE c.status = 'subscribed' AND ({where}) ORDER BY c.id LIMIT ?",
        (*params, limit),
    ).fetchall()


def frozen_sample(conn: sqlite3.Connection, campaign_id: int, limit: int) -> list[sqlite3.Row]:
    """The first recipients of a frozen campaign (any state)."""
    return conn.execute(
        "SELECT d.contact_id, c.email, c.email_ascii, c.name, c.first_name, d.language"
        " FROM deliveries d"
        " JOIN contacts c ON c.id = d.contact_id WHERE d.campaign_id = ? ORDER BY d.id LIMIT ?",
        (campaign_id, limit),
    ).fetchall()


_OPEN = ("pending", "sending", "deferred")  # the partial index deliveries_open
_OTHER = ("failed", "unknown", "skipped")  # the partial index deliveries_other (0404)
# A status added later, and not in either index, is counted by a plain (slower) query.
_LATER = tuple(s.value for s in DeliveryStatus if s.value not in {*_OPEN, *_OTHER, "sent"})


def counts(conn: sqlite3.Connection, campaign_id: int) -> dict[str, int]:
    """Deliveries of a campaign by status, `sent` included as what the others leave.

    Reads the (campaign_id, contact_id) index and two partial indexes (migration 0404);
    without statistics SQLite would pick the first for all three, so they are named.
    """
    out = {status.value: 0 for status in DeliveryStatus}
    (total,) = conn.execute(
        "SELECT count(*) FROM deliveries WHERE campaign_id = ?", (campaign_id,)
    ).fetchone()
    groups = [("INDEXED BY deliveries_open", _OPEN), ("INDEXED BY deliveries_other", _OTHER)]
    for index, statuses in [*groups, ("", _LATER)] if _LATER else groups:
        rows = conn.execute(
            f"SELECT status, count(*) FROM deliveries {index}"
            f" WHERE status IN ({', '.join(repr(s) for s in statuses)}) AND campaign_id = ?"
            " GROUP BY status",
            (campaign_id,),
        )
        for status, count in rows:
            out[status] = count
    out["sent"] = total - sum(out.values())
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
        " c.email, c.email_ascii, c.name, c.first_name FROM deliveries d"
        " LEFT JOIN contacts c ON c.id = d.contact_id"
        # The literal IN term lets SQLite use the partial index deliveries_open.
        " WHERE d.status IN ('pending', 'sending', 'deferred')"
        f" AND d.campaign_id = ? AND d.id > ? AND (d.status IN ({marks})"
        " OR (d.status = 'deferred' AND d.next_attempt_at <= ?))"
        " AND (? IS NULL OR d.owner = ?) ORDER BY d.id LIMIT ?",
        (campaign_id, after_id, *[D(s).value for s in statuses], due, owner, owner, limit),
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
    source, target = _move(expected, D.SENDING)
    stamp = to_db(now)
    cursor = conn.execute(
        "UPDATE deliveries SET status = ?, owner = ?, attempts = attempts + 1,"
        " first_attempt_at = coalesce(first_attempt_at, ?), updated_at = ?"
        " WHERE id = ? AND status = ?",
        (target, owner, stamp, stamp, delivery_id, source),
    )
    return cursor.rowcount == 1


def release(
    conn: sqlite3.Connection, delivery_id: int, owner: str, detail: str, now: datetime
) -> bool:
    """sending → pending, the claim's attempt taken back: the message did not go (a quota)."""
    source, target = _move(D.SENDING, D.PENDING)
    cursor = conn.execute(
        "UPDATE deliveries SET status = ?, owner = NULL, attempts = max(attempts - 1, 0),"
        " first_attempt_at = CASE WHEN attempts <= 1 THEN NULL ELSE first_attempt_at END,"
        " last_error = ?, updated_at = ? WHERE id = ? AND status = ? AND owner = ?",
        (target, detail, to_db(now), delivery_id, source, owner),
    )
    return cursor.rowcount == 1


def skip(
    conn: sqlite3.Connection, delivery_id: int, expected: str, reason: str, now: datetime
) -> bool:
    source, target = _move(expected, D.SKIPPED)
    cursor = conn.execute(
        "UPDATE deliveries SET status = ?, last_error = ?, updated_at = ?"
        " WHERE id = ? AND status = ?",
        (target, reason, to_db(now), delivery_id, source),
    )
    return cursor.rowcount == 1


def mark_sent(
    conn: sqlite3.Connection,
    delivery_id: int,
    owner: str,
    message_id: str,
    now: datetime,
) -> bool:
    source, target = _move(D.SENDING, D.SENT)
    stamp = to_db(now)
    cursor = conn.execute(
        "UPDATE deliveries SET status = ?, message_id = ?, last_error = NULL,"
        " sent_at = ?, updated_at = ? WHERE id = ? AND status = ? AND owner = ?",
        (target, message_id, stamp, stamp, delivery_id, source, owner),
    )
    return cursor.rowcount == 1


def mark_outcome(
    conn: sqlite3.Connection,
    delivery_id: int,
    owner: str,
    status: DeliveryStatus,
    detail: str,
    now: datetime,
    *,
    next_attempt_at: datetime | None = None,
    message_id: str | None = None,
) -> bool:
    """sending → failed | deferred | unknown, with the server's words."""
    source, target = _move(D.SENDING, status)
    cursor = conn.execute(
        "UPDATE deliveries SET status = ?, last_error = ?, next_attempt_at = ?,"
        " message_id = coalesce(?, message_id), updated_at = ?"
        " WHERE id = ? AND status = ? AND owner = ?",
        (
            target,
            detail,
            to_db(next_attempt_at) if next_attempt_at else None,
            message_id,
            to_db(now),
            delivery_id,
            source,
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
    source, target = _move(D.SENDING, D.UNKNOWN)
    cursor = conn.execute(
        "UPDATE deliveries SET status = ?, last_error = ?, updated_at = ?"
        " WHERE id = ? AND status = ?",
        (target, reason, to_db(now), delivery_id, source),
    )
    return cursor.rowcount == 1


def requeue_unknown(conn: sqlite3.Connection, campaign_id: int, now: datetime) -> int:
    """unknown → pending, on the operator's explicit request (--resend-unknown)."""
    source, target = _move(D.UNKNOWN, D.PENDING)
    cursor = conn.execute(
        "UPDATE deliveries SET status = ?, updated_at = ? WHERE campaign_id = ? AND status = ?",
        (target, to_db(now), campaign_id, source),
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
