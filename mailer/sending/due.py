"""`send-due`: start or continue every campaign that is due, for cron.

Each due campaign is sent by mailer.sending.engine with `due_only` set: only pending rows and
deferred rows whose backoff has passed, no in-run retries. Campaigns another run holds and
paused campaigns are reported, not sent. A late campaign, and one that cannot start (its
audience is empty, a list it names is gone, its stored content no longer renders), becomes
`paused` with the reason: reported by the run that paused it, then listed as paused until a
person acts (`send NAME`, or `campaign create` again).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mailer.config import Config
from mailer.errors import InputError, LeaseHeldError
from mailer.sending import smtp
from mailer.sending.content import Clock, Content, NewsletterContent
from mailer.sending.engine import run_campaign
from mailer.sending.options import ProgressCallback, SendContext, SendOptions, SendReport
from mailer.states import CampaignStatus
from mailer.store import Store
from mailer.store import campaigns as q_campaigns
from mailer.store import deliveries as q_deliveries
from mailer.store.campaigns import Campaign
from mailer.timeutil import from_db, now_utc


@dataclass
class DueItem:
    campaign: str
    action: str  # sent | late | held | idle | quota | paused | cannot-start
    detail: str = ""
    report: SendReport | None = None
    changed_files: list[str] = field(default_factory=list)  # edited since `campaign create`


@dataclass
class DueReport:
    items: list[DueItem] = field(default_factory=list)

    @property
    def paused(self) -> bool:
        return any(i.report is not None and i.report.paused for i in self.items)

    @property
    def failed_to_start(self) -> list[DueItem]:
        """Campaigns this run paused because they could not start (exit 1, reported once)."""
        return [i for i in self.items if i.action == "cannot-start"]


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
    ctx = SendContext(store, config, content or NewsletterContent(), connect, progress, clock)
    options = dataclasses.replace(options or SendOptions(), due_only=True)
    report = DueReport()
    # Paused before this run: send-due leaves them to an explicit `send`, but says so.
    paused = [
        DueItem(row.name, "paused", row.status_reason or "a server failure")
        for row in q_campaigns.paused_campaigns(store.conn)
    ]
    now = clock()
    for row in q_campaigns.due_campaigns(store.conn, now):
        item = _skip_reason(ctx, row, now) or _send_one(ctx, row, options)
        if not row.frozen_at:
            from mailer.sending.campaigns import changed_since_create

            item.changed_files = changed_since_create(row)
        report.items.append(item)
        if item.action == "quota" or (
            item.report is not None and (item.report.paused or item.report.quota_exhausted)
        ):
            break  # the server or today's quota will not serve the next one either
    report.items += paused
    return report


def _skip_reason(ctx: SendContext, row: Campaign, now: datetime) -> DueItem | None:
    """Why campaign `row` is not sent now (late, nothing due, quota), or None to send it."""
    config, store = ctx.config, ctx.store
    late_after = timedelta(hours=config.defaults.max_late_hours)
    late = row.send_at is not None and now - from_db(row.send_at) > late_after
    if row.status == CampaignStatus.SCHEDULED and late:
        from mailer.timeutil import for_people

        when = for_people(row.send_at, config.defaults.zone())
        reason = f"late: send_at {when} is more than {config.defaults.max_late_hours:g} hours ago"
        _pause(ctx, row, reason)
        return DueItem(row.name, "late", f"{reason}; paused; run `mailer send {row.name}`")
    if (
        row.status == CampaignStatus.SENDING
        and q_deliveries.open_count(store.conn, row.id, now) == 0
    ):
        if q_deliveries.open_count(store.conn, row.id) == 0:
            with store.transaction() as conn:
                q_campaigns.set_status(conn, row.id, CampaignStatus.SENT, ctx.clock())
        return DueItem(row.name, "idle", "nothing due yet")
    if config.smtp.per_day:
        used = q_campaigns.quota_used(store.conn, ctx.clock())[1]
        if used >= config.smtp.per_day:
            # not worth a connection: no campaign can send before the quota frees
            return DueItem(row.name, "quota", f"today's quota of {config.smtp.per_day} is used")
    return None


def _pause(ctx: SendContext, row: Campaign, reason: str) -> None:
    with ctx.store.transaction() as conn:
        q_campaigns.set_status(conn, row.id, CampaignStatus.PAUSED, ctx.clock(), reason=reason)


def _send_one(ctx: SendContext, row: Campaign, options: SendOptions) -> DueItem:
    try:
        sent = run_campaign(ctx, row.name, options)
    except LeaseHeldError as exc:
        return DueItem(row.name, "held", exc.message)
    except InputError as exc:
        if row.frozen_at:
            raise
        # It cannot start (empty audience, a list gone, content that no longer renders):
        # never marked sent; paused with the reason, so the next run does not retry it.
        _pause(ctx, row, exc.message)
        return DueItem(row.name, "cannot-start", exc.message)
    return DueItem(row.name, "sent", "", sent)
