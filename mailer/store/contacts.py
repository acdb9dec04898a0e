"""Named queries on contacts, lists and memberships."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mailer.timeutil import to_db

CONTACT_STATUSES = ("subscribed", "unsubscribed", "bounced")


def insert_contact(
    conn: sqlite3.Connection,
    *,
    email: str,
    email_ascii: str,
    email_key: str,
    name: str,
    organization: str,
    language: str,
    attributes: Mapping[str, Any],
    consent_source: str,
    now: datetime,
    status: str = "subscribed",
) -> int:
    stamp = to_db(now)
    cursor = conn.execute(
        "INSERT INTO contacts (email, email_ascii, email_key, name, organization, language,"
        " status, attributes, consent_source, consent_at, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            email,
            email_ascii,
            email_key,
            name,
            organization,
            language,
            status,
            json.dumps(dict(attributes), ensure_ascii=False, sort_keys=True),
            consent_source,
            stamp,
            stamp,
            stamp,
        ),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def get_contact_by_key(conn: sqlite3.Connection, email_key: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM contacts WHERE email_key = ?", (email_key,)).fetchone()


def get_contact(conn: sqlite3.Connection, contact_id: int) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM contacts WHERE id = ?", (contact_id,)).fetchone()


def set_status(conn: sqlite3.Connection, contact_id: int, status: str, now: datetime) -> bool:
    """Change a contact's status; return False when it already had it."""
    cursor = conn.execute(
        "UPDATE contacts SET status = ?, status_changed_at = ?, updated_at = ?"
        " WHERE id = ? AND status != ?",
        (status, to_db(now), to_db(now), contact_id, status),
    )
    return cursor.rowcount == 1


def ensure_list(conn: sqlite3.Connection, kind: str, slug: str, name: str, now: datetime) -> int:
    """Return the id of list KIND:SLUG, creating it with display name `name`."""
    row = conn.execute("SELECT id FROM lists WHERE kind = ? AND slug = ?", (kind, slug)).fetchone()
    if row:
        return int(row[0])
    cursor = conn.execute(
        "INSERT INTO lists (kind, slug, name, created_at) VALUES (?, ?, ?, ?)",
        (kind, slug, name, to_db(now)),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def add_membership(conn: sqlite3.Connection, list_id: int, contact_id: int) -> bool:
    cursor = conn.execute(
        "INSERT OR IGNORE INTO memberships (list_id, contact_id) VALUES (?, ?)",
        (list_id, contact_id),
    )
    return cursor.rowcount == 1


def contact_lists(conn: sqlite3.Connection, contact_id: int) -> list[str]:
    rows = conn.execute(
        "SELECT l.kind || ':' || l.slug FROM memberships m JOIN lists l ON l.id = m.list_id"
        " WHERE m.contact_id = ? ORDER BY 1",
        (contact_id,),
    )
    return [row[0] for row in rows]
