"""A pool of SMTP connections: worker threads, a shared rate limit, a pause on failures.

`SmtpPool.run` takes jobs from an iterator and two callbacks: `prepare(job)` turns a job
into an `Envelope` (or None to skip it) right before it goes out, and
`record(job, envelope, outcome)` learns what the server said. The send engine
(mailer.sending.engine) claims rows in `prepare` and writes outcomes in `record`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from mailer.errors import SmtpError
from mailer.sending.smtp import (
    DEFERRED,
    Connection,
    ConnectionFactory,
    Envelope,
    Outcome,
    SmtpLimitError,
)

J = TypeVar("J")


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
    limit: str = ""  # a reconnection refused with an answer about our sending limit


class SmtpPool(Generic[J]):
    """`connections` worker threads, each with one reused connection, sharing a rate limit.

    `pause_after` consecutive failures of the server or connection as a whole (not
    per-recipient answers) stop the pool with `paused` set. `stop` may be shared with the
    caller, which sets it to end the run early (a quota, a lost lease, a cancel).
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
        stop: threading.Event | None = None,
    ) -> None:
        self.factory = factory
        self.size = max(1, connections)
        self.messages_per_connection = messages_per_connection
        self.limiter = RateLimiter(rate)
        self.pause_after = pause_after
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.stop = stop if stop is not None else threading.Event()
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
                    limit = isinstance(exc, SmtpLimitError)
                    outcome = Outcome(DEFERRED, str(exc), connection_fault=True, quota=limit)
                if outcome.quota:
                    pass  # the relay's own limit: the run stops; runs in a row are counted
                elif outcome.connection_fault:
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
            except SmtpLimitError as exc:  # the relay's own limit: stop, do not count
                with self._lock:
                    self._report.limit = self._report.limit or str(exc)
                self.stop.set()
                return False
            except SmtpError as exc:
                self._fault(str(exc))
                self.stop.wait(delay)
                delay = min(delay * 2, self.max_reconnect_delay)
        return False
