"""Looks at a campaign before it goes out: a dry run, a test send, the audience's size.

None of these records anything: no freeze, no delivery rows. An unfrozen campaign is
rendered and its audience selected as a send would do it now.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from mailer.config import Config
from mailer.errors import InputError
from mailer.sending import oneoff, smtp
from mailer.sending.campaigns import TEST_CONTACT_ID, find_campaign
from mailer.sending.content import Clock, Content, NewsletterContent
from mailer.store import Store
from mailer.store import campaigns as q_campaigns
from mailer.store import deliveries as q_deliveries
from mailer.store.campaigns import Campaign
from mailer.timeutil import now_utc
from mailer.tokens import make_token, unsubscribe_url


@dataclass
class SampleReport:
    campaign: str
    files: list[Path] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)  # the variants a test send sent


def _sample(
    store: Store, config: Config, row: Campaign, content: Content, per_language: int
) -> tuple[dict[str, str], list[tuple[sqlite3.Row, str]]]:
    """Frozen or freshly rendered variants, and a few recipients per language."""
    if row.frozen_at:
        variants = q_campaigns.variants(store.conn, row.id)
        rows = q_deliveries.frozen_sample(store.conn, row.id, 200)
    else:
        variants = content.render(config, row.definition)
        where, params = content.audience(store.conn, config, row.segment)
        rows = q_deliveries.audience_sample(store.conn, where=where, params=params, limit=200)
    default = content.fallback_language(config, row.definition, sorted(variants))
    chosen: list[tuple[sqlite3.Row, str]] = []
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
    from mailer.files import write_atomic
    from mailer.newsletter.preview import make_out_dir, test_preferences_url

    content = content or NewsletterContent()
    row = find_campaign(store.conn, name)
    variants, chosen = _sample(store, config, row, content, per_language)
    builders = {lang: content.builder(config, text) for lang, text in variants.items()}
    make_out_dir(out_dir)
    report = SampleReport(row.name)
    secret = config.secret()
    for index, (r, lang) in enumerate(chosen, 1):
        # A test token: the file holds a real reader's message, but its link names nobody.
        token = make_token(secret, row.id, TEST_CONTACT_ID)
        message = builders[lang].build(
            content.recipient(r["email"], r["name"] or "", r["email_ascii"], r["first_name"]),
            unsubscribe_url(config.web.base_url, token),
            now=clock(),
            preferences_url=test_preferences_url(config),
        )
        path = out_dir / f"{index:03d}-{lang}-contact{r['contact_id']}.eml"
        write_atomic(path, message.data, private=True)  # a real recipient's message
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
    lang: str | None = None,
) -> SampleReport:
    """Send the campaign's real message once per language variant (or only `lang`), marked
    as a test, to `address` alone; record nothing.

    Each is filled in for a made-up reader of that language, so no real contact's data
    leaves; it goes out as a one-off (mailer.sending.oneoff): no delivery row, and its
    unsubscribe link names no contact.
    """
    from mailer.addresses import parse_address
    from mailer.newsletter.preview import SAMPLE_READERS, test_preferences_url

    content = content or NewsletterContent()
    target = parse_address(address)
    row = find_campaign(store.conn, name)
    variants = (
        q_campaigns.variants(store.conn, row.id)
        if row.frozen_at
        else content.render(config, row.definition)
    )
    languages = sorted(variants) if lang is None else [lang.strip().lower()]
    for one in languages:
        if one not in variants:
            raise InputError(
                f"--lang {one}: campaign {row.name} has no {one} variant"
                f" (it has {', '.join(sorted(variants))})"
            )
    token = make_token(config.secret(), row.id, TEST_CONTACT_ID)
    url = unsubscribe_url(config.web.base_url, token)
    for one in languages:
        reader, reader_email = SAMPLE_READERS.get(one, SAMPLE_READERS["en"])
        message = content.builder(config, variants[one]).build(
            content.recipient(reader_email, reader, target.wire, reader.split()[0]),
            url,
            now=clock(),
            test=True,
            preferences_url=test_preferences_url(config),
        )
        oneoff.deliver(
            config, target, message.message_id, message.data, connect=connect, label="test message"
        )
    return SampleReport(row.name, [], [target.email], languages)


@dataclass
class Preflight:
    """What `send` says before it asks: the status, the audience, the files edited since."""

    campaign: str
    status: str
    finished_at: str | None
    audience: int
    changed_files: list[str]

    @property
    def already_sent(self) -> bool:
        return self.status == "sent"


def preflight(
    store: Store, config: Config, name: str, *, resend_unknown: bool = False
) -> Preflight:
    """Look at campaign `name` before a send asks anything: a cancelled one is refused, an
    unfrozen one with an empty audience too (EmptyAudienceError, exit 2; a list its segment
    names that is gone: SegmentError); a sent one is reported as such."""
    from mailer.errors import ConflictError
    from mailer.sending.campaigns import changed_since_create
    from mailer.sending.freeze import EmptyAudienceError
    from mailer.states import CampaignStatus

    row = find_campaign(store.conn, name)
    if row.status == CampaignStatus.CANCELLED:
        raise ConflictError(f"campaign {row.name!r} is cancelled")
    done = row.status == CampaignStatus.SENT and not resend_unknown
    count = 0 if done else audience_size(store, config, name)
    if count == 0 and not row.frozen_at and not done:
        raise EmptyAudienceError(
            f"campaign {row.name} has no recipients: its segment {row.segment!r} matches no"
            " subscribed contact; nothing sent"
        )
    return Preflight(row.name, row.status.value, row.finished_at, count, changed_since_create(row))


def audience_size(
    store: Store, config: Config, name: str, *, content: Content | None = None
) -> int:
    """How many recipients a send of `name` would go to now (for the confirmation prompt)."""
    content = content or NewsletterContent()
    row = find_campaign(store.conn, name)
    if row.frozen_at:
        return q_deliveries.open_count(store.conn, row.id)
    where, params = content.audience(store.conn, config, row.segment)
    return q_deliveries.audience_count(store.conn, where=where, params=params)
