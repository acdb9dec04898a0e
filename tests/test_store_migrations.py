"""Migrations that rebuild a table run with foreign keys off and keep every reference."""

from __future__ import annotations

import pytest

from mailer.errors import MigrationError
from mailer.store import FOREIGN_KEYS_OFF, Migration
from tests.contacts_helpers import snapshot, write_csv


def _rebuild_contacts(conn, *, marker: bool = True, extra: str = "") -> Migration:
    """A test-only migration: rebuild `contacts` with one more status in its CHECK."""
    table_sql = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'contacts'"
    ).fetchone()[0]
    assert "'bounced')" in table_sql
    new_table = table_sql.replace("CREATE TABLE contacts", "CREATE TABLE new_contacts").replace(
        "'bounced')", "'bounced', 'complained')"
    )
    indexes = [
        row[0]
        for row in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'contacts'"
            " AND sql IS NOT NULL"
        )
    ]
    lines = [
        "-- Test only: allow a new contact status (needs a rebuild: CHECK cannot be altered).",
        FOREIGN_KEYS_OFF if marker else "-- (no marker)",
        f"{new_table};",
        "INSERT INTO new_contacts SELECT * FROM contacts;",
        "DROP TABLE contacts;",
        "ALTER TABLE new_contacts RENAME TO contacts;",
        *(f"{sql};" for sql in indexes),
        extra,
    ]
    return Migration("9901_test_rebuild_contacts", "\n".join(lines) + "\n")


@pytest.fixture
def populated(workspace, tmp_path):
    """Contacts in two lists, two of them unsubscribed through the CLI (events recorded)."""
    rows = [["email", "name", "language"]] + [
        [f"p{i}@example.org", f"P {i}", "fi"] for i in range(6)
    ]
    csv_path = write_csv(tmp_path / "people.csv", rows)
    for ref in ("cluster:north", "municipality:oulu"):
        assert workspace.cli("lists", "add", ref).exit_code == 0
    res = workspace.cli("contacts", "import", str(csv_path), "--list", "cluster:north")
    assert res.exit_code == 0, res.stderr
    res = workspace.cli("contacts", "import", str(csv_path), "--list", "municipality:oulu")
    assert res.exit_code == 0, res.stderr
    for email in ("p1@example.org", "p4@example.org"):
        res = workspace.cli("contacts", "unsubscribe", email)
        assert res.exit_code == 0, res.stderr
    return workspace


def test_a_rebuild_of_contacts_keeps_every_membership_and_event(populated):
    with populated.store() as store:
        before = snapshot(store.conn)
        assert len(before["memberships"]) == 12
        assert len(before["unsubscribe_events"]) == 2
        assert all(event[1] is not None for event in before["unsubscribe_events"])

        migration = _rebuild_contacts(store.conn)
        assert migration.foreign_keys_off
        assert store.migrate([migration]) == [migration.name]

        assert snapshot(store.conn) == before
        assert store.applied_migrations()[-1] == migration.name
        assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        # The new CHECK is in force, and the cascade still works after the rebuild.
        store.conn.execute(
            "UPDATE contacts SET status = 'complained' WHERE email = 'p2@example.org'"
        )
        store.conn.execute("DELETE FROM contacts WHERE email = 'p3@example.org'")
        assert len(snapshot(store.conn)["memberships"]) == 10
        # Applied once: a second run finds it recorded.
        assert store.migrate([migration]) == []


def test_without_the_marker_the_same_rebuild_empties_memberships(populated):
    """Why the marker exists: inside the transaction, DROP TABLE fires ON DELETE CASCADE."""
    with populated.store() as store:
        migration = _rebuild_contacts(store.conn, marker=False)
        assert not migration.foreign_keys_off
        store.migrate([migration])
        assert snapshot(store.conn)["memberships"] == []


def test_a_rebuild_that_leaves_a_dangling_reference_is_rolled_back(populated):
    with populated.store() as store:
        before = snapshot(store.conn)
        migration = _rebuild_contacts(
            store.conn, extra="DELETE FROM contacts WHERE email = 'p2@example.org';"
        )
        with pytest.raises(MigrationError) as caught:
            store.migrate([migration])
        message = str(caught.value)
        assert migration.name in message
        assert "memberships" in message and "rolled back" in message
        assert str(store.path) in message
        assert "\n" not in message

        assert migration.name not in store.applied_migrations()
        assert snapshot(store.conn) == before
        assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        table_sql = store.conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'contacts'"
        ).fetchone()[0]
        assert "complained" not in table_sql


def test_a_failing_statement_turns_foreign_keys_back_on(populated):
    with populated.store() as store:
        migration = _rebuild_contacts(store.conn, extra="INSERT INTO no_such_table VALUES (1);")
        with pytest.raises(Exception, match="no_such_table"):
            store.migrate([migration])
        assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert migration.name not in store.applied_migrations()


def test_the_marker_counts_only_before_the_first_statement():
    assert Migration("a", f"-- about\n\n{FOREIGN_KEYS_OFF}\nCREATE TABLE t (x);\n").foreign_keys_off
    assert Migration("b", "--   mailer:   foreign_keys=off\nSELECT 1;\n").foreign_keys_off
    assert not Migration("c", f"CREATE TABLE t (x);\n{FOREIGN_KEYS_OFF}\n").foreign_keys_off
    assert not Migration("d", "-- mailer: foreign_keys=on\nSELECT 1;\n").foreign_keys_off
