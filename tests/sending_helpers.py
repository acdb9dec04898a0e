"""A scripted SMTP sink for the sending tests: per-recipient answers, drops, a slow server.

It extends tests/smtp_sink.py's handler: `rcpt_reply` answers chosen recipients,
`drop_rcpt_every` closes the connection at every Nth RCPT, `drop_after_data_every` keeps
every Mth message and then closes the connection without replying (the RFC 1047 case), and
`delay` slows each DATA down so that a kill lands mid-send.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller

from tests.smtp_sink import Received, SinkHandler, free_port


@dataclass
class ScriptedHandler(SinkHandler):
    delay: float = 0.0
    drop_rcpt_every: int = 0
    drop_after_data_every: int = 0
    ehlos: int = 0
    rcpt_count: int = 0
    data_count: int = 0
    dropped_at_rcpt: list[str] = field(default_factory=list)
    dropped_after_data: list[str] = field(default_factory=list)
    counter_lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        with self.counter_lock:
            self.ehlos += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        with self.counter_lock:
            self.rcpt_count += 1
            drop = self.drop_rcpt_every and self.rcpt_count % self.drop_rcpt_every == 0
            if drop:
                self.dropped_at_rcpt.append(address)
        if drop:
            server.transport.close()
            await asyncio.sleep(30)  # cancelled when aiosmtpd sees the connection go
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.delay:
            await asyncio.sleep(self.delay)  # cancelled (nothing kept) if the client dies
        with self.counter_lock:
            self.data_count += 1
            drop = self.drop_after_data_every and self.data_count % self.drop_after_data_every == 0
        if drop:
            item = Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            with self.lock:
                self.received.append(item)
                self.dropped_after_data.extend(item.rcpt_tos)
            server.transport.close()
            await asyncio.sleep(30)
        return await super().handle_DATA(server, session, envelope)


class ScriptedSink:
    """aiosmtpd on loopback with a ScriptedHandler; use as a context manager."""

    def __init__(self, *, smtputf8: bool = True, **script: object) -> None:
        self.handler = ScriptedHandler(**script)  # type: ignore[arg-type]
        self.port = free_port()
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            enable_SMTPUTF8=smtputf8,
            data_size_limit=50 * 1024 * 1024,
        )

    def __enter__(self) -> ScriptedSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def recipients(self) -> list[str]:
        return [r for item in self.received for r in item.rcpt_tos]

    def copies(self) -> Counter[str]:
        return Counter(self.recipients())


def point_at(workspace, port: int, **smtp: object) -> None:
    """Point the workspace's [smtp] at 127.0.0.1:port without TLS, plus any other keys."""
    workspace.set_config("smtp", "host", '"127.0.0.1"')
    workspace.set_config("smtp", "port", str(port))
    workspace.set_config("smtp", "security", '"none"')
    for key, value in smtp.items():
        workspace.set_config("smtp", key, str(value))
