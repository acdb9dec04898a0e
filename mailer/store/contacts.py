"""Named queries on contacts, lists and memberships."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from mailer.timeutil import to_db


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
    first_name: str = "",
) -> int:
    stamp = to_db(now)
    contact_id = next_contact_id(conn)
    conn.execute(
        "INSERT INTO contacts (id, email, email_ascii, email_key, name, organization, language,"
        " status, attributes, consent_source, consent_at, created_at, updated_at, first_name)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            contact_id,
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
            first_name,
        ),
    )
    return contact_id


def get_contact_by_key(conn: sqlite3.Connection, email_key: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM contacts WHERE email_key = ?", (email_key,)).fetchone()


def get_contact(conn: sqlite3.Connection, contact_id: int) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM contacts WHERE id = ?", (contact_id,)).fetchone()


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


def remove_membership(conn: sqlite3.Connection, list_id: int, contact_id: int) -> bool:
    cursor = conn.execute(
        "DELETE FROM memberships WHERE list_id = ? AND contact_id = ?", (list_id, contact_id)
    )
    return cursor.rowcount == 1


def contact_lists(conn: sqlite3.Connection, contact_id: int) -> list[str]:
    rows = conn.execute(
        "SELECT l.kind || ':' || l.slug FROM memberships m JOIN lists l ON l.id = m.list_id"
        " WHERE m.contact_id = ? ORDER BY 1",
        (contact_id,),
    )
    return [row[0] for row in rows]


# --- contacts, in bulk (import) and one at a time ---------------------------------------

CONTACT_COLUMNS = (
    "id, email, email_ascii, email_key, name, organization, language, status, attributes,"
    " first_name"
)


_C_COLUMNS = ", ".join(f"c.{name.strip()}" for name in CONTACT_COLUMNS.split(","))


def use_bulk_cache(conn: sqlite3.Connection) -> None:
    """Give this connection a page cache big enough for bulk index updates (64 MB)."""
    conn.execute("PRAGMA cache_size = -65536")


_BATCH = 500  # values per IN (...) list


def contacts_by_key(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, sqlite3.Row]:
    """The contacts among `keys` (email_key), in batches of 500 (an import's chunk at once)."""
    out: dict[str, sqlite3.Row] = {}
    for start in range(0, len(keys), _BATCH):
        batch = keys[start : start + _BATCH]
        rows = conn.execute(
            f"SELECT {CONTACT_COLUMNS} FROM contacts"
            f" WHERE email_key IN ({','.join('?' * len(batch))})",
            batch,
        )
        out.update((row["email_key"], row) for row in rows)
    return out


def has_contacts(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM contacts LIMIT 1").fetchone() is not None


def memberships_of(conn: sqlite3.Connection, contact_ids: list[int]) -> dict[int, set[int]]:
    """List ids per contact, for the given contacts (in batches of 500)."""
    out: dict[int, set[int]] = {cid: set() for cid in contact_ids}
    for start in range(0, len(contact_ids), _BATCH):
        batch = contact_ids[start : start + _BATCH]
        rows = conn.execute(
            "SELECT contact_id, list_id FROM memberships"
            f" WHERE contact_id IN ({','.join('?' * len(batch))})",
            batch,
        )
        for contact_id, list_id in rows:
            out[contact_id].add(list_id)
    return out


# --- an import's staging table --------------------------------------------------------------
# Checked rows wait here (a TEMP table: this connection's own file, no lock on the database)
# until the import writes them in one transaction, so a million-row file never sits in memory.


def stage_open(conn: sqlite3.Connection) -> None:
    conn.execute("DROP TABLE IF EXISTS temp.import_rows")
    conn.execute(
        "CREATE TEMP TABLE import_rows (key TEXT PRIMARY KEY, number INTEGER NOT NULL,"
        " row BLOB NOT NULL)"
    )


def stage_close(conn: sqlite3.Connection) -> None:
    conn.execute("DROP TABLE IF EXISTS temp.import_rows")


def staged(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, bytes]:
    """The staged rows among `keys`: key -> row."""
    out: dict[str, bytes] = {}
    for start in range(0, len(keys), _BATCH):
        batch = keys[start : start + _BATCH]
        rows = conn.execute(
            f"SELECT key, row FROM temp.import_rows WHERE key IN ({','.join('?' * len(batch))})",
            batch,
        )
        out.update(rows)
    return out


def stage_many(
    conn: sqlite3.Connection, new: list[tuple[str, int, bytes]], changed: list[tuple[bytes, str]]
) -> None:
    """Stage `new` (key, row number, row) in file order; replace `changed` (row, key) in place.

    A savepoint makes it one transaction (outside one, each row would be its own); it touches
    only the TEMP database, so it takes no lock on the main one.
    """
    conn.execute("SAVEPOINT import_stage")
    try:
        conn.executemany("INSERT INTO temp.import_rows VALUES (?, ?, ?)", new)
        conn.executemany("UPDATE temp.import_rows SET row = ? WHERE key = ?", changed)
    except BaseException:
        conn.execute("ROLLBACK TO import_stage")
        conn.execute("RELEASE import_stage")
        raise
    conn.execute("RELEASE import_stage")


def staged_in_order(conn: sqlite3.Connection, size: int) -> Iterator[list[bytes]]:
    """The staged rows in file order (they were staged in it), `size` at a time."""
    cursor = conn.execute("SELECT row FROM temp.import_rows ORDER BY rowid")
    try:
        while batch := cursor.fetchmany(size):
            yield [row for (row,) in batch]
    finally:
        cursor.close()  # an import that failed midway can then drop the staging table


def next_contact_id(conn: sqlite3.Connection) -> int:
    """The id for a new contact: above every id in use or ever deleted (never reused)."""
    row = conn.execute(
        "SELECT max((SELECT coalesce(max(id), 0) FROM contacts),"
        " (SELECT coalesce(max(value), 0) FROM contact_id_floor)) + 1"
    ).fetchone()
    return int(row[0])


def insert_contacts_many(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert contacts: (id, email, email_ascii, email_key, name, organization, language,
    status, attributes_json, consent_source, consent_at, created_at, updated_at, first_name)."""
    conn.executemany(
        "INSERT INTO contacts (id, email, email_ascii, email_key, name, organization, language,"
        " status, attributes, consent_source, consent_at, created_at, updated_at, first_name)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def update_contacts_many(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Update contacts: (name, organization, language, attributes_json, updated_at,
    first_name, id)."""
    conn.executemany(
        "UPDATE contacts SET name = ?, organization = ?, language = ?, attributes = ?,"
        " updated_at = ?, first_name = ? WHERE id = ?",
        rows,
    )


def remove_memberships_many(conn: sqlite3.Connection, pairs: list[tuple[int, int]]) -> None:
    """Remove (list_id, contact_id) memberships (those that do not exist are no matter)."""
    conn.executemany("DELETE FROM memberships WHERE list_id = ? AND contact_id = ?", pairs)


def add_memberships_many(conn: sqlite3.Connection, pairs: list[tuple[int, int]]) -> None:
    """Add (list_id, contact_id) memberships, ignoring those that exist."""
    conn.executemany("INSERT OR IGNORE INTO memberships (list_id, contact_id) VALUES (?, ?)", pairs)


def update_contact(
    conn: sqlite3.Connection,
    contact_id: int,
    *,
    name: str,
    organization: str,
    language: str,
    attributes: Mapping[str, Any],
    now: datetime,
    first_name: str | None = None,
) -> None:
    conn.execute(
        "UPDATE contacts SET name = ?, organization = ?, language = ?, attributes = ?,"
        " updated_at = ?, first_name = coalesce(?, first_name) WHERE id = ?",
        (
            name,
            organization,
            language,
            json.dumps(dict(attributes), ensure_ascii=False, sort_keys=True),
            to_db(now),
            first_name,
            contact_id,
        ),
    )


def select_contacts(
    conn: sqlite3.Connection, where: str = "1", params: tuple[Any, ...] | list[Any] = ()
) -> list[sqlite3.Row]:
    """Contacts matching a compiled segment condition over alias `c`, by email_key."""
    return conn.execute(
        f"SELECT {_C_COLUMNS} FROM contacts c WHERE ({where}) ORDER BY c.email_key",
        tuple(params),
    ).fetchall()


def lists_by_contact(conn: sqlite3.Connection, contact_ids: list[int]) -> dict[int, list[str]]:
    """Sorted `KIND:SLUG` lists of each contact (every contact when the set is large)."""
    out: dict[int, list[str]] = {cid: [] for cid in contact_ids}
    if not contact_ids:
        return out
    sql = (
        "SELECT m.contact_id, l.kind || ':' || l.slug FROM memberships m"
        " JOIN lists l ON l.id = m.list_id"
    )
    if len(contact_ids) > 500:
        rows = conn.execute(sql)
    else:
        marks = ",".join("?" * len(contact_ids))
        rows = conn.execute(f"{sql} WHERE m.contact_id IN ({marks})", contact_ids)
    for contact_id, ref in rows:
        if contact_id in out:
            out[contact_id].append(ref)
    for refs in out.values():
        refs.sort()
    return out


def delete_contact(conn: sqlite3.Connection, contact_id: int) -> bool:
    """Delete a contact; memberships go with it (ON DELETE CASCADE)."""
    conn.execute("DELETE FROM memberships WHERE contact_id = ?", (contact_id,))
    cursor = conn.execute("DELETE FROM contacts WHERE id = ?", (contact_id,))
    return cursor.rowcount == 1


# --- suppressions (forgotten addresses: a keyed hash only) --------------------------------


def add_suppression(
    conn: sqlite3.Connection, hash_: str, reason: str, now: datetime, key_id: str
) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO suppressions (hash, reason, created_at, key_id) VALUES (?, ?, ?, ?)",
        (hash_, reason, to_db(now), key_id),
    )


def suppression_key_ids(conn: sqlite3.Connection) -> set[str]:
    """Fingerprints of the secrets that keyed the stored suppression hashes."""
    rows = conn.execute("SELECT DISTINCT key_id FROM suppressions WHERE key_id IS NOT NULL")
    return {row[0] for row in rows}


def suppression_hashes(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT hash FROM suppressions")}


def is_suppressed(conn: sqlite3.Connection, hashes: list[str]) -> bool:
    if not hashes:
        return False
    marks = ",".join("?" * len(hashes))
    row = conn.execute(f"SELECT 1 FROM suppressions WHERE hash IN ({marks})", hashes).fetchone()
    return row is not None


# --- lists --------------------------------------------------------------------------------


def get_list(conn: sqlite3.Connection, kind: str, slug: str) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT id, kind, slug, name FROM lists WHERE kind = ? AND slug = ?", (kind, slug)
    ).fetchone()


def all_list_ids(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
    return {(r[0], r[1]): int(r[2]) for r in conn.execute("SELECT kind, slug, id FROM lists")}


def list_names(conn: sqlite3.Connection) -> dict[tuple[str, str], str]:
    return {(r[0], r[1]): r[2] for r in conn.execute("SELECT kind, slug, name FROM lists")}


def insert_lists_many(
    conn: sqlite3.Connection, rows: list[tuple[str, str, str]], now: datetime
) -> dict[tuple[str, str], int]:
    """Create (kind, slug, name) lists that do not exist; return all list ids."""
    stamp = to_db(now)
    conn.executemany(
        "INSERT OR IGNORE INTO lists (kind, slug, name, created_at) VALUES (?, ?, ?, ?)",
        [(kind, slug, name, stamp) for kind, slug, name in rows],
    )
    return all_list_ids(conn)


def rename_list(conn: sqlite3.Connection, list_id: int, name: str) -> None:
    conn.execute("UPDATE lists SET name = ? WHERE id = ?", (name, list_id))


def delete_list(conn: sqlite3.Connection, list_id: int) -> bool:
    conn.execute("DELETE FROM memberships WHERE list_id = ?", (list_id,))
    return conn.execute("DELETE FROM lists WHERE id = ?", (list_id,)).rowcount == 1


def list_member_counts(conn: sqlite3.Connection, list_id: int) -> tuple[int, int]:
    row = conn.execute(
        "SELECT count(*), coalesce(sum(c.status = 'subscribed'), 0) FROM memberships m"
        " JOIN contacts c ON c.id = m.contact_id WHERE m.list_id = ?",
        (list_id,),
    ).fetchone()
    return int(row[0]), int(row[1])


def list_lists(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every list with `members` and `subscribed` counts, by kind and slug."""
    return conn.execute(
        "SELECT l.kind, l.slug, l.name, count(c.id) AS members,"
        " coalesce(sum(c.status = 'subscribed'), 0) AS subscribed"
        " FROM lists l LEFT JOIN memberships m ON m.list_id = l.id"
        " LEFT JOIN contacts c ON c.id = m.contact_id"
        " GROUP BY l.id ORDER BY l.kind, l.slug"
    ).fetchall()
