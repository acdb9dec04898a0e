"""Queries for previews: a sample contact to render a language's sample message for."""

from __future__ import annotations

import sqlite3


def sample_contact(conn: sqlite3.Connection, language: str) -> sqlite3.Row | None:
    """The first subscribed contact whose language is `language`, or None."""
    return conn.execute(
        "SELECT id, email, email_ascii, name, first_name, language FROM contacts"
        " WHERE status = 'subscribed' AND language = ? ORDER BY id LIMIT 1",
        (language,),
    ).fetchone()
