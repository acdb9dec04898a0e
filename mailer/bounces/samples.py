"""Returned mail as servers write it, made from a message we sent (for `mailer demo`).

A Postfix-style delivery report (RFC 3464) with the original headers returned, an ARF
complaint (RFC 5965) with the recipient redacted, and a vacation reply. They name the
delivery only through the returned headers, as mail from a relay that rewrites the
envelope sender does.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from email.utils import format_datetime

_HOST = "mx.example.org"


def _headers(original: bytes) -> str:
    text = original.decode("utf-8", "replace").replace("\r\n", "\n")
    return text.split("\n\n", 1)[0]


def _to(original: bytes) -> str:
    for line in _headers(original).splitlines():
        if line.lower().startswith("to:"):
            value = line[3:].strip()
            return value.rpartition("<")[2].rstrip(">").strip()
    return ""


def delivery_report(
    original: bytes, *, status: str, diagnostic: str, now: datetime, action: str = "failed"
) -> bytes:
    """A DSN about the recipient of `original`, as a receiving Postfix writes it."""
    rcpt, boundary, queue_id = _to(original), secrets.token_hex(8), secrets.token_hex(5).upper()
    date = format_datetime(now)
    subject = (
        "Undelivered Mail Returned to Sender"
        if action == "failed"
        else "Delayed Mail (still being retried)"
    )
    text = f"""Return-Path: <>
Date: {date}
From: Mail Delivery System <MAILER-DAEMON@{_HOST}>
Subject: {subject}
To: bounces@arcticsmartness.eu
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"
Message-Id: <{queue_id}.{boundary}@{_HOST}>

--{boundary}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host {_HOST}.

<{rcpt}>: {diagnostic}

--{boundary}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; {_HOST}
X-Postfix-Queue-ID: {queue_id}

Final-Recipient: rfc822; {rcpt}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--{boundary}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{_headers(original)}

--{boundary}--
"""
    return text.encode("utf-8")


def complaint(original: bytes, *, now: datetime) -> bytes:
    """An ARF abuse report about `original`, the recipient redacted as providers do."""
    rcpt, boundary = _to(original), secrets.token_hex(8)
    returned = _headers(original).replace(rcpt, "redacted@redacted") if rcpt else ""
    text = f"""Date: {format_datetime(now)}
From: Feedback Loop <fbl@feedback.example.net>
To: bounces@arcticsmartness.eu
Subject: Abuse report
Message-ID: <arf.{boundary}@feedback.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset=us-ascii

This is an email abuse report for a message received from your network.

--{boundary}
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Rcpt-To: redacted@redacted

--{boundary}
Content-Type: text/rfc822-headers

{returned}

--{boundary}--
"""
    return text.encode("utf-8")


def vacation_reply(original: bytes, *, now: datetime) -> bytes:
    """An out-of-office answer from the recipient of `original` (not a bounce)."""
    rcpt = _to(original)
    text = f"""Date: {format_datetime(now)}
From: <{rcpt}>
To: bounces@arcticsmartness.eu
Subject: Automaattinen vastaus: uutiskirje
Auto-Submitted: auto-replied
Message-ID: <ooo.{secrets.token_hex(8)}@example.org>
Content-Type: text/plain; charset=utf-8

Olen lomalla. / I am on holiday.
"""
    return text.encode("utf-8")
