"""The send run: one campaign, its lease, the freeze, the delivery state machine, the pool.

A run holds the campaign's lease, checks that the SMTP server answers, freezes content and
audience once (one transaction), turns rows it finds in `sending` (a run that died) into
`unknown`, then lets mailer.sending.pool send. Each row is moved to `sending` and committed
BEFORE its message goes out, and to its outcome right after the server answers; so a run
killed at any moment leaves at most one row per connection in `sending`, which the next run
reports as `unknown` and never resends on its own.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailer.config import Config
from mailer.errors import ConflictError, LeaseHeldError
from mailer.sending import smtp
from mailer.sending.campaigns import find_campaign, reload_campaign
from mailer.sending.content import Clock, Content, NewsletterContent
from mailer.sending.freeze import ALREADY_FROZEN, freeze_campaign
from mailer.sending.options import (
    ProgressCallback,
    Round,
    SendContext,
    SendOptions,
    SendReport,
)
from mailer.sending.pool import SmtpPool
from mailer.sending.run import LEASE_SECONDS, Job, Run, dead_owner, has_quotas, run_owner
from mailer.states import CampaignStatus, DeliveryStatus
from mailer.store import Store
from mailer.store import campaigns as q_campaigns
from mailer.store import deliveries as q_deliveries
from mailer.store.campaigns import Campaign
from mailer.timeutil import now_utc

C, D = CampaignStatus, DeliveryStatus


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
    owner = run_owner()
    now = ctx.clock()
    with ctx.store.transaction() as conn:
        holder = reload_campaign(conn, row).lease_owner
        dead = [holder] if holder and dead_owner(holder) else []
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


def _refused_for_our_limit(ctx: SendContext, row: Campaign, answer: str) -> SendReport:
    """The relay refused even the first connection for our own rate or quota: nothing is
    sent or marked; a campaign already sending counts it toward pause_after like any run
    the relay stops."""
    report = _nothing(ctx.store, row, f"the server says our sending limit is reached ({answer})")
    report.quota_exhausted = True
    report.relay_limit = answer
    if row.status == C.SENDING:
        with ctx.store.transaction() as conn:
            _count_relay_limit(ctx, conn, row.id, report)
            if report.paused:
                q_campaigns.set_status(
                    conn, row.id, C.PAUSED, ctx.clock(), reason=report.pause_reason
                )
            report.status = reload_campaign(conn, row).status.value
    return report


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

    def __call__(self) -> SmtpPool[Job]:
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
    try:
        pool.check()  # SmtpError: exit 1 before anything is frozen or marked
    except smtp.SmtpLimitError as exc:
        pool.discard()
        return _refused_for_our_limit(ctx, row, exc.message)
    try:
        frozen = freeze_campaign(store, ctx.config, name, content=ctx.content, clock=ctx.clock)
    except BaseException:
        pool.discard()
        raise
    report = SendReport(campaign=row.name, status=row.status.value)
    report.frozen_now = frozen != ALREADY_FROZEN
    now = ctx.clock()
    total = _start(ctx, row.id, options, report, now)
    run = Run(
        ctx,
        find_campaign(store.conn, name),
        owner,
        stop=make_pool.stop,
        report=report,
        total=total,
        buffer_sent=not make_pool.rate and not has_quotas(ctx.config),
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
        if has_quotas(ctx.config):
            q_campaigns.prune_usage(conn, now)
        if options.resend_unknown:
            q_deliveries.requeue_unknown(conn, campaign_id, now)
        return q_deliveries.open_count(conn, campaign_id, due=now if options.due_only else None)


def _send_rounds(
    run: Run, pool: SmtpPool[Job], make_pool: Callable[[], SmtpPool[Job]], rounds: list[Round]
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
        if result.limit:
            run.relay_limit(result.limit)
        if result.paused:
            run.report.paused = True
            run.report.pause_reason = result.pause_reason
        if result.paused or result.stopped or result.limit:
            break


def _count_relay_limit(
    ctx: SendContext, conn: sqlite3.Connection, campaign_id: int, report: SendReport
) -> None:
    """Runs in a row stopped by the relay's own limit count toward pause_after (PRODUCT.md):
    a relay that keeps saying it pauses the campaign instead of being asked forever."""
    if not report.relay_limit:
        if report.sent:
            q_campaigns.clear_quota_stops(conn, campaign_id)
        return
    stops = q_campaigns.count_quota_stop(conn, campaign_id, sent_any=report.sent > 0)
    limit = ctx.config.smtp.pause_after
    # "Repeated": one stop alone never pauses, whatever pause_after says.
    if limit and stops >= max(limit, 2) and not report.paused:
        report.paused = True
        report.pause_reason = (
            f"{stops} runs in a row stopped by the relay's answer about our sending limit;"
            f" last: {report.relay_limit}"
        )


def _finish(ctx: SendContext, run: Run) -> SendReport:
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
        _count_relay_limit(ctx, conn, run.campaign_id, report)
        if report.paused:
            q_campaigns.set_status(conn, run.campaign_id, C.PAUSED, now, reason=report.pause_reason)
        elif report.remaining == 0:
            q_campaigns.set_status(conn, run.campaign_id, C.SENT, now)
        report.status = reload_campaign(conn, run.campaign).status.value
    return report
