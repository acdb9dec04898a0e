"""The freeze: a campaign's rendered content and its audience, written once before sending.

From the freeze on, a send works from stored state only: the variants as rendered then and
one `pending` delivery per recipient who was subscribed and in the segment then.
"""

from __future__ import annotations

from mailer.config import Config
from mailer.errors import InputError
from mailer.sending.campaigns import check_messages, find_campaign
from mailer.sending.content import Clock, Content, NewsletterContent
from mailer.store import Store
from mailer.store import campaigns as q_campaigns
from mailer.store import deliveries as q_deliveries
from mailer.timeutil import now_utc

ALREADY_FROZEN = -1


class EmptyAudienceError(InputError):
    """The campaign's segment matches no subscribed contact: it is not started (exit 2)."""


def freeze_campaign(
    store: Store, config: Config, name: str, *, content: Content, clock: Clock = now_utc
) -> int:
    """Write the rendered variants and one pending row per recipient, in one transaction.

    Returns the number of recipients, or -1 (ALREADY_FROZEN) when the campaign was frozen.
    An empty audience is refused (EmptyAudienceError) with nothing written, so a typo'd or
    emptied segment never marks an issue sent; a list the segment names that is gone is a
    SegmentError.
    """
    row = find_campaign(store.conn, name)
    if row.frozen_at:
        return ALREADY_FROZEN
    variants = _checked_render(store, config, row.id, row.definition, content)
    check_messages(
        config, variants, content, where=f"campaign {row.name} ({row.source_path})", now=clock()
    )
    languages = sorted(variants)
    default = content.fallback_language(config, row.definition, languages)
    now = clock()
    with store.transaction() as conn:
        if not q_campaigns.mark_frozen(conn, row.id, now):
            return ALREADY_FROZEN
        where, params = content.audience(conn, config, row.segment)
        if config.tracking.clicks:  # links become {base_url}/l/{token}, registered now
            from mailer.engagement.links import freeze_links

            variants = freeze_links(
                conn,
                row.id,
                variants,
                base_url=config.web.base_url,
                default_language=default,
                now=now,
            )
        for language in languages:
            q_campaigns.insert_variant(conn, row.id, language, variants[language])
        count = q_deliveries.insert_audience(
            conn,
            row.id,
            where=where,
            params=params,
            languages=languages,
            default_language=default,
            now=now,
        )
        if count == 0:  # raising rolls the freeze back: the campaign stays as it was
            raise EmptyAudienceError(
                f"campaign {row.name} has no recipients: its segment {row.segment!r} matches"
                " no subscribed contact; nothing sent"
            )
        return count


def _checked_render(
    store: Store, config: Config, campaign_id: int, definition: str, content: Content
) -> dict[str, str]:
    """The render `campaign create` checked, while its inputs are unchanged; else a new one.

    Only the real newsletter content takes a stored render (a Content given by a test
    renders its own).
    """
    if isinstance(content, NewsletterContent):
        from mailer.newsletter.reuse import unpack

        kept = unpack(config, definition, q_campaigns.stored_render(store.conn, campaign_id))
        if kept is not None:
            return kept
    return content.render(config, definition)
