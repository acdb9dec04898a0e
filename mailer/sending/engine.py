"""The send run: one campaign, its lease, the freeze, the delivery state machine, the pool.

A run holds the campaign's lease, checks that the SMTP server answers, freezes content and
audience once (one transaction), turns rows it finds in `sending` (a run that died) into
`unknown`, then lets mailer.sending.pool send. Each row is moved to `sending` and committed
BEFORE its message goes out, and to its outcome right after the server answers; so a run
killed at any moment leaves at most one row per connection in `sending`, which the next run
reports as `unknown` and never resends on its own.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailer.audience.subscriptions import change_status
from mailer.config import Config
from mailer.errors import ConflictError, LeaseHeldError
from mailer.sending import smtp
from mailer.sending.campaigns import find_campaign, reload_campaign
from mailer.sending.content import Builder, Clock, Content, NewsletterContent, envelope_sender
from mailer.sending.freeze import ALREADY_FROZEN, freeze_campaign
from mailer.sending.options import (
    Progress,
    ProgressCallback,
    RetryPolicy,
    Round,
    SendContext,
    SendOptions,
    SendReport,
)
from mailer.sending.pool import SmtpPool
from mailer.states import CampaignStatus, ContactStatus, DeliveryStatus
from mailer.store import Store
from mailer.store import campaigns as q_campaigns
from mailer.store import deliveries as q_deliveries
from mailer.store.campaigns import Campaign
from mailer.timeutil import from_db, now_utc
from mailer.tokens import make_token, unsubscribe_url

LEASE_SECONDS = 120
LEASE_RENEW_SECONDS = 20
BATCH_SIZE = 500

C, D = CampaignStatus, DeliveryStatus


# --- a run -----------------------------------------------------------------------------------


@dataclass
class _Job:
    id: int
    contact_id: int | None
    language: str
    status: str
    attempts: int
    first_attempt_at: str | None
    email: str | None
    wire: str | None
    name: str
    message_id: str = ""
    first_name: str = ""


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def _dead_owner(owner: str | None) -> bool:
    """True when `owner` is a run on this host whose process no longer exists."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _has_quotas(config: Config) -> bool:
    return config.smtp.per_minute > 0 or config.smtp.per_day > 0


class _Run:
    """One run's state, shared by the pool's workers: they claim, build and record through it.

    `stop` is the pool's stop event: the run sets it on a spent quota, a cancel or a lost
    lease.
    """

    def __init__(
        self,
        ctx: SendContext,
        campaign: Campaign,
        owner: str,
        *,
        stop: threading.Event,
        report: SendReport,
        total: int,
        buffer_sent: bool,
        policy: RetryPolicy,
    ) -> None:
        self.store = ctx.store
        self.config = ctx.config
        self.content = ctx.content
        self.clock = ctx.clock
        self.progress = ctx.progress
        self.campaign = campaign
        self.campaign_id = campaign.id
        self.owner = owner
        self.stop = stop
        self.report = report
        self.total = total
        # A worker writes a `sent` in the same transaction as its next claim (one commit per
        # message instead of two); only when no wait lies between the two.
        self.buffer_sent = buffer_sent
        self.policy = policy
        self.lock = threading.Lock()  # one SQLite connection shared by the workers
        self.secret = ctx.config.secret()
        self.base_url = ctx.config.web.base_url
        self.sender_address = envelope_sender(ctx.config)
        self.builders: dict[str, Builder] = {}
        self.started = time.monotonic()
        self.last_renew = time.monotonic()
        self.quotas = _has_quotas(ctx.config)
        self.local = threading.local()
        self.deferred_ids: set[int] = set()  # deferred by this run and not delivered since

    def _batch(self, round_: Round, after: int, limit: int) -> list[sqlite3.Row]:
        with self.lock:
            return q_deliveries.fetch_batch(
                self.store.conn,
                self.campaign_id,
                after_id=after,
                statuses=round_.statuses,
                deferred_due=round_.due,
                limit=limit,
                owner=round_.owner,
            )

    def has_work(self, round_: Round) -> bool:
        return bool(self._batch(round_, 0, 1))

    # Jobs come from the database in batches, so memory stays flat for any audience.
    def jobs(self, round_: Round) -> Iterator[_Job]:
        after = 0
        while rows := self._batch(round_, after, BATCH_SIZE):
            for r in rows:
                yield _Job(
                    r["id"],
                    r["contact_id"],
                    r["language"],
                    r["status"],
                    r["attempts"],
                    r["first_attempt_at"],
                    r["email"],
                    r["email_ascii"],
                    r["name"] or "",
                    first_name=r["first_name"] or "",
                )
            after = rows[-1]["id"]

    def builder(self, language: str) -> Builder:
        found = self.builders.get(language)
        if found is None:
            with self.lock:
                frozen = q_campaigns.variants(self.store.conn, self.campaign_id)
            for lang, text in frozen.items():
                self.builders.setdefault(lang, self.content.builder(self.config, text))
            found = self.builders[language]
        return found

    def build(self, job: _Job, contact_id: int, email: str, wire: str) -> smtp.Envelope:
        token = make_token(self.secret, self.campaign_id, contact_id)
        message = self.builder(job.language).build(
            self.content.recipient(email, job.name, wire, job.first_name),
            unsubscribe_url(self.base_url, token),
            now=self.clock(),
        )
        job.message_id = message.message_id
        return smtp.Envelope(
            self.sender_address, wire, message.data, needs_smtputf8=not wire.isascii()
        )

    def prepare(self, job: _Job) -> smtp.Envelope | None:
        """Check the contact, reserve quota, and commit the row as `sending`; or skip it."""
        if job.contact_id is None or job.email is None or job.wire is None:
            with self.lock, self.store.transaction() as conn:
                self._write_buffered(conn)
                if q_deliveries.skip(conn, job.id, job.status, "contact forgotten", self.clock()):
                    self.report.skipped += 1
            return None
        envelope = self.build(job, job.contact_id, job.email, job.wire)
        while True:
            wait = self._claim(job, job.contact_id)
            if wait < 0:
                return None
            if wait == 0:
                return envelope
            self.stop.wait(wait)
            if self.stop.is_set():
                return None

    def _claim(self, job: _Job, contact_id: int) -> float:
        """0 when the row is now `sending`, -1 when it is not to be sent, else seconds to wait."""
        now = self.clock()
        with self.lock, self.store.transaction() as conn:
            self._write_buffered(conn)
            status = q_deliveries.contact_status(conn, contact_id)
            if status != ContactStatus.SUBSCRIBED:
                if q_deliveries.skip(conn, job.id, job.status, f"contact {status}", now):
                    self.report.skipped += 1
                return -1
            wait = self._quota_wait(conn, now) if self.quotas else 0.0
            if wait:
                return wait
            if not q_deliveries.claim(conn, job.id, job.status, self.owner, now):
                return -1  # another run changed it: leave it alone
            if self.quotas:
                q_campaigns.add_usage(conn, now)
            return 0.0

    def _quota_wait(self, conn: sqlite3.Connection, now: datetime) -> float:
        """0 to go on, seconds to wait for the per-minute window, -1 when today's is spent."""
        smtp_cfg = self.config.smtp
        per_minute, per_day = q_campaigns.quota_used(conn, now)
        if smtp_cfg.per_day and per_day >= smtp_cfg.per_day:
            self.report.quota_exhausted = True
            self.report.stopped_reason = f"today's quota of {smtp_cfg.per_day} messages is used"
            self.stop.set()
            return -1
        if smtp_cfg.per_minute and per_minute >= smtp_cfg.per_minute:
            oldest = q_campaigns.oldest_in_minute(conn, now)
            if oldest is None:
                return 1.0
            ends = from_db(oldest + ".000000Z") + timedelta(seconds=61)
            return max((ends - now).total_seconds(), 0.2)
        return 0.0

    def _write_buffered(self, conn: sqlite3.Connection) -> None:
        buffered = getattr(self.local, "sent", None)
        if buffered:
            job, at = buffered
            self.local.sent = None
            q_deliveries.mark_sent(conn, job.id, self.owner, job.message_id, at)

    def flush(self) -> None:
        """Write the `sent` this worker still holds (when it stops)."""
        if getattr(self.local, "sent", None):
            with self.lock, self.store.transaction() as conn:
                self._write_buffered(conn)

    def record(self, job: _Job, envelope: smtp.Envelope, outcome: smtp.Outcome) -> None:
        now = self.clock()
        if outcome.status != smtp.DEFERRED:
            with self.lock:
                self.deferred_ids.discard(job.id)
        if outcome.status == smtp.SENT and self.buffer_sent:
            self.local.sent = (job, now)
            with self.lock:
                self.report.sent += 1
            return
        with self.lock, self.store.transaction() as conn:
            self._write_buffered(conn)
            if outcome.status == smtp.SENT:
                q_deliveries.mark_sent(conn, job.id, self.owner, job.message_id, now)
                self.report.sent += 1
            elif outcome.status in (smtp.REFUSED, smtp.FAILED):
                self._failed(conn, job, outcome, now)
            elif outcome.status == smtp.UNKNOWN:
                self._unknown(conn, job, outcome, now)
            else:
                self._deferred(conn, job, outcome, now)

    def _failed(
        self, conn: sqlite3.Connection, job: _Job, outcome: smtp.Outcome, now: datetime
    ) -> None:
        q_deliveries.mark_outcome(conn, job.id, self.owner, D.FAILED, outcome.detail, now)
        if outcome.status == smtp.REFUSED:
            self.report.refused += 1
        elif outcome.bounce and job.contact_id is not None:
            # The one status write of a send; the status's owner checks the move and records
            # the event (an address already unsubscribed keeps that status, the bounce is noted).
            change_status(
                conn,
                job.contact_id,
                ContactStatus.BOUNCED,
                source="bounce",
                now=now,
                campaign_id=self.campaign_id,
                detail=outcome.detail,
            )
        self.report.failed += 1

    def _unknown(
        self, conn: sqlite3.Connection, job: _Job, outcome: smtp.Outcome, now: datetime
    ) -> None:
        q_deliveries.mark_outcome(
            conn, job.id, self.owner, D.UNKNOWN, outcome.detail, now, message_id=job.message_id
        )
        self.report.unknown += 1
        if job.email and len(self.report.unknown_now) < 100:
            self.report.unknown_now.append(job.email)

    def _deferred(
        self, conn: sqlite3.Connection, job: _Job, outcome: smtp.Outcome, now: datetime
    ) -> None:
        attempts = job.attempts + 1
        first = from_db(job.first_attempt_at) if job.first_attempt_at else now
        if self.policy.gives_up(attempts, self.config.smtp.max_attempts, first, now):
            detail = f"gave up after {attempts} attempts over a day: {outcome.detail}"
            q_deliveries.mark_outcome(conn, job.id, self.owner, D.FAILED, detail, now)
            self.report.failed += 1
            return
        q_deliveries.mark_outcome(
            conn,
            job.id,
            self.owner,
            D.DEFERRED,
            outcome.detail,
            now,
            next_attempt_at=now + self.policy.backoff(attempts),
        )
        self.report.deferred += 1  # a running count for progress; _finish sets the final
        self.deferred_ids.add(job.id)

    def snapshot(self) -> Progress:
        r = self.report
        return Progress(
            self.campaign.name,
            self.total,
            r.sent,
            r.failed,
            r.deferred,
            r.unknown,
            r.skipped,
            time.monotonic() - self.started,
        )

    def tick(self) -> None:
        """Progress, lease renewal, and a look at the campaign's status (cancel)."""
        if self.progress is not None:
            self.progress(self.snapshot())
        with self.lock:
            row = reload_campaign(self.store.conn, self.campaign)
        if row.status != C.SENDING:
            self._stop(f"the campaign is now {row.status.value}")
            return
        if time.monotonic() - self.last_renew < LEASE_RENEW_SECONDS:
            return
        self.last_renew = time.monotonic()
        now = self.clock()
        with self.lock, self.store.transaction() as conn:
            if not q_campaigns.renew_lease(
                conn, self.campaign_id, self.owner, now + timedelta(seconds=LEASE_SECONDS)
            ):
                self._stop("another run took over the campaign")

    def _stop(self, reason: str) -> None:
        self.report.stopped_reason = reason
        self.stop.set()


# --- send one campaign -----------------------------------------------------------------------


def send_campaign(
    store: Store,
    config: Config,
    name: str,
    *,
    options: SendOptions | None = None,
    connect: smtp.ConnectionFactory | None = None,
    progress: ProgressCallback | None = None,
    clock: Clock = now_utc,
    content: Content | None = None,
) -> SendReport:
    """Send (or continue) campaign `name`; see the module docstring.

    Raises NotFoundError/ConflictError (exit 2), LeaseHeldError when another run holds the
    campaign and SmtpError when the server cannot be reached at the start (exit 1; nothing
    is marked). A pause or a spent quota is reported, not raised.
    """
    ctx = SendContext(store, config, content or NewsletterContent(), connect, progress, clock)
    return run_campaign(ctx, name, options or SendOptions())


def run_campaign(ctx: SendContext, name: str, options: SendOptions) -> SendReport:
    """send_campaign with its context made: take the lease, send, give the lease back."""
    row = find_campaign(ctx.store.conn, name)
    done = _nothing_to_send(ctx, row, options)
    if done is not None:
        return done
    owner = _owner()
    now = ctx.clock()
    with ctx.store.transaction() as conn:
        holder = reload_campaign(conn, row).lease_owner
        dead = [holder] if holder and _dead_owner(holder) else []
        if not q_campaigns.acquire_lease(
            conn, row.id, owner, now + timedelta(seconds=LEASE_SECONDS), now, dead_owners=dead
        ):
            raise LeaseHeldError(
                f"campaign {name!r} is being sent by another run ({holder}); try again later"
            )
    try:
        return _send_held(ctx, name, owner, options)
    finally:
        with ctx.store.transaction() as conn:
            q_campaigns.release_lease(conn, row.id, owner)


def _nothing_to_send(ctx: SendContext, row: Campaign, options: SendOptions) -> SendReport | None:
    """A report when the campaign is sent already; ConflictError when it is cancelled."""
    if row.status == C.CANCELLED:
        raise ConflictError(f"campaign {row.name!r} is cancelled")
    if row.status == C.SENT and not options.resend_unknown:
        return _nothing(ctx.store, row, "the campaign is already sent")
    return None


def _all_done(conn: sqlite3.Connection, row: Campaign, options: SendOptions) -> bool:
    """Frozen with no row left to send (nor an `unknown` one the operator asks to resend)."""
    return bool(
        row.frozen_at
        and q_deliveries.open_count(conn, row.id) == 0
        and not (options.resend_unknown and q_deliveries.counts(conn, row.id)[D.UNKNOWN.value])
    )


def _nothing(store: Store, row: Campaign, reason: str) -> SendReport:
    report = SendReport(campaign=row.name, status=row.status.value, nothing_to_do=True)
    report.stopped_reason = reason
    report.recipients = sum(q_deliveries.counts(store.conn, row.id).values())
    return report


@dataclass(frozen=True)
class _PoolMaker:
    """Makes the pool for each round of a run, all with the run's settings and stop event."""

    factory: smtp.ConnectionFactory
    connections: int
    messages_per_connection: int
    rate: float
    pause_after: int
    stop: threading.Event

    def __call__(self) -> SmtpPool[_Job]:
        return SmtpPool(
            self.factory,
            connections=self.connections,
            messages_per_connection=self.messages_per_connection,
            rate=self.rate,
            pause_after=self.pause_after,
            stop=self.stop,
        )


def _pool_maker(ctx: SendContext, options: SendOptions) -> _PoolMaker:
    smtp_cfg = ctx.config.smtp
    return _PoolMaker(
        factory=ctx.connect or smtp.config_factory(smtp_cfg, ctx.config.smtp_password()),
        connections=options.connections or smtp_cfg.connections,
        messages_per_connection=smtp_cfg.messages_per_connection,
        rate=smtp_cfg.rate if options.rate is None else options.rate,
        pause_after=smtp_cfg.pause_after,
        stop=threading.Event(),
    )


def _send_held(ctx: SendContext, name: str, owner: str, options: SendOptions) -> SendReport:
    store = ctx.store
    row = find_campaign(store.conn, name)  # again: another run may have finished it meanwhile
    done = _nothing_to_send(ctx, row, options)
    if done is not None:
        return done
    if _all_done(store.conn, row, options):
        with store.transaction() as conn:
            q_campaigns.set_status(conn, row.id, C.SENT, ctx.clock())
        return _nothing(store, find_campaign(store.conn, name), "nothing left to send")

    make_pool = _pool_maker(ctx, options)
    pool = make_pool()
    pool.check()  # SmtpError: exit 1 before anything is frozen or marked
    try:
        frozen = freeze_campaign(store, ctx.config, name, content=ctx.content, clock=ctx.clock)
    except BaseException:
        pool.discard()
        raise
    report = SendReport(campaign=row.name, status=row.status.value)
    report.frozen_now = frozen != ALREADY_FROZEN
    now = ctx.clock()
    total = _start(ctx, row.id, options, report, now)
    run = _Run(
        ctx,
        find_campaign(store.conn, name),
        owner,
        stop=make_pool.stop,
        report=report,
        total=total,
        buffer_sent=not make_pool.rate and not _has_quotas(ctx.config),
        policy=options.retry,
    )
    _send_rounds(run, pool, make_pool, options.retry.rounds(owner, now, options.due_only))
    return _finish(ctx, run)


def _start(
    ctx: SendContext, campaign_id: int, options: SendOptions, report: SendReport, now: datetime
) -> int:
    """Mark the campaign `sending`, settle what a dead run left; return the rows to send."""
    with ctx.store.transaction() as conn:
        q_campaigns.set_status(conn, campaign_id, C.SENDING, now)
        for stale in q_deliveries.stale_sending(conn, campaign_id):
            if q_deliveries.mark_stale_unknown(
                conn, stale["id"], "the run sending it stopped before the server answered", now
            ):
                report.became_unknown.append(stale["email"] or f"delivery {stale['id']}")
        if _has_quotas(ctx.config):
            q_campaigns.prune_usage(conn, now)
        if options.resend_unknown:
            q_deliveries.requeue_unknown(conn, campaign_id, now)
        return q_deliveries.open_count(conn, campaign_id, due=now if options.due_only else None)


def _send_rounds(
    run: _Run, pool: SmtpPool[_Job], make_pool: Callable[[], SmtpPool[_Job]], rounds: list[Round]
) -> None:
    for index, round_ in enumerate(rounds):
        if index:
            if not run.has_work(round_):
                break
            time.sleep(round_.delay)
            pool = make_pool()
        result = pool.run(
            run.jobs(round_), run.prepare, run.record, tick=run.tick, finish=run.flush
        )
        run.report.connections_opened += result.connections_opened
        if result.paused:
            run.report.paused = True
            run.report.pause_reason = result.pause_reason
        if result.paused or result.stopped:
            break


def _finish(ctx: SendContext, run: _Run) -> SendReport:
    report = run.report
    report.elapsed = time.monotonic() - run.started
    # A recipient deferred and then delivered by an in-run retry counts once, as what it became.
    with run.lock:
        report.deferred = len(run.deferred_ids)
    now = ctx.clock()
    with ctx.store.transaction() as conn:
        counts = q_deliveries.counts(conn, run.campaign_id)
        report.counts = counts
        report.recipients = sum(counts.values())
        report.remaining = counts["pending"] + counts["deferred"] + counts["sending"]
        if report.paused:
            q_campaigns.set_status(conn, run.campaign_id, C.PAUSED, now, reason=report.pause_reason)
        elif report.remaining == 0:
            q_campaigns.set_status(conn, run.campaign_id, C.SENT, now)
        report.status = reload_campaign(conn, run.campaign).status.value
    return report
