"""What an SMTP answer or a DSN status code says about the address: one rule for both.

PRODUCT.md (Sending) gives the table, after RFC 3463; the engine uses it for the answers it
gets at send time and mailer.bounces for mail that comes back later:

    verdict   codes                                                    contact
    MAILBOX   5.1.1 5.1.2 5.1.3 5.1.6 5.1.10 5.2.1; a 55x without an   bounced at once
              enhanced code whose text names an unknown user/mailbox
    SOFT      every 4.x.x; 5.2.2 (mailbox full)                        counted (soft_limit)
    MESSAGE   any other 5.x.x (5.1.7/5.1.8 our sender, 5.2.3 size,    stays; reported
              5.3.x, 5.6.x, 5.7.x policy), a bare 55x
    QUOTA     5.4.5 and 5.7.233, a 4.7.x or 421 naming a rate or       not about the recipient
              quota limit: our own sending limit
"""

from __future__ import annotations

import re
from enum import Enum


class Verdict(str, Enum):
    MAILBOX = "mailbox"  # the address is gone: hard bounce
    SOFT = "soft"  # temporary, or the mailbox is full
    MESSAGE = "message"  # about this message or its sender, not the mailbox
    QUOTA = "quota"  # our own rate or quota at the relay


_MAILBOX_CODES = frozenset({"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1"})
_SOFT_5XX = frozenset({"5.2.2"})
_QUOTA_CODES = frozenset({"5.4.5", "5.7.233"})

ENHANCED_CODE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
_REPLY = re.compile(r"(?<!\d)([245]\d\d)(?:[ -]|$)")
# Texts of servers that answer 550 without an enhanced code for an unknown address.
_UNKNOWN_MAILBOX = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|address|recipient)|"
    r"mailbox (?:unavailable|not found|does not exist|is disabled)|"
    r"(?:address|recipient|user|account|mailbox) (?:does not|doesn't) exist|"
    r"(?:invalid|unknown) (?:recipient|mailbox|address)|recipient not found|"
    r"unrouteable address|no mailbox here|account (?:has been )?disabled",
    re.IGNORECASE,
)
_RATE_OR_QUOTA = re.compile(
    r"quota|rate limit|too many (?:messages|connections|recipients)|sending limit|"
    r"try again later.{0,40}(?:limit|volume)|limit exceeded|exceeded .{0,30}limit",
    re.IGNORECASE,
)


def enhanced_code(text: str) -> str | None:
    """The first RFC 3463 status code (`5.1.1`) in `text`, or None."""
    match = ENHANCED_CODE.search(text or "")
    if match is None:
        return None
    return f"{match.group(1)}.{int(match.group(2))}.{int(match.group(3))}"


def reply_code(text: str) -> int | None:
    """The first SMTP reply code (`550`) in `text`, or None."""
    match = _REPLY.search(text or "")
    return int(match.group(1)) if match else None


def classify(status: str | None, reply: int | None = None, text: str = "") -> Verdict | None:
    """What the status code (else the reply code and its text) says; None for success."""
    if status:
        cls = status.split(".", 1)[0]
        if cls == "2":
            return None
        if status in _QUOTA_CODES or (
            cls == "4" and status.startswith("4.7.") and _RATE_OR_QUOTA.search(text)
        ):
            return Verdict.QUOTA
        if cls == "4" or status in _SOFT_5XX:
            return Verdict.SOFT
        return Verdict.MAILBOX if status in _MAILBOX_CODES else Verdict.MESSAGE
    if reply is None or reply < 400:
        return None
    if reply < 500:
        return Verdict.QUOTA if _RATE_OR_QUOTA.search(text) else Verdict.SOFT
    return Verdict.MAILBOX if _UNKNOWN_MAILBOX.search(text) else Verdict.MESSAGE


def classify_reply(code: int, text: str) -> Verdict | None:
    """Classify an SMTP answer: its code and text (which may hold an enhanced code)."""
    status = enhanced_code(text)
    if status is not None and status[0] != str(code)[0]:
        status = None  # "550 ... 4.4.1 earlier" names another answer; trust the reply
    if code == 421 and _RATE_OR_QUOTA.search(text):
        return Verdict.QUOTA
    return classify(status, code, text)


def names_unknown_mailbox(text: str) -> bool:
    """Whether a text without a code says the address does not exist."""
    return bool(_UNKNOWN_MAILBOX.search(text or ""))
