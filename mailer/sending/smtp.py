"""SMTP: verified TLS, timeouts, a pool of reused connections, a rate limit, outcomes.

This module knows nothing of the database. `SmtpPool.run` takes jobs from an iterator and
two callbacks: `prepare(job)` turns a job into an `Envelope` (or None to skip it) right
before it goes out, and `record(job, envelope, outcome)` learns what the server said. The
delivery engine (mailer.sending.engine) claims rows in `prepare` and writes outcomes in `record`.

Outcomes follow RFC 5321 and RFC 1047: 2xx sent; 4xx, or a connection lost before the
whole message was sent, deferred; a connection lost after the final "." but before the
reply, unknown (the server may hold the message); 5xx failed.
"""

from __future__ import annotations

import contextlib
import functools
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from mailer.errors import SmtpError

SENT = "sent"
DEFERRED = "deferred"
FAILED = "failed"
UNKNOWN = "unknown"
REFUSED = "refused"  # not offered to the server: it lacks SMTPUTF8 for this address

DEFAULT_TIMEOUT = 30.0

J = TypeVar("J")
ConnectionFactory = Callable[[], smtplib.SMTP]


@dataclass(frozen=True)
class Envelope:
    """One message for one recipient: envelope addresses and the exact bytes (CRLF)."""

    mail_from: str
    rcpt: str
    data: bytes
    needs_smtputf8: bool = False


@dataclass(frozen=True)
class Outcome:
    """What became of one envelope."""

    status: str  # sent | deferred | failed | unknown | refused
    detail: str  # one line: the server's reply or what happened to the connection
    code: int | None = None
    connection_fault: bool = False  # the server or connection failed as a whole
    bounce: bool = False  # a 5xx answer about this recipient: mark the address bounced


@functools.cache
def _local_hostname() -> str:
    # smtplib would call getfqdn() for every connection; it can be slow without DNS.
    return socket.getfqdn()


def connect(
    host: str,
    port: int,
    *,
    security: str = "starttls",
    username: str = "",
    password: str = "",
    timeout: float = DEFAULT_TIMEOUT,
    ssl_context: ssl.SSLContext | None = None,
) -> smtplib.SMTP:
    """Open one connection: greet, secure it (certificate verified), authenticate.

    Raises SmtpError naming host:port when any step fails.
    """
    where = f"{host}:{port}"
    timeout = timeout or DEFAULT_TIMEOUT  # every connection has a timeout
    context = ssl_context
    if context is None and security != "none":
        context = ssl.create_default_context()  # verifies the certificate and the host name
    client: smtplib.SMTP | None = None
    try:
        if security == "tls":
            client = smtplib.SMTP_SSL(
                host, port, local_hostname=_local_hostname(), timeout=timeout, context=context
            )
        else:
            client = smtplib.SMTP(host, port, local_hostname=_local_hostname(), timeout=timeout)
        client.ehlo()
        if security == "starttls":
            if not client.has_extn("starttls"):
                raise SmtpError("the server does not offer STARTTLS", where=where)
            client.starttls(context=context)
            client.ehlo()
        if username:
            client.login(username, password)
    except SmtpError:
        _close_quietly(client)
        raise
    except smtplib.SMTPAuthenticationError as exc:
        _close_quietly(client)
        raise SmtpError(f"authentication failed: {_reply_text(exc)}", where=where) from None
    except ssl.SSLError as exc:
        _close_quietly(client)
        raise SmtpError(f"TLS failed: {exc.reason or exc}", where=where) from None
    except (OSError, smtplib.SMTPException) as exc:
        _close_quietly(client)
        raise SmtpError(f"cannot connect: {_reply_text(exc)}", where=where) from None
    return client


def config_factory(smtp: object, password: str, ssl_context: ssl.SSLContext | None = None):
    """Return a ConnectionFactory for a `mailer.config.SmtpConfig`."""
    if ssl_context is None and smtp.security != "none":  # type: ignore[attr-defined]
        ssl_context = ssl.create_default_context()  # once: loading the CA store is slow

    def factory() -> smtplib.SMTP:
        return connect(
            smtp.host,  # type: ignore[attr-defined]
            smtp.port,  # type: ignore[attr-defined]
            security=smtp.security,  # type: ignore[attr-defined]
            username=smtp.username,  # type: ignore[attr-defined]
            password=password,
            timeout=smtp.timeout,  # type: ignore[attr-defined]
            ssl_context=ssl_context,
        )

    return factory


def _close_quietly(client: smtplib.SMTP | None) -> None:
    if client is None:
        return
    with contextlib.suppress(OSError):
        client.close()


def _reply_text(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        return f"{exc.smtp_code} {' '.join(text.split())}"
    return " ".join(str(exc).split()) or type(exc).__name__


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {' '.join(text.split())}".strip()


def _command(
    client: smtplib.SMTP, verb: str, argument: str, options: Sequence[str] = ()
) -> tuple[int, bytes]:
    """MAIL/RCPT with an address already validated (smtplib would re-parse it each time)."""
    if any(ch in argument for ch in "\r\n"):
        raise ValueError(f"line break in SMTP argument {argument!r}")
    client.putcmd(verb, " ".join((argument, *options)))
    return client.getreply()


def wire_data(data: bytes) -> bytes:
    """Dot-stuff `data` (RFC 5321 4.5.2) and end it with CRLF "." CRLF."""
    stuffed = data.replace(b"\n.", b"\n..")  # every line that starts with "." gets another
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


class Connection:
    """One SMTP connection, reused up to `max_messages` and reopened after 421 or a drop."""

    def __init__(self, factory: ConnectionFactory, max_messages: int = 100) -> None:
        self.factory = factory
        self.max_messages = max(1, max_messages)
        self.client: smtplib.SMTP | None = None
        self.used = 0
        self.opened = 0  # connections opened over the life of this object

    def open(self) -> None:
        """Make sure a connection is open (raises SmtpError)."""
        if self.client is None:
            self.client = self.factory()
            self.used = 0
            self.opened += 1

    def close(self) -> None:
        """Say QUIT and close; never raises."""
        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            _close_quietly(client)

    def _drop(self) -> None:
        client, self.client = self.client, None
        _close_quietly(client)

    def _rset(self) -> None:
        try:
            assert self.client is not None
            self.client.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def send(self, env: Envelope) -> Outcome:
        """Send one envelope on this connection (opening it if needed) and classify the result."""
        self.open()
        client = self.client
        assert client is not None
        if env.needs_smtputf8 and not client.has_extn("smtputf8"):
            return Outcome(REFUSED, "not sent: the address needs SMTPUTF8, which the server lacks")
        self.used += 1
        try:
            outcome = self._transaction(client, env)
        finally:
            if self.client is not None and self.used >= self.max_messages:
                self.close()
        return outcome

    def _transaction(self, client: smtplib.SMTP, env: Envelope) -> Outcome:
        options: list[str] = []
        if env.needs_smtputf8:
            options.append("SMTPUTF8")
            if client.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")
        before = "connection lost before the message was sent"
        if env.needs_smtputf8:
            client.command_encoding = "utf-8"
        try:
            code, msg = _command(client, "mail", f"FROM:<{env.mail_from}>", options)
            if code != 250:
                # MAIL FROM is about us, not the recipient: the server refuses us as a whole.
                if code == 421:
                    self._drop()
                else:
                    self._rset()
                return Outcome(DEFERRED, _reply(code, msg), code, connection_fault=True)
            code, msg = _command(client, "rcpt", f"TO:<{env.rcpt}>")
            if code not in (250, 251):
                return self._refused(code, msg)
            client.putcmd("data")
            code, msg = client.getreply()
            if code != 354:
                return self._refused(code, msg)
            payload = wire_data(env.data)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            return Outcome(DEFERRED, f"{before}: {_reply_text(exc)}", connection_fault=True)
        try:
            client.send(payload)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            return Outcome(DEFERRED, f"{before}: {_reply_text(exc)}", connection_fault=True)
        try:
            code, msg = client.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            # RFC 1047: the whole message was sent; the server may have kept it.
            self._drop()
            return Outcome(
                UNKNOWN,
                f"connection lost after the message was sent, before the reply: {_reply_text(exc)}",
                connection_fault=True,
            )
        if 200 <= code < 300:
            return Outcome(SENT, _reply(code, msg), code)
        if code == 421:
            self._drop()
            return Outcome(DEFERRED, _reply(code, msg), code, connection_fault=True)
        if 400 <= code < 500:
            return Outcome(DEFERRED, _reply(code, msg), code)
        if 500 <= code < 600:
            return Outcome(FAILED, _reply(code, msg), code, bounce=True)
        self._drop()
        return Outcome(
            UNKNOWN, f"unexpected reply after the message: {_reply(code, msg)}", code, True
        )

    def _refused(self, code: int, msg: bytes) -> Outcome:
        """A refusal before DATA was sent: reset the transaction and classify it."""
        if code == 421:
            self._drop()
            return Outcome(DEFERRED, _reply(code, msg), code, connection_fault=True)
        self._rset()
        if 400 <= code < 500:
            return Outcome(DEFERRED, _reply(code, msg), code)
        if 500 <= code < 600:
            return Outcome(FAILED, _reply(code, msg), code, bounce=True)
        self._drop()
        return Outcome(DEFERRED, f"unexpected reply: {_reply(code, msg)}", code, True)


class RateLimiter:
    """At most `rate` acquisitions per second over all threads (0 = no limit)."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.clock = clock
        self.sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event | None = None) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self.clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        delay = slot - now
        if delay > 0:
            if stop is not None:
                stop.wait(delay)
            else:
                self.sleep(delay)


@dataclass
class PoolReport:
    """What the pool did: counts per outcome and whether it stopped early."""

    outcomes: dict[str, int] = field(default_factory=dict)
    connections_opened: int = 0
    paused: bool = False  # too many consecutive server/connection failures
    pause_reason: str = ""
    stopped: bool = False  # stop was set from outside (quota, lease, cancel)


class SmtpPool(Generic[J]):
    """`connections` worker threads, each with one reused connection, sharing a rate limit.

    `pause_after` consecutive failures of the server or connection as a whole (not
    per-recipient answers) stop the pool with `paused` set.
    """

    def __init__(
        self,
        factory: ConnectionFactory,
        *,
        connections: int = 4,
        messages_per_connection: int = 100,
        rate: float = 0.0,
        pause_after: int = 25,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 2.0,
    ) -> None:
        self.factory = factory
        self.size = max(1, connections)
        self.messages_per_connection = messages_per_connection
        self.limiter = RateLimiter(rate)
        self.pause_after = pause_after
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.stop = threading.Event()
        self._first: Connection | None = None
        self._lock = threading.Lock()
        self._consecutive = 0
        self._report = PoolReport()
        self._error: BaseException | None = None

    def check(self) -> None:
        """Open the first connection now, so that an unreachable server fails before any work.

        Raises SmtpError; the connection is kept for the first worker.
        """
        conn = Connection(self.factory, self.messages_per_connection)
        conn.open()
        self._first = conn

    def discard(self) -> None:
        """Close the connection `check` opened, when the run will not happen."""
        first, self._first = self._first, None
        if first is not None:
            first.close()

    def run(
        self,
        jobs: Iterable[J],
        prepare: Callable[[J], Envelope | None],
        record: Callable[[J, Envelope, Outcome], None],
        *,
        tick: Callable[[], None] | None = None,
        tick_every: float = 0.5,
        finish: Callable[[], None] | None = None,
    ) -> PoolReport:
        """Send every job; call `tick` from this thread every `tick_every` seconds.

        `finish` runs in each worker thread as it ends (to flush what `record` buffered).
        """
        iterator = iter(jobs)
        source_lock = threading.Lock()

        def next_job() -> J | None:
            with source_lock:
                if self.stop.is_set():
                    return None
                try:
                    return next(iterator)
                except StopIteration:
                    return None

        first, self._first = self._first, None
        # Workers report their end through this event: Thread.join() interrupted by a
        # signal (Ctrl-C, SIGTERM) can wrongly mark a running thread as stopped on 3.11.
        done = threading.Event()
        running = [self.size]

        def worker(conn: Connection | None) -> None:
            try:
                self._worker(conn, next_job, prepare, record, finish)
            finally:
                with self._lock:
                    running[0] -= 1
                    if running[0] == 0:
                        done.set()

        threads = [
            threading.Thread(
                target=worker, args=(first if i == 0 else None,), name=f"smtp-{i}", daemon=True
            )
            for i in range(self.size)
        ]
        for thread in threads:
            thread.start()
        try:
            while not done.wait(tick_every):
                if tick is not None and self._error is None:
                    try:
                        tick()
                    except BaseException as exc:  # a tick failure stops the pool, then re-raises
                        self._fail(exc)
        except BaseException:
            # Interrupted: the workers finish and record the messages in flight, then stop.
            self.stop.set()
            done.wait()
            raise
        if tick is not None and self._error is None:
            tick()
        if self._error is not None:
            raise self._error
        if self.stop.is_set() and not self._report.paused:
            self._report.stopped = True
        return self._report

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._error is None:
                self._error = exc
        self.stop.set()

    def _fault(self, detail: str) -> None:
        with self._lock:
            self._consecutive += 1
            if (
                self.pause_after
                and self._consecutive >= self.pause_after
                and not self._report.paused
            ):
                self._report.paused = True
                self._report.pause_reason = (
                    f"{self._consecutive} consecutive server or connection failures; last: {detail}"
                )
                self.stop.set()

    def _ok(self) -> None:
        with self._lock:
            self._consecutive = 0

    def _count(self, status: str) -> None:
        with self._lock:
            self._report.outcomes[status] = self._report.outcomes.get(status, 0) + 1

    def _worker(
        self,
        conn: Connection | None,
        next_job: Callable[[], J | None],
        prepare: Callable[[J], Envelope | None],
        record: Callable[[J, Envelope, Outcome], None],
        finish: Callable[[], None] | None,
    ) -> None:
        conn = conn or Connection(self.factory, self.messages_per_connection)
        try:
            while not self.stop.is_set():
                job = next_job()
                if job is None:
                    break
                if not self._open(conn):
                    break  # stopped while the server was unreachable; the job stays untouched
                self.limiter.wait(self.stop)
                if self.stop.is_set():
                    break
                envelope = prepare(job)
                if envelope is None:
                    continue
                try:
                    outcome = conn.send(envelope)
                except SmtpError as exc:  # reopening failed inside send
                    outcome = Outcome(DEFERRED, str(exc), connection_fault=True)
                if outcome.connection_fault:
                    self._fault(outcome.detail)
                else:
                    self._ok()
                self._count(outcome.status)
                record(job, envelope, outcome)
        except BaseException as exc:
            self._fail(exc)
        finally:
            try:
                if finish is not None:
                    finish()
            except BaseException as exc:
                self._fail(exc)
            conn.close()
            with self._lock:
                self._report.connections_opened += conn.opened

    def _open(self, conn: Connection) -> bool:
        delay = self.reconnect_delay
        while not self.stop.is_set():
            try:
                conn.open()
                return True
            except SmtpError as exc:
                self._fault(str(exc))
                self.stop.wait(delay)
                delay = min(delay * 2, self.max_reconnect_delay)
        return False
