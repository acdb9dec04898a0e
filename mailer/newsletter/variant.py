"""A `Variant`: one language of a campaign, rendered once, with per-recipient placeholders.

A variant is stored at the freeze and sent from for as long as the campaign lives, so its
stored form carries a format version; every version this code ever wrote keeps loading:
  1  the first: the placeholder fields are implied (greeting, name, email, unsubscribe_url).
  2  lists the placeholder fields the variant uses, so that new fields (a preferences link,
     a "view in a browser" link) need no new version and older variants keep their own.
     `preferences_url` (the footer's link to {base_url}/p/{token}, with [signup]) is one.
  3  adds `links`: the URLs of the HTML part's counted links (click counting on), whose
     hrefs are the placeholders LINK0, LINK1, … (`link_placeholder`), filled per message
     with that recipient's `{base_url}/l/{token}`. A variant without links is written as
     format 2, which older code reads.
"""

from __future__ import annotations

import html as html_module
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from mailer.errors import MailerError
from mailer.i18n import LANGUAGES, text

# Every per-recipient field this code can fill, in the order their values are passed around.
FIELDS = ("greeting", "name", "email", "unsubscribe_url", "preferences_url")
# The fields of a format-1 variant: fixed forever, whatever FIELDS grows into.
_FORMAT_1_FIELDS: tuple[str, ...] = ("greeting", "name", "email", "unsubscribe_url")
_FORMAT_VERSION = 2
_FORMAT_LINKS = 3  # format 2 plus `links`


class VariantFormatError(MailerError):
    """A stored variant was written by a newer mailer than this one (exit 1)."""


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
    fields: tuple[str, ...] = FIELDS  # the placeholder fields html and text may hold
    links: tuple[str, ...] = ()  # counted links of the HTML part: LINKn is links[n]

    def placeholder(self, field: str) -> str:
        return placeholder(field, self.marker)

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        names = "|".join([*(f.upper() for f in self.fields), *(["LINK[0-9]+"] * bool(self.links))])
        return re.compile(rf"%%MAILER_({names})_{re.escape(self.marker)}%%")

    def pieces(self, part: str) -> list[str | int]:
        """Split the `html` or `text` part into literal strings and value indexes: a field's
        index in `fields`, or `len(fields) + n` for the link `links[n]`."""
        source = self.html if part == "html" else self.text
        if not self.fields and not self.links:
            return [source]
        out: list[str | int] = []
        pos = 0
        for match in self._pattern.finditer(source):
            out.append(source[pos : match.start()])
            name = match.group(1)
            if name.startswith("LINK") and name[4:].isdigit():
                out.append(len(self.fields) + int(name[4:]))
            else:
                out.append(self.fields.index(name.lower()))
            pos = match.end()
        out.append(source[pos:])
        return out

    def values(
        self,
        name: str,
        email: str,
        unsubscribe_url: str,
        preferences_url: str = "",
        first_name: str = "",
    ) -> tuple[str, ...]:
        """The per-recipient field values (plain text, in `fields` order). The greeting uses
        the first name when it is known ("Hei Riikka,"), else the whole name."""
        name, first_name = _one_line(name), _one_line(first_name)
        greeting = (
            text(self.language, "greeting_named", name=first_name or name)
            if first_name or name
            else text(self.language, "greeting")
        )
        full = (greeting, name, email, unsubscribe_url, preferences_url)  # FIELDS order
        if self.fields == FIELDS:
            return full
        return tuple(full[i] for i in self._picks)

    @cached_property
    def _picks(self) -> tuple[int, ...]:
        return tuple(FIELDS.index(f) for f in self.fields)

    def fill(
        self,
        part: str,
        name: str,
        email: str,
        unsubscribe_url: str,
        preferences_url: str = "",
        links: tuple[str, ...] | None = None,
        first_name: str = "",
    ) -> str:
        """Return the finished `html` or `text` for one recipient (slow path: tests, samples).

        `links` are the recipient's URLs for `self.links` (default: the original URLs).
        """
        values = self.values(name, email, unsubscribe_url, preferences_url, first_name) + (
            self.links if links is None else links
        )
        if part == "html":
            values = tuple(html_module.escape(v, quote=True) for v in values)
        return "".join(p if isinstance(p, str) else values[p] for p in self.pieces(part))

    def to_json(self) -> str:
        """The stored form (format 2, or 3 with links), read back by `from_json`."""
        stored = {
            "format": _FORMAT_LINKS if self.links else _FORMAT_VERSION,
            "language": self.language,
            "campaign": self.campaign,
            "subject": self.subject,
            "preheader": self.preheader,
            "html": self.html,
            "text": self.text,
            "marker": self.marker,
            "fields": list(self.fields),
        }
        if self.links:
            stored["links"] = list(self.links)
        return json.dumps(stored, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str) -> Variant:
        """Load a stored variant of any format this code ever wrote (1 to 3)."""
        obj = json.loads(data)
        version = obj.get("format")
        if version == 1:
            fields = _FORMAT_1_FIELDS
        elif version in (_FORMAT_VERSION, _FORMAT_LINKS):
            fields = _known_fields(obj["fields"])
        else:
            raise VariantFormatError(
                f"a stored variant has format {version!r}, which this mailer cannot read"
                f" (it reads formats 1 to {_FORMAT_LINKS}): was it written by a newer mailer?"
            )
        return cls(
            language=obj["language"],
            campaign=obj["campaign"],
            subject=obj["subject"],
            preheader=obj["preheader"],
            html=obj["html"],
            text=obj["text"],
            marker=obj["marker"],
            fields=fields,
            links=tuple(obj.get("links", ())) if version == _FORMAT_LINKS else (),
        )


def _one_line(value: str) -> str:
    if not value.isprintable():  # CR, LF and other controls never reach a part
        value = "".join(ch if ch.isprintable() else " " for ch in value)
    return " ".join(value.split())


def _known_fields(stored: list[str]) -> tuple[str, ...]:
    unknown = [f for f in stored if f not in FIELDS]
    if unknown:
        raise VariantFormatError(
            f"a stored variant uses the field(s) {', '.join(unknown)}, which this mailer"
            " cannot fill: was it written by a newer mailer?"
        )
    return tuple(stored)


def used_fields(marker: str, *parts: str) -> tuple[str, ...]:
    """The fields (in FIELDS order) whose placeholders occur in `parts`."""
    return tuple(f for f in FIELDS if any(placeholder(f, marker) in part for part in parts))


def placeholder(field: str, marker: str) -> str:
    return f"%%MAILER_{field.upper()}_{marker}%%"


def link_placeholder(index: int, marker: str) -> str:
    """The placeholder of the variant's counted link `links[index]` (format 3)."""
    return f"%%MAILER_LINK{index}_{marker}%%"


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
