"""Click counting: the redirect's lookups, a writer that batches the counts, the purge.

The web service answers `GET /l/{token}` with its 302 at once and hands the click to a
`ClickRecorder`: a thread that writes the waiting clicks in one transaction every half
second (or sooner when many wait). So counting never slows a redirect, and a locked
database only delays the counts: the clicks wait in memory and are written once it is
free. Nothing is dropped silently: what cannot be written when the service stops is
reported on its log.

Not counted as people: HEAD requests, test tokens (delivery 0), and clicks within
`tracking.ignore_first_seconds` of the message being sent (mail scanners fetch every link on
arrival; they are counted apart as `early`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from mailer.config import Config
from mailer.store import Store
from mailer.store import engagement as q
from mailer.store.engagement import CampaignClicks, Click, Tally
from mailer.timeutil import now_utc
from mailer.tokens import LinkSubject, verify_link_token

TEST_DELIVERY_ID = 0  # link tokens of test messages name no delivery: never counted
FLUSH_SECONDS = 0.5
BATCH = 2000
PURGE_EVERY_SECONDS = 3600.0

__all__ = ["Click", "ClickRecorder", "LinkTargets", "campaign_clicks", "purge_expired"]


# --- the redirect ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a valid click token leads, and whether its click may count."""

    subject: LinkSubject
    url: str

    @property
    def countable(self) -> bool:
        return self.subject.delivery_id != TEST_DELIVERY_ID


class LinkTargets:
    """Verify link tokens and find their stored URLs (cached: a link never changes)."""

    def __init__(
        self, secrets: Sequence[bytes], stores: Callable[[], AbstractContextManager[Store]]
    ):
        self.secrets = tuple(secrets)
        self.stores = stores
        self._urls: dict[int, tuple[int, str] | None] = {}

    def verify(self, token: str) -> LinkSubject | None:
        return verify_link_token(self.secrets, token)

    def cached(self, subject: LinkSubject) -> Target | None | bool:
        """The target when known; False when the store must be asked (`lookup`)."""
        if subject.link_id not in self._urls:
            return False
        return self._target(subject, self._urls[subject.link_id])

    def lookup(self, subject: LinkSubject) -> Target | None:
        """The target from the store (a read; runs in a worker thread)."""
        with self.stores() as store:
            found = q.link_target(store.conn, subject.link_id)
        if found is not None or len(self._urls) < 100_000:
            self._urls[subject.link_id] = found
        return self._target(subject, found)

    @staticmethod
    def _target(subject: LinkSubject, found: tuple[int, str] | None) -> Target | None:
        if found is None or found[0] != subject.campaign_id:
            return None  # a link of another campaign: only its own token leads there
        return Target(subject, found[1])


# --- the counts' writer ---------------------------------------------------------------------


class ClickRecorder:
    """Batch the clicks into the store from one thread; see the module docstring."""

    def __init__(
        self,
        open_store: Callable[[], Store],
        write_lock: AbstractContextManager[object],
        *,
        ignore_seconds: float,
        keep_days: int,
        log: Callable[[str], None],
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.open_store = open_store
        self.write_lock = write_lock
        self.ignore_seconds = ignore_seconds
        self.keep_days = keep_days
        self.log = log
        self.clock = clock
        self.tally = Tally()
        self._waiting: deque[Click] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._store: Store | None = None
        self._next_purge = 0.0

    def start(self) -> ClickRecorder:
        self._thread = threading.Thread(target=self._run, name="mailer-clicks", daemon=True)
        self._thread.start()
        return self

    def add(self, click: Click) -> None:
        """Queue one click (called on the event loop: no I/O here)."""
        self._waiting.append(click)
        if len(self._waiting) >= BATCH:
            self._wake.set()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            self.flush()
            if time.monotonic() >= self._next_purge:
                self._purge()

    def flush(self) -> bool:
        """Write what waits; on a locked or failing database keep it for the next try."""
        while self._waiting:
            batch = [self._waiting.popleft() for _ in range(min(BATCH, len(self._waiting)))]
            try:
                store = self._connection()
                with self.write_lock, store.transaction() as conn:
                    tally = q.record_clicks(conn, batch, ignore_seconds=self.ignore_seconds)
            except sqlite3.Error as exc:
                self._waiting.extendleft(reversed(batch))
                self.log(f"clicks: {len(self._waiting)} waiting to be counted ({exc})")
                return False
            self.tally.counted += tally.counted
            self.tally.early += tally.early
            self.tally.ignored += tally.ignored
        return True

    def _purge(self) -> None:
        self._next_purge = time.monotonic() + PURGE_EVERY_SECONDS
        try:
            store = self._connection()
            with self.write_lock, store.transaction() as conn:
                purged = q.purge_hashes(conn, self.clock(), self.keep_days)
        except sqlite3.Error as exc:
            self._next_purge = time.monotonic() + 60
            self.log(f"clicks: the purge of old unique-click hashes waits ({exc})")
            return
        if purged:
            self.log(f"clicks: unique-click hashes of {len(purged)} campaign(s) deleted")

    def _connection(self) -> Store:
        if self._store is None:
            self._store = self.open_store()
        return self._store

    def close(self, tries: int = 3) -> None:
        """Stop the thread and write what still waits (a few tries); report what cannot be."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for _ in range(tries):
            if self.flush():
                break
        if self._waiting:
            self.log(f"clicks: {len(self._waiting)} click(s) could not be counted at shutdown")
        if self._store is not None:
            self._store.close()
            self._store = None


# --- the core functions of the commands ------------------------------------------------------


def purge_expired(store: Store, config: Config, *, now: datetime) -> list[int]:
    """Delete the unique-click hashes of campaigns frozen over `keep_days` ago."""
    with store.transaction() as conn:
        return q.purge_hashes(conn, now, config.tracking.keep_days)


def campaign_clicks(conn: sqlite3.Connection, campaign_id: int) -> CampaignClicks | None:
    """The click counts of a campaign sent with click counting on, else None."""
    return q.campaign_clicks(conn, campaign_id)
