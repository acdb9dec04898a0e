"""Counted links: found in the HTML part at the freeze, registered, filled per message.

With `tracking.clicks = true`, every http(s) link of a variant's HTML part becomes a
placeholder (`LINKn`, variant format 3) whose value per message is that recipient's
`{base_url}/l/{token}`; the token names the campaign, the link and the delivery, MAC'd. Not
counted: links into our own service (unsubscribe, preferences, archive, images under
`base_url`), links holding a per-recipient placeholder, and anything but http(s) (mailto:,
tel:, #anchors). The text part keeps the original URLs, readable.

The same URL twice in a newsletter (a title and its "read more" button) is one link.
"""

from __future__ import annotations

import dataclasses
import html
import re
import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime

from mailer.newsletter.variant import Variant, fallback_language, link_placeholder
from mailer.store import engagement as q
from mailer.tokens import link_url, make_link_token

# An <a> start tag and its href attribute (premailer writes attributes double-quoted).
_ANCHOR_HREF = re.compile(
    r"""(<a\b[^>]*?\shref\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE | re.DOTALL
)
_PLACEHOLDER = "%%MAILER_"


def is_counted(url: str, base_url: str) -> bool:
    """Whether a link's URL is one to count: http(s), not ours, no per-recipient part."""
    lowered = url.lower()
    if not lowered.startswith(("http://", "https://")) or _PLACEHOLDER in url:
        return False
    if not url.isprintable() or any(ch.isspace() for ch in url):
        return False  # a broken link stays as written; a Location header gets no CR/LF
    own = base_url.rstrip("/").lower()
    return not (lowered == own or lowered.startswith(own + "/"))


def count_links(variant: Variant, base_url: str) -> Variant:
    """The variant with its counted links as placeholders and listed in `links`."""
    urls: list[str] = list(variant.links)

    def replace(match: re.Match[str]) -> str:
        raw = match.group(2) if match.group(2) is not None else match.group(3)
        url = html.unescape(raw).strip()
        if not is_counted(url, base_url):
            return match.group(0)
        if url not in urls:
            urls.append(url)
        return f'{match.group(1)}"{link_placeholder(urls.index(url), variant.marker)}"'

    rewritten = _ANCHOR_HREF.sub(replace, variant.html)
    return dataclasses.replace(variant, html=rewritten, links=tuple(urls))


def freeze_links(
    conn: sqlite3.Connection,
    campaign_id: int,
    variants: Mapping[str, str],
    *,
    base_url: str,
    default_language: str,
    now: datetime,
) -> dict[str, str]:
    """Rewrite the frozen variants' links and register them for the campaign (in the freeze's
    transaction); return the variants to store. Order: the default language's links first,
    then any other language's new ones, each in the order they appear."""
    counted = {
        lang: count_links(Variant.from_json(text), base_url) for lang, text in variants.items()
    }
    first = fallback_language(counted, default_language)
    urls: list[str] = []
    for lang in [first, *sorted(set(counted) - {first})]:
        urls += [url for url in counted[lang].links if url not in urls]
    q.register_links(conn, campaign_id, urls, secrets.token_bytes(32), now)
    return {lang: variant.to_json() for lang, variant in counted.items()}


class LinkFiller:
    """A campaign's click URLs per message: `{base_url}/l/{token}` for each counted link."""

    def __init__(
        self, secret: bytes, base_url: str, campaign_id: int, ids: Mapping[str, int]
    ) -> None:
        self.secret = secret
        self.base_url = base_url
        self.campaign_id = campaign_id
        self.ids = dict(ids)
        self._per_variant: dict[tuple[str, ...], tuple[int, ...]] = {}

    def urls(self, links: Sequence[str], delivery_id: int) -> tuple[str, ...]:
        """The URLs of `links` (a variant's) for one delivery; () when nothing is counted."""
        if not links or not self.ids:
            return ()
        key = tuple(links)
        ids = self._per_variant.get(key)
        if ids is None:
            ids = self._per_variant[key] = tuple(self.ids[url] for url in key)
        campaign, secret, base = self.campaign_id, self.secret, self.base_url
        return tuple(
            link_url(base, make_link_token(secret, campaign, link_id, delivery_id))
            for link_id in ids
        )


def link_filler(
    conn: sqlite3.Connection, secret: bytes, base_url: str, campaign_id: int
) -> LinkFiller:
    """The filler of a frozen campaign (it fills nothing when the campaign is not counted)."""
    return LinkFiller(secret, base_url, campaign_id, q.link_ids(conn, campaign_id))
