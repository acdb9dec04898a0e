"""Sending with [bounces]: a return path per delivery, Feedback-ID, bounces at send time."""

from __future__ import annotations

import json

import pytest

from mailer.tokens import return_path_token, verify_return_path_token
from tests.bounces_helpers import send_campaign, with_bounces
from tests.conftest import SECRET

pytestmark = pytest.mark.slow


def test_each_delivery_has_its_own_return_path_and_every_message_a_feedback_id(workspace):
    with_bounces(workspace)
    emails = ["aino@example.org", "niilas@example.org"]
    sent = send_campaign(workspace, emails)
    ids = dict(
        workspace.store().conn.execute(
            "SELECT c.email, d.id FROM deliveries d JOIN contacts c ON c.id = d.contact_id"
        )
    )
    for email in emails:
        token = return_path_token(sent[email].return_path)
        assert sent[email].return_path == f"bounces+{token}@arcticsmartness.eu"
        # Case changes on the way back do not matter; the token names exactly this delivery.
        assert verify_return_path_token([SECRET.encode()], token.upper()) == ids[email]
        assert "Feedback-ID: uutiskirje-2018-11:newsletter:arcticsmartness" in sent[email].headers
    assert sent[emails[0]].return_path != sent[emails[1]].return_path


def test_without_bounces_nothing_changes_but_the_feedback_id(workspace):
    sent = send_campaign(workspace, ["aino@example.org"])["aino@example.org"]
    assert sent.return_path == "uutiset@arcticsmartness.eu"
    assert "Feedback-ID:" in sent.headers


def test_answers_at_send_time_are_bounce_records_and_only_a_gone_mailbox_bounces(workspace):
    replies = {
        "gone@example.org": "550 5.1.1 <gone@example.org>: no such user",
        "policy@example.org": "550 5.7.1 refused by policy",
    }
    send_campaign(workspace, ["ok@example.org", *replies], rcpt_reply=replies.get)
    listed = json.loads(workspace.cli("bounces", "list", "--format", "json").stdout)
    assert sorted((r["email"], r["kind"], r["status"], r["action"]) for r in listed) == [
        ("gone@example.org", "hard", "5.1.1", "bounced"),
        ("policy@example.org", "hard", "5.7.1", "none"),
    ]
    assert all("gone@" not in r["diagnostic"] for r in listed)  # the record masks addresses
    statuses = {
        c["email"]: c["status"]
        for c in json.loads(workspace.cli("contacts", "list", "--format", "json").stdout)
    }
    assert statuses == {
        "ok@example.org": "subscribed",
        "gone@example.org": "bounced",
        "policy@example.org": "subscribed",
    }
    stats = json.loads(workspace.cli("stats", "uutiskirje-2018-11", "--format", "json").stdout)
    assert (stats["failed"], stats["bounced"]) == (2, 2)
