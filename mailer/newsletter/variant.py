"""A `Variant`: one language of a campaign, rendered once, with per-recipient placeholders.

A variant is stored at the freeze and sent from for as long as the campaign lives, so its
stored form carries a format version; every version this code ever wrote keeps loading.
"""

from __future__ import annotations

import html as html_module
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from mailer.i18n import LANGUAGES, text

# The per-recipient fields, in the order their values are passed around.
FIELDS = ("greeting", "name", "email", "unsubscribe_url")
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Variant:
    """One language of a campaign, rendered and CSS-inlined, waiting for its recipients."""

    language: str
    campaign: str
    subject: str
    preheader: str
    html: str  # with placeholders; "\n" line ends
    text: str  # with placeholders; "\n" line ends
    marker: str

    def placeholder(self, field: str) -> str:
        return placeholder(field, self.marker)

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        names = "|".join(f.upper() for f in FIELDS)
        return re.compile(rf"%%MAILER_({names})_{re.escape(self.marker)}%%")

    def pieces(self, part: str) -> list[str | int]:
        """Split the `html` or `text` part into literal strings and field indexes (FIELDS)."""
        source = self.html if part == "html" else self.text
        out: list[str | int] = []
        pos = 0
        for match in self._pattern.finditer(source):
            out.append(source[pos : match.start()])
            out.append(FIELDS.index(match.group(1).lower()))
            pos = match.end()
        out.append(source[pos:])
        return out

    def values(self, name: str, email: str, unsubscribe_url: str) -> tuple[str, ...]:
        """The per-recipient field values (plain text, in FIELDS order)."""
        if not name.isprintable():  # CR, LF and other controls never reach a part
            name = "".join(ch if ch.isprintable() else " " for ch in name)
        name = " ".join(name.split())
        greeting = (
            text(self.language, "greeting_named", name=name)
            if name
            else text(self.language, "greeting")
        )
        return (greeting, name, email, unsubscribe_url)

    def fill(self, part: str, name: str, email: str, unsubscribe_url: str) -> str:
        """Return the finished `html` or `text` for one recipient (slow path: tests, samples)."""
        values = self.values(name, email, unsubscribe_url)
        if part == "html":
            values = tuple(html_module.escape(v, quote=True) for v in values)
        return "".join(p if isinstance(p, str) else values[p] for p in self.pieces(part))

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": _FORMAT_VERSION,
                "language": self.language,
                "campaign": self.campaign,
                "subject": self.subject,
                "preheader": self.preheader,
                "html": self.html,
                "text": self.text,
                "marker": self.marker,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, data: str) -> Variant:
        obj = json.loads(data)
        if obj.get("format") != _FORMAT_VERSION:
            raise ValueError(f"unknown variant format {obj.get('format')!r}")
        return cls(
            language=obj["language"],
            campaign=obj["campaign"],
            subject=obj["subject"],
            preheader=obj["preheader"],
            html=obj["html"],
            text=obj["text"],
            marker=obj["marker"],
        )


def placeholder(field: str, marker: str) -> str:
    return f"%%MAILER_{field.upper()}_{marker}%%"


def choose_variant(
    variants: dict[str, Variant], contact_language: str, default_language: str
) -> Variant:
    """The contact's language if the campaign has it, else `fallback_language`."""
    if contact_language in variants:
        return variants[contact_language]
    return variants[fallback_language(variants, default_language)]


def fallback_language(languages: Iterable[str], default_language: str) -> str:
    """THE rule for a contact whose language the campaign lacks: the default language when
    the campaign has it, else the first language in catalogue order (fi, en, sv, se) it has.
    """
    present = set(languages)
    if default_language in present:
        return default_language
    for lang in LANGUAGES:
        if lang in present:
            return lang
    if not present:
        raise ValueError("a campaign without languages has no fallback")
    return min(present)
