"""`mailer campaign`, `send`, `send-due`, `stats` end to end: real CLI, real SMTP sink."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from mailer.timeutil import now_utc
from mailer.tokens import verify_token
from tests.conftest import SECRET
from tests.contacts_helpers import write_csv
from tests.newsletter_helpers import copy_campaign
from tests.sending_helpers import LimitingRelay, ScriptedSink, point_at

NAME = "uutiskirje-2018-11"


def _contacts(workspace, count: int, *, start: int = 0, lang: str = "fi") -> list[str]:
    emails = [f"henkilo{i:04d}@example.org" for i in range(start, start + count)]
    rows = [["sähköposti", "nimi", "kieli", "klusterit"]]
    rows += [[e, f"Henkilö {i}", lang, "Arctic Power"] for i, e in enumerate(emails)]
    path = write_csv(workspace.path / f"contacts-{start}.csv", rows)
    res = workspace.cli("contacts", "import", str(path))
    assert res.exit_code == 0, res.stderr
    return emails


def _campaign(workspace, send_at: str | None = None) -> Path:
    path = copy_campaign(workspace.path)
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^send_at = .*$", f"send_at = {send_at}" if send_at else "", text)
    path.write_text(text, encoding="utf-8")
    res = workspace.cli("campaign", "create", str(path))
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == NAME
    return path


def _db_rows(workspace, sql: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(workspace.path / "mailer.db")
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _states(workspace) -> dict[str, str]:
    return dict(
        _db_rows(
            workspace,
            "SELECT c.email, d.status FROM deliveries d JOIN contacts c ON c.id = d.contact_id",
        )
    )


def _popen(workspace, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mailer", *args],
        cwd=workspace.path,
        env={**os.environ, **workspace.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_send_delivers_the_newsletter_once_to_each_subscribed_contact(workspace):
    emails = _contacts(workspace, 6)
    english = _contacts(workspace, 2, start=100, lang="en")
    assert workspace.cli("contacts", "unsubscribe", emails[1]).exit_code == 0
    _campaign(workspace)
    with ScriptedSink() as sink:
        point_at(workspace, sink.port, connections=2)
        refused = workspace.cli("send", NAME)
        assert refused.exit_code == 2 and "--yes" in refused.stderr
        res = workspace.cli("send", NAME, "--yes")
    assert res.exit_code == 0, res.stderr
    assert "sent 7" in res.stderr
    copies = sink.copies()
    assert sorted(copies) == sorted(set(emails + english) - {emails[1]})
    assert set(copies.values()) == {1}
    by_rcpt = {item.rcpt_tos[0]: item.message() for item in sink.received}
    msg = by_rcpt[emails[0]]
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    for header in ("From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe"):
        assert len(msg.get_all(header)) == 1, header
    assert msg["To"].addresses[0].addr_spec == emails[0]
    assert "älykkään" in msg["Subject"]
    assert "smart specialisation" in by_rcpt[english[0]]["Subject"]
    url = msg["List-Unsubscribe"].strip("<>")
    assert url.startswith("https://uutiset.arcticsmartness.eu/u/")
    assert url in msg.get_body(("plain",)).get_content()
    assert by_rcpt[emails[2]]["List-Unsubscribe"] != msg["List-Unsubscribe"]
    stats = workspace.cli("stats", NAME, "--format", "json")
    assert json.loads(stats.stdout) == {
        "campaign": NAME,
        "status": "sent",
        "recipients": 7,
        "sent": 7,
        "failed": 0,
        "deferred": 0,
        "pending": 0,
        "unknown": 0,
        "skipped": 0,
        "unsubscribed": 0,
        "bounced": 0,
        "soft_bounced": 0,
        "complaints": 0,
        "clicks": None,  # sent without click counting
        "unique_clicks": None,
        "links": [],
    }
    shown = json.loads(workspace.cli("campaign", "show", NAME, "--format", "json").stdout)
    assert shown["status"] == "sent" and shown["recipients"] == 7


def test_campaign_create_list_show_cancel(workspace):
    _contacts(workspace, 2)
    path = copy_campaign(workspace.path)
    bad = path.with_name("bad.toml")
    bad.write_text(
        path.read_text(encoding="utf-8").replace(
            'segment = "cluster:*"', 'segment = "cluster:* and ("'
        ),
        encoding="utf-8",
    )
    res = workspace.cli("campaign", "create", str(bad))
    assert res.exit_code == 2 and res.stderr.startswith("Error:")
    assert workspace.cli("campaign", "list", "--format", "json").stdout.strip() == "[]"
    res = workspace.cli("campaign", "create", str(path))
    assert res.exit_code == 0 and res.stdout.strip() == NAME
    listed = json.loads(workspace.cli("campaign", "list", "--format", "json").stdout)
    assert [(c["name"], c["status"]) for c in listed] == [(NAME, "scheduled")]
    assert "scheduled" in workspace.cli("campaign", "show", NAME).stdout
    assert workspace.cli("campaign", "cancel", NAME, "--yes").exit_code == 0
    assert workspace.cli("campaign", "show", NAME, "--format", "json").stdout.count("cancelled")
    res = workspace.cli("send", NAME, "--yes")
    assert res.exit_code == 2 and "cancelled" in res.stderr
    assert workspace.cli("campaign", "show", "nope").exit_code == 2


def test_dry_run_and_test_send_record_nothing(workspace, tmp_path):
    emails = _contacts(workspace, 3)
    _campaign(workspace)
    out = tmp_path / "dry"
    res = workspace.cli("send", NAME, "--dry-run", "--out", str(out))
    assert res.exit_code == 0, res.stderr
    files = sorted(out.glob("*.eml"))
    assert len(files) == 3 and res.stdout.split() == [str(f) for f in files]
    assert b"List-Unsubscribe: <https://" in files[0].read_bytes()
    # Real readers' messages, but test tokens: the links name no contact (PRODUCT.md).
    for file in files:
        found = re.search(rb"List-Unsubscribe: <[^>]*/u/([^>]+)>", file.read_bytes())
        subject = verify_token([SECRET.encode()], found.group(1).decode())
        assert subject is not None and subject.contact_id == 0 and subject.campaign_id > 0
    with ScriptedSink() as sink:
        point_at(workspace, sink.port)
        res = workspace.cli("send", NAME, "--test-to", "toimitus@example.net")
    assert res.exit_code == 0, res.stderr
    assert sink.recipients() == ["toimitus@example.net"] * 2  # one per language: fi, en
    assert not any(emails[0] in r.data.decode("utf-8", "replace") for r in sink.received)
    assert _db_rows(workspace, "SELECT count(*) FROM deliveries") == [(0,)]
    assert _db_rows(workspace, "SELECT status, frozen_at FROM campaigns") == [("draft", None)]


def test_kill_9_mid_send_then_send_again_gives_nobody_two_copies(workspace):
    emails = _contacts(workspace, 80)
    _campaign(workspace)
    with ScriptedSink(hold_after=20) as sink:
        point_at(workspace, sink.port, connections=3)
        proc = _popen(workspace, "send", NAME, "--yes")
        deadline = time.monotonic() + 30
        while sink.handler.held < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # three messages in flight, waiting for the server's reply
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        sink.handler.hold_after = 0
        res = workspace.run("send", NAME, "--yes")
        assert res.returncode == 0, res.stderr
    copies = sink.copies()
    assert max(copies.values()) == 1
    states = _states(workspace)
    unknown = {e for e, s in states.items() if s == "unknown"}
    assert set(emails) - set(copies) == unknown
    assert len(unknown) == 3
    assert {e for e, s in states.items() if s == "sent"} == set(copies)
    assert "unknown" in res.stderr and sorted(unknown)[0] in res.stderr


def test_kill_9_at_a_random_moment_loses_at_most_the_messages_in_flight(workspace):
    emails = _contacts(workspace, 80)
    _campaign(workspace)
    with ScriptedSink(delay=0.02) as sink:
        point_at(workspace, sink.port, connections=3)
        proc = _popen(workspace, "send", NAME, "--yes")
        deadline = time.monotonic() + 30
        while len(sink.received) < 15 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        res = workspace.run("send", NAME, "--yes")
        assert res.returncode == 0, res.stderr
    copies = sink.copies()
    assert max(copies.values()) == 1
    states = _states(workspace)
    unknown = {e for e, s in states.items() if s == "unknown"}
    # The killed run may have had a reply it never wrote down: such a recipient is
    # `unknown` too (RFC 1047), never resent; everyone without a message is among them.
    assert set(emails) - set(copies) <= unknown
    assert len(unknown) <= 3
    assert {e for e, s in states.items() if s == "sent"} <= set(copies)


def test_two_send_due_runs_at_once_send_each_message_once(workspace):
    import threading

    emails = _contacts(workspace, 30)
    soon = (now_utc() - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _campaign(workspace, send_at=soon)
    gate = threading.Event()
    with ScriptedSink(gate=gate) as sink:
        point_at(workspace, sink.port, connections=2)
        first = _popen(workspace, "send-due")
        try:
            deadline = time.monotonic() + 30
            while sink.handler.waiting < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert sink.handler.waiting >= 1  # the first run is mid-send, holding the campaign
            second = workspace.run("send-due")
        finally:
            gate.set()
        out, errors = first.communicate(timeout=60)
    assert second.returncode == 0, second.stderr
    assert f"{NAME}: skipped" in second.stderr and "another run" in second.stderr
    assert first.returncode == 0, errors
    assert sorted(sink.recipients()) == sorted(emails)  # each recipient exactly once
    assert set(_states(workspace).values()) == {"sent"}


def test_send_due_pauses_a_late_campaign_once_and_send_sends_it(workspace):
    _contacts(workspace, 2)
    a_minute_ago = (now_utc() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _campaign(workspace, send_at=a_minute_ago)
    workspace.set_config("defaults", "max_late_hours", "0.005")  # 18 s: it is late now
    with ScriptedSink() as sink:
        point_at(workspace, sink.port)
        res = workspace.run("send-due")
        assert res.returncode == 0 and "late" in res.stderr, res.stderr
        assert sink.recipients() == []
        shown = json.loads(workspace.cli("campaign", "show", NAME, "--format", "json").stdout)
        assert shown["status"] == "paused" and shown["reason"].startswith("late: send_at")
        again = workspace.run("send-due")  # listed as paused, not reported as late again
        assert again.returncode == 0 and "late:" in again.stderr and "not sent" not in again.stderr
        res = workspace.run("send", NAME, "--yes")
    assert res.returncode == 0, res.stderr
    assert len(sink.recipients()) == 2


def test_an_unreachable_server_exits_1_and_marks_nobody(workspace):
    from tests.smtp_sink import free_port

    _contacts(workspace, 2)
    _campaign(workspace)
    point_at(workspace, free_port())
    res = workspace.cli("send", NAME, "--yes")
    assert res.exit_code == 1 and "Error:" in res.stderr and "127.0.0.1:" in res.stderr
    assert _db_rows(workspace, "SELECT count(*) FROM deliveries") == [(0,)]


def test_a_held_campaign_fails_an_explicit_send_and_send_due_reports_it(workspace):
    import socket

    _contacts(workspace, 2)
    _campaign(workspace, send_at=(now_utc() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    holder = f"{socket.gethostname()}:{os.getppid()}:other"
    until = (now_utc() + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    conn = sqlite3.connect(workspace.path / "mailer.db")
    conn.execute("UPDATE campaigns SET lease_owner = ?, lease_until = ?", (holder, until))
    conn.commit()
    conn.close()
    with ScriptedSink() as sink:
        point_at(workspace, sink.port)
        res = workspace.cli("send", NAME, "--yes")
        assert res.exit_code == 1 and "another run" in res.stderr
        res = workspace.cli("send-due")
        assert res.exit_code == 0 and "another run" in res.stderr
    assert sink.recipients() == []


def test_sigterm_finishes_the_messages_in_flight_and_send_continues(workspace):
    emails = _contacts(workspace, 60)
    _campaign(workspace)
    with ScriptedSink(delay=0.05) as sink:
        point_at(workspace, sink.port, connections=3)
        proc = _popen(workspace, "send", NAME, "--yes")
        deadline = time.monotonic() + 30
        while len(sink.received) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 1 and "mailer send" in stderr
        states = _states(workspace)
        assert "sending" not in states.values() and "unknown" not in states.values()
        assert {e for e, s in states.items() if s == "sent"} == set(sink.copies())
        res = workspace.run("send", NAME, "--yes")
        assert res.returncode == 0, res.stderr
    assert sorted(sink.recipients()) == sorted(emails)


def test_a_campaign_larger_than_todays_quota_stops_cleanly_and_waits(workspace):
    _contacts(workspace, 5)
    _campaign(workspace)
    with ScriptedSink() as sink:
        point_at(workspace, sink.port, per_day=3)
        res = workspace.cli("send", NAME, "--yes")
        assert res.exit_code == 0, res.stderr
        assert "quota" in res.stderr and "send-due" in res.stderr
        stats = json.loads(workspace.cli("stats", NAME, "--format", "json").stdout)
        assert (stats["status"], stats["sent"], stats["pending"]) == ("sending", 3, 2)
        res = workspace.cli("send-due")  # today's quota is spent in the database
        assert res.exit_code == 0 and "quota" in res.stderr
    assert len(sink.recipients()) == 3
    assert json.loads(workspace.cli("stats", NAME, "--format", "json").stdout)["pending"] == 2


def test_the_relays_own_limit_puts_the_recipient_back_and_stops_the_run(workspace):
    # Microsoft 365 answers "5.4.5 daily quota exceeded" (or a 421 naming a rate limit)
    # about our own sending, not about the recipient: that recipient goes back to pending
    # with no attempt counted, the run stops with exit 0, and send-due finishes later.
    emails = _contacts(workspace, 5)
    _campaign(workspace)
    limited = {"answer": "550 5.4.5 Daily user sending quota exceeded"}

    def rcpt_reply(address: str) -> str | None:
        return limited["answer"] if address == emails[2] else None

    with ScriptedSink(rcpt_reply=rcpt_reply) as sink:
        point_at(workspace, sink.port, connections=1, pause_after=3)
        res = workspace.cli("send", NAME, "--yes")
        assert res.exit_code == 0, res.stderr
        assert "sending limit is reached" in res.stderr and "5.4.5" in res.stderr
        assert "send-due" in res.stderr
        assert _states(workspace) == {
            **{e: "sent" for e in emails[:2]},
            **{e: "pending" for e in emails[2:]},
        }
        attempts = _db_rows(
            workspace,
            "SELECT d.attempts, d.first_attempt_at FROM deliveries d"
            " JOIN contacts c ON c.id = d.contact_id WHERE c.email = ?",
            (emails[2],),
        )
        assert attempts == [(0, None)]
        stats = json.loads(workspace.cli("stats", NAME, "--format", "json").stdout)
        assert (stats["status"], stats["failed"], stats["deferred"]) == ("sending", 0, 0)
        shown = workspace.cli("contacts", "show", emails[2], "--format", "json").stdout
        assert json.loads(shown)["status"] == "subscribed"

        limited["answer"] = "421 4.7.0 Message rate limit exceeded, try again later"
        res = workspace.cli("send-due")
        assert res.exit_code == 0 and "4.7.0" in res.stderr
        assert _states(workspace)[emails[2]] == "pending"

        # Three runs in a row stopped by the relay (pause_after = 3): the campaign pauses
        # instead of asking the relay every five minutes forever.
        res = workspace.cli("send-due")
        assert res.exit_code == 1 and "3 runs in a row" in res.stderr, res.stderr
        stats = json.loads(workspace.cli("stats", NAME, "--format", "json").stdout)
        assert (stats["status"], stats["pending"], stats["failed"]) == ("paused", 3, 0)
        res = workspace.cli("send-due")
        assert res.exit_code == 0 and _states(workspace)[emails[2]] == "pending"  # left paused

        limited["answer"] = None
        res = workspace.cli("send", NAME, "--yes")
        assert res.exit_code == 0, res.stderr
    assert sorted(sink.recipients()) == sorted(emails)  # each once
    assert set(_states(workspace).values()) == {"sent"}


def test_quota_answers_on_several_connections_stop_the_run_without_pausing_it(workspace):
    # Four connections may all hear "quota exceeded" before the run stops: those answers
    # are not server failures (pause_after = 1 would pause at the first); only runs in a
    # row that the relay stops count toward a pause.
    emails = _contacts(workspace, 12)
    _campaign(workspace)
    with ScriptedSink(rcpt_reply=lambda a: "550 5.7.233 tenant sending limit exceeded") as sink:
        point_at(workspace, sink.port, connections=4, pause_after=1)
        res = workspace.cli("send", NAME, "--yes")
        assert res.exit_code == 0, res.stderr
        assert "5.7.233" in res.stderr
        assert set(_states(workspace).values()) == {"pending"}
        stats = json.loads(workspace.cli("stats", NAME, "--format", "json").stdout)
        assert stats["status"] == "sending"
        res = workspace.cli("send-due")  # the second run in a row: now it pauses
        assert res.exit_code == 1 and "2 runs in a row" in res.stderr
        assert json.loads(workspace.cli("stats", NAME, "--format", "json").stdout)["status"] == (
            "paused"
        )
    assert sink.recipients() == [] and len(emails) == 12


def test_a_relay_that_refuses_new_connections_for_our_rate_stops_the_run(workspace):
    # Mid-send the relay starts refusing connections with a 421 naming a rate limit: that
    # is our own limit, not a broken server: the run stops (exit 0), nobody is marked.
    emails = _contacts(workspace, 6)
    _campaign(workspace)
    refusal = "421 4.7.0 Too many connections, rate limit exceeded; try again later"
    with LimitingRelay(allow=1, refusal=refusal) as relay:
        point_at(workspace, relay.port, connections=1, messages_per_connection=2, pause_after=2)
        res = workspace.cli("send", NAME, "--yes")
        assert res.exit_code == 0, res.stderr
        assert "sending limit is reached" in res.stderr and "4.7.0" in res.stderr
        states = _states(workspace)
        assert sorted(e for e, s in states.items() if s == "sent") == sorted(relay.recipients)
        assert len(relay.recipients) == 2
        assert {s for e, s in states.items() if e not in relay.recipients} == {"pending"}
        stats = json.loads(workspace.cli("stats", NAME, "--format", "json").stdout)
        assert (stats["status"], stats["failed"], stats["deferred"]) == ("sending", 0, 0)
        # The next run is refused at its first connection: nothing marked, and the second
        # run in a row the relay stops pauses the campaign (pause_after = 2).
        res = workspace.cli("send-due")
        assert res.exit_code == 1 and "2 runs in a row" in res.stderr, res.stderr
        assert "nothing sent" in res.stderr and len(relay.recipients) == 2
        stats = json.loads(workspace.cli("stats", NAME, "--format", "json").stdout)
        assert (stats["status"], stats["pending"], stats["failed"]) == ("paused", 4, 0)
    assert len(emails) == 6


def test_a_relay_that_refuses_the_first_connection_for_our_rate_changes_nothing(workspace):
    _contacts(workspace, 2)
    _campaign(workspace)
    with LimitingRelay(allow=0, refusal="421 4.7.0 Too many connections from your IP") as relay:
        point_at(workspace, relay.port)
        res = workspace.cli("send", NAME, "--yes")
    assert res.exit_code == 0, res.stderr
    assert "sending limit is reached" in res.stderr and "nothing sent" in res.stderr
    assert _db_rows(workspace, "SELECT status, frozen_at FROM campaigns") == [("draft", None)]
    assert _db_rows(workspace, "SELECT count(*) FROM deliveries") == [(0,)]


def test_send_due_names_a_paused_campaign_and_leaves_it_to_send(workspace):
    _contacts(workspace, 2)
    _campaign(workspace)
    with ScriptedSink() as sink:
        point_at(workspace, sink.port)
        conn = sqlite3.connect(workspace.path / "mailer.db")
        conn.execute(
            "UPDATE campaigns SET status = 'paused',"
            " status_reason = '10 consecutive connection failures'"
        )
        conn.commit()
        conn.close()
        res = workspace.cli("send-due")
        assert res.exit_code == 0, res.stderr
        assert f"{NAME}: paused (10 consecutive connection failures)" in res.stderr
        assert f"mailer send {NAME}" in res.stderr and "Nothing due" not in res.stderr
        assert sink.recipients() == []
        res = workspace.cli("send", NAME, "--yes")
    assert res.exit_code == 0, res.stderr
    assert len(sink.recipients()) == 2


def test_a_campaign_name_that_walks_out_of_the_folder_is_refused(workspace):
    path = copy_campaign(workspace.path)
    text = path.read_text(encoding="utf-8").replace(f'name = "{NAME}"', 'name = "../../etc"')
    path.write_text(text, encoding="utf-8")
    res = workspace.cli("campaign", "create", str(path))
    assert res.exit_code == 2 and "name must" in res.stderr and str(path) in res.stderr
    res = workspace.cli("send", "../../etc", "--dry-run")
    assert res.exit_code == 2
    assert not (workspace.path / "dry-run").exists()


def test_dry_run_out_pointing_at_a_file_is_one_line_error(workspace):
    _contacts(workspace, 1)
    _campaign(workspace)
    taken = workspace.path / "samples.eml"
    taken.write_text("mine", encoding="utf-8")
    res = workspace.cli("send", NAME, "--dry-run", "--out", str(taken))
    assert res.exit_code == 2, res.stderr
    assert res.stderr.strip() == f"Error: --out {taken} is a file, not a folder"
    assert taken.read_text(encoding="utf-8") == "mine"


def test_a_campaign_without_the_contacts_language_falls_back_alike_in_dry_run_and_send(
    workspace, tmp_path
):
    from tests.newsletter_helpers import write_campaign, write_item

    emails = _contacts(workspace, 2)  # Finnish readers; the issue has only sv and se items
    folder = workspace.path / "nordic"
    for lang in ("se", "sv"):
        write_item(
            folder,
            f"news/item.{lang}.md",
            f'title = "Nyhet {lang}"\ndate = 2018-11-06\nlang = "{lang}"',
        )
    path = write_campaign(
        folder,
        'name = "nordic-1"\nsubject = { sv = "Nyhetsbrev", se = "Ođasreive" }\n'
        'segment = "cluster:*"\nitems = ["news/item.se.md", "news/item.sv.md"]\n',
    )
    assert workspace.cli("campaign", "create", str(path)).exit_code == 0
    res = workspace.cli("send", "nordic-1", "--dry-run", "--out", str(tmp_path / "dry"))
    assert res.exit_code == 0, res.stderr
    files = sorted((tmp_path / "dry").glob("*.eml"))
    assert len(files) == 2 and all("-sv-" in f.name for f in files)
    with ScriptedSink() as sink:
        point_at(workspace, sink.port)
        res = workspace.cli("send", "nordic-1", "--yes")
    assert res.exit_code == 0, res.stderr
    assert sorted(sink.recipients()) == sorted(emails)
    assert {item.message()["Subject"] for item in sink.received} == {"Nyhetsbrev"}
    assert {lang for (lang,) in _db_rows(workspace, "SELECT language FROM deliveries")} == {"sv"}


def test_campaign_create_errors_name_the_campaign_file(workspace):
    from tests.newsletter_helpers import copy_campaign

    path = copy_campaign(workspace.path)
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace('segment = "cluster:*"', 'segment = "kunta:kemi"'),
        encoding="utf-8",
    )
    res = workspace.cli("campaign", "create", str(path))
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    assert f"{path}: segment" in res.stderr and "kunta" in res.stderr
    path.write_text(text.replace("send_at", 'template = "nope"\nsend_at'), encoding="utf-8")
    res = workspace.cli("campaign", "create", str(path))
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    assert str(path) in res.stderr and "nope.html not found" in res.stderr
    assert workspace.cli("campaign", "list", "--format", "json").stdout.strip() == "[]"
