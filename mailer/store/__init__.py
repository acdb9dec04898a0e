"""The only place that runs SQL: connection, transactions, migrations; queries per area.

`mailer.store` opens the database; the modules beside it (`contacts`, `campaigns`, …) hold
the named queries of one area each. Every value is a bound parameter.

Migrations are the `.sql` files in `migrations/`, applied in name order, each in its own
`BEGIN IMMEDIATE` transaction with foreign keys on, and recorded in `schema_migrations`.

A migration that rebuilds a table (to change a CHECK or add a constrained column: create
`new_x`, copy, drop `x`, rename `new_x` to `x`) must run with foreign keys off, or dropping
`x` fires its `ON DELETE CASCADE` and empties the child tables. SQLite ignores
`PRAGMA foreign_keys` inside a transaction, so such a file says so in a comment line before
its first statement:

    -- mailer: foreign_keys=off

and the runner then turns foreign keys off outside any transaction, runs the file in one
`BEGIN IMMEDIATE` transaction, checks `PRAGMA foreign_key_check` (any dangling reference
rolls the whole file back and raises `MigrationError`), records it, commits, and turns
foreign keys back on, also when the migration fails.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from mailer.errors import DatabaseError, InputError, MailerError, MigrationError
from mailer.timeutil import now_utc, to_db

BUSY_TIMEOUT = 10.0  # seconds a write waits for another writer before "database is locked"
FOREIGN_KEYS_OFF = "-- mailer: foreign_keys=off"

# Primary SQLite result codes (the low byte of the extended code).
_SQLITE_PERM, _SQLITE_CORRUPT, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 3, 11, 14, 26
_BAD_FILE_CODES = {_SQLITE_PERM, _SQLITE_CORRUPT, _SQLITE_CANTOPEN, _SQLITE_NOTADB}
_BAD_FILE_TEXTS = ("not a database", "malformed", "unable to open", "authorization denied")


class Migration(NamedTuple):
    """One migration file: its name (the file name without `.sql`) and its SQL."""

    name: str
    sql: str

    @property
    def foreign_keys_off(self) -> bool:
        """Whether a comment line before the first statement asks for foreign keys off."""
        for line in self.sql.splitlines():
            stripped = " ".join(line.split())
            if not stripped:
                continue
            if not stripped.startswith("--"):
                return False
            if stripped == FOREIGN_KEYS_OFF:
                return True
        return False


class Store:
    """One SQLite connection with WAL, a busy timeout, foreign keys and nested transactions."""

    def __init__(
        self, path: str | Path, *, migrate: bool = True, busy_timeout: float = BUSY_TIMEOUT
    ) -> None:
        self.path = Path(path)
        _create_private(self.path)
        try:
            self.conn = sqlite3.connect(
                str(self.path),
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                timeout=busy_timeout,
                check_same_thread=False,
            )
        except sqlite3.OperationalError as exc:
            raise InputError(f"cannot open database {self.path}: {exc}") from None
        self.conn.row_factory = sqlite3.Row
        self._depth = 0
        try:
            self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA foreign_keys = ON")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            # Reading the schema now makes a damaged or foreign file fail at open.
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if migrate:
                self.migrate()
        except sqlite3.Error as exc:
            self.conn.close()
            raise open_error(exc, self.path) from None
        except MailerError:
            self.conn.close()
            raise

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

    def migrate(self, migrations: Iterable[tuple[str, str]] | None = None) -> list[str]:
        """Apply the migrations this file lacks, each in its own transaction.

        `migrations` (name, sql) pairs default to the files of `mailer/store/migrations`.
        """
        if self._depth:
            raise RuntimeError("migrate() must not run inside a transaction")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        applied: list[str] = []
        done_before = set(self.applied_migrations())
        for name, sql in _migrations() if migrations is None else migrations:
            if name in done_before:
                continue  # no write lock needed: a reader must not wait for a running send
            migration = Migration(name, sql)
            ran = (
                self._apply_without_foreign_keys(migration)
                if migration.foreign_keys_off
                else (self._apply(migration))
            )
            if ran:
                applied.append(name)
        return applied

    def _apply(self, migration: Migration, *, check_references: bool = False) -> bool:
        """Run one migration in one transaction; False when another process ran it first."""
        with self.transaction() as conn:
            done = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE name = ?", (migration.name,)
            ).fetchone()
            if done:
                return False
            for statement in _statements(migration.sql):
                conn.execute(statement)
            if check_references:
                self._check_references(migration)
            conn.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                (migration.name, to_db(now_utc())),
            )
            count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
            conn.execute(f"PRAGMA user_version = {int(count)}")
        return True

    def _apply_without_foreign_keys(self, migration: Migration) -> bool:
        """Run a table rebuild with foreign keys off (only possible outside a transaction)."""
        self.conn.execute("PRAGMA foreign_keys = OFF")
        try:
            if self.conn.execute("PRAGMA foreign_keys").fetchone()[0]:
                raise MigrationError(
                    f"migration {migration.name}: foreign keys did not turn off",
                    where=str(self.path),
                )
            return self._apply(migration, check_references=True)
        finally:
            self.conn.execute("PRAGMA foreign_keys = ON")

    def _check_references(self, migration: Migration) -> None:
        """Raise MigrationError when a row points at a parent row that is not there."""
        dangling: dict[tuple[str, str], int] = {}
        for row in self.conn.execute("PRAGMA foreign_key_check"):
            key = (row[0], row[2])
            dangling[key] = dangling.get(key, 0) + 1
        if dangling:
            found = ", ".join(
                f"{count} in {table} → {parent}" for (table, parent), count in dangling.items()
            )
            raise MigrationError(
                f"migration {migration.name} left rows pointing at missing rows ({found});"
                " rolled back, not applied",
                where=str(self.path),
            )

    def applied_migrations(self) -> list[str]:
        rows = self.conn.execute("SELECT name FROM schema_migrations ORDER BY name")
        return [row[0] for row in rows]

    def backup(self, target: str | Path) -> None:
        """Write an online, consistent copy of the database to `target` (0600).

        The copy is made in a new private file beside `target` and renamed onto it, so a
        symlink placed at `target` is replaced, never written through.
        """
        from mailer.files import private_temp

        target = Path(target)
        tmp = private_temp(target)
        try:
            dest = sqlite3.connect(str(tmp))
            try:
                self.conn.backup(dest)
                dest.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            finally:
                dest.close()
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _create_private(path: Path) -> None:
    """Create a new database file readable by its owner only (SQLite gives its -wal and -shm
    files the same mode): it holds personal data."""
    if path.exists():
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass
    except OSError:
        pass  # sqlite3.connect reports it in its own words


def open_error(exc: sqlite3.Error, path: Path) -> MailerError:
    """Translate an error met while opening: a bad file is bad input (exit 2), else exit 1."""
    if _is_bad_file(exc):
        return InputError(f"not a usable mailer database ({exc})", where=str(path))
    return database_error(exc, path)


def is_busy(exc: sqlite3.Error) -> bool:
    """True when another connection held the database past the busy timeout."""
    text = str(exc)
    return "locked" in text or "busy" in text


def database_error(exc: sqlite3.Error, path: str | Path) -> DatabaseError:
    """Translate an sqlite3 error met during the work into one line naming the database."""
    text = str(exc) or type(exc).__name__
    if is_busy(exc):
        text += " (another process kept writing to it; try again)"
    return DatabaseError(text, where=str(path))


def _is_bad_file(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return (code & 0xFF) in _BAD_FILE_CODES
    return any(text in str(exc) for text in _BAD_FILE_TEXTS)


def _migrations() -> list[Migration]:
    folder = resources.files("mailer.store") / "migrations"
    items = [
        Migration(entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8"))
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
