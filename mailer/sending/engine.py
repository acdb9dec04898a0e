"""The delivery engine: campaigns, the freeze, the delivery state machine, `send`, `send-due`.

A run holds the campaign's lease, checks that the SMTP server answers, freezes content and
audience once (one transaction), turns rows it finds in `sending` (a run that died) into
`unknown`, then lets mailer.sending.smtp's pool send. Each row is moved to `sending` and committed
BEFORE its message goes out, and to its outcome right after the server answers; so a run
killed at any moment leaves at most one row per connection in `sending`, which the next run
reports as `unknown` and never resends on its own.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from mailer.config import Config
from mailer.errors import ConflictError, InputError, LeaseHeldError, NotFoundError, SegmentError
from mailer.sending import smtp
from mailer.store import Store
from mailer.store import campaigns as q_campaigns
from mailer.store import contacts as q_contacts
from mailer.store import deliveries as q_deliveries
from mailer.timeutil import from_db, now_utc
from mailer.tokens import make_token, unsubscribe_url

LEASE_SECONDS = 120
LEASE_RENEW_SECONDS = 20
BATCH_SIZE = 500
BACKOFF_BASE = timedelta(minutes=5)
BACKOFF_MAX = timedelta(hours=6)
GIVE_UP_AFTER = timedelta(days=1)
TEST_CONTACT_ID = 0  # --test-to tokens name no real contact, so they unsubscribe nobody

Clock = Callable[[], datetime]


# --- what the engine needs from the newsletter side ----------------------------------------


class Builder(Protocol):
    def build(
        self, recipient: Any, unsubscribe_url: str, *, now: datetime, test: bool = False
    ) -> Any:
        """Return an object with `message_id` and `data` (CRLF bytes)."""


class Content(Protocol):
    """Renders, builds and selects for the engine (newsletter and audience packages)."""

    def render(self, config: Config, definition: str) -> dict[str, str]:
        """Render the stored campaign definition: language → frozen variant (JSON text)."""

    def builder(self, config: Config, frozen: str) -> Builder:
        """A message builder prepared once for one frozen variant."""

    def recipient(self, email: str, name: str, wire_email: str) -> Any:
        """The recipient object the builder takes."""

    def audience(self, conn: Any, config: Config, segment: str) -> tuple[str, Sequence[object]]:
        """The segment as SQL over alias `c` and its parameters."""

    def fallback_language(self, config: Config, definition: str, languages: Sequence[str]) -> str:
        """The variant for contacts whose language the campaign lacks."""


class NewsletterContent:
    """The real content: the newsletter spec, render and messages; the audience segments."""

    def render(self, config: Config, definition: str) -> dict[str, str]:
        from mailer.newsletter.render import render_campaign
        from mailer.newsletter.spec import CampaignSpec

        spec = CampaignSpec.from_json(definition)
        return {lang: variant.to_json() for lang, variant in render_campaign(config, spec).items()}

    def builder(self, config: Config, frozen: str) -> Builder:
        from mailer.newsletter.messages import MessageBuilder
        from mailer.newsletter.variant import Variant

        return MessageBuilder(config, Variant.from_json(frozen))  # type: ignore[no-any-return]

    def recipient(self, email: str, name: str, wire_email: str) -> Any:
        from mailer.newsletter.messages import Recipient

        return Recipient(email=email, name=name, wire_email=wire_email)

    def audience(self, conn: Any, config: Config, segment: str) -> tuple[str, Sequence[object]]:
        from mailer.audience.segments import compile_segment

        compiled = compile_segment(conn, segment, config.list_kinds)
        return compiled.where, list(compiled.params)

    def fallback_language(self, config: Config, definition: str, languages: Sequence[str]) -> str:
        from mailer.newsletter.spec import CampaignSpec, fallback_language

        spec = CampaignSpec.from_json(definition)
        return fallback_language(languages, spec.default_language)


# --- reports -------------------------------------------------------------------------------


@dataclass
class SendOptions:
    connections: int | None = None  # default: smtp.connections
    rate: float | None = None  # default: smtp.rate
    resend_unknown: bool = False
    retry_delays: tuple[float, ...] = (1.0, 4.0)  # in-run retries of rows deferred by this run


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


@dataclass
class DueItem:
    campaign: str
    action: str  # sent | late | held | idle | quota | paused
    detail: str = ""
    report: SendReport | None = None


@dataclass
class DueReport:
    items: list[DueItem] = field(default_factory=list)

    @property
    def paused(self) -> bool:
        return any(i.report is not None and i.report.paused for i in self.items)


# --- campaigns: create, list, show, cancel --------------------------------------------------


@dataclass
class CampaignInfo:
    name: str
    status: str
    segment: str
    send_at: str | None
    created_at: str
    frozen_at: str | None
    finished_at: str | None
    source_path: str
    status_reason: str | None
    recipients: int
    counts: dict[str, int]
    subject: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "segment": self.segment,
            "send_at": self.send_at,
            "created_at": self.created_at,
            "frozen_at": self.frozen_at,
            "finished_at": self.finished_at,
            "source": self.source_path,
            "reason": self.status_reason,
            "recipients": self.recipients,
            **{k: v for k, v in self.counts.items()},
        }


@dataclass
class CreateReport:
    name: str
    status: str
    updated: bool


SAMPLE_EMAIL = "lukija@example.org"
SAMPLE_NAME = "Lukija Esimerkki"
_BUILD_ERRORS = (ValueError, UnicodeError, InputError)  # AddressError is an InputError


def _reason(exc: Exception) -> str:
    return exc.message if isinstance(exc, InputError) else str(exc) or type(exc).__name__


def _config_key_error(config: Config, key: str, exc: Exception) -> InputError:
    from mailer.errors import ConfigError

    return ConfigError(f"{key} cannot be used in a message: {_reason(exc)}", where=str(config.path))


def check_messages(
    config: Config, variants: dict[str, str], content: Content, *, where: str, now: datetime
) -> None:
    """Build one real message per frozen variant, so that a setting or a campaign text that
    cannot make a message fails here (InputError, exit 2) before anything is stored or frozen.

    Errors name the config key ([sender] address/reply_to/name/list_id, [web] base_url) when
    a setting is at fault, else the campaign (`where`).
    """
    from mailer.audience.addresses import parse_address
    from mailer.errors import ConfigError
    from mailer.newsletter.messages import address_header, list_id_header

    sender = config.sender
    wire = ""
    for key, value in (("sender.address", sender.address), ("sender.reply_to", sender.reply_to)):
        if not value:
            continue
        try:
            parsed = parse_address(value).wire
            address_header("From", "", parsed)
        except _BUILD_ERRORS as exc:
            raise _config_key_error(config, key, exc) from None
        wire = wire or parsed
    for key, build in (
        ("sender.name", lambda: address_header("From", sender.name, wire)),
        ("sender.list_id", lambda: list_id_header(sender.name, sender.list_id)),
    ):
        try:
            build()
        except _BUILD_ERRORS as exc:
            raise _config_key_error(config, key, exc) from None
    url = unsubscribe_url(config.web.base_url, make_token(config.secret(), 0, TEST_CONTACT_ID))
    plain_url = "https://example.org/u/" + url.rsplit("/", 1)[1]
    recipient = content.recipient(SAMPLE_EMAIL, SAMPLE_NAME, SAMPLE_EMAIL)
    for lang, frozen in variants.items():
        try:
            builder = content.builder(config, frozen)
            builder.build(recipient, plain_url, now=now)
        except ConfigError:
            raise
        except _BUILD_ERRORS as exc:
            raise InputError(
                f"the {lang} message cannot be built: {_reason(exc)}", where=where
            ) from None
        try:
            builder.build(recipient, url, now=now)
        except _BUILD_ERRORS as exc:
            raise _config_key_error(config, "web.base_url", exc) from None


def create_campaign(
    store: Store, config: Config, path: Path, *, clock: Clock = now_utc
) -> CreateReport:
    """Check a campaign file (segment, items, template) and store it as draft or scheduled.

    A campaign that has not started may be created again from its edited file.
    """
    from mailer.audience.segments import compile_segment
    from mailer.newsletter.render import render_campaign
    from mailer.newsletter.spec import load_campaign

    spec = load_campaign(path, config)
    variants = render_campaign(config, spec)  # the template and items render, or TemplateError
    now = clock()
    frozen = {lang: variant.to_json() for lang, variant in variants.items()}
    check_messages(config, frozen, NewsletterContent(), where=str(path), now=now)
    status = "scheduled" if spec.send_at else "draft"
    definition = spec.to_json()
    with store.transaction() as conn:
        try:
            compile_segment(conn, spec.segment, config.list_kinds)
        except SegmentError as exc:
            raise SegmentError(exc.message, where=f"{path}: segment") from None
        existing = q_campaigns.get_campaign_by_name(conn, spec.name)
        if existing is None:
            q_campaigns.insert_campaign(
                conn,
                name=spec.name,
                source_path=str(Path(path).absolute()),
                definition=definition,
                segment=spec.segment,
                status=status,
                send_at=spec.send_at,
                now=now,
            )
            return CreateReport(spec.name, status, False)
        if not q_campaigns.update_definition(
            conn,
            existing["id"],
            source_path=str(Path(path).absolute()),
            definition=definition,
            segment=spec.segment,
            status=status,
            send_at=spec.send_at,
            expected=("draft", "scheduled"),
        ):
            raise ConflictError(
                f"campaign {spec.name!r} already exists and is {existing['status']}; "
                "give the new issue another name",
                where=str(path),
            )
        return CreateReport(spec.name, status, True)


def _campaign(conn: Any, name: str) -> Any:
    row = q_campaigns.get_campaign_by_name(conn, name)
    if row is None:
        raise NotFoundError(f"no campaign named {name!r} (see `mailer campaign list`)")
    return row


def _info(conn: Any, row: Any) -> CampaignInfo:
    counts = q_deliveries.counts(conn, row["id"])
    return CampaignInfo(
        name=row["name"],
        status=row["status"],
        segment=row["segment"],
        send_at=row["send_at"],
        created_at=row["created_at"],
        frozen_at=row["frozen_at"],
        finished_at=row["finished_at"],
        source_path=row["source_path"],
        status_reason=row["status_reason"],
        recipients=sum(counts.values()),
        counts=counts,
        subject=json.loads(row["definition"]).get("subject"),
    )


def list_campaigns(store: Store) -> list[CampaignInfo]:
    return [_info(store.conn, row) for row in q_campaigns.list_campaigns(store.conn)]


def show_campaign(store: Store, name: str) -> CampaignInfo:
    return _info(store.conn, _campaign(store.conn, name))


def cancel_campaign(store: Store, name: str, *, clock: Clock = now_utc) -> CampaignInfo:
    """Cancel a campaign that is not sent; a run sending it stops within seconds."""
    with store.transaction() as conn:
        row = _campaign(conn, name)
        if not q_campaigns.set_status(
            conn,
            row["id"],
            "cancelled",
            ("draft", "scheduled", "sending", "paused"),
            clock(),
            reason="cancelled by the operator",
        ):
            raise ConflictError(f"campaign {name!r} is {row['status']} and cannot be cancelled")
        return _info(conn, q_campaigns.get_campaign(conn, row["id"]))


@dataclass
class Stats:
    campaign: str
    status: str
    recipients: int
    sent: int
    failed: int
    deferred: int
    pending: int
    unknown: int
    skipped: int
    unsubscribed: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def campaign_stats(store: Store, name: str) -> Stats:
    from mailer.audience.subscriptions import count_for_campaign

    conn = store.conn
    row = _campaign(conn, name)
    counts = q_deliveries.counts(conn, row["id"])
    return Stats(
        campaign=row["name"],
        status=row["status"],
        recipients=sum(counts.values()),
        sent=counts["sent"],
        failed=counts["failed"],
        deferred=counts["deferred"],
        pending=counts["pending"] + counts["sending"],  # `sending`: in flight right now
        unknown=counts["unknown"],
        skipped=counts["skipped"],
        unsubscribed=count_for_campaign(conn, row["id"]),
    )


# --- the freeze ------------------------------------------------------------------------------


def freeze_campaign(
    store: Store, config: Config, name: str, *, content: Content, clock: Clock = now_utc
) -> int:
    """Write the rendered variants and one pending row per recipient, in one transaction.

    Returns the number of recipients, or -1 when the campaign was already frozen.
    """
    row = _campaign(store.conn, name)
    if row["frozen_at"]:
        return -1
    variants = content.render(config, row["definition"])
    check_messages(
        config,
        variants,
        content,
        where=f"campaign {row['name']} ({row['source_path']})",
        now=clock(),
    )
    languages = sorted(variants)
    default = content.fallback_language(config, row["definition"], languages)
    now = clock()
    with store.transaction() as conn:
        if not q_campaigns.mark_frozen(conn, row["id"], now):
            return -1
        where, params = content.audience(conn, config, row["segment"])
        for language in languages:
            q_campaigns.insert_variant(conn, row["id"], language, variants[language])
        return q_deliveries.insert_audience(
            conn,
            row["id"],
            where=where,
            params=params,
            languages=languages,
            default_language=default,
            now=now,
        )


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


def envelope_sender(config: Config) -> str:
    """The envelope sender (MAIL FROM): the sender address in its wire (IDNA) form."""
    from mailer.audience.addresses import parse_address

    return parse_address(config.sender.address).wire


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


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


def _backoff(attempts: int) -> timedelta:
    delay = BACKOFF_BASE * (2 ** max(attempts - 1, 0))
    return min(delay, BACKOFF_MAX)


class _Run:
    def __init__(
        self,
        store: Store,
        config: Config,
        row: Any,
        owner: str,
        *,
        content: Content,
        clock: Clock,
        progress: ProgressCallback | None,
    ) -> None:
        self.store = store
        self.config = config
        self.campaign_id: int = row["id"]
        self.name: str = row["name"]
        self.owner = owner
        self.content = content
        self.clock = clock
        self.progress = progress
        self.lock = threading.Lock()  # one SQLite connection shared by the workers
        self.secret = config.secret()
        self.base_url = config.web.base_url
        self.sender_address = envelope_sender(config)
        self.builders: dict[str, Builder] = {}
        self.report = SendReport(campaign=self.name, status=row["status"])
        self.total = 0
        self.started = time.monotonic()
        self.last_renew = time.monotonic()
        self.pool: smtp.SmtpPool[_Job] | None = None
        self.quotas = config.smtp.per_minute > 0 or config.smtp.per_day > 0
        # A worker writes a `sent` in the same transaction as its next claim (one commit per
        # message instead of two); only when no wait lies between the two.
        self.buffer_sent = True
        self.local = threading.local()
        self.deferred_ids: set[int] = set()  # deferred by this run and not delivered since

    # Jobs come from the database in batches, so memory stays flat for any audience.
    def jobs(
        self, statuses: Sequence[str], deferred_due: datetime | None, owner: str | None = None
    ) -> Iterator[_Job]:
        after = 0
        while True:
            with self.lock:
                rows = q_deliveries.fetch_batch(
                    self.store.conn,
                    self.campaign_id,
                    after_id=after,
                    statuses=statuses,
                    deferred_due=deferred_due,
                    limit=BATCH_SIZE,
                    owner=owner,
                )
            if not rows:
                return
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

    def build(self, job: _Job, now: datetime) -> smtp.Envelope:
        assert job.email is not None and job.wire is not None and job.contact_id is not None
        token = make_token(self.secret, self.campaign_id, job.contact_id)
        message = self.builder(job.language).build(
            self.content.recipient(job.email, job.name, job.wire),
            unsubscribe_url(self.base_url, token),
            now=now,
        )
        job.message_id = message.message_id
        return smtp.Envelope(
            self.sender_address, job.wire, message.data, needs_smtputf8=not job.wire.isascii()
        )

    def prepare(self, job: _Job) -> smtp.Envelope | None:
        """Check the contact, reserve quota, and commit the row as `sending`; or skip it."""
        if job.contact_id is None or job.email is None:
            with self.lock, self.store.transaction() as conn:
                self._write_buffered(conn)
                if q_deliveries.skip(conn, job.id, job.status, "contact forgotten", self.clock()):
                    self.report.skipped += 1
            return None
        envelope = self.build(job, self.clock())
        while True:
            now = self.clock()
            wait = 0.0
            with self.lock, self.store.transaction() as conn:
                self._write_buffered(conn)
                status = q_deliveries.contact_status(conn, job.contact_id)
                if status != "subscribed":
                    if q_deliveries.skip(conn, job.id, job.status, f"contact {status}", now):
                        self.report.skipped += 1
                    return None
                if self.quotas:
                    wait = self._quota_wait(conn, now)
                    if wait < 0:
                        return None
                if not wait:
                    if not q_deliveries.claim(conn, job.id, job.status, self.owner, now):
                        return None  # another run changed it: leave it alone
                    if self.quotas:
                        q_campaigns.add_usage(conn, now)
                    return envelope
            assert self.pool is not None
            self.pool.stop.wait(wait)
            if self.pool.stop.is_set():
                return None

    def _quota_wait(self, conn: Any, now: datetime) -> float:
        """0 to go on, seconds to wait for the per-minute window, -1 when today's is spent."""
        smtp_cfg = self.config.smtp
        per_minute, per_day = q_campaigns.quota_used(conn, now)
        if smtp_cfg.per_day and per_day >= smtp_cfg.per_day:
            self.report.quota_exhausted = True
            self.report.stopped_reason = f"today's quota of {smtp_cfg.per_day} messages is used"
            assert self.pool is not None
            self.pool.stop.set()
            return -1
        if smtp_cfg.per_minute and per_minute >= smtp_cfg.per_minute:
            oldest = q_campaigns.oldest_in_minute(conn, now)
            if oldest is None:
                return 1.0
            ends = from_db(oldest + ".000000Z") + timedelta(seconds=61)
            return max((ends - now).total_seconds(), 0.2)
        return 0.0

    def _write_buffered(self, conn: Any) -> None:
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
            status = outcome.status
            if status == smtp.SENT:
                q_deliveries.mark_sent(conn, job.id, self.owner, job.message_id, now)
                self.report.sent += 1
                return
            if status == smtp.REFUSED:
                q_deliveries.mark_outcome(conn, job.id, self.owner, "failed", outcome.detail, now)
                self.report.refused += 1
                self.report.failed += 1
                return
            if status == smtp.FAILED:
                q_deliveries.mark_outcome(conn, job.id, self.owner, "failed", outcome.detail, now)
                if outcome.bounce and job.contact_id is not None:
                    q_contacts.set_status(conn, job.contact_id, "bounced", now)
                self.report.failed += 1
                return
            if status == smtp.UNKNOWN:
                q_deliveries.mark_outcome(
                    conn,
                    job.id,
                    self.owner,
                    "unknown",
                    outcome.detail,
                    now,
                    message_id=job.message_id,
                )
                self.report.unknown += 1
                if job.email and len(self.report.unknown_now) < 100:
                    self.report.unknown_now.append(job.email)
                return
            attempts = job.attempts + 1
            first = from_db(job.first_attempt_at) if job.first_attempt_at else now
            if attempts >= self.config.smtp.max_attempts and now - first >= GIVE_UP_AFTER:
                detail = f"gave up after {attempts} attempts over a day: {outcome.detail}"
                q_deliveries.mark_outcome(conn, job.id, self.owner, "failed", detail, now)
                self.report.failed += 1
                return
            q_deliveries.mark_outcome(
                conn,
                job.id,
                self.owner,
                "deferred",
                outcome.detail,
                now,
                next_attempt_at=now + _backoff(attempts),
            )
            self.report.deferred += 1  # a running count for progress; _finish sets the final
            self.deferred_ids.add(job.id)

    def snapshot(self) -> Progress:
        r = self.report
        return Progress(
            self.name,
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
            row = q_campaigns.get_campaign(self.store.conn, self.campaign_id)
        if row["status"] != "sending":
            self._stop(f"the campaign is now {row['status']}")
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
        assert self.pool is not None
        self.pool.stop.set()


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
    due_only: bool = False,
) -> SendReport:
    """Send (or continue) campaign `name`; see the module docstring.

    Raises NotFoundError/ConflictError (exit 2), LeaseHeldError when another run holds the
    campaign and SmtpError when the server cannot be reached at the start (exit 1; nothing
    is marked). A pause or a spent quota is reported, not raised.
    """
    options = options or SendOptions()
    content = content or NewsletterContent()
    row = _campaign(store.conn, name)
    if row["status"] == "cancelled":
        raise ConflictError(f"campaign {name!r} is cancelled")
    if row["status"] == "sent" and not options.resend_unknown:
        return _nothing(store, row, "the campaign is already sent")
    owner = _owner()
    now = clock()
    with store.transaction() as conn:
        holder = q_campaigns.get_campaign(conn, row["id"])["lease_owner"]
        dead = [holder] if _dead_owner(holder) else []
        if not q_campaigns.acquire_lease(
            conn, row["id"], owner, now + timedelta(seconds=LEASE_SECONDS), now, dead_owners=dead
        ):
            raise LeaseHeldError(
                f"campaign {name!r} is being sent by another run ({holder}); try again later"
            )
    try:
        return _send_held(
            store, config, name, owner, options, connect, progress, clock, content, due_only
        )
    finally:
        with store.transaction() as conn:
            q_campaigns.release_lease(conn, row["id"], owner)


def _nothing(store: Store, row: Any, reason: str) -> SendReport:
    report = SendReport(campaign=row["name"], status=row["status"], nothing_to_do=True)
    report.stopped_reason = reason
    report.recipients = sum(q_deliveries.counts(store.conn, row["id"]).values())
    return report


def _send_held(
    store: Store,
    config: Config,
    name: str,
    owner: str,
    options: SendOptions,
    connect: smtp.ConnectionFactory | None,
    progress: ProgressCallback | None,
    clock: Clock,
    content: Content,
    due_only: bool,
) -> SendReport:
    row = _campaign(store.conn, name)  # again: another run may have finished it meanwhile
    if row["status"] == "cancelled":
        raise ConflictError(f"campaign {name!r} is cancelled")
    if row["status"] == "sent" and not options.resend_unknown:
        return _nothing(store, row, "the campaign is already sent")
    if (
        row["frozen_at"]
        and q_deliveries.open_count(store.conn, row["id"]) == 0
        and not (options.resend_unknown and q_deliveries.counts(store.conn, row["id"])["unknown"])
    ):
        with store.transaction() as conn:
            q_campaigns.set_status(conn, row["id"], "sent", ("sending", "paused"), clock())
        return _nothing(store, _campaign(store.conn, name), "nothing left to send")

    smtp_cfg = config.smtp
    factory = connect or smtp.config_factory(smtp_cfg, config.smtp_password())
    connections = options.connections or smtp_cfg.connections
    rate = smtp_cfg.rate if options.rate is None else options.rate

    def new_pool() -> smtp.SmtpPool[_Job]:
        return smtp.SmtpPool(
            factory,
            connections=connections,
            messages_per_connection=smtp_cfg.messages_per_connection,
            rate=rate,
            pause_after=smtp_cfg.pause_after,
        )

    pool = new_pool()
    pool.check()  # SmtpError: exit 1 before anything is frozen or marked
    try:
        frozen = freeze_campaign(store, config, name, content=content, clock=clock)
    except BaseException:
        pool.discard()
        raise
    run = _Run(
        store,
        config,
        _campaign(store.conn, name),
        owner,
        content=content,
        clock=clock,
        progress=progress,
    )
    run.report.frozen_now = frozen >= 0
    run.buffer_sent = not rate and not run.quotas  # no wait between a reply and the next claim
    now = clock()
    with store.transaction() as conn:
        q_campaigns.set_status(
            conn,
            run.campaign_id,
            "sending",
            ("draft", "scheduled", "paused", "sent", "sending"),
            now,
        )
        for stale in q_deliveries.stale_sending(conn, run.campaign_id):
            if q_deliveries.mark_stale_unknown(
                conn, stale["id"], "the run sending it stopped before the server answered", now
            ):
                run.report.became_unknown.append(stale["email"] or f"delivery {stale['id']}")
        if run.quotas:
            q_campaigns.prune_usage(conn, now)
        if options.resend_unknown:
            q_deliveries.requeue_unknown(conn, run.campaign_id, now)
        run.total = q_deliveries.open_count(
            conn, run.campaign_id, due=None if not due_only else now
        )

    rounds: list[tuple[Sequence[str], datetime | None, str | None, float]] = [
        (("pending",) if due_only else ("pending", "deferred"), now if due_only else None, None, 0)
    ]
    if not due_only:  # send-due waits for the backoff; only an explicit `send` retries now
        rounds += [(("deferred",), None, owner, delay) for delay in options.retry_delays]
    for index, (statuses, due, only_owner, delay) in enumerate(rounds):
        if index:
            with run.lock:
                left = q_deliveries.fetch_batch(
                    store.conn,
                    run.campaign_id,
                    after_id=0,
                    statuses=statuses,
                    deferred_due=None,
                    limit=1,
                    owner=only_owner,
                )
            if not left:
                break
            time.sleep(delay)
            pool = new_pool()
        run.pool = pool
        pool_report = pool.run(
            run.jobs(statuses, due, only_owner),
            run.prepare,
            run.record,
            tick=run.tick,
            finish=run.flush,
        )
        run.report.connections_opened += pool_report.connections_opened
        if pool_report.paused:
            run.report.paused = True
            run.report.pause_reason = pool_report.pause_reason
        if pool_report.paused or pool_report.stopped:
            break

    return _finish(store, run, clock)


def _finish(store: Store, run: _Run, clock: Clock) -> SendReport:
    report = run.report
    report.elapsed = time.monotonic() - run.started
    # A recipient deferred and then delivered by an in-run retry counts once, as what it became.
    with run.lock:
        report.deferred = len(run.deferred_ids)
    now = clock()
    with store.transaction() as conn:
        counts = q_deliveries.counts(conn, run.campaign_id)
        report.counts = counts
        report.recipients = sum(counts.values())
        report.remaining = counts["pending"] + counts["deferred"] + counts["sending"]
        if report.paused:
            q_campaigns.set_status(
                conn, run.campaign_id, "paused", ("sending",), now, reason=report.pause_reason
            )
        elif report.remaining == 0:
            q_campaigns.set_status(conn, run.campaign_id, "sent", ("sending",), now)
        report.status = q_campaigns.get_campaign(conn, run.campaign_id)["status"]
    return report


def send_due(
    store: Store,
    config: Config,
    *,
    connect: smtp.ConnectionFactory | None = None,
    progress: ProgressCallback | None = None,
    clock: Clock = now_utc,
    content: Content | None = None,
    options: SendOptions | None = None,
) -> DueReport:
    """Start or continue every campaign that is due; skip late ones and ones held elsewhere."""
    report = DueReport()
    now = clock()
    late_after = timedelta(hours=config.defaults.max_late_hours)
    # Paused before this run: send-due leaves them to an explicit `send`, but says so.
    paused = [
        DueItem(row["name"], "paused", row["status_reason"] or "a server failure")
        for row in q_campaigns.paused_campaigns(store.conn)
    ]
    _send_due(store, config, report, now, late_after, connect, progress, clock, content, options)
    report.items += paused
    return report


def _send_due(
    store: Store,
    config: Config,
    report: DueReport,
    now: datetime,
    late_after: timedelta,
    connect: smtp.ConnectionFactory | None,
    progress: ProgressCallback | None,
    clock: Clock,
    content: Content | None,
    options: SendOptions | None,
) -> None:
    for row in q_campaigns.due_campaigns(store.conn, now):
        name = row["name"]
        if row["status"] == "scheduled" and now - from_db(row["send_at"]) > late_after:
            report.items.append(
                DueItem(
                    name,
                    "late",
                    f"send_at {row['send_at']} is more than "
                    f"{config.defaults.max_late_hours:g} hours ago; run `mailer send {name}`",
                )
            )
            continue
        if row["status"] == "sending" and q_deliveries.open_count(store.conn, row["id"], now) == 0:
            if q_deliveries.open_count(store.conn, row["id"]) == 0:
                with store.transaction() as conn:
                    q_campaigns.set_status(conn, row["id"], "sent", ("sending",), clock())
            report.items.append(DueItem(name, "idle", "nothing due yet"))
            continue
        if config.smtp.per_day:
            used = q_campaigns.quota_used(store.conn, clock())[1]
            if used >= config.smtp.per_day:
                report.items.append(
                    DueItem(name, "quota", f"today's quota of {config.smtp.per_day} is used")
                )
                break  # not worth a connection: no campaign can send before the quota frees
        try:
            sent = send_campaign(
                store,
                config,
                name,
                options=options,
                connect=connect,
                progress=progress,
                clock=clock,
                content=content,
                due_only=True,
            )
        except LeaseHeldError as exc:
            report.items.append(DueItem(name, "held", exc.message))
            continue
        report.items.append(DueItem(name, "sent", "", sent))
        if sent.paused or sent.quota_exhausted:
            break  # the server or today's quota will not serve the next one either


# --- dry run and test send -------------------------------------------------------------------


@dataclass
class SampleReport:
    campaign: str
    files: list[Path] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)


def _sample(
    store: Store, config: Config, row: Any, content: Content, per_language: int
) -> tuple[dict[str, str], list[Any]]:
    """Frozen or freshly rendered variants, and a few recipients per language."""
    if row["frozen_at"]:
        variants = q_campaigns.variants(store.conn, row["id"])
        rows = q_deliveries.frozen_sample(store.conn, row["id"], 200)
    else:
        variants = content.render(config, row["definition"])
        where, params = content.audience(store.conn, config, row["segment"])
        rows = q_deliveries.audience_sample(store.conn, where=where, params=params, limit=200)
    default = content.fallback_language(config, row["definition"], sorted(variants))
    chosen: list[Any] = []
    seen: dict[str, int] = {}
    for r in rows:
        lang = r["language"] if r["language"] in variants else default
        if seen.get(lang, 0) < per_language:
            seen[lang] = seen.get(lang, 0) + 1
            chosen.append((r, lang))
    return variants, chosen


def dry_run(
    store: Store,
    config: Config,
    name: str,
    out_dir: Path,
    *,
    per_language: int = 3,
    clock: Clock = now_utc,
    content: Content | None = None,
) -> SampleReport:
    """Write the real messages of a sample of the audience as .eml files; record nothing."""
    from mailer.newsletter.render import make_out_dir

    content = content or NewsletterContent()
    row = _campaign(store.conn, name)
    variants, chosen = _sample(store, config, row, content, per_language)
    builders = {lang: content.builder(config, text) for lang, text in variants.items()}
    make_out_dir(out_dir)
    report = SampleReport(row["name"])
    secret = config.secret()
    for index, (r, lang) in enumerate(chosen, 1):
        token = make_token(secret, row["id"], r["contact_id"])
        message = builders[lang].build(
            content.recipient(r["email"], r["name"] or "", r["email_ascii"]),
            unsubscribe_url(config.web.base_url, token),
            now=clock(),
        )
        path = out_dir / f"{index:03d}-{lang}-contact{r['contact_id']}.eml"
        path.write_bytes(message.data)
        report.files.append(path)
        report.recipients.append(r["email"])
    return report


def send_test(
    store: Store,
    config: Config,
    name: str,
    address: str,
    *,
    connect: smtp.ConnectionFactory | None = None,
    clock: Clock = now_utc,
    content: Content | None = None,
) -> SampleReport:
    """Send one sample contact's real message, marked as a test, to `address`; record nothing."""
    from mailer.audience.addresses import parse_address

    content = content or NewsletterContent()
    target = parse_address(address)
    row = _campaign(store.conn, name)
    variants, chosen = _sample(store, config, row, content, 1)
    if not chosen:
        raise InputError(f"campaign {name!r} has no recipients to take a sample from")
    sample, lang = chosen[0]
    builder = content.builder(config, variants[lang])
    token = make_token(config.secret(), row["id"], TEST_CONTACT_ID)
    message = builder.build(
        content.recipient(target.email, sample["name"] or "", target.wire),
        unsubscribe_url(config.web.base_url, token),
        now=clock(),
        test=True,
    )
    factory = connect or smtp.config_factory(config.smtp, config.smtp_password())
    conn = smtp.Connection(factory, 1)
    try:
        outcome = conn.send(
            smtp.Envelope(
                envelope_sender(config),
                target.wire,
                message.data,
                needs_smtputf8=target.needs_smtputf8,
            )
        )
    finally:
        conn.close()
    if outcome.status != smtp.SENT:
        from mailer.errors import SmtpError

        raise SmtpError(f"test message to {target.email} not sent: {outcome.detail}")
    return SampleReport(row["name"], [], [target.email])


def audience_size(
    store: Store, config: Config, name: str, *, content: Content | None = None
) -> int:
    """How many recipients a send of `name` would go to now (for the confirmation prompt)."""
    content = content or NewsletterContent()
    row = _campaign(store.conn, name)
    if row["frozen_at"]:
        return q_deliveries.open_count(store.conn, row["id"])
    where, params = content.audience(store.conn, config, row["segment"])
    return q_deliveries.audience_count(store.conn, where=where, params=params)
