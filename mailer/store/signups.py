"""Named queries of signups: consent texts, pending signups, limits, refusals, departures."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from mailer.timeutil import to_db

# --- consent texts -------------------------------------------------------------------------


def consent_hash(conn: sqlite3.Connection, version: str) -> str | None:
    row = conn.execute(
        "SELECT text_hash FROM consent_texts WHERE version = ?", (version,)
    ).fetchone()
    return None if row is None else str(row[0])


def insert_consent(
    conn: sqlite3.Connection, version: str, text_hash: str, texts: dict[str, str], now: datetime
) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO consent_texts (version, text_hash, texts, recorded_at)"
        " VALUES (?, ?, ?, ?)",
        (version, text_hash, json.dumps(texts, ensure_ascii=False, sort_keys=True), to_db(now)),
    )


# --- signups -------------------------------------------------------------------------------

SIGNUP_COLUMNS = (
    "id, email, email_ascii, email_key, name, organization, language, lists, status,"
    " consent_version, client_address, requested_at, expires_at, confirmed_at, contact_id"
)


def pending_by_key(conn: sqlite3.Connection, email_key: str) -> sqlite3.Row | None:
    return conn.execute(
        f"SELECT {SIGNUP_COLUMNS} FROM signups WHERE email_key = ? AND status = 'pending'",
        (email_key,),
    ).fetchone()


def get_signup(conn: sqlite3.Connection, signup_id: int) -> sqlite3.Row | None:
    return conn.execute(
        f"SELECT {SIGNUP_COLUMNS} FROM signups WHERE id = ?", (signup_id,)
    ).fetchone()


def save_pending(
    conn: sqlite3.Connection,
    *,
    signup_id: int | None,
    email: str,
    email_ascii: str,
    email_key: str,
    name: str,
    organization: str,
    language: str,
    lists: Sequence[str],
    consent_version: str,
    client_address: str | None,
    now: datetime,
    expires_at: int,
) -> int:
    """Insert a pending signup, or replace the fields and the link of `signup_id`."""
    values = (
        name,
        organization,
        language,
        json.dumps(list(lists)),
        consent_version,
        client_address,
        to_db(now),
        expires_at,
    )
    if signup_id is not None:
        cursor = conn.execute(
            "UPDATE signups SET name = ?, organization = ?, language = ?, lists = ?,"
            " consent_version = ?, client_address = ?, requested_at = ?, expires_at = ?"
            " WHERE id = ? AND status = 'pending'",
            (*values, signup_id),
        )
        if cursor.rowcount == 1:
            return signup_id
    cursor = conn.execute(
        "INSERT INTO signups (email, email_ascii, email_key, name, organization, language, lists,"
        " consent_version, client_address, requested_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (email, email_ascii, email_key, *values),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def mark_confirmed(
    conn: sqlite3.Connection, signup_id: int, contact_id: int, now: datetime
) -> bool:
    cursor = conn.execute(
        "UPDATE signups SET status = 'confirmed', confirmed_at = ?, contact_id = ?,"
        " client_address = NULL WHERE id = ? AND status = 'pending'",
        (to_db(now), contact_id, signup_id),
    )
    return cursor.rowcount == 1


def expire_due(conn: sqlite3.Connection, now_seconds: int) -> int:
    cursor = conn.execute(
        "UPDATE signups SET status = 'expired', client_address = NULL"
        " WHERE status = 'pending' AND expires_at <= ?",
        (now_seconds,),
    )
    return cursor.rowcount


def expire_signup(conn: sqlite3.Connection, signup_id: int) -> bool:
    cursor = conn.execute(
        "UPDATE signups SET status = 'expired', client_address = NULL"
        " WHERE id = ? AND status = 'pending'",
        (signup_id,),
    )
    return cursor.rowcount == 1


def purge_expired(conn: sqlite3.Connection, before_seconds: int) -> int:
    cursor = conn.execute(
        "DELETE FROM signups WHERE status = 'expired' AND expires_at <= ?", (before_seconds,)
    )
    return cursor.rowcount


def list_signups(conn: sqlite3.Connection, status: str | None) -> list[sqlite3.Row]:
    return conn.execute(
        f"SELECT {SIGNUP_COLUMNS} FROM signups WHERE (? IS NULL OR status = ?)"
        " ORDER BY requested_at, id",
        (status, status),
    ).fetchall()


def delete_signups_of(conn: sqlite3.Connection, email_key: str) -> int:
    """Erase every signup of an address (its queued mail goes with it)."""
    return conn.execute("DELETE FROM signups WHERE email_key = ?", (email_key,)).rowcount


def clear_signup_details(conn: sqlite3.Connection, contact_id: int) -> None:
    """Drop the one-line details (client addresses) of a contact's signup events."""
    conn.execute(
        "UPDATE unsubscribe_events SET detail = NULL WHERE contact_id = ? AND source = 'signup'",
        (contact_id,),
    )


def delete_suppressions(conn: sqlite3.Connection, hashes: Sequence[str]) -> int:
    if not hashes:
        return 0
    marks = ",".join("?" * len(hashes))
    return conn.execute(f"DELETE FROM suppressions WHERE hash IN ({marks})", list(hashes)).rowcount


# --- limits and refusals ---------------------------------------------------------------------


def count_since(conn: sqlite3.Connection, kind: str, key: str, since: datetime) -> int:
    row = conn.execute(
        "SELECT count(*) FROM signup_limits WHERE kind = ? AND key = ? AND at > ?",
        (kind, key, to_db(since)),
    ).fetchone()
    return int(row[0])


def add_use(conn: sqlite3.Connection, kind: str, key: str, now: datetime) -> None:
    conn.execute(
        "INSERT INTO signup_limits (kind, key, at) VALUES (?, ?, ?)", (kind, key, to_db(now))
    )


def prune_uses(conn: sqlite3.Connection, before: datetime) -> None:
    conn.execute("DELETE FROM signup_limits WHERE at <= ?", (to_db(before),))


def add_refusal(conn: sqlite3.Connection, day: str, reason: str) -> None:
    conn.execute(
        "INSERT INTO signup_refusals (day, reason, count) VALUES (?, ?, 1)"
        " ON CONFLICT (day, reason) DO UPDATE SET count = count + 1",
        (day, reason),
    )


def refusal_counts(conn: sqlite3.Connection, since_day: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT reason, sum(count) FROM signup_refusals WHERE day >= ? GROUP BY reason",
        (since_day,),
    )
    return {str(r[0]): int(r[1]) for r in rows}


# --- lists offered, memberships, departures ----------------------------------------------------


def lists_of_kind(conn: sqlite3.Connection, kind: str) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT id, kind, slug, name FROM lists WHERE kind = ? ORDER BY name, slug", (kind,)
    ).fetchall()


def member_list_ids(conn: sqlite3.Connection, contact_id: int) -> set[int]:
    rows = conn.execute("SELECT list_id FROM memberships WHERE contact_id = ?", (contact_id,))
    return {int(r[0]) for r in rows}


def remove_membership(conn: sqlite3.Connection, list_id: int, contact_id: int) -> bool:
    cursor = conn.execute(
        "DELETE FROM memberships WHERE list_id = ? AND contact_id = ?", (list_id, contact_id)
    )
    return cursor.rowcount == 1


def add_departure(conn: sqlite3.Connection, contact_id: int, list_id: int, now: datetime) -> None:
    conn.execute(
        "INSERT INTO list_departures (contact_id, list_id, at) VALUES (?, ?, ?)"
        " ON CONFLICT (contact_id, list_id) DO UPDATE SET at = excluded.at",
        (contact_id, list_id, to_db(now)),
    )


def remove_departure(conn: sqlite3.Connection, contact_id: int, list_id: int) -> None:
    conn.execute(
        "DELETE FROM list_departures WHERE contact_id = ? AND list_id = ?", (contact_id, list_id)
    )


def departures(conn: sqlite3.Connection) -> set[tuple[int, int]]:
    """Every (contact id, list id) a person left by their own choice."""
    return {
        (int(r[0]), int(r[1]))
        for r in conn.execute("SELECT contact_id, list_id FROM list_departures")
    }


def update_language(
    conn: sqlite3.Connection, contact_id: int, language: str, now: datetime
) -> bool:
    cursor = conn.execute(
        "UPDATE contacts SET language = ?, updated_at = ? WHERE id = ? AND language != ?",
        (language, to_db(now), contact_id, language),
    )
    return cursor.rowcount == 1


def fill_contact_fields(
    conn: sqlite3.Connection, contact_id: int, name: str, organization: str, now: datetime
) -> None:
    """Fill a contact's empty name and organisation (never overwrite what staff wrote)."""
    conn.execute(
        "UPDATE contacts SET name = CASE WHEN name = '' THEN ? ELSE name END,"
        " organization = CASE WHEN organization = '' THEN ? ELSE organization END,"
        " updated_at = ? WHERE id = ?",
        (name, organization, to_db(now), contact_id),
    )


# --- consent history (contacts show, export) ---------------------------------------------------


def consent_events(conn: sqlite3.Connection, contact_ids: Sequence[int]) -> list[sqlite3.Row]:
    """Events with a consent version or from a signup or preferences, oldest first."""
    out: list[sqlite3.Row] = []
    for start in range(0, len(contact_ids), 500):  # SQLite caps the bound parameters
        chunk = list(contact_ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        out += conn.execute(
            "SELECT contact_id, at, action, source, consent_version, consent_hash, detail"
            f" FROM unsubscribe_events WHERE contact_id IN ({marks})"
            " AND (consent_version IS NOT NULL OR source IN ('signup', 'preferences'))"
            " ORDER BY id",
            chunk,
        ).fetchall()
    return out


def contact_consent(
    conn: sqlite3.Connection, contact_ids: Sequence[int]
) -> list[tuple[int, str, str | None]]:
    """(id, consent_source, consent_at) of contacts: how each came onto the list."""
    out: list[tuple[int, str, str | None]] = []
    for start in range(0, len(contact_ids), 500):
        chunk = list(contact_ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT id, consent_source, consent_at FROM contacts WHERE id IN ({marks})", chunk
        )
        out += [(int(r[0]), str(r[1]), r[2]) for r in rows]
    return out
