"""One message outside any campaign: a test send now, confirmation mails later.

Nothing is recorded: no campaign row, no delivery row. The message is made by the
newsletter's `MessageBuilder`, so it has the headers, encodings and DKIM signature of a
campaign's messages (RFC 2047 subjects, quoted-printable bodies, CRLF, List-Unsubscribe with
its one-click POST), and it goes out over one SMTP connection opened with the [smtp]
settings (TLS verified), closed right after.
"""

from __future__ import annotations

import html as html_module
import secrets
from dataclasses import dataclass
from datetime import datetime

from mailer.addresses import Address, parse_address
from mailer.config import Config
from mailer.errors import SmtpError
from mailer.newsletter.messages import BuiltMessage, MessageBuilder, Recipient
from mailer.newsletter.variant import Variant
from mailer.sending import smtp
from mailer.sending.content import Clock, envelope_sender
from mailer.timeutil import now_utc


@dataclass(frozen=True)
class OneOffReport:
    """What became of one message: to whom, its Message-ID, and the server's reply."""

    recipient: str
    message_id: str
    reply: str


def make_variant(
    *,
    language: str,
    subject: str,
    text: str,
    html: str | None = None,
    preheader: str = "",
    name: str = "one-off",
    marker: str | None = None,
) -> Variant:
    """A Variant made directly from strings, for a message that has no campaign file.

    `text` and `html` may hold the per-recipient placeholders of
    mailer.newsletter.variant.placeholder(field, marker) when `marker` is given. Without
    `html`, the text becomes simple HTML paragraphs.
    """
    if html is None:
        paragraphs = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
        body = "\n".join(
            "<p>" + html_module.escape(p).replace("\n", "<br>\n") + "</p>" for p in paragraphs
        )
        html = (
            f'<!DOCTYPE html>\n<html lang="{html_module.escape(language)}">\n'
            f'<head><meta charset="utf-8"><title>{html_module.escape(subject)}</title></head>\n'
            f"<body>\n{body}\n</body>\n</html>\n"
        )
    return Variant(
        language=language,
        campaign=name,
        subject=subject,
        preheader=preheader,
        html=html,
        text=text if text.endswith("\n") else text + "\n",
        marker=marker or secrets.token_hex(6),
    )


def build_message(
    config: Config,
    variant: Variant,
    to: Address,
    *,
    unsubscribe_url: str,
    now: datetime,
    name: str = "",
    test: bool = False,
) -> BuiltMessage:
    """The message of `variant` for `to`, built as a campaign's would be."""
    recipient = Recipient(email=to.email, name=name or to.display_name, wire_email=to.wire)
    return MessageBuilder(config, variant).build(recipient, unsubscribe_url, now=now, test=test)


def deliver(
    config: Config,
    to: Address,
    message_id: str,
    data: bytes,
    *,
    connect: smtp.ConnectionFactory | None = None,
    label: str = "message",
) -> OneOffReport:
    """Send finished bytes to `to` over one connection; SmtpError unless the server took them."""
    factory = connect or smtp.config_factory(config.smtp, config.smtp_password())
    conn = smtp.Connection(factory, 1)
    try:
        outcome = conn.send(
            smtp.Envelope(envelope_sender(config), to.wire, data, needs_smtputf8=to.needs_smtputf8)
        )
    finally:
        conn.close()
    if outcome.status != smtp.SENT:
        raise SmtpError(f"{label} to {to.email} not sent: {outcome.detail}")
    return OneOffReport(to.email, message_id, outcome.detail)


def send_one(
    config: Config,
    variant: Variant,
    to: str,
    *,
    unsubscribe_url: str,
    name: str = "",
    test: bool = False,
    connect: smtp.ConnectionFactory | None = None,
    clock: Clock = now_utc,
) -> OneOffReport:
    """Build `variant` for address `to` (`Name <addr>` or an address) and send it now.

    Raises AddressError for a bad address, SmtpError when the server cannot be reached or
    does not accept the message.
    """
    target = parse_address(to)
    message = build_message(
        config, variant, target, unsubscribe_url=unsubscribe_url, now=clock(), name=name, test=test
    )
    return deliver(config, target, message.message_id, message.data, connect=connect)
