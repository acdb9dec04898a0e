"""A scripted SMTP sink for the sending tests: per-recipient answers, drops, a slow server.

It extends tests/smtp_sink.py's handler: `rcpt_reply` answers chosen recipients,
`drop_rcpt_every` closes the connection at every Nth RCPT, `drop_after_data_every` keeps
every Mth message and then closes the connection without replying (the RFC 1047 case), and
`delay` slows each DATA down so that a kill lands mid-send, `hold_after` never answers
the messages after the first N (they stay in flight until the client goes away), and `gate`
(a threading.Event) holds every DATA until the test sets it.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from tests.smtp_sink import Received, SinkHandler, SmtpSink
from tests.store_helpers import add_contacts

__all__ = ["ScriptedHandler", "ScriptedSink", "add_contacts", "point_at"]


@dataclass
class ScriptedHandler(SinkHandler):
    delay: float = 0.0
    drop_rcpt_every: int = 0
    drop_after_data_every: int = 0
    hold_after: int = 0  # messages after this many are never answered (until a disconnect)
    held: int = 0
    gate: threading.Event | None = None  # when given, each DATA waits until it is set
    waiting: int = 0  # DATA commands that reached the gate
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
        reply = self.rcpt_reply(address) if self.rcpt_reply else None
        if reply:
            return reply  # scripted answers come first; drops hit only the others
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
        if self.gate is not None:
            with self.counter_lock:
                self.waiting += 1
            while not self.gate.is_set():
                await asyncio.sleep(0.01)
        if self.delay:
            await asyncio.sleep(self.delay)  # cancelled (nothing kept) if the client dies
        with self.counter_lock:
            self.data_count += 1
            drop = self.drop_after_data_every and self.data_count % self.drop_after_data_every == 0
            hold = self.hold_after and self.data_count > self.hold_after
            if hold:
                self.held += 1
        if hold:
            await asyncio.sleep(3600)  # the whole message is here; the reply never comes
        if drop:
            item = Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            with self.lock:
                self.received.append(item)
                self.dropped_after_data.extend(item.rcpt_tos)
            server.transport.close()
            await asyncio.sleep(30)
        return await super().handle_DATA(server, session, envelope)


class ScriptedSink(SmtpSink):
    """aiosmtpd on loopback with a ScriptedHandler; use as a context manager."""

    def __init__(self, *, smtputf8: bool = True, **script: object) -> None:
        super().__init__(smtputf8=smtputf8, handler=ScriptedHandler(**script))  # type: ignore[arg-type]


def point_at(workspace, port: int, **smtp: object) -> None:
    """Point the workspace's [smtp] at 127.0.0.1:port without TLS, plus any other keys."""
    workspace.set_config("smtp", "host", '"127.0.0.1"')
    workspace.set_config("smtp", "port", str(port))
    workspace.set_config("smtp", "security", '"none"')
    for key, value in smtp.items():
        workspace.set_config("smtp", key, str(value))


# --- until the newsletter and contacts modules are merged: a plain content source --------


class PlainBuilder:
    """Builds a small multipart/alternative message for one frozen variant (test content)."""

    def __init__(self, config, frozen: str) -> None:
        import json

        self.config = config
        self.variant = json.loads(frozen)

    def build(self, recipient, unsubscribe_url, *, now, test=False):
        import secrets
        from email.message import EmailMessage
        from email.policy import SMTP
        from email.utils import format_datetime

        msg = EmailMessage(policy=SMTP)
        msg["From"] = self.config.sender.address
        msg["To"] = recipient.wire_email
        msg["Subject"] = ("[TEST] " if test else "") + self.variant["subject"]
        msg["Date"] = format_datetime(now)
        message_id = f"<{secrets.token_hex(8)}@arcticsmartness.eu>"
        msg["Message-ID"] = message_id
        msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content(f"{self.variant['body']}\n{unsubscribe_url}\n")
        msg.add_alternative(
            f"<p>{self.variant['body']}</p><a href='{unsubscribe_url}'>x</a>", subtype="html"
        )
        return Built(message_id, msg.as_bytes())


@dataclass(frozen=True)
class Built:
    message_id: str
    data: bytes


@dataclass(frozen=True)
class PlainRecipient:
    email: str
    name: str
    wire_email: str


class PlainContent:
    """A Content for the send engine: definition JSON {"variants": {lang: {subject, body}}}."""

    def render(self, config, definition):
        import json

        return {k: json.dumps(v) for k, v in json.loads(definition)["variants"].items()}

    def builder(self, config, frozen):
        return PlainBuilder(config, frozen)

    def recipient(self, email, name, wire_email, first_name=""):
        return PlainRecipient(email, name, wire_email)

    def fallback_language(self, config, definition, languages):
        from mailer.newsletter.spec import fallback_language

        return fallback_language(languages, config.defaults.language)

    def audience(self, conn, config, segment):
        if segment == "all":
            return "1 = 1", []
        kind, _, slug = segment.partition(":")
        return (
            "c.id IN (SELECT m.contact_id FROM memberships m JOIN lists l ON l.id = m.list_id"
            " WHERE l.kind = ? AND l.slug = ?)",
            [kind, slug],
        )


def add_campaign(store, name="issue-1", segment="all", send_at=None, langs=("fi", "en")):
    import json

    from mailer.states import CampaignStatus
    from mailer.store import campaigns as q
    from mailer.timeutil import now_utc

    definition = json.dumps(
        {
            "variants": {
                lang: {"subject": f"Uutiset {lang}", "body": f"Body {lang}"} for lang in langs
            }
        }
    )
    with store.transaction() as conn:
        return q.insert_campaign(
            conn,
            name=name,
            source_path="campaign.toml",
            definition=definition,
            segment=segment,
            status=CampaignStatus.SCHEDULED if send_at else CampaignStatus.DRAFT,
            send_at=send_at,
            now=now_utc(),
        )


class LimitingRelay:
    """A bare SMTP server on loopback that greets its first `allow` connections and answers
    every later one with `refusal` at the greeting (a relay's connection or rate limit).

    Plain sockets and a thread per connection: aiosmtpd has no hook for the greeting.
    """

    def __init__(self, allow: int, refusal: str) -> None:
        import socket

        self.allow, self.refusal = allow, refusal
        self.connections = 0
        self.recipients: list[str] = []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> LimitingRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                refuse = self.connections > self.allow
            threading.Thread(target=self._session, args=(sock, refuse), daemon=True).start()

    def _session(self, sock, refuse: bool) -> None:
        with sock, sock.makefile("rb") as lines:
            if refuse:
                sock.sendall(self.refusal.encode() + b"\r\n")
                return
            sock.sendall(b"220 relay.example ESMTP\r\n")
            rcpt = ""
            for raw in lines:
                verb = raw[:4].upper()
                if verb == b"EHLO":
                    sock.sendall(b"250-relay.example\r\n250 8BITMIME\r\n")
                elif verb == b"RCPT":
                    rcpt = raw.decode().split("<", 1)[1].split(">", 1)[0]
                    sock.sendall(b"250 OK\r\n")
                elif verb == b"DATA":
                    sock.sendall(b"354 go on\r\n")
                    for line in lines:
                        if line == b".\r\n":
                            break
                    with self.lock:
                        self.recipients.append(rcpt)
                    sock.sendall(b"250 queued\r\n")
                elif verb == b"QUIT":
                    sock.sendall(b"221 bye\r\n")
                    return
                else:  # MAIL, RSET, NOOP
                    sock.sendall(b"250 OK\r\n")
