"""Campaigns: create, list, show, cancel and stats, and the checks that a campaign can be sent.

A campaign file is checked whole before it is stored: its segment compiles, its items and
template render, and one real message per language builds with the current settings.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mailer.config import Config
from mailer.errors import ConfigError, ConflictError, InputError, NotFoundError, SegmentError
from mailer.sending.content import Clock, Content, NewsletterContent
from mailer.states import CampaignStatus
from mailer.store import Store
from mailer.store import archive as q_archive
from mailer.store import campaigns as q_campaigns
from mailer.store import deliveries as q_deliveries
from mailer.store.campaigns import Campaign
from mailer.timeutil import now_utc
from mailer.tokens import make_token, unsubscribe_url

TEST_CONTACT_ID = 0  # test-send tokens name no real contact, so they unsubscribe nobody
SAMPLE_EMAIL = "lukija@example.org"
SAMPLE_NAME = "Lukija Esimerkki"
_BUILD_ERRORS = (ValueError, UnicodeError, InputError)  # AddressError is an InputError


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
    recipients: int | None  # a draft's: its current audience; None when its segment fails
    counts: dict[str, int]
    subject: Any = None
    changed_files: list[str] = field(default_factory=list)  # edited since `campaign create`

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
            "changed_files": list(self.changed_files),
        }


@dataclass
class CreateReport:
    name: str
    status: str
    updated: bool
    audience: int = 0  # subscribed contacts the segment matches now


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
    bounced: int = 0  # hard: a 5xx at send or a returned 5.x.x
    soft_bounced: int = 0
    complaints: int = 0
    # Click counting: None when the campaign was sent without it; links in newsletter order.
    clicks: int | None = None
    unique_clicks: int | None = None
    links: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- lookups ---------------------------------------------------------------------------------


def find_campaign(conn: sqlite3.Connection, name: str) -> Campaign:
    """The campaign named `name`; NotFoundError (exit 2) when there is none."""
    row = q_campaigns.get_campaign_by_name(conn, name)
    if row is None:
        raise NotFoundError(f"no campaign named {name!r} (see `mailer campaign list`)")
    return row


def reload_campaign(conn: sqlite3.Connection, campaign: Campaign) -> Campaign:
    """The same campaign as it stands now (campaigns are never deleted)."""
    row = q_campaigns.get_campaign(conn, campaign.id)
    if row is None:
        raise ConflictError(f"campaign {campaign.name!r} is gone")
    return row


# --- message checks --------------------------------------------------------------------------


def _reason(exc: Exception) -> str:
    return exc.message if isinstance(exc, InputError) else str(exc) or type(exc).__name__


def _config_key_error(config: Config, key: str, exc: Exception) -> InputError:
    return ConfigError(f"{key} cannot be used in a message: {_reason(exc)}", where=str(config.path))


def _check_sender(config: Config) -> None:
    """The [sender] settings make valid From, Reply-To and List-Id headers."""
    from mailer.addresses import parse_address
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


def check_messages(
    config: Config, variants: dict[str, str], content: Content, *, where: str, now: datetime
) -> None:
    """Build one real message per frozen variant, so that a setting or a campaign text that
    cannot make a message fails here (InputError, exit 2) before anything is stored or frozen.

    Errors name the config key ([sender] address/reply_to/name/list_id, [web] base_url) when
    a setting is at fault, else the campaign (`where`).
    """
    _check_sender(config)
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


# --- create, list, show, cancel, stats -------------------------------------------------------


def create_campaign(
    store: Store, config: Config, path: Path, *, clock: Clock = now_utc
) -> CreateReport:
    """Check a campaign file (segment, items, template) and store it as draft or scheduled.

    What is stored is what will be sent: the file, its items and its templates as they are
    now, and the segment with saved segments written out. A campaign that has not started
    may be created again from its edited file.
    """
    from mailer.audience.segments import compile_segment, expand_segment
    from mailer.newsletter.render import render_campaign
    from mailer.newsletter.reuse import pack
    from mailer.newsletter.spec import CampaignFileError, load_campaign

    spec = load_campaign(path, config)
    now = clock()
    late = timedelta(hours=config.defaults.max_late_hours)
    if spec.send_at is not None and now - spec.send_at > late:
        from mailer.timeutil import for_people

        shown = for_people(spec.send_at, config.defaults.zone())
        raise CampaignFileError(
            f"send_at {shown} is more than defaults.max_late_hours"
            f" ({config.defaults.max_late_hours:g}) hours ago; set a later time, or remove"
            " send_at and send it with `mailer send`",
            where=f"{path}: send_at",
        )
    variants = render_campaign(config, spec)  # the template and items render, or TemplateError
    frozen = {lang: variant.to_json() for lang, variant in variants.items()}
    check_messages(config, frozen, NewsletterContent(), where=str(path), now=now)
    status = CampaignStatus.SCHEDULED if spec.send_at else CampaignStatus.DRAFT
    source_path = str(Path(path).absolute())
    with store.transaction() as conn:
        try:
            segment = expand_segment(conn, spec.segment, config.list_kinds)
            compiled = compile_segment(conn, segment, config.list_kinds)
        except SegmentError as exc:
            raise SegmentError(exc.message, where=f"{path}: segment") from None
        spec = dataclasses.replace(spec, segment=segment)
        definition = spec.to_json()
        audience = q_deliveries.audience_count(conn, where=compiled.where, params=compiled.params)
        rendered = pack(config, definition, frozen)  # kept for the freeze (newsletter/reuse.py)
        pictures = spec.images.values()  # stored with the campaign: what is previewed is sent
        q_archive.insert_images(conn, [(p.name, p.data, p.width, p.height) for p in pictures], now)
        existing = q_campaigns.get_campaign_by_name(conn, spec.name)
        if existing is None:
            campaign_id = q_campaigns.insert_campaign(
                conn,
                name=spec.name,
                source_path=source_path,
                definition=definition,
                segment=spec.segment,
                status=status,
                send_at=spec.send_at,
                now=now,
            )
            q_campaigns.save_render(conn, campaign_id, rendered)
            return CreateReport(spec.name, status.value, False, audience)
        if not q_campaigns.update_definition(
            conn,
            existing.id,
            source_path=source_path,
            definition=definition,
            segment=spec.segment,
            status=status,
            send_at=spec.send_at,
        ):
            raise ConflictError(
                f"campaign {spec.name!r} already exists and is {existing.status.value}; "
                "give the new issue another name",
                where=str(path),
            )
        q_campaigns.save_render(conn, existing.id, rendered)
        return CreateReport(spec.name, status.value, True, audience)


def changed_since_create(row: Campaign) -> list[str]:
    """The files `row` was created from that were edited since (empty once it is frozen:
    from then on it sends what it froze, whatever the files say)."""
    from mailer.newsletter.spec import changed_files

    if row.frozen_at:
        return []
    files = json.loads(row.definition).get("files")
    return changed_files(files) if isinstance(files, dict) else []


def stored_spec(store: Store, name: str) -> tuple[Any, list[str]]:
    """Campaign `name` as `campaign create` stored it (a CampaignSpec: what a send renders),
    and the files edited since. A name that is neither a file nor a campaign: NotFoundError."""
    from mailer.newsletter.spec import CampaignSpec

    row = q_campaigns.get_campaign_by_name(store.conn, name)
    if row is None:
        raise NotFoundError(
            f"{name!r} is neither a campaign file nor a campaign's name"
            " (see `mailer campaign list`)"
        )
    return CampaignSpec.from_json(row.definition), changed_since_create(row)


def current_audience(conn: sqlite3.Connection, config: Config, row: Campaign) -> int:
    """How many subscribed contacts an unfrozen campaign's segment matches now
    (SegmentError when it no longer resolves: a list it names is gone)."""
    from mailer.audience.segments import compile_segment

    compiled = compile_segment(conn, row.segment, config.list_kinds)
    return q_deliveries.audience_count(conn, where=compiled.where, params=compiled.params)


def _info(conn: sqlite3.Connection, row: Campaign, config: Config | None = None) -> CampaignInfo:
    counts = q_deliveries.counts(conn, row.id)
    recipients: int | None = sum(counts.values())
    reason = row.status_reason
    changed: list[str] = []
    if config is not None and not row.frozen_at and row.status != CampaignStatus.CANCELLED:
        try:
            recipients = current_audience(conn, config, row)
        except SegmentError as exc:
            recipients, reason = None, reason or f"segment: {exc.message}"
        if recipients == 0 and not reason:
            reason = "the segment matches no subscribed contact"
        changed = changed_since_create(row)
    return CampaignInfo(
        name=row.name,
        status=row.status.value,
        segment=row.segment,
        send_at=row.send_at,
        created_at=row.created_at,
        frozen_at=row.frozen_at,
        finished_at=row.finished_at,
        source_path=row.source_path,
        status_reason=reason,
        recipients=recipients,
        counts=counts,
        subject=json.loads(row.definition).get("subject"),
        changed_files=changed,
    )


def list_campaigns(store: Store, config: Config | None = None) -> list[CampaignInfo]:
    """Every campaign; with `config`, drafts count their audience as it is now."""
    return [_info(store.conn, row, config) for row in q_campaigns.list_campaigns(store.conn)]


def show_campaign(store: Store, name: str, config: Config | None = None) -> CampaignInfo:
    return _info(store.conn, find_campaign(store.conn, name), config)


def cancel_campaign(store: Store, name: str, *, clock: Clock = now_utc) -> CampaignInfo:
    """Cancel a campaign that is not sent; a run sending it stops within seconds."""
    with store.transaction() as conn:
        row = find_campaign(conn, name)
        if not q_campaigns.set_status(
            conn, row.id, CampaignStatus.CANCELLED, clock(), reason="cancelled by the operator"
        ):
            raise ConflictError(f"campaign {name!r} is {row.status.value} and cannot be cancelled")
        return _info(conn, reload_campaign(conn, row))


def campaign_stats(store: Store, name: str) -> Stats:
    from mailer.audience.subscriptions import count_for_campaign
    from mailer.bounces.apply import campaign_counts

    conn = store.conn
    row = find_campaign(conn, name)
    counts = q_deliveries.counts(conn, row.id)
    return Stats(
        campaign=row.name,
        status=row.status.value,
        recipients=sum(counts.values()),
        sent=counts["sent"],
        failed=counts["failed"],
        deferred=counts["deferred"],
        pending=counts["pending"] + counts["sending"],  # `sending`: in flight right now
        unknown=counts["unknown"],
        skipped=counts["skipped"],
        unsubscribed=count_for_campaign(conn, row.id),
        **_bounce_counts(campaign_counts(conn, row.id)),
        **_click_stats(conn, row.id),
    )


def _bounce_counts(counts: dict[str, int]) -> dict[str, Any]:
    return {
        "bounced": counts["hard"],
        "soft_bounced": counts["soft"],
        "complaints": counts["complaint"],
    }


def _click_stats(conn: sqlite3.Connection, campaign_id: int) -> dict[str, Any]:
    from mailer.engagement.clicks import campaign_clicks

    counted = campaign_clicks(conn, campaign_id)
    if counted is None:
        return {}
    return {
        "clicks": counted.clicks,
        "unique_clicks": counted.unique_clicks,
        "links": [
            {"url": link.url, "clicks": link.clicks, "unique_clicks": link.unique_clicks}
            for link in counted.links
        ],
    }
