"""The unsubscribe core: events, counts, undo rules, and `mailer unsubscribes`."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from mailer.audience.subscriptions import (
    ACTIONS,
    SOURCES,
    Consent,
    change_status,
    count_for_campaign,
    events,
    last_event,
    mask_address,
    page_info,
    parse_since,
    resubscribe,
    unbounce,
    unsubscribe,
)
from mailer.errors import InputError, NotFoundError
from mailer.store import Store, _migrations, _statements
from tests.contacts_helpers import tool_csv
from tests.web_helpers import add_contact, contact_status, insert_campaign_for_tests

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)


def test_unsubscribe_records_once_and_a_repeat_changes_nothing(workspace):
    with workspace.store() as store:
        campaign = insert_campaign_for_tests(store, "2026-11")
        contact = add_contact(store, "anna@example.com")
        first = unsubscribe(store, contact, campaign, "one-click", T0)
        again = unsubscribe(store, contact, campaign, "page", T0 + timedelta(minutes=1))
        assert (first.changed, first.status) == (True, "unsubscribed")
        assert (again.changed, again.status) == (False, "unsubscribed")
        assert contact_status(store, contact) == "unsubscribed"
        assert count_for_campaign(store.conn, campaign) == 1
        event = last_event(store.conn, contact)
        assert event is not None
        assert (event.action, event.source, event.campaign, event.at) == (
            "unsubscribe",
            "one-click",
            "2026-11",
            T0,
        )


def test_an_undone_unsubscribe_no_longer_counts_but_a_forgotten_one_does(workspace):
    with workspace.store() as store:
        campaign = insert_campaign_for_tests(store, "2026-11")
        undone = add_contact(store, "undo@example.com")
        forgotten = add_contact(store, "forget@example.com")
        unsubscribe(store, undone, campaign, "page", T0)
        unsubscribe(store, forgotten, campaign, "one-click", T0)
        assert count_for_campaign(store.conn, campaign) == 2
        report = resubscribe(store, undone, campaign, "page", T0 + timedelta(minutes=1))
        assert (report.changed, report.status) == (True, "subscribed")
        assert count_for_campaign(store.conn, campaign) == 1
        store.conn.execute("DELETE FROM contacts WHERE id = ?", (forgotten,))
        assert count_for_campaign(store.conn, campaign) == 1
        assert last_event(store.conn, forgotten) is None


def test_resubscribe_rules(workspace):
    with workspace.store() as store:
        campaign = insert_campaign_for_tests(store, "2026-11")
        bounced = add_contact(store, "b@example.com", status="bounced")
        by_staff = add_contact(store, "s@example.com")
        unsubscribe(store, by_staff, None, "cli", T0)
        # a link may not undo what staff or a bounce decided
        assert resubscribe(store, bounced, campaign, "page", T0).refused
        assert resubscribe(store, by_staff, campaign, "page", T0).refused
        assert contact_status(store, bounced) == "bounced"
        assert contact_status(store, by_staff) == "unsubscribed"
        # an unsubscribe is not allowed to turn a bounce into 'unsubscribed'
        assert not unsubscribe(store, bounced, campaign, "one-click", T0).changed
        assert contact_status(store, bounced) == "bounced"
        # staff may resubscribe the one they unsubscribed, never the bounced one
        assert resubscribe(store, by_staff, None, "cli", T0).changed
        assert resubscribe(store, bounced, None, "cli", T0).refused
        with pytest.raises(NotFoundError):
            unsubscribe(store, 999_999, campaign, "page", T0)
        with pytest.raises(NotFoundError):
            unsubscribe(store, by_staff, 999_999, "page", T0)
        with pytest.raises(InputError):
            unsubscribe(store, by_staff, campaign, "email", T0)


def test_events_filter_by_campaign_and_time(workspace):
    with workspace.store() as store:
        a = insert_campaign_for_tests(store, "2026-10")
        b = insert_campaign_for_tests(store, "2026-11")
        c1 = add_contact(store, "one@example.com")
        c2 = add_contact(store, "two@example.com")
        unsubscribe(store, c1, a, "one-click", T0 - timedelta(days=10))
        unsubscribe(store, c2, b, "page", T0)
        assert [e.email for e in events(store)] == ["one@example.com", "two@example.com"]
        assert [e.email for e in events(store, campaign="2026-11")] == ["two@example.com"]
        assert [e.email for e in events(store, since=T0 - timedelta(days=1))] == ["two@example.com"]
        with pytest.raises(NotFoundError):
            events(store, campaign="no-such")


def test_mask_address():
    assert mask_address("matti.meikalainen@example.com") == "m***@example.com"
    assert mask_address("ä@esimerkki.fi") == "ä***@esimerkki.fi"


def test_parse_since_reads_dates_as_helsinki_time():
    assert parse_since("2026-11-01") == datetime(2026, 10, 31, 22, 0, tzinfo=timezone.utc)
    assert parse_since("2026-11-01T12:00:00Z") == datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
    with pytest.raises(InputError):
        parse_since("yesterday")


def test_the_unsubscribes_command(workspace):
    with workspace.store() as store:
        campaign = insert_campaign_for_tests(store, "2026-11")
        contact = add_contact(store, "csv@example.com")
        unsubscribe(store, contact, campaign, "one-click", T0)
    res = workspace.cli("unsubscribes", "--format", "json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout) == [
        {
            "at": "2026-11-02T10:00:00+02:00",  # defaults.timezone, with its offset
            "action": "unsubscribe",
            "source": "one-click",
            "campaign": "2026-11",
            "email": "csv@example.com",
        }
    ]
    res = workspace.cli("unsubscribes", "--campaign", "2026-11", "--format", "csv")
    rows = tool_csv(res.stdout)
    assert [r["email"] for r in rows] == ["csv@example.com"]
    res = workspace.cli("unsubscribes", "--since", "2026-11-03")
    assert res.exit_code == 0 and "csv@example.com" not in res.stdout
    assert "action" in res.stdout  # the table header
    for bad in (["--campaign", "nope"], ["--since", "soon"], ["--format", "xml"]):
        res = workspace.cli("unsubscribes", *bad)
        assert res.exit_code == 2
        assert res.stderr.startswith("Error: ")


def _event_rows(store, contact_id):
    return [
        tuple(r)
        for r in store.conn.execute(
            "SELECT action, source, campaign_id, detail, consent_version, consent_hash"
            " FROM unsubscribe_events WHERE contact_id = ? ORDER BY id",
            (contact_id,),
        )
    ]


def test_a_bounce_at_send_moves_a_subscribed_contact_and_records_its_reply(workspace):
    with workspace.store() as store:
        campaign = insert_campaign_for_tests(store, "2026-11")
        contact = add_contact(store, "gone@example.com")
        reply = "550 5.1.1 <gone@example.com>:\r\n  user unknown"
        with store.transaction() as conn:
            change = change_status(
                conn,
                contact,
                "bounced",
                source="bounce",
                now=T0,
                campaign_id=campaign,
                detail=reply,
            )
        assert (change.old, change.new, change.action, change.changed) == (
            "subscribed",
            "bounced",
            "bounce",
            True,
        )
        assert contact_status(store, contact) == "bounced"
        assert _event_rows(store, contact) == [
            ("bounce", "bounce", campaign, "550 5.1.1 <gone@example.com>: user unknown", None, None)
        ]
        assert count_for_campaign(store.conn, campaign) == 0  # a bounce is not an unsubscribe


def test_a_bounce_or_complaint_of_an_unsubscribed_contact_is_recorded_and_changes_nothing(
    workspace,
):
    with workspace.store() as store:
        campaign = insert_campaign_for_tests(store, "2026-11")
        contact = add_contact(store, "left@example.com")
        unsubscribe(store, contact, campaign, "page", T0)
        with store.transaction() as conn:
            bounce = change_status(conn, contact, "bounced", source="bounce", now=T0)
            complaint = change_status(
                conn, contact, "unsubscribed", source="complaint", now=T0, campaign_id=campaign
            )
        assert (bounce.changed, bounce.recorded, bounce.new) == (False, True, "unsubscribed")
        assert (complaint.changed, complaint.recorded) == (False, True)
        assert contact_status(store, contact) == "unsubscribed"
        assert [r[:2] for r in _event_rows(store, contact)] == [
            ("unsubscribe", "page"),
            ("bounce", "bounce"),
            ("complaint", "complaint"),
        ]
        # the link's unsubscribe is no longer the last status event: no undo through it
        info = page_info(store, campaign, contact, "fi")
        assert info is not None and not info.can_undo
        assert resubscribe(store, contact, campaign, "page", T0).refused
        # `mailer unsubscribes` still lists only unsubscribes and resubscribes
        assert [e.action for e in events(store)] == ["unsubscribe"]


def test_only_that_links_unsubscribe_is_undone_through_a_link(workspace):
    with workspace.store() as store:
        october = insert_campaign_for_tests(store, "2026-10")
        november = insert_campaign_for_tests(store, "2026-11")
        contact = add_contact(store, "undo@example.com")
        unsubscribe(store, contact, november, "one-click", T0)
        assert not page_info(store, october, contact, "fi").can_undo
        assert page_info(store, november, contact, "fi").can_undo
        refused = resubscribe(store, contact, october, "page", T0)
        assert refused.refused and "this link" in refused.reason
        assert resubscribe(store, contact, november, "page", T0).changed


def test_a_confirmed_signup_brings_back_anyone_and_keeps_its_consent(workspace):
    consent = Consent("2026-11", "ab" * 32)
    with workspace.store() as store:
        left = add_contact(store, "left@example.com")
        bounced = add_contact(store, "bounced@example.com", status="bounced")
        unsubscribe(store, left, None, "one-click", T0)
        with store.transaction() as conn:
            for contact in (left, bounced):
                change = change_status(
                    conn, contact, "subscribed", source="signup", now=T0, consent=consent
                )
                assert change.changed and change.action == "subscribe"
            with pytest.raises(InputError):
                change_status(conn, left, "unsubscribed", source="signup", now=T0)
            with pytest.raises(InputError):
                change_status(conn, left, "subscribed", source="signup", now=T0)
        assert _event_rows(store, bounced) == [
            ("subscribe", "signup", None, None, "2026-11", "ab" * 32)
        ]


def test_sources_that_never_make_a_move_are_errors(workspace):
    with workspace.store() as store:
        contact = add_contact(store, "x@example.com")
        with store.transaction() as conn:
            for target, source in [
                ("subscribed", "bounce"),
                ("subscribed", "import"),
                ("bounced", "cli"),
                ("unsubscribed", "bounce"),
                ("gone", "cli"),
                ("unsubscribed", "mail"),
            ]:
                with pytest.raises(InputError):
                    change_status(conn, contact, target, source=source, now=T0)
            with pytest.raises(InputError):
                change_status(conn, contact, "unsubscribed", source="page", now=T0, force=True)
        assert _event_rows(store, contact) == []


def test_unbounce_is_refused_after_an_unsubscribe(workspace):
    with workspace.store() as store:
        contact = add_contact(store, "x@example.com")
        unsubscribe(store, contact, None, "cli", T0)
        resubscribe(store, contact, None, "cli", T0)
        with store.transaction() as conn:
            change_status(conn, contact, "bounced", source="bounce", now=T0)
        assert unbounce(store, contact, T0).changed  # the unsubscribe was undone first
        unsubscribe(store, contact, None, "cli", T0)
        store.conn.execute("UPDATE contacts SET status = 'bounced' WHERE id = ?", (contact,))
        assert "on record" in unbounce(store, contact, T0).refused


def _checked(sql: str, column: str) -> set[str]:
    found = re.search(rf"CHECK\s*\(\s*{column}\s+IN\s*\(([^)]*)\)", sql)
    assert found, f"no CHECK on {column}"
    return set(re.findall(r"'([^']+)'", found.group(1)))


def test_the_event_vocabulary_is_the_schemas(tmp_path):
    with Store(tmp_path / "m.db") as store:
        (sql,) = store.conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'unsubscribe_events'"
        ).fetchone()
    assert _checked(sql, "action") == set(ACTIONS)
    assert _checked(sql, "source") == set(SOURCES)
    assert set(SOURCES) == {
        "import", "cli", "one-click", "page", "bounce", "complaint", "signup", "preferences"
    }  # fmt: skip


def test_no_table_references_the_events_so_their_rebuild_cascades_nothing(tmp_path):
    with Store(tmp_path / "m.db") as store:
        tables = [
            r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for table in tables:
            for ref in store.conn.execute(f"PRAGMA foreign_key_list('{table}')"):
                assert ref["table"] != "unsubscribe_events", table


def test_events_survive_the_upgrade_that_widens_them(tmp_path):
    """A database made before 0502 keeps its events, memberships and contacts."""
    path = tmp_path / "old.db"
    with Store(path, migrate=False) as store:
        store.conn.execute(
            "CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        for name, sql in _migrations():
            if name >= "0502":
                break
            with store.transaction() as conn:
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations VALUES (?, 'then')", (name,))
        campaign = insert_campaign_for_tests(store, "2026-10")
        a = add_contact(store, "a@example.com")
        b = add_contact(store, "b@example.com")
        with store.transaction() as conn:
            conn.execute(
                "INSERT INTO lists (kind, slug, name, created_at) VALUES ('k', 's', 'S', 'x')"
            )
            conn.execute("INSERT INTO memberships SELECT 1, id FROM contacts")
            conn.executemany(
                "INSERT INTO unsubscribe_events (id, contact_id, campaign_id, action, source, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (5, a, campaign, "unsubscribe", "one-click", "2026-10-02T08:00:00Z"),
                    (9, a, campaign, "resubscribe", "page", "2026-10-02T08:01:00Z"),
                    (12, b, None, "unsubscribe", "import", "2026-10-03T08:00:00Z"),
                ],
            )
        before = store.conn.execute("SELECT * FROM unsubscribe_events ORDER BY id").fetchall()
    with Store(path) as store:
        assert "0502_contact_events" in store.applied_migrations()
        after = store.conn.execute(
            "SELECT id, contact_id, campaign_id, action, source, at FROM unsubscribe_events"
            " ORDER BY id"
        ).fetchall()
        assert [tuple(r) for r in after] == [tuple(r) for r in before]
        assert store.conn.execute("SELECT count(*) FROM memberships").fetchone()[0] == 2
        assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        indexes = {
            r[0]
            for r in store.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index'"
                " AND tbl_name = 'unsubscribe_events'"
            )
        }
        assert {"unsubscribe_events_campaign", "unsubscribe_events_contact"} <= indexes
        assert count_for_campaign(store.conn, campaign) == 0
        # the widened table takes the new kinds, and a forgotten contact's events stay
        with store.transaction() as conn:
            change_status(conn, b, "bounced", source="bounce", now=T0)
        store.conn.execute("DELETE FROM contacts WHERE id = ?", (a,))
        rows = store.conn.execute("SELECT contact_id, action FROM unsubscribe_events ORDER BY id")
        assert [tuple(r) for r in rows] == [
            (None, "unsubscribe"),
            (None, "resubscribe"),
            (b, "unsubscribe"),
            (b, "bounce"),
        ]
