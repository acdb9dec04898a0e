"""The outbox: confirmation mails survive a relay outage, are retried on 4xx, score 0."""

from __future__ import annotations

import email
import email.policy
import shutil
from datetime import timedelta

import pytest

from mailer.audience.signups import SignupRequest, request_link, request_signup
from mailer.sending.outbox import send_due
from mailer.timeutil import now_utc
from tests.signup_helpers import enable_signup
from tests.smtp_sink import SinkHandler, SmtpSink
from tests.web_helpers import add_contact


def outbox(ws) -> list[tuple]:
    with ws.store() as store:
        return [
            tuple(r)
            for r in store.conn.execute("SELECT kind, status, attempts FROM outbox ORDER BY id")
        ]


def queue_signup(ws, address: str, language: str = "fi") -> None:
    with ws.store() as store:
        request_signup(
            store, ws.config(), SignupRequest(address, language=language), client="", now=now_utc()
        )


def test_a_relay_outage_loses_nothing(workspace):
    sink = SmtpSink()  # its port is reserved, but nothing listens yet: the relay is down
    enable_signup(workspace, sink)
    queue_signup(workspace, "katkos@example.org")
    with workspace.store() as store:
        report = send_due(store, workspace.config())
    assert (report.sent, report.deferred) == (0, 1)
    assert outbox(workspace) == [("confirm", "deferred", 1)]
    with sink:
        with workspace.store() as store:
            early = send_due(store, workspace.config())
            assert early.sent == 0  # waits for its backoff
            later = send_due(store, workspace.config(), now=now_utc() + timedelta(seconds=20))
        assert later.sent == 1
        assert sink.recipients() == ["katkos@example.org"]
    assert outbox(workspace) == [("confirm", "sent", 2)]


def test_a_4xx_is_retried_and_a_5xx_fails(workspace):
    answers = {
        "jono@example.org": ["451 4.7.1 try again later"],
        "ei@example.org": ["550 5.1.1 no such user"] * 3,
    }

    def rcpt(address: str) -> str | None:
        queue = answers.get(address, [])
        return queue.pop(0) if queue else None

    with SmtpSink(handler=SinkHandler(rcpt_reply=rcpt)) as sink:
        enable_signup(workspace, sink)
        queue_signup(workspace, "jono@example.org")
        queue_signup(workspace, "ei@example.org")
        with workspace.store() as store:
            first = send_due(store, workspace.config())
            assert (first.sent, first.deferred, first.failed) == (0, 1, 1)
            second = send_due(store, workspace.config(), now=now_utc() + timedelta(minutes=1))
        assert second.sent == 1 and sink.recipients() == ["jono@example.org"]
    assert outbox(workspace) == [("confirm", "sent", 2), ("confirm", "failed", 1)]


def test_the_mails_are_in_the_chosen_language_with_list_headers(workspace):
    with SmtpSink() as sink:
        enable_signup(workspace, sink)
        queue_signup(workspace, "sami@example.org", "se")
        with workspace.store() as store:
            add_contact(store, "linkki@example.org", language="sv")
            request_link(store, workspace.config(), "linkki@example.org", now=now_utc())
            send_due(store, workspace.config())
        confirm, link = (r.message() for r in sink.received)
    assert confirm["Subject"] == "Duođaš diehtojuohkinreivve diŋgoma – Arctic Smartness"
    assert link["Subject"] == "Länk till dina inställningar för nyhetsbrevet – Arctic Smartness"
    for message in (confirm, link):
        assert message["List-Id"] and message["List-Unsubscribe-Post"]
        assert message.get_content_type() == "multipart/alternative"
        for part in message.iter_parts():
            assert part["Content-Transfer-Encoding"] == "quoted-printable"


SPAMASSASSIN = shutil.which("spamassassin")


@pytest.mark.spamassassin
@pytest.mark.skipif(SPAMASSASSIN is None, reason="SpamAssassin (Debian `spamassassin`) missing")
def test_confirmation_and_link_mails_score_zero(workspace, tmp_path):
    from tests.test_spamassassin import _score

    with SmtpSink() as sink:
        enable_signup(workspace, sink)
        queue_signup(workspace, "pisteet@example.org")
        with workspace.store() as store:
            add_contact(store, "linkki@example.org")
            request_link(store, workspace.config(), "linkki@example.org", now=now_utc())
            send_due(store, workspace.config())
        assert len(sink.received) == 2
        for item in sink.received:
            score, report = _score(item.data, tmp_path)
            subject = email.message_from_bytes(item.data, policy=email.policy.default)["Subject"]
            assert score == 0.0, (subject, report[report.find("Content analysis") :])
