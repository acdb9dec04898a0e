"""What the areas of the web service share, handed to each area's route factory."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from mailer.audience.signups import ConsentText, register_consent
from mailer.audience.spool import OneClickSpool
from mailer.config import Config
from mailer.store import Store
from mailer.web.pages import Pages, page_headers


class StorePool:
    """A small pool of store connections, one per worker thread at most."""

    def __init__(self, config: Config) -> None:
        self.path = config.database_path
        self._idle: queue.SimpleQueue[Store] = queue.SimpleQueue()
        # SQLite admits one writer at a time and its busy handler sleeps in growing steps;
        # queueing our own writers on a lock keeps the tail latency down under load, and
        # only this one lock holder competes with other processes (a running send).
        self.write_lock = threading.Lock()
        # One-click unsubscribes that met a locked database wait here (see audience.spool).
        self.spool = OneClickSpool(self.path)
        Store(self.path).close()  # create or migrate once, before serving

    @contextmanager
    def get(self) -> Iterator[Store]:
        try:
            store = self._idle.get_nowait()
        except queue.Empty:
            store = Store(self.path, migrate=False)
        try:
            yield store
        finally:
            self._idle.put(store)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


@dataclass(frozen=True)
class Site:
    """The configuration, the store pool with its write lock, and the pages."""

    config: Config
    stores: StorePool
    pages: Pages
    secrets: tuple[bytes, ...]
    default_headers: dict[str, str] = field(default_factory=dict)
    # What an area started (a writer thread) and must finish before the store closes.
    closers: list[Callable[[], None]] = field(default_factory=list)
    consent: ConsentText | None = None  # with [signup]: the consent text, registered at start
    outbox_wake: threading.Event = field(default_factory=threading.Event)  # mail was queued

    @classmethod
    def open(cls, config: Config) -> Site:
        """Read the secrets, load the templates and open (create or migrate) the store."""
        pages = Pages(config)
        stores = StorePool(config)
        consent = None
        if config.signup is not None:
            from mailer.timeutil import now_utc

            with stores.get() as store:
                consent = register_consent(store, config, now_utc())
        return cls(
            config=config,
            stores=stores,
            pages=pages,
            secrets=tuple(config.secrets()),
            default_headers=page_headers(pages.css),
            consent=consent,
        )

    @property
    def default_language(self) -> str:
        return self.config.defaults.language

    def close(self) -> None:
        for closer in reversed(self.closers):
            closer()
        self.stores.close()
