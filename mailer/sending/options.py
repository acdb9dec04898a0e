"""What a send run is given (options, retry policy, context) and what it reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mailer.config import Config
from mailer.sending import smtp
from mailer.sending.content import Clock, Content, NewsletterContent
from mailer.states import DeliveryStatus
from mailer.store import Store
from mailer.timeutil import now_utc

D = DeliveryStatus


# --- what a run is asked to do -------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    """One pass of the pool over the campaign's rows."""

    statuses: tuple[DeliveryStatus, ...]  # rows in these statuses are sent
    due: datetime | None = None  # and deferred rows whose next attempt is due by then
    owner: str | None = None  # only rows this run claimed (its in-run retries)
    delay: float = 0.0  # seconds to wait before the pass


@dataclass(frozen=True)
class RetryPolicy:
    """When a recipient the server deferred (4xx, a lost connection) is tried again.

    An explicit `send` retries its own deferrals after each of `delays` seconds; later runs
    retry after an exponential backoff; after [smtp] max_attempts tries spread over at
    least `give_up_after`, the recipient is failed.
    """

    delays: tuple[float, ...] = (1.0, 4.0)
    backoff_base: timedelta = timedelta(minutes=5)
    backoff_max: timedelta = timedelta(hours=6)
    give_up_after: timedelta = timedelta(days=1)

    def rounds(self, owner: str, now: datetime, due_only: bool) -> list[Round]:
        """The passes of one run: everything open, then this run's deferrals again."""
        if due_only:  # send-due waits for the backoff; only an explicit `send` retries now
            return [Round((D.PENDING,), due=now)]
        first = Round((D.PENDING, D.DEFERRED))
        return [first, *(Round((D.DEFERRED,), owner=owner, delay=d) for d in self.delays)]

    def backoff(self, attempts: int) -> timedelta:
        """How long a recipient deferred `attempts` times waits for its next try."""
        return min(self.backoff_base * (2 ** max(attempts - 1, 0)), self.backoff_max)

    def gives_up(self, attempts: int, max_attempts: int, first: datetime, now: datetime) -> bool:
        return attempts >= max_attempts and now - first >= self.give_up_after


@dataclass(frozen=True)
class SendOptions:
    connections: int | None = None  # default: smtp.connections
    rate: float | None = None  # default: smtp.rate
    resend_unknown: bool = False
    retry: RetryPolicy = RetryPolicy()
    due_only: bool = False  # send-due: only rows due now, no in-run retries


# --- what a run reports ----------------------------------------------------------------------


@dataclass
class Progress:
    campaign: str
    total: int  # rows this run set out to send
    sent: int
    failed: int
    deferred: int
    unknown: int
    skipped: int
    elapsed: float

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.deferred + self.unknown + self.skipped

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        left = max(self.total - self.done, 0)
        return left / self.rate if self.rate > 0 else None


ProgressCallback = Callable[[Progress], None]


@dataclass
class SendReport:
    """What one run of one campaign did and where the campaign stands."""

    campaign: str
    status: str  # the campaign's status after the run
    recipients: int = 0
    frozen_now: bool = False
    sent: int = 0
    failed: int = 0
    deferred: int = 0  # recipients this run deferred that are still deferred at its end
    unknown: int = 0
    skipped: int = 0
    refused: int = 0  # not offered: the address needs SMTPUTF8 the server lacks
    became_unknown: list[str] = field(default_factory=list)  # in flight when a run died
    unknown_now: list[str] = field(default_factory=list)  # lost connection after DATA
    quota_exhausted: bool = False
    relay_limit: str = ""  # the relay's answer about our own sending limit that stopped the run
    paused: bool = False
    pause_reason: str = ""
    stopped_reason: str = ""
    nothing_to_do: bool = False
    remaining: int = 0  # pending, deferred and sending rows left
    counts: dict[str, int] = field(default_factory=dict)  # campaign rows by status at the end
    elapsed: float = 0.0
    connections_opened: int = 0

    @property
    def rate(self) -> float:
        done = self.sent + self.failed + self.deferred + self.unknown
        return done / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class SendContext:
    """What runs work with: the store, the settings, and the environment passed in."""

    store: Store
    config: Config
    content: Content = field(default_factory=NewsletterContent)
    connect: smtp.ConnectionFactory | None = None  # default: from [smtp]
    progress: ProgressCallback | None = None
    clock: Clock = now_utc
