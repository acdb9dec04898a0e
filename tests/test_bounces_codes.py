"""One classifier of status codes for answers at send time and for returned mail."""

from __future__ import annotations

import pytest

from mailer.bounces.codes import Verdict, classify, classify_reply, enhanced_code


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        ("5.1.1", Verdict.MAILBOX),
        ("5.1.2", Verdict.MAILBOX),
        ("5.1.10", Verdict.MAILBOX),
        ("5.2.1", Verdict.MAILBOX),
        ("5.2.2", Verdict.SOFT),
        ("4.2.2", Verdict.SOFT),
        ("4.4.1", Verdict.SOFT),
        ("5.7.1", Verdict.MESSAGE),
        ("5.3.4", Verdict.MESSAGE),
        ("5.6.0", Verdict.MESSAGE),
        ("5.1.8", Verdict.MESSAGE),
        ("5.2.3", Verdict.MESSAGE),
        ("5.4.5", Verdict.QUOTA),
        ("5.7.233", Verdict.QUOTA),
        ("2.0.0", None),
    ],
)
def test_status_codes_follow_the_table(status, verdict):
    assert classify(status) is verdict


def test_answers_without_an_enhanced_code_are_read_by_their_text():
    assert classify_reply(550, "550 Requested action not taken: mailbox unavailable") is (
        Verdict.MAILBOX
    )
    assert classify_reply(554, "554 Transaction failed") is Verdict.MESSAGE
    assert classify_reply(451, "451 Temporary local problem") is Verdict.SOFT
    assert classify_reply(421, "421 4.7.0 Too many messages, rate limit exceeded") is (
        Verdict.QUOTA
    )
    assert classify_reply(450, "450 4.7.1 Sending rate limit exceeded") is Verdict.QUOTA


def test_enhanced_codes_are_found_but_not_inside_addresses_or_versions():
    assert enhanced_code("smtp; 550-5.1.1 The email account") == "5.1.1"
    assert enhanced_code("host 192.0.2.5.1 said 550 5.7.1 no") == "5.7.1"
    assert enhanced_code("version 2.4.5.6 only") is None
    assert enhanced_code("(#5.1.1)") == "5.1.1"
