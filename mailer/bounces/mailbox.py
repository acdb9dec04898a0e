"""The bounce mailbox over IMAP: verified TLS, read without marking, move, never delete.

Implicit TLS (`security = "tls"`, port 993) or STARTTLS (required: a server that does not
offer it is refused); the certificate and host name are always verified, a private CA is
trusted through SSL_CERT_FILE (ssl.create_default_context honours it). Messages are read
with BODY.PEEK[] (they stay unread) and moved with UID MOVE (RFC 6851), or COPY and then
removal from the source folder where the server lacks MOVE: the message then exists in the
target folder before it leaves the source one. Nothing is ever deleted.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any

from mailer.config import BouncesConfig
from mailer.errors import MailerError
from mailer.oauth import TokenCommand, responder

DEFAULT_TIMEOUT = 30.0
_LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\) (?P<delim>"[^"]*"|NIL) (?P<name>.+)$')


class ImapError(MailerError):
    """The bounce mailbox cannot be reached, refused the login or failed (exit 1)."""


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Mailbox:
    """One IMAP session on the bounce mailbox."""

    def __init__(
        self,
        settings: BouncesConfig,
        password: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.password = password
        self.context = ssl_context or ssl.create_default_context()
        self.timeout = timeout
        self.where = f"{settings.imap_host}:{settings.imap_port}"
        self.client: imaplib.IMAP4 | None = None
        self.delimiter = "/"
        self.capabilities: set[str] = set()

    # --- session -------------------------------------------------------------------------

    def open(self) -> Mailbox:
        """Connect, secure, log in, select the folder; ImapError naming host:port on failure."""
        if not self.settings.imap_host:
            raise ImapError("bounces.imap_host is not set; `bounces import` reads files instead")
        self.client = self._connect()
        self._log_in()
        client = self._client
        # The capabilities after login (MOVE, UIDPLUS) may differ from the greeting's.
        data = self._call("CAPABILITY", client.capability)
        words = b" ".join(d for d in data if isinstance(d, bytes)).decode("ascii", "replace")
        self.capabilities = {word.upper() for word in words.split()}
        self.delimiter = self._delimiter()
        return self

    def _connect(self) -> imaplib.IMAP4:
        """A connection, secured (implicit TLS or STARTTLS), not yet logged in."""
        s = self.settings
        try:
            if s.security == "tls":
                client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    s.imap_host, s.imap_port, ssl_context=self.context, timeout=self.timeout
                )
            else:
                client = imaplib.IMAP4(s.imap_host, s.imap_port, timeout=self.timeout)
                if "STARTTLS" not in client.capabilities:
                    client.shutdown()
                    raise ImapError("the server does not offer STARTTLS", where=self.where)
                client.starttls(ssl_context=self.context)
        except ssl.SSLError as exc:
            raise ImapError(f"TLS failed: {exc.reason or exc}", where=self.where) from None
        except (OSError, imaplib.IMAP4.error) as exc:
            raise ImapError(f"cannot connect: {_text(exc)}", where=self.where) from None
        return client

    def _log_in(self) -> None:
        """Password LOGIN, or AUTHENTICATE XOAUTH2 with a fresh token (and once more with
        another fresh one when the server refuses it: it may have expired meanwhile; on a
        new connection when the server dropped the first one)."""
        s = self.settings
        command = (
            TokenCommand(s.token_command, "bounces.token_command", self.timeout)
            if s.auth == "xoauth2"
            else None
        )
        tries = 2 if command is not None else 1
        for attempt in range(tries):
            client = self._client
            try:
                if command is None:
                    client.login(s.username, self.password)
                else:
                    self._authenticate(client, command.fetch())
                return
            except imaplib.IMAP4.error as exc:
                if attempt + 1 < tries:
                    if isinstance(exc, imaplib.IMAP4.abort) or client.state != "NONAUTH":
                        self.close()
                        self.client = self._connect()
                    continue
                self.close()
                raise ImapError(f"login refused: {_text(exc)}", where=self.where) from None
            except BaseException:
                self.close()
                raise

    def _authenticate(self, client: imaplib.IMAP4, token: str) -> None:
        offered = {
            c.partition("=")[2] for c in client.capabilities if c.upper().startswith("AUTH=")
        }
        s = self.settings
        try:
            answer = responder(offered, s.username, token, s.imap_host, s.imap_port)
        except ValueError as exc:
            raise ImapError(str(exc), where=self.where) from None
        client.authenticate(answer.mechanism, lambda challenge: answer(challenge).encode())

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.logout()
        except (OSError, imaplib.IMAP4.error):
            with contextlib.suppress(OSError):
                client.shutdown()

    def __enter__(self) -> Mailbox:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, call: Callable[[], tuple[str, Any]]) -> list[Any]:
        try:
            status, data = call()
        except (OSError, imaplib.IMAP4.error) as exc:
            raise ImapError(f"{what} failed: {_text(exc)}", where=self.where) from None
        if status != "OK":
            raise ImapError(f"{what} failed: {_text(data)}", where=self.where)
        return data

    @property
    def _client(self) -> imaplib.IMAP4:
        if self.client is None:
            raise ImapError("not connected", where=self.where)
        return self.client

    # --- folders -------------------------------------------------------------------------

    def _delimiter(self) -> str:
        data = self._call("LIST", lambda: self._client.list('""', '""'))
        for line in data:
            match = _LIST_LINE.match(line) if isinstance(line, bytes) else None
            if match and match.group("delim") != b"NIL":
                return match.group("delim").strip(b'"').decode() or "/"
        return "/"

    def folder_name(self, configured: str) -> str:
        """`mailer/processed` in the server's own spelling ("/" is its delimiter)."""
        return configured.replace("/", self.delimiter) if configured != "INBOX" else configured

    def ensure(self, configured: str) -> str:
        """Create the folder (and its parents) when missing; return the server's name."""
        name = self.folder_name(configured)
        existing = self._call("LIST", lambda: self._client.list('""', _quote(name)))
        if any(line for line in existing if line):
            return name
        parts = name.split(self.delimiter)
        for depth in range(1, len(parts) + 1):
            self._create_missing(self.delimiter.join(parts[:depth]))
        return name

    def _create_missing(self, name: str) -> None:
        found = self._call("LIST", lambda: self._client.list('""', _quote(name)))
        if not any(line for line in found if line):
            self._call(f"CREATE {name}", lambda: self._client.create(_quote(name)))

    def select(self, configured: str) -> None:
        name = self.folder_name(configured)
        self._call(f"SELECT {name}", lambda: self._client.select(_quote(name)))

    # --- messages ------------------------------------------------------------------------

    def uids(self) -> list[str]:
        data = self._call("SEARCH", lambda: self._client.uid("SEARCH", "UNDELETED"))
        return [uid.decode() for uid in (data[0] or b"").split() if uid.isdigit()]

    def fetch(self, uid: str) -> bytes | None:
        """The message's bytes, read without marking it seen; None when it is gone."""
        data = self._call("FETCH", lambda: self._client.uid("FETCH", uid, "(BODY.PEEK[])"))
        for item in data:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return None

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """(UID, bytes) of every message now in the selected folder."""
        for uid in self.uids():
            raw = self.fetch(uid)
            if raw is not None:
                yield uid, raw

    def move(self, uid: str, target: str, *, seen: bool = False) -> None:
        """Move one message into `target` (created beforehand); never deletes a copy."""
        client = self._client
        if seen:
            self._call("STORE", lambda: client.uid("STORE", uid, "+FLAGS.SILENT", r"(\Seen)"))
        quoted = _quote(target)
        if "MOVE" in self.capabilities:
            self._call("MOVE", lambda: client.uid("MOVE", uid, quoted))
            return
        self._call("COPY", lambda: client.uid("COPY", uid, quoted))
        self._call("STORE", lambda: client.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)"))
        if "UIDPLUS" in self.capabilities:
            self._call("EXPUNGE", lambda: client.uid("EXPUNGE", uid))


def _text(value: object) -> str:
    if isinstance(value, (list, tuple)):
        value = b" ".join(v if isinstance(v, bytes) else str(v).encode() for v in value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, socket.timeout):
        return "timed out"
    return " ".join(str(value).split()) or type(value).__name__
