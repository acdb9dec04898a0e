"""A locked or damaged database is one `Error:` line naming its path, never a traceback."""

from __future__ import annotations

import sqlite3

import pytest

from tests.contacts_helpers import assert_one_line_error, write_csv


def _fill(workspace, tmp_path, count: int = 3000) -> None:
    rows = [["email", "name", "language"]]
    rows += [[f"reader{i}@example.org", f"Reader {i}", "fi"] for i in range(count)]
    res = workspace.cli("contacts", "import", str(write_csv(tmp_path / "many.csv", rows)))
    assert res.exit_code == 0, res.stderr


@pytest.mark.slow
def test_a_write_while_another_process_holds_the_lock_is_one_line(workspace):
    """Waits out the real 10-second busy timeout: the CLI has no knob to shorten it."""
    db = workspace.path / "mailer.db"
    holder = sqlite3.connect(str(db), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        res = workspace.cli("contacts", "add", "aino@example.org")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert res.exit_code == 1, res.stderr
    assert_one_line_error(res.stderr, str(db), "locked")
    # Once the lock is gone, the same command works.
    assert workspace.cli("contacts", "add", "aino@example.org").exit_code == 0


def _damage(path, start_fraction: float, end_fraction: float) -> None:
    data = bytearray(path.read_bytes())
    start, end = int(len(data) * start_fraction), int(len(data) * end_fraction)
    data[start:end] = b"\xa5" * (end - start)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("command", [("contacts", "list"), ("contacts", "export")])
def test_a_database_damaged_in_the_middle_fails_the_work_in_one_line(workspace, tmp_path, command):
    _fill(workspace, tmp_path)
    db = workspace.path / "mailer.db"
    assert (
        not (workspace.path / "mailer.db-wal").exists()
        or (workspace.path / "mailer.db-wal").stat().st_size == 0
    )
    _damage(db, 0.3, 0.7)
    res = workspace.cli(*command)
    assert res.exit_code == 1, (res.exit_code, res.stderr)
    assert_one_line_error(res.stderr, str(db), "malformed")


def test_a_database_damaged_in_its_schema_is_refused_at_open(workspace, tmp_path):
    _fill(workspace, tmp_path, count=10)
    db = workspace.path / "mailer.db"
    data = bytearray(db.read_bytes())
    data[100:4096] = b"\xa5" * (4096 - 100)  # page 1 after the file header: the schema
    db.write_bytes(bytes(data))
    res = workspace.cli("contacts", "list")
    assert res.exit_code == 2, (res.exit_code, res.stderr)
    assert_one_line_error(res.stderr, str(db), "malformed")


def test_debug_shows_the_traceback(workspace, tmp_path):
    _fill(workspace, tmp_path)
    _damage(workspace.path / "mailer.db", 0.3, 0.7)
    with pytest.raises(sqlite3.DatabaseError):
        workspace.cli("--debug", "contacts", "list")


def test_a_missing_database_is_refused_and_not_created(workspace):
    db = workspace.path / "mailer.db"
    db.unlink()
    res = workspace.cli("contacts", "list")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, str(db), "no database")
    assert not db.exists()
    res = workspace.cli("contacts", "add", "aino@example.org")
    assert res.exit_code == 2
    assert not db.exists()


def test_an_empty_database_file_is_refused_and_left_empty(workspace):
    db = workspace.path / "mailer.db"
    db.write_bytes(b"")
    res = workspace.cli("contacts", "add", "aino@example.org")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, str(db), "empty")
    assert db.stat().st_size == 0


def test_a_file_that_is_not_a_database_is_refused_at_open(workspace):
    db = workspace.path / "mailer.db"
    db.write_bytes(b"these are not the pages you are looking for\n" * 200)
    res = workspace.cli("contacts", "list")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, str(db), "not a usable mailer database")
