"""What a message in the bounce mailbox is: a bounce, a complaint, an auto-reply, or neither.

- RFC 3464 delivery reports (`multipart/report; report-type=delivery-status`, what Postfix,
  Exim, Gmail and Microsoft 365 send): one failure per recipient block with `Action`,
  `Status`, `Final-Recipient` and `Diagnostic-Code`, read with the standard `email` package.
- RFC 5965 complaints (`report-type=feedback-report`, `Feedback-Type: abuse`).
- The classic non-standard bounces (old Exchange, qmail, Exim and Postfix texts, …):
  `flufl.bounce` finds the failed addresses; the status code is read from the text.
- Auto-replies (vacation, challenge mails) and everything else: neither; left for a person.
  Real DSNs carry `Auto-Submitted` too, so that header alone never makes an auto-reply.

What names the delivery is gathered here and checked in mailer.bounces.apply: return-path
tokens from the headers a bounce is addressed with, and the Message-ID and List-Unsubscribe
token of our message where the bounce returns it (`message/rfc822`, `text/rfc822-headers`,
or quoted in the text). Nothing here raises on any input: a message that cannot be read is
`unrecognised` with the reason.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from email.parser import HeaderParser
from email.utils import parsedate_to_datetime

from mailer.bounces.codes import (
    Verdict,
    classify,
    enhanced_code,
    names_unknown_mailbox,
    reply_code,
)

BOUNCE, COMPLAINT, AUTOREPLY, UNRECOGNISED = "bounce", "complaint", "autoreply", "unrecognised"
DIAGNOSTIC_MAX = 200  # one line; the record never keeps the returned message

_RETURN_PATH_TOKEN = re.compile(r"\+([A-Za-z2-7]{24})@")
_UNSUBSCRIBE_TOKEN = re.compile(r"/u/([A-Za-z0-9_-]{32})(?![A-Za-z0-9_-])")
_MESSAGE_ID_LINE = re.compile(r"^\s*Message-ID:\s*(<[^<>\s]{3,250}>)", re.IGNORECASE | re.MULTILINE)
# A text bounce's quoted copy of the original is a block of header lines holding two of
# these; a report's own summary block ("To: …", "Subject: …", "Message-ID: …") holds one at
# most, and its delivery-status fields end a block (a copy may follow them directly).
_HEADER_LINE = re.compile(r"[A-Za-z][\w-]*:[ \t]")
_MESSAGE_HEADERS = frozenset(
    {
        "message-id",
        "mime-version",
        "received",
        "return-path",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "list-unsubscribe",
        "list-id",
        "feedback-id",
    }
)
_DSN_FIELDS = frozenset(
    {
        "reporting-mta",
        "received-from-mta",
        "arrival-date",
        "original-envelope-id",
        "dsn-gateway",
        "final-recipient",
        "original-recipient",
        "x-actual-recipient",
        "action",
        "status",
        "diagnostic-code",
        "remote-mta",
        "last-attempt-date",
        "will-retry-until",
    }
)
_HEADERS_PARTS = ("text/rfc822-headers", "text/global-headers")
_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+\.[A-Za-z0-9-]+")
# Where a bounce is addressed: the return path (LOCAL+TOKEN@DOMAIN) lands in one of these.
_ADDRESSED_HEADERS = ("To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")
_DAEMONS = re.compile(
    r"^(?:mailer-daemon|postmaster|mail-daemon|maildaemon|mail delivery (?:sub)?system)",
    re.IGNORECASE,
)
_AUTOREPLY_SUBJECT = re.compile(
    r"^(?:auto(?:matic)?[ _-]?(?:reply|response|antwort|svar)|out of (?:the )?office|"
    r"automaattinen vastaus|poissa|lomalla|frånvaro|autosvar|abwesenheit|vacation|"
    r"(?:please )?confirm (?:your|that you)|challenge|verify your (?:message|e-?mail))",
    re.IGNORECASE,
)
_HEADER_PARSER = HeaderParser(policy=email.policy.compat32)


@dataclass(frozen=True)
class Failure:
    """One recipient a bounce reports, or the one a complaint is about."""

    recipient: str | None  # Final-Recipient / Original-Recipient (None: redacted or absent)
    status: str | None  # the enhanced status code, e.g. 5.1.1
    verdict: Verdict  # what the code says about the address (mailer.bounces.codes)
    diagnostic: str  # one line, addresses masked


@dataclass(frozen=True)
class Returned:
    """One message from the bounce mailbox, read."""

    kind: str  # bounce | complaint | autoreply | unrecognised
    key: str  # the message's identity, so that the same bounce counts once
    failures: tuple[Failure, ...] = ()
    tokens: tuple[str, ...] = ()  # return-path tokens (unchecked)
    message_ids: tuple[str, ...] = ()  # Message-IDs of the returned original
    unsubscribe_tokens: tuple[str, ...] = ()  # List-Unsubscribe tokens in the returned part
    date_header: str = ""  # the bounce's Date header (read by `date` when it is needed)
    reason: str = ""  # why it is neither bounce nor complaint

    @property
    def date(self) -> datetime | None:
        """The bounce's Date, when it has a sane one."""
        try:
            moment = parsedate_to_datetime(self.date_header)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if moment is None or moment.tzinfo is None:
            return None
        return moment.astimezone(timezone.utc)

    @property
    def handled(self) -> bool:
        return self.kind in (BOUNCE, COMPLAINT)


@dataclass
class _Found:
    parts: list[tuple[str, Message]]  # the parts with their content types (see _parts)
    failures: list[Failure] = field(default_factory=list)
    returned: list[Message] = field(default_factory=list)
    _texts: list[tuple[str, str]] | None = None

    def texts(self) -> list[tuple[str, str]]:
        """The decoded text parts with their content types (decoded once)."""
        if self._texts is None:
            self._texts = _body_texts(self.parts)
        return self._texts

    def text(self) -> str:
        """All the text, the quoted copy of our message too: for its Message-ID and token."""
        return "\n".join(text for _, text in self.texts())[:200_000]

    def report(self) -> str:
        """The report's own words, for codes and addresses: each text part up to a quoted
        copy of the original, returned headers left out."""
        texts = [_report_part(t) for ctype, t in self.texts() if ctype not in _HEADERS_PARTS]
        return "\n".join(texts)[:200_000]


def parse(raw: bytes) -> Returned:
    """Read one message; never raises (a message that cannot be read is unrecognised)."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception as exc:  # noqa: BLE001 - hostile or broken mail must not stop a fetch
        return Returned(UNRECOGNISED, _key("", raw), reason=f"unreadable: {type(exc).__name__}")
    try:
        key = _key(_one_line(msg.get("Message-ID", "")), raw)
    except Exception:  # noqa: BLE001
        key = _key("", raw)
    try:
        return _read(msg, key)
    except Exception as exc:  # noqa: BLE001
        return Returned(UNRECOGNISED, key, reason=f"unreadable: {type(exc).__name__}")


def _key(message_id: str, raw: bytes) -> str:
    """The identity of a returned message: its Message-ID, else a hash of its bytes."""
    basis = ("mid:" + message_id).encode("utf-8", "replace") if message_id else b"raw:" + raw
    return hashlib.sha256(basis).hexdigest()


def _read(msg: Message, key: str) -> Returned:
    found = _Found(_parts(msg))
    kind = ""
    if found.parts[0][0] == "multipart/report":
        report_type = str(msg.get_param("report-type", "", header="content-type") or "").lower()
        if report_type == "feedback-report":
            kind = _complaint(found)
        elif report_type == "delivery-status":
            kind = _delivery_status(found)
    # Exim's and qmail's texts say auto-replied too, so a mail system's message is read
    # as a bounce first; a vacation or challenge mail never goes through the detectors.
    present = {name.lower() for name in msg}
    marked = _autoreply_marks(msg, present)
    if not kind and not marked and _from_a_mail_system(msg):
        kind = _non_standard(msg, found)
    if not kind:
        if marked or _auto_submitted(msg).startswith("auto-replied"):
            return Returned(AUTOREPLY, key, reason="auto-reply")
        return Returned(UNRECOGNISED, key, reason="neither a bounce nor a complaint")
    mids = [m for part in found.returned if (m := _one_line(part.get("Message-ID", "")))]
    unsub = [t for part in found.returned for t in _UNSUBSCRIBE_TOKEN.findall(_headers(part))]
    if not (mids and unsub):  # no returned part named it: the copy may be quoted in the text
        quoted = found.text()
        mids += _MESSAGE_ID_LINE.findall(quoted)
        unsub += _UNSUBSCRIBE_TOKEN.findall(quoted)
    addressed = [name for name in _ADDRESSED_HEADERS if name.lower() in present]
    tokens = [t for name in addressed for t in _tokens(msg.get_all(name) or [])]
    tokens += [t for part in found.returned for t in _tokens(part.get_all("Return-Path") or [])]
    return Returned(
        kind,
        key,
        failures=tuple(found.failures),
        tokens=_unique(t.lower() for t in tokens),
        message_ids=_unique(mids),
        unsubscribe_tokens=_unique(unsub),
        date_header=_one_line(msg.get("Date", "")),
    )


# --- RFC 3464 -------------------------------------------------------------------------------


def _delivery_status(found: _Found) -> str:
    for ctype, part in found.parts:
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            blocks = _field_blocks(part)
            for block in blocks[1:]:  # the first block is about the message, not a recipient
                failure = _recipient_failure(block)
                if failure is not None:
                    found.failures.append(failure)
        _collect_returned(ctype, part, found)
    return BOUNCE if found.failures else ""


def _recipient_failure(block: Message) -> Failure | None:
    action = _one_line(block.get("Action", "")).lower()
    if action not in ("failed", "delayed"):
        return None  # delivered, relayed, expanded: nothing failed
    status = enhanced_code(_one_line(block.get("Status", "")))
    diagnostic = _one_line(block.get("Diagnostic-Code", ""))
    diagnostic = diagnostic.split(";", 1)[1].strip() if ";" in diagnostic else diagnostic
    detailed = enhanced_code(diagnostic)
    # Exim and others write the generic X.0.0 beside a precise code in the server's answer.
    if status is None or (status.endswith(".0.0") and detailed and detailed[0] == status[0]):
        status = detailed or status
    verdict = Verdict.SOFT if action == "delayed" else None
    verdict = verdict or classify(status, reply_code(diagnostic) or 550, diagnostic)
    if verdict is None:
        return None
    if verdict is Verdict.QUOTA:
        verdict = Verdict.MESSAGE  # a returned message about our limit: recorded, nobody moves
    recipient = _address_field(block.get("Final-Recipient")) or _address_field(
        block.get("Original-Recipient")
    )
    return Failure(recipient, status, verdict, _diagnostic(diagnostic or status or action))


# --- RFC 5965 -------------------------------------------------------------------------------


def _complaint(found: _Found) -> str:
    kind = ""
    for ctype, part in found.parts:
        if ctype == "message/feedback-report":
            for block in _field_blocks(part)[:1]:
                feedback = _one_line(block.get("Feedback-Type", "")).lower()
                if feedback == "abuse":
                    kind = COMPLAINT
                    recipient = _address_field(block.get("Original-Rcpt-To"))
                    found.failures.append(
                        Failure(recipient, None, Verdict.MESSAGE, "complaint: abuse")
                    )
        _collect_returned(ctype, part, found)
    return kind


# --- non-standard texts ---------------------------------------------------------------------


def _auto_submitted(msg: Message) -> str:
    return _one_line(msg.get("Auto-Submitted", "")).lower()


def _from_a_mail_system(msg: Message) -> bool:
    """Sent by a mail system, not a person: a null return path, a daemon, Auto-Submitted."""
    return_path = _one_line(msg.get("Return-Path", ""))
    sender = _one_line(msg.get("From", "")).strip('"')
    return (
        return_path == "<>"
        or bool(_DAEMONS.match(sender))
        or bool(_DAEMONS.match(sender.rpartition("<")[2]))
        or _auto_submitted(msg) not in ("", "no")
        or msg.get("X-Failed-Recipients") is not None
    )


def _autoreply_marks(msg: Message, present: set[str]) -> bool:
    """A vacation or challenge reply's own marks (Auto-Submitted alone is not one: real
    DSNs carry it too); `present`: the message's header names, lower-case."""
    precedence = _one_line(msg.get("Precedence", "")).lower() if "precedence" in present else ""
    return (
        precedence == "auto_reply"
        or any(h in present for h in ("x-autoreply", "x-autorespond", "x-autoresponder"))
        or bool(_AUTOREPLY_SUBJECT.match(_one_line(msg.get("Subject", ""))))
    )


def _non_standard(msg: Message, found: _Found) -> str:
    from flufl.bounce import all_failures

    listed = [_decode(a) for a in _headers_of(msg, "X-Failed-Recipients")]
    temporary: frozenset[bytes] = frozenset()
    permanent: frozenset[bytes] = frozenset()
    if not listed:  # Exim names them in a header; the detectors read the others' texts
        with contextlib.suppress(Exception):  # a detector tripping on odd input: no bounce
            temporary, permanent = all_failures(msg)
    addresses = {a.lower(): False for a in listed if a}
    addresses.update({_decode(a).lower(): False for a in permanent})
    addresses.update({_decode(a).lower(): True for a in temporary if _decode(a).lower()})
    text = found.report()
    for address, temporary_only in addresses.items():
        if not address or "@" not in address:
            continue
        line = _line_about(text, address)
        status = enhanced_code(line) or enhanced_code(text)
        reply = reply_code(line) or reply_code(text)
        if temporary_only and (status is None or status.startswith("5")):
            verdict: Verdict | None = Verdict.SOFT
        elif status is None and reply is None:
            verdict = Verdict.MAILBOX if names_unknown_mailbox(text) else Verdict.MESSAGE
        else:
            verdict = classify(status, reply or 550, line or text)
        if verdict is None:
            continue
        if verdict is Verdict.QUOTA:
            verdict = Verdict.MESSAGE
        found.failures.append(Failure(address, status, verdict, _diagnostic(line or status or "")))
    for ctype, part in found.parts:
        _collect_returned(ctype, part, found)
    return BOUNCE if found.failures else ""


def _parts(msg: Message) -> list[tuple[str, Message]]:
    """Every part with its content type, depth first, without going into a returned message:
    the text of our own newsletter is not the report's."""
    out: list[tuple[str, Message]] = []
    stack = [msg]
    while stack:
        part = stack.pop()
        ctype = part.get_content_type()
        out.append((ctype, part))
        payload = part.get_payload()
        if isinstance(payload, list) and not ctype.startswith("message/"):
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))
    return out


def _report_part(text: str) -> str:
    """The text before the quoted copy of the original: codes, dates and tokens in our own
    message (a MIME boundary ending in `465`, say) must not be read as the server's answer."""
    block = None  # where the current block of header lines starts
    seen: set[str] = set()  # the message headers in it
    offset = 0
    for line in text.splitlines(keepends=True):
        name = line.split(":", 1)[0].lower() if _HEADER_LINE.match(line) else ""
        if block is not None and line[:1] in (" ", "\t") and line.strip():
            pass  # a folded header line
        elif name and name not in _DSN_FIELDS:
            block = offset if block is None else block
            if name in _MESSAGE_HEADERS:
                seen.add(name)
                if len(seen) == 2:
                    return text[:block]
        else:
            block, seen = None, set()
        offset += len(line)
    return text


def _line_about(text: str, address: str) -> str:
    """The text around the first mention of `address` that holds a code, else that mention."""
    lower = text.lower()
    at = lower.find(address)
    if at < 0:
        return ""
    window = text[at : at + 600]
    lines = [line.strip() for line in window.splitlines() if line.strip()]
    for line in lines[:8]:
        if enhanced_code(line) or reply_code(line):
            return line
    return lines[0] if lines else ""


# --- helpers --------------------------------------------------------------------------------


def _field_blocks(part: Message) -> list[Message]:
    """The header blocks of a delivery-status or feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        # message/delivery-status comes split into its blocks; other types (RFC 6533's
        # message/global-delivery-status) as one message: its headers, the rest as its body.
        blocks: list[Message] = []
        for block in payload:
            if isinstance(block, Message):
                blocks.append(block)
                rest = block.get_payload()
                if isinstance(rest, str) and rest.strip():
                    blocks += _field_blocks_of(rest)
        return blocks
    text = part.get_payload(decode=True)
    body = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(payload or "")
    return _field_blocks_of(body)


def _field_blocks_of(body: str) -> list[Message]:
    blocks = re.split(r"\r?\n[ \t]*\r?\n", body.strip())
    return [_HEADER_PARSER.parsestr(block) for block in blocks if block.strip()]


def _collect_returned(ctype: str, part: Message, found: _Found) -> None:
    if ctype in ("message/rfc822", "message/global", "message/global-headers"):
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            found.returned.append(payload[0])
    elif ctype in ("text/rfc822-headers", "text/global-headers"):
        data = part.get_payload(decode=True)
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else ""
        found.returned.append(_HEADER_PARSER.parsestr(text))


def _headers(part: Message) -> str:
    return "\n".join(f"{k}: {v}" for k, v in part.items())


def _headers_of(msg: Message, name: str) -> list[str]:
    return [a.strip() for value in msg.get_all(name) or [] for a in str(value).split(",")]


def _tokens(values: Iterable[object]) -> list[str]:
    return [t for value in values for t in _RETURN_PATH_TOKEN.findall(str(value))]


def _address_field(value: object) -> str | None:
    """`rfc822; a@example.org` → `a@example.org` (None when empty or redacted)."""
    text = _one_line(value)
    text = text.split(";", 1)[1] if ";" in text else text
    text = text.strip().strip("<>").strip()
    return text.lower() if "@" in text and " " not in text else None


def _body_texts(parts: list[tuple[str, Message]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for ctype, part in parts:
        if not ctype.startswith("text/"):
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            text = data.decode(charset, "replace")
        except LookupError:
            text = data.decode("utf-8", "replace")
        if ctype == "text/html":
            text = re.sub(r"<[^>]{0,2000}>", " ", text)
        out.append((ctype, text))
    return out


def _decode(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _one_line(value: object) -> str:
    return " ".join(str(value or "").split())


def mask(text: str) -> str:
    """Mask every address in `text`: `a***@example.org` (the record keeps no address)."""

    def masked(match: re.Match[str]) -> str:
        local, _, domain = match.group(0).rpartition("@")
        return f"{local[:1]}***@{domain}"

    return _ADDRESS.sub(masked, text)


def _diagnostic(text: str) -> str:
    line = _one_line(text)
    if not line.isprintable():
        line = " ".join("".join(ch if ch.isprintable() else " " for ch in line).split())
    line = mask(line)
    return line if len(line) <= DIAGNOSTIC_MAX else line[: DIAGNOSTIC_MAX - 1] + "…"


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))
