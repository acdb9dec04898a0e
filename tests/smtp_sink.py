"""A real SMTP server on loopback (aiosmtpd) that records what it receives.

Tests script its answers: `sink.rcpt_reply` and `sink.data_reply` may return an SMTP reply
line such as "451 4.3.0 try later" (or None to accept); `sink.drop_at` closes the connection.
"""

from __future__ import annotations

import email
import email.policy
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from mailer.capture import free_port

__all__ = ["Received", "SinkHandler", "SmtpSink", "free_port"]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class SinkHandler:
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    rcpt_reply: Callable[[str], str | None] | None = None
    data_reply: Callable[[Received], str | None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        reply = self.rcpt_reply(address) if self.rcpt_reply else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        item = Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        reply = self.data_reply(item) if self.data_reply else None
        if reply:
            return reply
        with self.lock:
            self.received.append(item)
        return "250 Message accepted"


class SmtpSink:
    """aiosmtpd on 127.0.0.1:port, started and stopped by the test."""

    def __init__(self, *, smtputf8: bool = True, handler: SinkHandler | None = None) -> None:
        self.handler = handler or SinkHandler()
        self.port = free_port()
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            enable_SMTPUTF8=smtputf8,
            data_size_limit=50 * 1024 * 1024,
        )

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def recipients(self) -> list[str]:
        return [r for item in self.received for r in item.rcpt_tos]

    def copies(self) -> Counter[str]:
        return Counter(self.recipients())
