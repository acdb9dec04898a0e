"""Named queries of the public archive: stored pictures and the published issues.

An issue is public when sending has started (`frozen_at` is set) and either the staff's
choice (`archive add/remove`) or, without one, the campaign file's `archive` key says so.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from mailer.timeutil import to_db

_PUBLIC = (
    "c.frozen_at IS NOT NULL"
    " AND coalesce(a.published, json_extract(c.definition, '$.archive'), 0) = 1"
)
_ISSUES = (
    "SELECT c.id, c.name, c.definition, c.frozen_at FROM campaigns c"
    " LEFT JOIN archive_choices a ON a.campaign_id = c.id WHERE " + _PUBLIC
)


@dataclass(frozen=True)
class IssueRow:
    campaign_id: int
    name: str
    definition: str
    published_at: str  # when sending started (UTC, as stored)


def _issue(row: sqlite3.Row) -> IssueRow:
    return IssueRow(row["id"], row["name"], row["definition"], row["frozen_at"])


def public_issues(conn: sqlite3.Connection) -> list[IssueRow]:
    """Every public issue, newest first."""
    rows = conn.execute(_ISSUES + " ORDER BY c.frozen_at DESC, c.id DESC").fetchall()
    return [_issue(row) for row in rows]


def public_issue(conn: sqlite3.Connection, name: str) -> IssueRow | None:
    """The public issue named `name`, or None (unknown, not started, or not public)."""
    row = conn.execute(_ISSUES + " AND c.name = ?", (name,)).fetchone()
    return None if row is None else _issue(row)


def is_public(conn: sqlite3.Connection, campaign_id: int) -> bool:
    row = conn.execute(_ISSUES + " AND c.id = ?", (campaign_id,)).fetchone()
    return row is not None


def set_choice(conn: sqlite3.Connection, campaign_id: int, published: bool, now: datetime) -> None:
    conn.execute(
        "INSERT INTO archive_choices (campaign_id, published, changed_at) VALUES (?, ?, ?)"
        " ON CONFLICT (campaign_id) DO UPDATE SET published = excluded.published,"
        " changed_at = excluded.changed_at",
        (campaign_id, int(published), to_db(now)),
    )


def insert_images(
    conn: sqlite3.Connection, images: Iterable[tuple[str, bytes, int, int]], now: datetime
) -> int:
    """Store (name, data, width, height) pictures not stored yet; return how many were new."""
    added = 0
    for name, data, width, height in images:
        cursor = conn.execute(
            "INSERT INTO images (name, data, width, height, created_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO NOTHING",
            (name, data, width, height, to_db(now)),
        )
        added += cursor.rowcount
    return added


def image_data(conn: sqlite3.Connection, name: str) -> bytes | None:
    row = conn.execute("SELECT data FROM images WHERE name = ?", (name,)).fetchone()
    return None if row is None else bytes(row[0])


def image_names(conn: sqlite3.Connection, names: Iterable[str]) -> set[str]:
    """Which of `names` are stored."""
    wanted = list(names)
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        rows = conn.execute(f"SELECT name FROM images WHERE name IN ({marks})", chunk)
        found.update(row[0] for row in rows)
    return found
