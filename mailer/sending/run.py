"""One send run: claims rows, builds each message, records each outcome, keeps the pace.

Each row is moved to `sending` and committed BEFORE its message goes out, and to its
outcome right after the server answers (see mailer.sending.engine for the whole run).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mailer.bounces.apply import record_at_send
from mailer.config import Config
from mailer.engagement.links import LinkFiller, link_filler
from mailer.sending import smtp
from mailer.sending.campaigns import reload_campaign
from mailer.sending.content import Builder, envelope_sender
from mailer.sending.options import (
    Progress,
    RetryPolicy,
    Round,
    SendContext,
    SendReport,
)
from mailer.states import CampaignStatus, ContactStatus, DeliveryStatus
from mailer.store import campaigns as q_campaigns
from mailer.store import deliveries as q_deliveries
from mailer.store.campaigns import Campaign
from mailer.timeutil import from_db
from mailer.tokens import (
    make_preferences_token,
    make_return_path_token,
    make_token,
    preferences_url,
    return_path_address,
    unsubscribe_url,
)

LEASE_SECONDS = 120
LEASE_RENEW_SECONDS = 20
BATCH_SIZE = 500

C, D = CampaignStatus, DeliveryStatus


# --- a run -----------------------------------------------------------------------------------


@dataclass
class Job:
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


def run_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def dead_owner(owner: str | None) -> bool:
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


def has_quotas(config: Config) -> bool:
    return config.smtp.per_minute > 0 or config.smtp.per_day > 0


class Run:
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
        self.links = LinkFiller(self.secret, self.base_url, campaign.id, {})  # set with builders
        self.started = time.monotonic()
        self.last_renew = time.monotonic()
        self.quotas = has_quotas(ctx.config)
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
    def jobs(self, round_: Round) -> Iterator[Job]:
        after = 0
        while rows := self._batch(round_, after, BATCH_SIZE):
            for r in rows:
                yield Job(
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
                self.links = link_filler(
                    self.store.conn, self.secret, self.base_url, self.campaign_id
                )
            for lang, text in frozen.items():
                self.builders.setdefault(lang, self.content.builder(self.config, text))
            found = self.builders[language]
        return found

    def build(self, job: Job, contact_id: int, email: str, wire: str) -> smtp.Envelope:
        token = make_token(self.secret, self.campaign_id, contact_id)
        # Only with [signup]: a Content's builder made before the field need not know it.
        prefs = self.preferences_url(contact_id)
        builder = self.builder(job.language)
        recipient = self.content.recipient(email, job.name, wire, job.first_name)
        url, now = unsubscribe_url(self.base_url, token), self.clock()
        links = self.links.urls(getattr(builder, "links", ()), job.id)  # () when not counted
        extra: dict[str, Any] = {}
        if links:
            extra["links"] = links
        if prefs:
            extra["preferences_url"] = prefs
        message = builder.build(recipient, url, now=now, **extra)
        job.message_id = message.message_id
        mail_from = self.sender_address
        if self.config.bounces is not None:  # LOCAL+TOKEN@DOMAIN names this delivery
            mail_from = return_path_address(mail_from, make_return_path_token(self.secret, job.id))
        return smtp.Envelope(
            mail_from,
            wire,
            message.data,
            needs_smtputf8=not wire.isascii(),
            dot_free=getattr(message, "dot_free", False),
        )

    def preferences_url(self, contact_id: int) -> str:
        """The footer's preference link, with [signup] ('' without)."""
        if self.config.signup is None:
            return ""
        return preferences_url(self.base_url, make_preferences_token(self.secret, contact_id))

    def prepare(self, job: Job) -> smtp.Envelope | None:
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

    def _claim(self, job: Job, contact_id: int) -> float:
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

    def record(self, job: Job, envelope: smtp.Envelope, outcome: smtp.Outcome) -> None:
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
            elif outcome.quota:
                self._quota_answer(conn, job, outcome, now)
            else:
                self._deferred(conn, job, outcome, now)

    def _quota_answer(
        self, conn: sqlite3.Connection, job: Job, outcome: smtp.Outcome, now: datetime
    ) -> None:
        """The relay's own limit: the recipient goes back to pending and the run stops.

        The quota use counted when the row was claimed stays counted: the relay may well
        have counted the attempt too, and our count errs on the side of sending less."""
        q_deliveries.release(conn, job.id, self.owner, outcome.detail, now)
        self.relay_limit(outcome.detail)

    def relay_limit(self, answer: str) -> None:
        """Stop the run: the relay answered about our own sending limit (`answer`)."""
        if not self.report.quota_exhausted:
            self.report.quota_exhausted = True
            self.report.relay_limit = answer
            self.report.stopped_reason = f"the server says our sending limit is reached ({answer})"
        self.stop.set()

    def _failed(
        self, conn: sqlite3.Connection, job: Job, outcome: smtp.Outcome, now: datetime
    ) -> None:
        q_deliveries.mark_outcome(conn, job.id, self.owner, D.FAILED, outcome.detail, now)
        if outcome.status == smtp.REFUSED:
            self.report.refused += 1
        elif job.contact_id is not None:
            # A 5xx about this recipient is a bounce record; one that says the address is gone
            # makes the contact bounced through the status's owner, with the event.
            record_at_send(
                conn,
                delivery_id=job.id,
                campaign_id=self.campaign_id,
                contact_id=job.contact_id,
                detail=outcome.detail,
                hard=outcome.bounce,
                now=now,
            )
        self.report.failed += 1

    def _unknown(
        self, conn: sqlite3.Connection, job: Job, outcome: smtp.Outcome, now: datetime
    ) -> None:
        q_deliveries.mark_outcome(
            conn, job.id, self.owner, D.UNKNOWN, outcome.detail, now, message_id=job.message_id
        )
        self.report.unknown += 1
        if job.email and len(self.report.unknown_now) < 100:
            self.report.unknown_now.append(job.email)

    def _deferred(
        self, conn: sqlite3.Connection, job: Job, outcome: smtp.Outcome, now: datetime
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
