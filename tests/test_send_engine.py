"""The delivery engine against a real aiosmtpd: states, retries, pause, quotas, leases."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from datetime import timedelta

import pytest

from mailer.errors import InputError, LeaseHeldError, SmtpError
from mailer.sending.campaigns import campaign_stats
from mailer.sending.content import NewsletterContent
from mailer.sending.engine import send_campaign
from mailer.sending.options import RetryPolicy, SendOptions
from mailer.store import campaigns as q_campaigns
from mailer.timeutil import now_utc
from mailer.tokens import verify_token
from tests.conftest import SECRET
from tests.sending_helpers import (
    PlainContent,
    ScriptedSink,
    add_campaign,
    add_contacts,
    point_at,
)
from tests.smtp_sink import free_port

FAST = SendOptions(retry=RetryPolicy(delays=()))


def _states(store, campaign_id=1):
    rows = store.conn.execute(
        "SELECT c.email, d.status FROM deliveries d JOIN contacts c ON c.id = d.contact_id"
        " WHERE d.campaign_id = ?",
        (campaign_id,),
    )
    return {email: status for email, status in rows}


def _send(workspace, store, name="issue-1", options=FAST, **kw):
    return send_campaign(
        store, workspace.config(), name, options=options, content=PlainContent(), **kw
    )


def test_one_message_per_subscribed_recipient_with_its_own_unsubscribe_link(workspace):
    store = workspace.store()
    add_contacts(store, [f"fi{i}@example.org" for i in range(6)])
    add_contacts(store, ["en0@example.org", "en1@example.org"], language="en")
    add_contacts(store, ["sv0@example.org"], language="sv")  # no sv variant: reads fi
    add_contacts(store, ["gone@example.org"], status="unsubscribed")
    add_contacts(store, ["bounced@example.org"], status="bounced")
    cid = add_campaign(store)
    with ScriptedSink() as sink:
        point_at(workspace, sink.port, connections=3)
        report = _send(workspace, store)
    assert report.sent == 9 and report.failed == report.deferred == report.unknown == 0
    assert report.status == "sent"
    copies = sink.copies()
    assert set(copies.values()) == {1}
    assert "gone@example.org" not in copies and "bounced@example.org" not in copies
    assert len(copies) == 9
    by_rcpt = {item.rcpt_tos[0]: item for item in sink.received}
    en = by_rcpt["en0@example.org"].message()
    assert en["Subject"] == "Uutiset en"
    assert by_rcpt["sv0@example.org"].message()["Subject"] == "Uutiset fi"
    assert by_rcpt["fi0@example.org"].mail_from == workspace.config().sender.address
    token = en["List-Unsubscribe"].strip("<>").rsplit("/", 1)[1]
    subject = verify_token([SECRET.encode()], token)
    en0 = store.conn.execute("SELECT id FROM contacts WHERE email = 'en0@example.org'").fetchone()
    assert (subject.campaign_id, subject.contact_id) == (cid, en0[0])
    stats = campaign_stats(store, "issue-1")
    assert (stats.recipients, stats.sent, stats.pending) == (9, 9, 0)
    # Sending again sends nothing.
    again = _send(workspace, store)
    assert again.nothing_to_do and again.sent == 0


def test_scripted_server_answers_and_drops_end_in_the_right_states(workspace):
    store = workspace.store()
    emails = [f"r{i:02d}@example.org" for i in range(40)]
    add_contacts(store, emails)
    add_campaign(store)
    soft = {"r03@example.org", "r17@example.org"}
    hard = {"r05@example.org", "r21@example.org", "r33@example.org"}

    def rcpt_reply(address):
        if address in soft:
            return "451 4.7.1 greylisted, try later"
        if address in hard:
            return "550 5.1.1 no such user"
        return None

    with ScriptedSink(rcpt_reply=rcpt_reply, drop_rcpt_every=7, drop_after_data_every=9) as sink:
        point_at(workspace, sink.port, connections=2, pause_after=50)
        report = _send(
            workspace, store, options=SendOptions(retry=RetryPolicy(delays=(0.05, 0.05)))
        )
    states = _states(store)
    copies = sink.copies()
    assert max(copies.values()) == 1  # nobody got two
    assert {e for e, s in states.items() if s == "failed"} == hard
    deferred = {e for e, s in states.items() if s == "deferred"}
    assert soft <= deferred
    # Anyone else still deferred lost the connection at RCPT on every try of this run.
    assert deferred - soft <= set(sink.handler.dropped_at_rcpt)
    unknown = {e for e, s in states.items() if s == "unknown"}
    assert unknown == set(sink.handler.dropped_after_data) and unknown
    # Drops at RCPT were retried in the run and then delivered.
    assert {e for e, s in states.items() if s == "sent"} | unknown == set(copies)
    assert set(sink.handler.dropped_at_rcpt) - deferred <= set(copies)
    bounced = store.conn.execute("SELECT email FROM contacts WHERE status = 'bounced'")
    assert {r[0] for r in bounced} == hard
    # Each bounce went through the status's owner: an event with its source, campaign, reply.
    events = store.conn.execute(
        "SELECT c.email, e.action, e.source, e.campaign_id, e.detail FROM unsubscribe_events e"
        " JOIN contacts c ON c.id = e.contact_id WHERE e.action = 'bounce'"
    ).fetchall()
    assert {r[0] for r in events} == hard
    assert all(r[2] == "bounce" and r[3] is not None and "5.1.1" in r[4] for r in events)
    assert report.status == "sending"  # deferred rows remain for a later run
    next_at = store.conn.execute(
        "SELECT next_attempt_at FROM deliveries WHERE status = 'deferred'"
    ).fetchall()
    assert all(r[0] > now_utc().isoformat()[:19] for r in next_at)


def test_an_unsubscribe_during_the_send_is_honoured(workspace):
    store = workspace.store()
    add_contacts(store, [f"r{i}@example.org" for i in range(8)])
    add_campaign(store)
    db = workspace.path / "mailer.db"

    def on_data(item):
        if item.rcpt_tos == ["r1@example.org"]:
            # The web service (another connection) records an unsubscribe mid-send.
            other = sqlite3.connect(db)
            other.execute(
                "UPDATE contacts SET status = 'unsubscribed' WHERE email = 'r6@example.org'"
            )
            other.commit()
            other.close()
        return None

    with ScriptedSink(data_reply=on_data) as sink:
        point_at(workspace, sink.port, connections=1)
        report = _send(workspace, store)
    assert "r6@example.org" not in sink.copies()
    assert _states(store)["r6@example.org"] == "skipped"
    assert report.skipped == 1 and report.sent == 7 and report.status == "sent"


def test_the_daily_quota_holds_across_runs_and_the_rest_waits(workspace):
    store = workspace.store()
    add_contacts(store, [f"r{i}@example.org" for i in range(5)])
    add_campaign(store)
    with ScriptedSink() as sink:
        point_at(workspace, sink.port, connections=2, per_day=3)
        first = _send(workspace, store)
        second = _send(workspace, store)
        assert first.quota_exhausted and first.sent == 3 and first.status == "sending"
        assert second.quota_exhausted and second.sent == 0
        assert campaign_stats(store, "issue-1").pending == 2
        tomorrow = now_utc() + timedelta(days=1, minutes=1)
        third = _send(workspace, store, clock=lambda: tomorrow)
    assert third.sent == 2 and third.status == "sent"
    assert len(sink.copies()) == 5 and max(sink.copies().values()) == 1


def test_unreachable_server_at_the_start_marks_nobody(workspace):
    store = workspace.store()
    add_contacts(store, ["a@example.org"])
    add_campaign(store)
    point_at(workspace, free_port())
    with pytest.raises(SmtpError):
        _send(workspace, store)
    row = store.conn.execute("SELECT status, frozen_at, lease_owner FROM campaigns").fetchone()
    assert tuple(row) == ("draft", None, None)
    assert store.conn.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0


def test_server_failures_pause_the_campaign_and_send_continues_it(workspace):
    store = workspace.store()
    add_contacts(store, [f"r{i}@example.org" for i in range(10)])
    add_campaign(store)
    with ScriptedSink() as sink:
        point_at(workspace, sink.port, connections=2, pause_after=4)

        async def refuse_mail(server, session, envelope, address, options):
            return "421 4.3.2 system not accepting messages"

        sink.handler.handle_MAIL = refuse_mail
        paused = _send(workspace, store)
        assert paused.paused and paused.status == "paused"
        assert "consecutive" in paused.pause_reason
        states = _states(store)
        assert "failed" not in states.values()
        del sink.handler.handle_MAIL
        resumed = _send(workspace, store)
    assert resumed.status == "sent"
    assert sorted(sink.copies()) == sorted(f"r{i}@example.org" for i in range(10))


def test_a_held_lease_refuses_a_second_run_and_stale_rows_become_unknown(workspace):
    import os
    import socket

    store = workspace.store()
    add_contacts(store, ["a@example.org", "b@example.org", "c@example.org"])
    cid = add_campaign(store)
    live = f"{socket.gethostname()}:{os.getppid()}:cafe"
    now = now_utc()
    with store.transaction() as conn:
        q_campaigns.acquire_lease(conn, cid, live, now + timedelta(minutes=2), now)
    with ScriptedSink() as sink:
        point_at(workspace, sink.port)
        with pytest.raises(LeaseHeldError):
            _send(workspace, store)
        # The holder died (a pid that is gone) mid-send with b's row in `sending`.
        gone = subprocess.Popen(["true"])  # a pid that has just ended (999999 may be alive
        gone.wait()  # where pid_max is 4194304)
        dead = f"{socket.gethostname()}:{gone.pid}:dead"
        with store.transaction() as conn:
            conn.execute("UPDATE campaigns SET lease_owner = ?", (dead,))
        report = _run_with_stale_row(workspace, store, "b@example.org")
        assert report.became_unknown == ["b@example.org"]
        assert _states(store)["b@example.org"] == "unknown"
        assert "b@example.org" not in sink.copies()
        resent = _send(
            workspace, store, options=SendOptions(resend_unknown=True, retry=RetryPolicy(delays=()))
        )
    assert resent.sent == 1 and _states(store)["b@example.org"] == "sent"
    assert max(sink.copies().values()) == 1


def _run_with_stale_row(workspace, store, email):
    from mailer.sending.freeze import freeze_campaign

    freeze_campaign(store, workspace.config(), "issue-1", content=PlainContent())
    with store.transaction() as conn:
        conn.execute(
            "UPDATE deliveries SET status = 'sending', owner = 'dead' WHERE contact_id ="
            " (SELECT id FROM contacts WHERE email = ?)",
            (email,),
        )
    return _send(workspace, store)


def test_cancelling_a_campaign_stops_the_run_sending_it(workspace):
    store = workspace.store()
    add_contacts(store, [f"r{i:02d}@example.org" for i in range(30)])
    add_campaign(store)
    db = workspace.path / "mailer.db"

    def on_data(item):
        if item.rcpt_tos == ["r02@example.org"]:
            other = sqlite3.connect(db)
            other.execute("UPDATE campaigns SET status = 'cancelled'")
            other.commit()
            other.close()
        return None

    with ScriptedSink(data_reply=on_data, delay=0.05) as sink:
        point_at(workspace, sink.port, connections=1)
        report = _send(workspace, store)
    assert report.status == "cancelled" and "cancelled" in report.stopped_reason
    assert 3 <= len(sink.copies()) < 30
    states = _states(store)
    assert list(states.values()).count("pending") == 30 - len(sink.copies())


def test_a_recipient_deferred_max_attempts_over_a_day_becomes_failed(workspace):
    store = workspace.store()
    add_contacts(store, ["slow@example.org", "young@example.org"])
    add_campaign(store)
    from mailer.sending.freeze import freeze_campaign

    freeze_campaign(store, workspace.config(), "issue-1", content=PlainContent())
    two_days_ago = (now_utc() - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    an_hour_ago = (now_utc() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with store.transaction() as conn:
        for email, first in (
            ("slow@example.org", two_days_ago),
            ("young@example.org", an_hour_ago),
        ):
            conn.execute(
                "UPDATE deliveries SET status = 'deferred', attempts = 7, first_attempt_at = ?,"
                " next_attempt_at = ? WHERE contact_id = (SELECT id FROM contacts WHERE email = ?)",
                (first, first, email),
            )
    with ScriptedSink(rcpt_reply=lambda a: "451 4.2.0 mailbox busy") as sink:
        point_at(workspace, sink.port, max_attempts=8)
        _send(workspace, store)
    rows = dict(
        store.conn.execute(
            "SELECT c.email, d.status || ' ' || d.attempts || ' ' || d.last_error"
            " FROM deliveries d JOIN contacts c ON c.id = d.contact_id"
        ).fetchall()
    )
    assert rows["slow@example.org"].startswith("failed 8 gave up after 8 attempts")
    assert rows["young@example.org"].startswith("deferred 8")  # not yet a day of tries
    bounced = store.conn.execute("SELECT count(*) FROM contacts WHERE status = 'bounced'")
    assert bounced.fetchone()[0] == 0  # temporary errors never bounce an address


def test_an_address_that_needs_smtputf8_is_refused_before_sending_and_reported(workspace):
    store = workspace.store()
    add_contacts(store, ["plain@example.org"])
    with store.transaction() as conn:
        from mailer.store import contacts as q

        q.insert_contact(
            conn,
            email="pääkäyttäjä@example.org",
            email_ascii="pääkäyttäjä@example.org",
            email_key="pääkäyttäjä@example.org",
            name="",
            organization="",
            language="fi",
            attributes={},
            consent_source="test",
            now=now_utc(),
        )
    add_campaign(store)
    with ScriptedSink(smtputf8=False) as sink:
        point_at(workspace, sink.port)
        report = _send(workspace, store)
    assert sink.recipients() == ["plain@example.org"]
    assert report.refused == 1 and report.failed == 1
    row = store.conn.execute(
        "SELECT d.status, d.last_error FROM deliveries d JOIN contacts c ON c.id = d.contact_id"
        " WHERE c.email LIKE 'p_äk%'"
    ).fetchone()
    assert row[0] == "failed" and "SMTPUTF8" in row[1]
    with ScriptedSink(smtputf8=True) as sink:
        point_at(workspace, sink.port)
        store.conn.execute("UPDATE deliveries SET status = 'pending' WHERE status = 'failed'")
        store.conn.execute("UPDATE campaigns SET status = 'sending'")
        again = _send(workspace, store)
    assert again.sent == 1 and sink.recipients() == ["pääkäyttäjä@example.org"]


def test_send_due_leaves_a_deferred_recipient_for_its_backoff(workspace):
    from mailer.sending.due import send_due

    store = workspace.store()
    add_contacts(store, ["busy@example.org", "ok@example.org"])
    add_campaign(store, send_at=now_utc() - timedelta(minutes=1))

    def rcpt_reply(address):
        return "451 4.2.0 mailbox busy" if address == "busy@example.org" else None

    with ScriptedSink(rcpt_reply=rcpt_reply) as sink:
        point_at(workspace, sink.port)
        report = send_due(
            store,
            workspace.config(),
            content=PlainContent(),
            options=SendOptions(retry=RetryPolicy(delays=(0.01, 0.01))),
        )
    assert [item.action for item in report.items] == ["sent"]
    assert sink.recipients() == ["ok@example.org"]
    row = store.conn.execute(
        "SELECT d.status, d.attempts FROM deliveries d JOIN contacts c ON c.id = d.contact_id"
        " WHERE c.email = 'busy@example.org'"
    ).fetchone()
    assert tuple(row) == ("deferred", 1)


def test_a_recipient_deferred_then_sent_in_the_run_counts_once_as_sent(workspace):
    store = workspace.store()
    add_contacts(store, ["grey@example.org", "ok@example.org", "busy@example.org"])
    add_campaign(store)
    tries: dict[str, int] = {}

    def rcpt_reply(address):
        tries[address] = tries.get(address, 0) + 1
        if address == "busy@example.org" or (address == "grey@example.org" and tries[address] == 1):
            return "451 4.7.1 greylisted, try later"
        return None

    with ScriptedSink(rcpt_reply=rcpt_reply) as sink:
        point_at(workspace, sink.port)
        report = _send(workspace, store, options=SendOptions(retry=RetryPolicy(delays=(0.01,))))
    assert sorted(sink.recipients()) == ["grey@example.org", "ok@example.org"]
    assert (report.sent, report.deferred, report.failed) == (2, 1, 0)
    assert report.counts["deferred"] == 1 and report.counts["sent"] == 2
    assert report.status == "sending" and report.remaining == 1


def test_a_setting_that_cannot_make_a_message_fails_before_anything_is_stored(workspace):
    import dataclasses

    from mailer.sending.campaigns import create_campaign
    from mailer.sending.freeze import freeze_campaign
    from tests.newsletter_helpers import copy_campaign

    store = workspace.store()
    add_contacts(store, ["a@example.org"], lst="cluster:arctic-power")
    path = copy_campaign(workspace.path)
    good = workspace.config()
    bad_url = dataclasses.replace(
        good, web=dataclasses.replace(good.web, base_url="https://uutiset arcticsmartness.eu")
    )
    bad_reply = dataclasses.replace(
        good, sender=dataclasses.replace(good.sender, reply_to="toimitus@")
    )
    for config, key in ((bad_url, "web.base_url"), (bad_reply, "sender.reply_to")):
        with pytest.raises(InputError, match=key) as info:
            create_campaign(store, config, path)
        assert info.value.exit_code == 2
    assert store.conn.execute("SELECT count(*) FROM campaigns").fetchone()[0] == 0
    # Created with good settings, then sent with a bad one: nothing is frozen.
    create_campaign(store, good, path)
    with pytest.raises(InputError, match="web.base_url"):
        freeze_campaign(store, bad_url, "uutiskirje-2018-11", content=NewsletterContent())
    row = store.conn.execute("SELECT status, frozen_at FROM campaigns").fetchone()
    assert tuple(row) == ("scheduled", None)
    assert store.conn.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0
    assert store.conn.execute("SELECT count(*) FROM campaign_variants").fetchone()[0] == 0


def test_a_campaign_text_that_cannot_make_a_message_names_the_campaign(workspace):
    from mailer.sending.campaigns import check_messages

    class Refusing(PlainContent):
        def builder(self, config, frozen):
            built = super().builder(config, frozen)

            class B:
                def build(self, recipient, url, *, now, test=False):
                    if "bad" in built.variant["subject"]:
                        raise ValueError("subject cannot be encoded")
                    return built.build(recipient, url, now=now, test=test)

            return B()

    config = workspace.config()
    variants = {"fi": '{"subject": "ok", "body": "b"}', "en": '{"subject": "bad", "body": "b"}'}
    with pytest.raises(InputError, match=r"c\.toml: the en message cannot be built"):
        check_messages(config, variants, Refusing(), where="c.toml", now=now_utc())


# --- the real renderer and builder through the send run ----------------------------------------

NEWSLETTER = "uutiskirje-2018-11"


def _real_campaign(workspace, store, readers):
    """Import `readers` (email, name, language) with the CLI and create the test newsletter."""
    from mailer.sending.campaigns import create_campaign
    from tests.contacts_helpers import write_csv
    from tests.newsletter_helpers import copy_campaign

    rows = [["sähköposti", "nimi", "kieli", "klusterit"]]
    rows += [[email, name, lang, "Arctic Power"] for email, name, lang in readers]
    res = workspace.cli("contacts", "import", str(write_csv(workspace.path / "c.csv", rows)))
    assert res.exit_code == 0, res.stderr
    create_campaign(store, workspace.config(), copy_campaign(workspace.path))
    return {email: (name, lang) for email, name, lang in readers}


def _check_parsed_back(workspace, store, sink, readers):
    """Each reader got one message, parsed back whole, addressed and unsubscribable as them."""
    campaign_id, subjects = store.conn.execute(
        "SELECT id, json_extract(definition, '$.subject') FROM campaigns"
    ).fetchone()
    subjects = json.loads(subjects)
    domain = workspace.config().sender.address.rsplit("@", 1)[1]
    assert sorted(sink.recipients()) == sorted(readers)
    for item in sink.received:
        (rcpt,) = item.rcpt_tos
        name, lang = readers[rcpt]
        sent_id, variant = store.conn.execute(
            "SELECT d.message_id, d.language FROM deliveries d"
            " JOIN contacts c ON c.id = d.contact_id WHERE c.email = ?",
            (rcpt,),
        ).fetchone()
        assert variant == (lang if lang in subjects else "fi")  # no sv issue: the default
        assert b"\n" not in item.data.replace(b"\r\n", b"")
        msg = item.message()
        for header in ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe"):
            assert len(msg.get_all(header)) == 1, header
        assert msg["To"].addresses[0].addr_spec == rcpt
        assert msg["To"].addresses[0].display_name == name
        assert msg["Subject"] == subjects[variant]
        assert msg["Message-ID"].endswith(f"@{domain}>")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        url = msg["List-Unsubscribe"].strip("<>")
        assert url in msg.get_body(("plain",)).get_content()
        subject = verify_token([SECRET.encode()], url.rsplit("/", 1)[1])
        contact = store.conn.execute("SELECT id FROM contacts WHERE email = ?", (rcpt,))
        assert (subject.campaign_id, subject.contact_id) == (campaign_id, contact.fetchone()[0])
        assert sent_id == msg["Message-ID"]


@pytest.mark.slow
def test_the_real_newsletter_deferred_then_retried_by_send_due_reaches_everyone_once(workspace):
    from mailer.sending.due import send_due

    store = workspace.store()
    readers = _real_campaign(
        workspace,
        store,
        [
            ("aino@example.org", "Aino Äyräpää", "fi"),
            ("erik@example.org", "Erik Ström", "sv"),
            ("grey@example.org", "Greta Grey", "en"),
            ("jussi@example.org", "", "fi"),
        ],
    )
    tries: dict[str, int] = {}

    def rcpt_reply(address):
        tries[address] = tries.get(address, 0) + 1
        return "451 4.7.1 greylisted" if address == "grey@example.org" else None

    with ScriptedSink(rcpt_reply=rcpt_reply) as sink:
        point_at(workspace, sink.port, connections=2)
        first = send_campaign(store, workspace.config(), NEWSLETTER, options=FAST)
        assert (first.sent, first.deferred, first.status) == (3, 1, "sending")
        sink.handler.rcpt_reply = None  # the greylisting ends
        later = now_utc() + timedelta(minutes=6)  # past the first backoff (5 minutes)
        due = send_due(store, workspace.config(), clock=lambda: later)
    assert [(i.action, i.report.sent if i.report else 0) for i in due.items] == [("sent", 1)]
    assert due.items[0].report.status == "sent"
    assert tries["grey@example.org"] == 1
    _check_parsed_back(workspace, store, sink, readers)
    attempts = store.conn.execute(
        "SELECT d.attempts FROM deliveries d JOIN contacts c ON c.id = d.contact_id"
        " WHERE c.email = 'grey@example.org'"
    ).fetchone()[0]
    assert attempts == 2


@pytest.mark.slow
def test_the_real_newsletter_paused_by_a_failing_server_resumes_without_a_second_copy(workspace):
    store = workspace.store()
    readers = _real_campaign(
        workspace,
        store,
        [(f"lukija{i:02d}@example.org", f"Lukija {i} Ääninen", "fi") for i in range(12)],
    )
    with ScriptedSink() as sink:
        point_at(workspace, sink.port, connections=2, pause_after=3)
        accepted = 0

        async def mail(server, session, envelope, address, options):
            nonlocal accepted
            if accepted >= 5:
                return "421 4.3.2 system not accepting messages"
            accepted += 1
            envelope.mail_from = address
            return "250 OK"

        sink.handler.handle_MAIL = mail
        paused = send_campaign(store, workspace.config(), NEWSLETTER, options=FAST)
        assert paused.paused and paused.status == "paused"
        assert 0 < len(sink.received) < 12
        del sink.handler.handle_MAIL
        resumed = send_campaign(store, workspace.config(), NEWSLETTER, options=FAST)
    assert resumed.status == "sent" and not resumed.frozen_now
    assert paused.sent + resumed.sent == 12
    _check_parsed_back(workspace, store, sink, readers)
