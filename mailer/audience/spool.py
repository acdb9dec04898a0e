"""One-click unsubscribes that met a locked database, kept on disk until it is free.

A mailbox provider sends an RFC 8058 one-click POST once and never repeats it, so the web
service answers 200 only once the unsubscribe is durable: in the database, or, when the
database stays locked past its busy timeout, as one fsynced line in this spool file beside
it (`mailer.db.spool`, readable by its owner only). `replay` moves the spooled lines into
the database through `subscriptions.unsubscribe` as soon as it is free; an unsubscribe of
a contact who already is unsubscribed records nothing, so a replay that is cut short and
runs again records each one once. Lines hold ids and a time, never an address.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mailer.audience import subscriptions
from mailer.errors import NotFoundError
from mailer.timeutil import from_db, to_db

if TYPE_CHECKING:
    from mailer.store import Store

SOURCE = "one-click"


@dataclass(frozen=True)
class Spooled:
    campaign_id: int
    contact_id: int
    at: datetime


class OneClickSpool:
    """The spool file of one database; safe to use from the threads of one process."""

    def __init__(self, database_path: Path) -> None:
        self.path = Path(f"{database_path}.spool")
        self.replaying = Path(f"{database_path}.spool.replaying")
        self._lock = threading.Lock()

    def append(self, campaign_id: int, contact_id: int, at: datetime) -> None:
        """Write one unsubscribe durably (fsync) before the caller answers 200."""
        line = json.dumps({"campaign": campaign_id, "contact": contact_id, "at": to_db(at)})
        with self._lock:
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:  # the new file's name must survive a power cut too
                folder = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(folder)
                finally:
                    os.close(folder)

    def pending(self) -> bool:
        return self.path.exists() or self.replaying.exists()

    def replay(self, store: Store) -> int:
        """Record every spooled unsubscribe in one transaction; return how many were read.

        Raises sqlite3.Error when the database is still busy: the lines stay for next time.
        """
        with self._lock:
            if not self.replaying.exists():
                if not self.path.exists():
                    return 0
                os.replace(self.path, self.replaying)  # new POSTs go to a fresh file
        entries = list(_read(self.replaying))
        with store.transaction():
            for entry in entries:
                # A contact forgotten, or a campaign deleted, since: nothing left to record.
                with contextlib.suppress(NotFoundError):
                    subscriptions.unsubscribe(
                        store, entry.contact_id, entry.campaign_id, SOURCE, entry.at
                    )
        self.replaying.unlink()
        return len(entries)


def _read(path: Path) -> list[Spooled]:
    entries = []
    for line in path.read_text(encoding="ascii", errors="replace").splitlines():
        try:
            data = json.loads(line)
            entries.append(
                Spooled(int(data["campaign"]), int(data["contact"]), from_db(data["at"]))
            )
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash mid-write was never answered 200
    return entries
