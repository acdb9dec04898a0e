"""The only place that runs SQL: connection, transactions, migrations; queries per area.

`mailer.store` opens the database; the modules beside it (`contacts`, `campaigns`, …) hold
the named queries of one area each. Every value is a bound parameter.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from mailer.errors import InputError
from mailer.timeutil import now_utc, to_db

BUSY_TIMEOUT_MS = 10_000


class Store:
    """One SQLite connection with WAL, a busy timeout, foreign keys and nested transactions."""

    def __init__(self, path: str | Path, *, migrate: bool = True) -> None:
        self.path = Path(path)
        try:
            self.conn = sqlite3.connect(
                str(self.path),
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                timeout=BUSY_TIMEOUT_MS / 1000,
                check_same_thread=False,
            )
        except sqlite3.OperationalError as exc:
            raise InputError(f"cannot open database {self.path}: {exc}") from None
        self.conn.row_factory = sqlite3.Row
        self._depth = 0
        try:
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA foreign_keys = ON")
            self.conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise InputError(f"{self.path} is not a mailer database: {exc}") from None
        if migrate:
            self.migrate()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block in one transaction (BEGIN IMMEDIATE), or a savepoint when nested."""
        if self._depth == 0:
            self.conn.execute("BEGIN IMMEDIATE")
            begin, commit, rollback = None, "COMMIT", "ROLLBACK"
        else:
            name = f"sp{self._depth}"
            begin = f"SAVEPOINT {name}"
            commit = f"RELEASE {name}"
            rollback = f"ROLLBACK TO {name}; RELEASE {name}"
            self.conn.execute(begin)
        self._depth += 1
        try:
            yield self.conn
        except BaseException:
            self._depth -= 1
            for statement in rollback.split("; "):
                self.conn.execute(statement)
            raise
        self._depth -= 1
        self.conn.execute(commit)

    def migrate(self) -> list[str]:
        """Apply the migrations this file lacks, each in its own transaction."""
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        applied: list[str] = []
        done_before = set(self.applied_migrations())
        for name, sql in _migrations():
            if name in done_before:
                continue  # no write lock needed: a reader must not wait for a running send
            with self.transaction() as conn:
                done = conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE name = ?", (name,)
                ).fetchone()
                if done:
                    continue
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                    (name, to_db(now_utc())),
                )
                count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
                conn.execute(f"PRAGMA user_version = {int(count)}")
                applied.append(name)
        return applied

    def applied_migrations(self) -> list[str]:
        rows = self.conn.execute("SELECT name FROM schema_migrations ORDER BY name")
        return [row[0] for row in rows]

    def backup(self, target: str | Path) -> None:
        """Write an online, consistent copy of the database to `target`."""
        dest = sqlite3.connect(str(target))
        try:
            self.conn.backup(dest)
        finally:
            dest.close()


def _migrations() -> list[tuple[str, str]]:
    folder = resources.files("mailer.store") / "migrations"
    items = [
        (entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(items)


def _statements(script: str) -> Iterator[str]:
    """Split a migration script into statements (executescript would COMMIT early)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            buffer = ""
            if statement.rstrip(";").strip():
                yield statement
    if buffer.strip() and not buffer.strip().startswith("--"):
        yield buffer.strip()
