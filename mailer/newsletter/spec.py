"""Campaign files: one newsletter issue as TOML, checked before anything is rendered or sent.

```
name = "uutiskirje-2018-11"
subject = { fi = "Arctic Smartness -uutiskirje", en = "Arctic Smartness newsletter" }
preheader = "Strategic priorities 2018-2022"       # a string or a table per language
segment = "cluster:* or municipality:*"
template = "newsletter"                             # default
items = ["news/priorities.fi.md", "news/priorities.en.md"]
intro = "Hyvä lukija, ..."                          # optional; a string or a table per language
send_at = 2018-11-07T09:00:00                       # optional; no offset = Europe/Helsinki
archive = true                                      # optional; default [archive] default
```

Errors name the file and the key. The segment is only checked for form here; `campaign
create` compiles it against the database.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailer.addresses import has_control
from mailer.errors import FileInputError, TemplateError
from mailer.files import read_limited
from mailer.i18n import LANGUAGES
from mailer.newsletter.images import StoredImage
from mailer.newsletter.news import NewsItem, load_item
from mailer.newsletter.templates import load_templates
from mailer.newsletter.variant import fallback_language

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from mailer.config import Config

LOCAL_ZONE = "Europe/Helsinki"
_KNOWN = (
    "name",
    "subject",
    "preheader",
    "segment",
    "template",
    "items",
    "intro",
    "send_at",
    "archive",
)
_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# A campaign's name is its identifier on the command line and a folder name (dry-run/NAME/).
CAMPAIGN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class CampaignFileError(FileInputError):
    """The campaign file is missing, malformed or has a bad key (exit 2)."""


_Bad = Callable[[str, str], CampaignFileError]  # (key, message) -> the error to raise


@dataclass(frozen=True)
class CampaignSpec:
    """A checked campaign file. Per-language fields map language -> text."""

    name: str
    subject: dict[str, str]
    preheader: dict[str, str]
    segment: str
    template: str
    items: tuple[NewsItem, ...]
    intro: dict[str, str] = field(default_factory=dict)
    send_at: datetime | None = None  # aware, UTC
    source: Path | None = None
    default_language: str = "fi"
    archive: bool = False  # published in the public archive once sending starts

    @property
    def images(self) -> dict[str, StoredImage]:
        """The processed pictures of the items loaded from files (name -> picture)."""
        return {item.picture.name: item.picture for item in self.items if item.picture}

    @property
    def languages(self) -> list[str]:
        """The languages that get a variant: those with items, in catalogue order."""
        present = {item.lang for item in self.items}
        return [lang for lang in LANGUAGES if lang in present]

    def fallback_language(self) -> str:
        """The variant for contacts whose language has none (see `fallback_language`)."""
        return fallback_language(self.languages, self.default_language)

    def items_for(self, lang: str) -> list[NewsItem]:
        return [item for item in self.items if item.lang == lang]

    def to_json(self) -> str:
        """Serialise (for campaigns.definition): everything needed to render it again."""
        return json.dumps(
            {
                "name": self.name,
                "subject": self.subject,
                "preheader": self.preheader,
                "segment": self.segment,
                "template": self.template,
                "items": [item.to_dict() for item in self.items],
                "intro": self.intro,
                "send_at": self.send_at.isoformat() if self.send_at else None,
                "source": str(self.source) if self.source else None,
                "default_language": self.default_language,
                "archive": self.archive,
            },
            ensure_ascii=False,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> CampaignSpec:
        data = json.loads(text)
        return cls(
            name=data["name"],
            subject=data["subject"],
            preheader=data["preheader"],
            segment=data["segment"],
            template=data["template"],
            items=tuple(NewsItem.from_dict(item) for item in data["items"]),
            intro=data.get("intro") or {},
            send_at=datetime.fromisoformat(data["send_at"]) if data.get("send_at") else None,
            source=Path(data["source"]) if data.get("source") else None,
            default_language=data.get("default_language", "fi"),
            archive=bool(data.get("archive", False)),
        )


def load_campaign(path: Path, config: Config) -> CampaignSpec:
    """Read and check the campaign file at `path`, its news items and its template."""
    path = Path(path)
    where = str(path)
    data = _read_toml(path)

    def bad(key: str, message: str) -> CampaignFileError:
        return CampaignFileError(f"{key} {message}", where=where)

    for key in data:
        if key not in _KNOWN:
            raise bad(key, f"is not a campaign key (known: {', '.join(_KNOWN)})")
    for key in ("name", "subject", "segment", "items"):
        if key not in data:
            raise bad(key, "is required")
    name = _name(data["name"], bad)

    segment = data["segment"]
    if not isinstance(segment, str) or not segment.strip():
        raise bad("segment", "must be a non-empty string (a segment expression)")

    template = data.get("template", "newsletter")
    if not isinstance(template, str) or not _TEMPLATE_NAME.match(template):
        raise bad("template", "must be a template name like newsletter")

    items = _items(path, data["items"], bad)
    present = {item.lang for item in items}
    needed = [lang for lang in LANGUAGES if lang in present]
    subject = _subject(data["subject"], needed, bad)
    preheader = _per_language(data.get("preheader", ""), "preheader", needed, bad)
    preheader = {lang: " ".join(text.split()) for lang, text in preheader.items()}
    intro = _per_language(data.get("intro", ""), "intro", needed, bad)

    send_at = _send_at(data.get("send_at"), bad)
    archive = data.get("archive", config.archive.default)
    if not isinstance(archive, bool):
        raise bad("archive", "must be true or false")
    try:
        _check_template(config, template)
    except TemplateError as exc:
        if exc.where:  # a broken template: its own file:line says where
            raise
        raise bad("template", exc.message.removeprefix("template ")) from None

    return CampaignSpec(
        name=name,
        subject=subject,
        preheader=preheader,
        segment=segment.strip(),
        template=template,
        items=tuple(items),
        intro=intro,
        send_at=send_at,
        source=path.absolute(),
        default_language=config.defaults.language,
        archive=archive,
    )


def _read_toml(path: Path) -> dict[str, Any]:
    where = str(path)
    raw = read_limited(path, "campaign file", CampaignFileError)
    try:
        return tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise CampaignFileError("not UTF-8 text", where=where) from None
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+)", str(exc))
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        where_line = f"{where}:{match.group(1)}" if match else where
        raise CampaignFileError(f"malformed TOML: {reason}", where=where_line) from None


def _name(name: Any, bad: _Bad) -> str:
    if not isinstance(name, str):
        raise bad("name", "must be a string")
    if "\r" in name or "\n" in name:
        raise bad("name", "must be one line (no CR or LF)")
    name = name.strip()
    if not CAMPAIGN_NAME.fullmatch(name) or ".." in name:
        raise bad(
            "name",
            "must be 1-100 letters A-Z, digits, '.', '_' or '-', starting with a letter or "
            f"digit, without '..' (like uutiskirje-2018-11), not {name!r}",
        )
    return name


def _items(path: Path, raw_items: Any, bad: _Bad) -> list[NewsItem]:
    """Load the news items listed in `items`, relative to the campaign file's folder."""
    if not isinstance(raw_items, list) or not raw_items:
        raise bad("items", "must be a non-empty list of news item paths")
    items: list[NewsItem] = []
    for n, entry in enumerate(raw_items):
        if not isinstance(entry, str) or not entry.strip():
            raise bad(f"items[{n}]", "must be a path (a string)")
        item_path = path.parent / entry
        if entry in raw_items[:n]:
            raise bad(f"items[{n}]", f"{entry!r} is listed twice")
        if not item_path.is_file():
            raise bad(f"items[{n}]", f"{entry!r}: no such file ({item_path})")
        items.append(load_item(item_path))
    return items


def _subject(value: Any, needed: list[str], bad: _Bad) -> dict[str, str]:
    subject = _per_language(value, "subject", needed, bad, required=True)
    for lang, text in subject.items():
        if has_control(text):  # a subject reaches terminals and headers
            raise bad(
                f"subject.{lang}" if isinstance(value, dict) else "subject",
                "must be one line of plain text (no CR, LF or control characters)",
            )
        subject[lang] = text.strip()
        if not subject[lang]:
            raise bad("subject", "must not be empty")
    return subject


def _per_language(
    value: Any, key: str, needed: list[str], bad: _Bad, *, required: bool = False
) -> dict[str, str]:
    if isinstance(value, str):
        return {lang: value for lang in needed}
    if not isinstance(value, dict):
        raise bad(key, "must be a string or a table of languages")
    for lang, text in value.items():
        if lang not in LANGUAGES:
            raise bad(f"{key}.{lang}", f"is not a language ({', '.join(LANGUAGES)})")
        if not isinstance(text, str):
            raise bad(f"{key}.{lang}", "must be a string")
    out = {}
    for lang in needed:
        if lang not in value:
            if required:
                raise bad(f"{key}.{lang}", f"is missing (the campaign has items in {lang})")
            out[lang] = ""
        else:
            out[lang] = value[lang]
    return out


def _send_at(value: Any, bad: _Bad) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        raise bad("send_at", "must be a date and time, e.g. 2018-11-07T09:00:00")
    else:
        raise bad("send_at", "must be a TOML date-time, e.g. 2018-11-07T09:00:00")
    if moment.tzinfo is None:
        from zoneinfo import ZoneInfo

        moment = moment.replace(tzinfo=ZoneInfo(LOCAL_ZONE))
    return moment.astimezone(timezone.utc)


def _check_template(config: Config, template: str) -> None:
    """The template must exist (workspace or bundled) and compile; errors name file:line."""
    load_templates(config, template)
