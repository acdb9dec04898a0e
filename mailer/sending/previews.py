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
        token = make_token(secret, row.id, r["contact_id"])
        message = builders[lang].build(
            content.recipient(r["email"], r["name"] or "", r["email_ascii"]),
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
) -> SampleReport:
    """Send one sample contact's real message, marked as a test, to `address`; record nothing.

    The message goes out as a one-off (mailer.sending.oneoff): no delivery row, and its
    unsubscribe link names no contact.
    """
    from mailer.addresses import parse_address
    from mailer.newsletter.preview import test_preferences_url

    content = content or NewsletterContent()
    target = parse_address(address)
    row = find_campaign(store.conn, name)
    variants, chosen = _sample(store, config, row, content, 1)
    if not chosen:
        raise InputError(f"campaign {name!r} has no recipients to take a sample from")
    sample, lang = chosen[0]
    token = make_token(config.secret(), row.id, TEST_CONTACT_ID)
    message = content.builder(config, variants[lang]).build(
        content.recipient(target.email, sample["name"] or "", target.wire),
        unsubscribe_url(config.web.base_url, token),
        now=clock(),
        test=True,
        preferences_url=test_preferences_url(config),
    )
    oneoff.deliver(
        config, target, message.message_id, message.data, connect=connect, label="test message"
    )
    return SampleReport(row.name, [], [target.email])


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
