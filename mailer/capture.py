"""A local SMTP server that keeps what it receives in a Maildir (for the demo and trials)."""

from __future__ import annotations

import contextlib
import mailbox
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailer.errors import InputError


@dataclass
class MaildirHandler:
    """aiosmtpd handler: one Maildir message per recipient, bytes exactly as received."""

    maildir: Path
    count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._box = mailbox.Maildir(str(self.maildir), create=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        with self.lock:
            for _ in envelope.rcpt_tos:
                self._box.add(raw)
                self.count += 1
        return "250 Message accepted for delivery"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free now (aiosmtpd cannot be given port 0)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _probe_bind(host: str, port: int) -> None:
    """Bind host:port for a moment (as asyncio will) so a bad or busy one fails at once."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


class CaptureServer:
    """aiosmtpd on host:port writing every message into `maildir`; start() and stop()."""

    def __init__(self, maildir: Path, *, host: str = "127.0.0.1", port: int | None = None):
        from aiosmtpd.controller import Controller

        self.host = host
        self.port = port or free_port(host)
        self.handler = MaildirHandler(Path(maildir))
        self._controller = Controller(
            self.handler,
            hostname=host,
            port=self.port,
            enable_SMTPUTF8=True,
            data_size_limit=64 * 1024 * 1024,
            ready_timeout=10,
        )

    def start(self) -> CaptureServer:
        """Listen now; on failure stop the controller's thread and raise InputError."""
        try:
            _probe_bind(self.host, self.port)  # fail now, not after aiosmtpd's ready_timeout
            self._controller.start()
        except (OSError, OverflowError, RuntimeError) as exc:
            self._abandon()
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise InputError(
                f"cannot listen for SMTP: {reason}", where=f"{self.host}:{self.port}"
            ) from None
        return self

    def _abandon(self) -> None:
        """Stop whatever a failed start left running (its thread and event loop)."""
        with contextlib.suppress(Exception):  # best effort after a failed start
            self._controller.stop(no_assert=True)
        loop = self._controller.loop
        if not loop.is_running() and not loop.is_closed():
            loop.close()

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> CaptureServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def received(self) -> int:
        return self.handler.count
