"""The corpus of returned mail: each message read right, and `bounces import` doing what it says.

Every message returns one that mailer really sent (tests/bounces_helpers.py fills the
templates from it), so the tokens, Message-IDs and List-Unsubscribe headers are real.
"""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer.bounces.parse import parse
from tests.bounces_helpers import (
    EXPECTED,
    Sent,
    corpus_email,
    corpus_names,
    fill,
    send_campaign,
    with_bounces,
    write_maildir,
)

FAKE = Sent(
    "aino.aikio@example.org",
    "bounces+abcdefghijklmnopqrstuvwx@arcticsmartness.eu",
    b"From: Arctic Smartness <uutiset@arcticsmartness.eu>\r\nTo: aino.aikio@example.org\r\n"
    b"Message-ID: <20241112.0123abcd@arcticsmartness.eu>\r\nSubject: Uutiset\r\n\r\nHei!\r\n",
)


@pytest.mark.parametrize("name", corpus_names())
def test_each_message_of_the_corpus_is_read_as_what_it_is(name):
    expected = EXPECTED[name]
    returned = parse(fill(name, FAKE))
    assert returned.kind == expected["kind"], returned.reason
    if returned.kind in ("bounce", "complaint"):
        assert returned.failures
        assert returned.failures[0].status == expected.get("status")
        assert "\n" not in returned.failures[0].diagnostic
        assert "aino.aikio@" not in returned.failures[0].diagnostic  # masked: a***@
    else:
        assert returned.failures == ()


def test_the_returned_message_is_found_by_token_headers_or_message_id():
    m365 = parse(fill("m365-hard", FAKE))  # no token: the returned headers name it
    assert m365.tokens == () and "<20241112.0123abcd@arcticsmartness.eu>" in m365.message_ids
    gmail = parse(fill("gmail-hard", FAKE))
    assert gmail.tokens == ("abcdefghijklmnopqrstuvwx",)
    qmail = parse(fill("qmail-hard", FAKE))  # the copy quoted in the text
    assert "<20241112.0123abcd@arcticsmartness.eu>" in qmail.message_ids


# Our own message, quoted in a text bounce, holding what looks like a server's answer: a
# List-Unsubscribe token with "450-" in it, a boundary ending in "421", a date like 4.4.1.
LOOKS_LIKE_CODES = Sent(
    FAKE.email,
    FAKE.return_path,
    b"From: Arctic Smartness <uutiset@arcticsmartness.eu>\r\nTo: aino.aikio@example.org\r\n"
    b"Message-ID: <20241112.0123abcd@arcticsmartness.eu>\r\nSubject: Uutiset\r\n"
    b"List-Unsubscribe: <https://arcticsmartness.eu/u/abcdefghijklmno450-qrstuvwxyz0123>\r\n"
    b"Content-Type: multipart/alternative; boundary=abc421\r\n\r\n"
    b"--abc421\r\nContent-Type: text/plain\r\n\r\nTapaaminen 4.4.1 klo 450 - 550\r\n--abc421--\r\n",
)


@pytest.mark.parametrize("name", ["exim-text", "qmail-hard"])
def test_codes_in_our_quoted_message_are_not_read_as_the_servers_answer(name):
    returned = parse(fill(name, LOOKS_LIKE_CODES))
    assert returned.kind == "bounce"
    assert returned.failures[0].status == EXPECTED[name].get("status")
    assert returned.failures[0].verdict.value == "mailbox", returned.failures[0]


_TEXT_BOUNCE = (
    b"Return-Path: <>\r\nFrom: postmaster@mail.example.fi\r\nTo: "
    + FAKE.return_path.encode()
    + b"\r\nX-Failed-Recipients: aino.aikio@example.org\r\nSubject: Undeliverable\r\n"
)
_COPY = (
    b"Received: from mail.arcticsmartness.eu\r\nMessage-ID: <20241112.0123abcd@arcticsmartness.eu>"
    b"\r\nFrom: uutiset@arcticsmartness.eu\r\nSubject: Uutiset\r\n\r\nHei! 421-4.4.1\r\n"
)


@pytest.mark.parametrize(
    "body",
    [
        # a summary of our message, unindented, before the server's answer
        b"\r\nYour message\r\n\r\nTo: aino.aikio@example.org\r\nSubject: Uutiset\r\n"
        b"Sent: Tue, 12 Nov 2024 10:00\r\n\r\ndid not reach the following recipient(s):\r\n\r\n"
        b"aino.aikio@example.org\r\n    <mx.example.fi #5.1.1 smtp;550 5.1.1 User unknown>\r\n\r\n"
        + LOOKS_LIKE_CODES.data,
        # a summary naming our Message-ID, unindented, before the server's answer
        b"\r\nYour message with these header fields:\r\n\r\n"
        b"Message-ID: <20241112.0123abcd@arcticsmartness.eu>\r\nTo: aino.aikio@example.org\r\n\r\n"
        b"could not be delivered:\r\n  aino.aikio@example.org\r\n"
        b"  Diagnostic code: smtp;550 5.1.1 User unknown\r\n\r\n" + _COPY,
        # the answer as a header-like line, the copy right after it
        b"\r\nDelivery to aino.aikio@example.org failed.\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n" + _COPY,
        # returned headers in a part before the report's text
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="o"\r\n\r\n'
        b"--o\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        + _COPY.split(b"\r\n\r\n")[0]
        + b"\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\n"
        b"aino.aikio@example.org: 550 5.1.1 User unknown\r\n--o--\r\n",
    ],
    ids=["summary", "summary-with-message-id", "answer-then-copy", "headers-part-first"],
)
def test_the_servers_answer_is_found_wherever_the_report_puts_our_headers(body):
    returned = parse(_TEXT_BOUNCE + body)
    assert returned.kind == "bounce"
    assert (returned.failures[0].status, returned.failures[0].verdict.value) == ("5.1.1", "mailbox")
    assert "<20241112.0123abcd@arcticsmartness.eu>" in returned.message_ids


def test_a_global_delivery_status_notification_is_read_rfc_6533():
    raw = (
        b"Return-Path: <>\r\nFrom: Mail Delivery Subsystem <mailer-daemon@mx.example.fi>\r\n"
        b"To: " + FAKE.return_path.encode() + b"\r\nSubject: Undelivered Mail\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;"
        b' boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
        b"Delivery has failed.\r\n\r\n--b1\r\nContent-Type: message/global-delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.fi\r\n\r\nFinal-Recipient: rfc822; aino.aikio@example.org"
        b"\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 User unknown"
        b"\r\n\r\n--b1\r\nContent-Type: message/global-headers\r\n\r\n"
        b"Message-ID: <20241112.0123abcd@arcticsmartness.eu>\r\nFrom: uutiset@arcticsmartness.eu"
        b"\r\n\r\n--b1--\r\n"
    )
    returned = parse(raw)
    assert returned.kind == "bounce"
    assert returned.failures[0].recipient == "aino.aikio@example.org"
    assert (returned.failures[0].status, returned.failures[0].verdict.value) == ("5.1.1", "mailbox")
    assert returned.message_ids == ("<20241112.0123abcd@arcticsmartness.eu>",)


def test_the_text_of_our_attached_message_is_not_read_as_the_report():
    raw = (
        _TEXT_BOUNCE
        + b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        b"--outer\r\nContent-Type: text/plain\r\n\r\n"
        b"The following address failed:\r\n\r\n  aino.aikio@example.org\r\n"
        b"    Unrouteable address\r\n\r\n"
        b"--outer\r\nContent-Type: message/rfc822\r\n\r\n"
        + LOOKS_LIKE_CODES.data
        + b"\r\n--outer--\r\n"
    )
    returned = parse(raw)
    assert returned.kind == "bounce"
    assert (returned.failures[0].status, returned.failures[0].verdict.value) == (None, "mailbox")
    assert returned.message_ids == ("<20241112.0123abcd@arcticsmartness.eu>",)


@pytest.fixture
def sent(workspace):
    with_bounces(workspace)
    emails = [corpus_email(name) for name in corpus_names()]
    return send_campaign(workspace, emails)


def _rows(workspace, sql, params=()):
    conn = sqlite3.connect(workspace.path / "mailer.db")
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _status(workspace, email):
    return _rows(workspace, "SELECT status FROM contacts WHERE email = ?", (email,))[0][0]


@pytest.mark.slow
def test_bounces_import_applies_the_whole_corpus_once(workspace, sent, tmp_path):
    assert all(s.return_path.startswith("bounces+") for s in sent.values())
    messages = {name: fill(name, sent[corpus_email(name)]) for name in corpus_names()}
    maildir = write_maildir(tmp_path / "Maildir", messages)
    res = workspace.cli("bounces", "import", str(maildir))
    assert res.exit_code == 0, res.stderr
    stopped = {line.split()[1] for line in res.stdout.splitlines() if line.startswith("  bounced:")}
    expected_stopped = {corpus_email(n) for n, e in EXPECTED.items() if e["action"] == "bounced"}
    assert stopped == expected_stopped, res.stdout + res.stderr
    listed = json.loads(workspace.cli("bounces", "list", "--format", "json").stdout)
    by_email = {row["email"]: row for row in listed}
    for name, expected in EXPECTED.items():
        email = corpus_email(name)
        assert _status(workspace, email) == expected["contact"], name
        if not expected["record"]:
            assert email not in by_email, name
            continue
        row = by_email[email]
        assert (row["kind"], row["action"], row["campaign"]) == (
            expected["record"],
            expected["action"],
            "uutiskirje-2018-11",
        ), name
        assert row["status"] == expected.get("status"), name
        assert set(row) == {
            "email",
            "campaign",
            "kind",
            "status",
            "diagnostic",
            "received_at",
            "action",
        }
        # ISO 8601 with the offset of defaults.timezone (Helsinki: +02:00 or +03:00).
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0[23]:00", row["received_at"])
    table = workspace.cli("bounces", "list").stdout  # for people: 'YYYY-MM-DD HH:MM', no offset
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", table) and "+0" not in table
    # Every status change went through its owner, with an event of the right source.
    events = _rows(
        workspace,
        "SELECT c.email, e.action, e.source FROM unsubscribe_events e"
        " JOIN contacts c ON c.id = e.contact_id WHERE e.source IN ('bounce', 'complaint')",
    )
    assert ("complaint-redacted@example.org", "complaint", "complaint") in events
    assert {e for e, a, _ in events if a == "bounce"} == {
        corpus_email(n) for n, x in EXPECTED.items() if x["action"] == "bounced"
    }
    # The same mail again counts nothing twice.
    again = workspace.cli("bounces", "import", str(maildir))
    assert again.exit_code == 0
    assert f"{len(messages) - 7} seen before" in again.stdout  # 7 are left for a person
    assert len(json.loads(workspace.cli("bounces", "list", "--format", "json").stdout)) == len(
        listed
    )
    # stats and contacts show tell it.
    stats = json.loads(workspace.cli("stats", "uutiskirje-2018-11", "--format", "json").stdout)
    hard = sum(e["record"] == "hard" for e in EXPECTED.values())
    soft = sum(e["record"] == "soft" for e in EXPECTED.values())
    assert (stats["bounced"], stats["soft_bounced"], stats["complaints"]) == (hard, soft, 1)
    shown = json.loads(
        workspace.cli("contacts", "show", "gmail-hard@example.org", "--format", "json").stdout
    )
    assert shown["status"] == "bounced"
    assert shown["last_bounce"]["status"] == "5.1.1" and shown["last_bounce"]["kind"] == "hard"
    table = workspace.cli("contacts", "show", "gmail-hard@example.org").stdout
    assert "last bounce:" in table and "5.1.1" in table


@pytest.mark.slow
def test_soft_bounces_on_different_days_make_the_contact_bounced(workspace, tmp_path):
    from datetime import timedelta

    from mailer.timeutil import now_utc

    with_bounces(workspace, soft_limit="3", soft_days="30")
    email = "postfix-delayed@example.org"
    sent = send_campaign(workspace, [email])[email]
    now = now_utc()
    folder = tmp_path / "soft"
    folder.mkdir()
    # Two on the same day count as one day; then two more days reach the limit of three.
    for i, days in enumerate((20, 20, 10, 0)):
        raw = fill("postfix-delayed", sent, when=now - timedelta(days=days, hours=1))
        raw = raw.replace(b"7YtD3Qm1Lpz2Wn@", f"soft{i}@".encode())  # four different messages
        (folder / f"{i}.eml").write_bytes(raw)
        res = workspace.cli("bounces", "import", str(folder / f"{i}.eml"))
        assert res.exit_code == 0, res.stderr
        assert _status(workspace, email) == ("bounced" if i == 3 else "subscribed"), i
    assert "bounced: postfix-delayed@example.org" in res.stdout
    actions = [
        r["action"] for r in json.loads(workspace.cli("bounces", "list", "--format", "json").stdout)
    ]
    assert actions == ["counted", "counted", "counted", "bounced"]


@pytest.mark.slow
def test_a_complaint_of_an_unsubscribed_contact_is_recorded_and_the_status_stays(
    workspace, tmp_path
):
    with_bounces(workspace)
    email = "complaint-redacted@example.org"
    sent = send_campaign(workspace, [email])[email]
    assert workspace.cli("contacts", "unsubscribe", email).exit_code == 0
    (tmp_path / "c.eml").write_bytes(fill("complaint-redacted", sent))
    res = workspace.cli("bounces", "import", str(tmp_path / "c.eml"))
    assert res.exit_code == 0, res.stderr
    assert _status(workspace, email) == "unsubscribed"
    rows = json.loads(
        workspace.cli("bounces", "list", "--kind", "complaint", "--format", "json").stdout
    )
    assert [(r["email"], r["action"]) for r in rows] == [(email, "none")]


def test_bad_paths_and_options_are_one_line_errors_and_apply_nothing(workspace, tmp_path):
    with_bounces(workspace)
    res = workspace.cli("bounces", "import", str(tmp_path / "missing.eml"))
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "missing.eml" in res.stderr
    res = workspace.cli("bounces", "list", "--kind", "medium")
    assert res.exit_code == 2 and "--kind" in res.stderr
    res = workspace.cli("bounces", "list", "--campaign", "nope")
    assert res.exit_code == 2 and "nope" in res.stderr


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_random_bytes_never_raise(raw):
    returned = parse(raw)
    assert returned.kind in ("bounce", "complaint", "autoreply", "unrecognised")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(corpus_names()),
    st.integers(min_value=0, max_value=4000),
    st.binary(min_size=1, max_size=40),
)
def test_damaged_corpus_messages_never_raise(name, at, junk):
    raw = fill(name, FAKE)
    at = min(at, len(raw))
    returned = parse(raw[:at] + junk + raw[at:])
    assert returned.kind in ("bounce", "complaint", "autoreply", "unrecognised")


@pytest.mark.slow
def test_random_bytes_never_change_a_contact_even_around_a_real_token(workspace, tmp_path):
    from mailer.bounces.apply import process

    with_bounces(workspace)
    email = "postfix-hard@example.org"
    sent = send_campaign(workspace, [email])[email]
    store, config = workspace.store(), workspace.config()
    real = f"To: {sent.return_path}\r\n".encode()

    @settings(max_examples=150, deadline=None)
    @given(st.binary(max_size=2000), st.binary(max_size=2000), st.booleans())
    def run(before, after, with_token):
        raw = before + (real if with_token else b"") + after
        report = process(store, config, [("random", raw)])
        assert report.messages == 1 and not report.stopped

    run()
    assert _status(workspace, email) == "subscribed"
    assert _rows(workspace, "SELECT count(*) FROM bounces")[0][0] == 0
