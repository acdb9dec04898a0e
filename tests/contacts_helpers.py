"""Helpers for the contacts, import, lists and segments tests."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path

TABLES = ("contacts", "lists", "memberships", "suppressions", "segments", "unsubscribe_events")


def write_csv(
    path: Path,
    rows: list[list[str]],
    *,
    delimiter: str = ";",
    encoding: str = "utf-8",
) -> Path:
    """Write rows as a spreadsheet program would (CRLF line ends, minimal quoting)."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def snapshot(db: Path | sqlite3.Connection) -> dict[str, list[tuple]]:
    """Every row of the tables this area writes, to compare before and after."""
    conn = db if isinstance(db, sqlite3.Connection) else sqlite3.connect(str(db))
    try:
        return {
            t: sorted((tuple(r) for r in conn.execute(f"SELECT * FROM {t}")), key=repr)
            for t in TABLES
        }
    finally:
        if conn is not db:
            conn.close()


def rows_of(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(str(db))
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    """Exit-2 errors are one line, `Error: …`, without a traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: "), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def tool_csv(text: str, delimiter: str = ";") -> list[dict[str, str]]:
    """Rows of CSV the tool wrote: it starts with a BOM and uses the configured delimiter."""
    assert text.startswith("\ufeff"), text[:40]
    return list(csv.DictReader(io.StringIO(text[1:], newline=""), delimiter=delimiter))
