"""The unsubscribe core: events, counts, undo rules, and `mailer unsubscribes`."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from mailer.audience.subscriptions import (
    count_for_campaign,
    events,
    last_event,
    mask_address,
    parse_since,
    resubscribe,
    unsubscribe,
)
from mailer.errors import InputError, NotFoundError
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
            "at": "2026-11-02T08:00:00Z",
            "action": "unsubscribe",
            "source": "one-click",
            "campaign": "2026-11",
            "email": "csv@example.com",
        }
    ]
    res = workspace.cli("unsubscribes", "--campaign", "2026-11", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [r["email"] for r in rows] == ["csv@example.com"]
    res = workspace.cli("unsubscribes", "--since", "2026-11-03")
    assert res.exit_code == 0 and "csv@example.com" not in res.stdout
    assert "action" in res.stdout  # the table header
    for bad in (["--campaign", "nope"], ["--since", "soon"], ["--format", "xml"]):
        res = workspace.cli("unsubscribes", *bad)
        assert res.exit_code == 2
        assert res.stderr.startswith("Error: ")
