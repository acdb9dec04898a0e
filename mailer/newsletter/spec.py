"""Campaign files: one newsletter issue as TOML, checked before anything is rendered or sent.

```
name = "uutiskirje-2018-11"
subject = { fi = "Arctic Smartness -uutiskirje", en = "Arctic Smartness newsletter" }
preheader = "Strategic priorities 2018-2022"       # a string or a table per language
segment = "cluster:* or municipality:*"
template = "newsletter"                             # default
items = ["news/priorities.fi.md", "news/priorities.en.md"]
intro = "Hyvä lukija, ..."                          # optional; a string or a table per language
send_at = 2018-11-07T09:00:00                       # optional; no offset = defaults.timezone
archive = true                                      # optional; default [archive] default
```

Errors name the file and the key. The segment is only checked for form here; `campaign
create` compiles it against the database.

A checked spec carries the sources of its templates and the SHA-256 of every file it was
made from (the campaign file, its items, its templates), so that what `campaign create`
stored is what is rendered and sent, and an edit made afterwards is noticed
(`changed_files`).
"""

from __future__ import annotations

import hashlib
import json
import os
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
from mailer.newsletter.templates import template_sources
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
    templates: dict[str, str] = field(default_factory=dict)  # name -> source, as created
    files: dict[str, str] = field(default_factory=dict)  # path -> SHA-256 when created

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
                "templates": self.templates,
                "files": self.files,
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
            # Campaigns stored before templates were kept render from the files as they are.
            templates=data.get("templates") or {},
            files=data.get("files") or {},
        )

    def changed_files(self) -> list[str]:
        """The files this campaign was made from that changed (or went) since it was checked."""
        return changed_files(self.files)


def changed_files(files: dict[str, str]) -> list[str]:
    """Which of `files` (path -> SHA-256) changed or went, as a person would name them
    (relative to the working folder when inside it)."""
    changed = []
    for path, digest in files.items():
        try:
            now = _digest(Path(path).read_bytes())
        except OSError:
            now = ""
        if now != digest:
            changed.append(_shown(path))
    return changed


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _shown(path: str) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return path if relative.startswith("..") else relative


def _source_files(path: Path, items: list[NewsItem], templates: list[Path]) -> dict[str, str]:
    """path -> SHA-256 of the campaign file, its items, their picture files and templates."""
    pictures = [Path(item.source).parent / item.image for item in items if item.image_file]
    paths = [path, *(Path(item.source) for item in items), *pictures, *templates]
    out = {}
    for one in paths:
        try:
            out[str(one.absolute())] = _digest(one.read_bytes())
        except OSError as exc:
            raise CampaignFileError(f"cannot read: {exc.strerror}", where=str(one)) from None
    return out


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

    send_at = _send_at(data.get("send_at"), bad, config.defaults.timezone)
    archive = data.get("archive", config.archive.default)
    if not isinstance(archive, bool):
        raise bad("archive", "must be true or false")
    try:
        templates, template_files = template_sources(config, template)
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
        templates=templates,
        files=_source_files(path, items, template_files),
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
        line = raw.decode("utf-8-sig").splitlines()[int(match.group(1)) - 1] if match else ""
        if _LOOSE_DATE.search(line):
            reason += f"; {DATETIME_HINT}"
        raise CampaignFileError(f"malformed TOML: {reason}", where=where_line) from None


# `send_at = 2027-02-01 09:00` is how people write a time; TOML needs the seconds.
_LOOSE_DATE = re.compile(r"=\s*\d{4}-\d{1,2}-\d{1,2}[ T]?\d{0,2}")
DATETIME_HINT = (
    "a TOML date-time is written without quotes, with seconds: send_at = 2027-02-01T09:00:00"
    " (in defaults.timezone) or with an offset, 2027-02-01T09:00:00+02:00"
)


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
        key = f"items[{n + 1}]"  # counted from 1, like a person counts
        if not isinstance(entry, str) or not entry.strip():
            raise bad(key, "must be a path (a string)")
        item_path = path.parent / entry
        if entry in raw_items[:n]:
            raise bad(key, f"{entry!r} is listed twice")
        if not item_path.is_file():
            raise bad(key, f"{entry!r}: no such file ({item_path})")
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


def _send_at(value: Any, bad: _Bad, zone: str = LOCAL_ZONE) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        raise bad("send_at", f"must be a date and time; {DATETIME_HINT}")
    else:
        raise bad("send_at", f"must be a TOML date-time; {DATETIME_HINT}")
    if moment.tzinfo is None:
        from zoneinfo import ZoneInfo

        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment.astimezone(timezone.utc)
