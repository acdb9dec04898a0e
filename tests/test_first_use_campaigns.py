"""What a hurried officer trips over with campaigns (issue 10), through the real CLI and a
real SMTP sink: empty audiences, the stored copy, send_at, test sends, drafts' audiences,
the greeting, TOML date-times."""

from __future__ import annotations

import email
import email.policy
import json
import re
import sqlite3
from datetime import timedelta

from mailer.timeutil import now_utc
from tests.contacts_helpers import assert_one_line_error, write_csv
from tests.newsletter_helpers import copy_campaign
from tests.sending_helpers import ScriptedSink, point_at

NAME = "uutiskirje-2018-11"


def _people(workspace, *rows: list[str]) -> None:
    header = ["sähköposti", "etunimi", "sukunimi", "kieli", "klusterit"]
    path = write_csv(workspace.path / "people.csv", [header, *rows])
    res = workspace.cli("contacts", "import", str(path))
    assert res.exit_code == 0, res.stderr


def _campaign_file(workspace, *, segment: str = "cluster:*", send_at: str | None = None):
    path = copy_campaign(workspace.path)
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^segment = .*$", f'segment = "{segment}"', text)
    text = re.sub(r"(?m)^send_at = .*$", f"send_at = {send_at}" if send_at else "", text)
    path.write_text(text, encoding="utf-8")
    return path


def _status(workspace) -> tuple:
    with sqlite3.connect(workspace.path / "mailer.db") as conn:
        return conn.execute(
            "SELECT status, status_reason, frozen_at, (SELECT count(*) FROM deliveries)"
            " FROM campaigns WHERE name = ?",
            (NAME,),
        ).fetchone()


def _messages(sink) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(r.data, policy=email.policy.default)  # type: ignore[misc]
        for r in sink.received
    ]


def _text(message) -> str:
    return message.get_body(("plain",)).get_content()


# --- 1. an empty audience is refused, never marked sent --------------------------------------


def test_a_typo_in_the_segment_is_refused_by_campaign_create(workspace):
    _people(workspace, ["a@example.org", "Aino", "Aikio", "fi", "Arctic Power"])
    path = _campaign_file(workspace, segment="cluster:arctic-powr")
    res = workspace.cli("campaign", "create", str(path))
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "segment", "did you mean cluster:arctic-power?")
    assert workspace.cli("campaign", "show", NAME).exit_code == 2  # nothing stored


def test_send_refuses_an_empty_audience_and_leaves_the_campaign_unsent(workspace):
    _people(workspace, ["a@example.org", "Aino", "Aikio", "fi", "Arctic Power"])
    workspace.cli("lists", "add", "cluster:arctic-design")  # exists, nobody in it
    path = _campaign_file(workspace, segment="cluster:arctic-design")
    res = workspace.cli("campaign", "create", str(path))
    assert res.exit_code == 0, res.stderr
    assert "matches no subscribed contact" in res.stderr
    with ScriptedSink() as sink:
        point_at(workspace, sink.port)
        res = workspace.cli("send", NAME, "--yes")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "no recipients", "nothing sent")
    assert sink.recipients() == []
    assert _status(workspace) == ("draft", None, None, 0)


def test_send_due_pauses_a_campaign_that_cannot_start_and_reports_it_once(workspace):
    _people(workspace, ["a@example.org", "Aino", "Aikio", "fi", "Arctic Power"])
    soon = (now_utc() + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = _campaign_file(workspace, segment="cluster:arctic-power", send_at=soon)
    assert workspace.cli("campaign", "create", str(path)).exit_code == 0
    workspace.cli("contacts", "unsubscribe", "a@example.org")  # the audience empties
    with ScriptedSink() as sink:
        point_at(workspace, sink.port)
        import time

        time.sleep(2.1)
        res = workspace.run("send-due")
        assert res.returncode == 1, res.stderr
        assert "cannot start, paused" in res.stderr and "no recipients" in res.stderr
        status, reason, frozen, deliveries = _status(workspace)
        assert (status, frozen, deliveries) == ("paused", None, 0) and "no recipients" in reason
        again = workspace.run("send-due")  # listed as paused, not an error again
        assert again.returncode == 0, again.stderr
        assert "cannot start" not in again.stderr and "paused" in again.stderr
    assert sink.recipients() == []
    listed = json.loads(workspace.cli("campaign", "list", "--format", "json").stdout)
    assert listed[0]["reason"] == reason and listed[0]["recipients"] == 0
    # Fixed and created again: it is a scheduled campaign once more.
    workspace.cli("contacts", "resubscribe", "a@example.org")
    assert workspace.cli("campaign", "create", str(path)).exit_code == 0
    assert _status(workspace)[:2] == ("scheduled", None)


# --- 2. what was previewed is what is sent -------------------------------------------------


def test_edits_after_create_are_named_and_never_sent_silently(workspace, tmp_path):
    _people(workspace, ["a@example.org", "Aino", "Aikio", "fi", "Arctic Power"])
    workspace.cli("segments", "save", "ap", "cluster:arctic-power")
    path = _campaign_file(workspace, segment="@ap")
    assert workspace.cli("campaign", "create", str(path)).exit_code == 0
    item = path.parent / "news" / "strategia.fi.md"
    item.write_text(
        item.read_text(encoding="utf-8").replace("painopisteet 2018–2022", "MUOKATTU OTSIKKO"),
        encoding="utf-8",
    )
    template = workspace.path / "templates" / "newsletter.txt"
    template.write_text(template.read_text(encoding="utf-8") + "UUSI POHJA\n", encoding="utf-8")
    workspace.cli("segments", "save", "ap", "all")  # the saved segment changes meaning

    shown = json.loads(workspace.cli("campaign", "show", NAME, "--format", "json").stdout)
    assert shown["segment"] == "cluster:arctic-power"  # expanded when created
    assert sorted(shown["changed_files"]) == sorted([str(item), str(template)])
    res = workspace.cli("campaign", "show", NAME)
    notes = [line for line in res.stderr.splitlines() if "changed since" in line]
    assert len(notes) == 1 and "strategia.fi.md" in notes[0] and "newsletter.txt" in notes[0]

    stored = tmp_path / "stored"
    res = workspace.cli("render", NAME, "--out", str(stored))
    assert res.exit_code == 0, res.stderr
    assert "strategia.fi.md" in res.stderr
    assert "MUOKATTU" not in (stored / "index.fi.html").read_text(encoding="utf-8")
    assert "UUSI POHJA" not in (stored / "index.fi.txt").read_text(encoding="utf-8")
    current = tmp_path / "current"
    assert workspace.cli("render", str(path), "--out", str(current)).exit_code == 0
    assert "MUOKATTU" in (current / "index.fi.html").read_text(encoding="utf-8")

    with ScriptedSink() as sink:
        point_at(workspace, sink.port)
        res = workspace.cli("send", NAME, "--test-to", "toimitus@example.net", "--lang", "fi")
        assert res.exit_code == 0 and "strategia.fi.md" in res.stderr
        res = workspace.cli("send", NAME, "--yes")
        assert res.exit_code == 0, res.stderr
        assert "strategia.fi.md" in res.stderr
    assert len(sink.received) == 2
    for message in _messages(sink):
        assert "MUOKATTU" not in _text(message) and "UUSI POHJA" not in _text(message)
        assert "painopisteet 2018–2022" in _text(message)


# --- 3. send_at in the past; a sent campaign -----------------------------------------------


def test_create_refuses_a_send_at_far_in_the_past(workspace):
    _people(workspace, ["a@example.org", "Aino", "Aikio", "fi", "Arctic Power"])
    path = _campaign_file(workspace, send_at="2026-11-27T09:00:00")
    res = workspace.cli("campaign", "create", str(path))
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "send_at 2026-11-27 09:00", "max_late_hours")


def test_a_sent_campaign_says_so_before_any_question(workspace):
    _people(workspace, ["a@example.org", "Aino", "Aikio", "fi", "Arctic Power"])
    assert workspace.cli("campaign", "create", str(_campaign_file(workspace))).exit_code == 0
    with ScriptedSink() as sink:
        point_at(workspace, sink.port)
        assert workspace.cli("send", NAME, "--yes").exit_code == 0
        res = workspace.cli("send", NAME)  # no --yes, no terminal: no question needed
    assert res.exit_code == 0, res.stderr
    assert "already sent" in res.stderr and "recipient(s)?" not in res.stderr
    assert len(sink.received) == 1


# --- 4. test sends ---------------------------------------------------------------------------


def test_test_to_sends_each_language_to_the_tester_alone_for_a_made_up_reader(workspace):
    _people(
        workspace,
        ["riikka@example.org", "Riikka", "Heikkilä", "fi", "Arctic Power"],
        ["john@example.org", "John", "Smith", "en", "Arctic Power"],
    )
    assert workspace.cli("campaign", "create", str(_campaign_file(workspace))).exit_code == 0
    with ScriptedSink() as sink:
        point_at(workspace, sink.port)
        res = workspace.cli("send", NAME, "--test-to", "toimitus@example.net")
        assert res.exit_code == 0, res.stderr
        assert sink.recipients() == ["toimitus@example.net"] * 2
        messages = _messages(sink)
        for message in messages:
            assert str(message["To"]) == "toimitus@example.net"  # no name beside it
            assert message["X-Mailer-Test"] == "yes"
            raw = message.as_string()
            for real in ("Riikka", "Heikkilä", "riikka@example.org", "John", "john@example"):
                assert real not in raw
        greetings = sorted(re.findall(r"(?:Hei|Hello) \w+,", _text(m))[0] for m in messages)
        assert greetings == ["Hei Maija,", "Hello Alex,"]
        sink.received.clear()
        res = workspace.cli("send", NAME, "--test-to", "toimitus@example.net", "--lang", "en")
        assert res.exit_code == 0 and len(sink.received) == 1
        assert "Hello Alex," in _text(_messages(sink)[0])
        res = workspace.cli("send", NAME, "--test-to", "toimitus@example.net", "--lang", "sv")
        assert res.exit_code == 2 and "no sv variant" in res.stderr
    assert _status(workspace) == ("draft", None, None, 0)


# --- 12. drafts show their audience; 13. greeting by first name ---------------------------


def test_drafts_show_their_current_audience_and_the_greeting_uses_the_first_name(workspace):
    _people(
        workspace,
        ["riikka@example.org", "Riikka", "Heikkilä", "fi", "Arctic Power"],
        ["b@example.org", "", "", "fi", "Arctic Power"],
    )
    assert workspace.cli("campaign", "create", str(_campaign_file(workspace))).exit_code == 0
    listed = json.loads(workspace.cli("campaign", "list", "--format", "json").stdout)
    assert listed[0]["recipients"] == 2
    workspace.cli("contacts", "unsubscribe", "b@example.org")
    shown = json.loads(workspace.cli("campaign", "show", NAME, "--format", "json").stdout)
    assert shown["recipients"] == 1
    table = workspace.cli("campaign", "list").stdout.splitlines()
    assert table[0].split()[-1] == "reason"
    with ScriptedSink() as sink:
        point_at(workspace, sink.port)
        assert workspace.cli("send", NAME, "--yes").exit_code == 0
    (message,) = _messages(sink)
    assert "Hei Riikka," in _text(message) and "Hei Riikka Heikkilä" not in _text(message)
    assert "Riikka Heikkilä" in str(message["To"])


# --- 14. a TOML date-time -----------------------------------------------------------------


def test_a_date_time_written_like_a_person_writes_it_gets_a_hint(workspace):
    path = _campaign_file(workspace)
    path.write_text(path.read_text(encoding="utf-8") + "send_at = 2027-02-01 09:00\n", "utf-8")
    res = workspace.cli("campaign", "create", str(path))
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "malformed TOML", "send_at = 2027-02-01T09:00:00")


# --- on a terminal: questions before what cannot be undone ---------------------------------


def _on_terminal(workspace, *args: str, answer: str) -> tuple[int, str]:
    """Run `mailer ARGS` on a pseudo-terminal (stdin, stdout, stderr); answer its question."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer", *args],
        stdin=child,
        stdout=child,
        stderr=child,
        cwd=workspace.path,
        env={**os.environ, **workspace.env()},
    )
    os.close(child)
    seen = b""
    answered = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"?" in seen:
            os.write(main, answer.encode() + b"\n")
            answered = True
        if not ready and proc.poll() is not None:
            break
    proc.wait(timeout=10)
    os.close(main)
    return proc.returncode, seen.decode("utf-8", "replace")


def test_on_a_terminal_send_asks_about_the_stored_version_and_forget_asks_first(workspace):
    _people(workspace, ["a@example.org", "Aino", "Aikio", "fi", "Arctic Power"])
    path = _campaign_file(workspace)
    assert workspace.cli("campaign", "create", str(path)).exit_code == 0
    path.write_text(path.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    code, screen = _on_terminal(workspace, "send", NAME, answer="n")
    assert code == 0 and "campaign.toml" in screen, screen
    assert f"Send the stored version of campaign {NAME} to 1 recipient(s)?" in screen
    assert "Nothing sent." in screen and _status(workspace)[0] == "draft"
    code, screen = _on_terminal(workspace, "contacts", "forget", "a@example.org", answer="n")
    assert code == 0 and "Erase a@example.org for good" in screen, screen
    assert workspace.cli("contacts", "show", "a@example.org").exit_code == 0  # still there
    code, screen = _on_terminal(workspace, "contacts", "forget", "a@example.org", answer="y")
    assert code == 0 and "Forgot a@example.org" in screen, screen
    assert workspace.cli("contacts", "show", "a@example.org").exit_code == 2
