"""Named queries on saved segments and on counting a compiled segment's audience."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mailer.timeutil import to_db


def get_segment(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT expression FROM segments WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def save_segment(conn: sqlite3.Connection, name: str, expression: str, now: datetime) -> bool:
    """Save (or replace) a segment; return True when it is new."""
    existed = get_segment(conn, name) is not None
    conn.execute(
        "INSERT INTO segments (name, expression, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET expression = excluded.expression",
        (name, expression, to_db(now)),
    )
    return not existed


def delete_segment(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("DELETE FROM segments WHERE name = ?", (name,)).rowcount == 1


def all_segments(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT name, expression, created_at FROM segments ORDER BY name"
    ).fetchall()


def count_matching(
    conn: sqlite3.Connection, where: str, params: Sequence[Any], status: str | None = "subscribed"
) -> int:
    """Count contacts (alias `c`) matching a compiled condition, of one status (None: any)."""
    if status is None:
        sql, args = f"SELECT count(*) FROM contacts c WHERE ({where})", tuple(params)
    else:
        sql = f"SELECT count(*) FROM contacts c WHERE c.status = ? AND ({where})"
        args = (status, *params)
    return int(conn.execute(sql, args).fetchone()[0])
