"""News items: Markdown (CommonMark) files with TOML front matter between `+++` lines.

```
+++
title = "Strategic priorities 2018-2022 published"
date = 2018-11-06
lang = "en"
summary = "About 100 cluster actors met at the University of Lapland."
image = "kuva.jpg"                 # a file beside the item, or an https URL
image_alt = "Cluster actors in the lecture hall"
link = "https://www.lapinliitto.fi/..."
author = "Regional Council of Lapland"
+++
Body in **Markdown**.
```

Raw HTML in the body is shown as text unless the item sets `html = true`. Every error names
`file:line`. A picture given as a file is processed by `mailer.newsletter.images` when the
item is loaded: the item keeps its stored name and size, and the processed bytes ride along
(`picture`, never serialised) until `campaign create` stores them.
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from pathlib import Path
from typing import Any

from mailer.errors import TemplateError
from mailer.files import read_limited
from mailer.i18n import LANGUAGES
from mailer.newsletter.images import StoredImage, load_image

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TEXT_WIDTH = 76
_FENCE = "+++"
_REQUIRED = ("title", "date", "lang")
_OPTIONAL_STR = ("summary", "image", "image_alt", "link", "author")
_KNOWN = set(_REQUIRED) | set(_OPTIONAL_STR) | {"html"}


class NewsItemError(TemplateError):
    """A news item cannot be read or is not valid (exit 2, with file:line)."""


@dataclass(frozen=True)
class NewsItem:
    """One checked news item, with its body rendered to HTML and to wrapped plain text."""

    source: str  # the file it came from (for messages only)
    title: str
    date: date
    lang: str
    summary: str
    image: str
    image_alt: str
    link: str
    author: str
    html: bool
    body_markdown: str
    body_html: str
    body_text: str
    image_file: str = ""  # the processed picture's stored name, when `image` is a file
    image_width: int = 0  # its size in pixels
    image_height: int = 0
    picture: StoredImage | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "picture"}
        data["date"] = self.date.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NewsItem:
        return cls(**dict(data, date=date.fromisoformat(data["date"])))


def load_item(path: Path) -> NewsItem:
    """Read, check and render the news item at `path`."""
    raw = read_limited(path, "news item", NewsItemError)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise NewsItemError("not UTF-8 text", where=f"{path}:{line}") from None
    return parse_item(text, str(path), folder=path.parent)


def parse_item(text: str, source: str, *, folder: Path | None = None) -> NewsItem:
    """Check and render the news item `text` (`source` names it in errors).

    A picture file named by `image` is looked up in `folder` (the item's own folder).
    """
    front_lines, meta, body = _front_matter(text, source)

    def where(key: str) -> str:
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for offset, line in enumerate(front_lines):
            if pattern.match(line):
                return f"{source}:{offset + 2}"
        return f"{source}:1"

    for key in meta:
        if key not in _KNOWN:
            known = ", ".join(sorted(_KNOWN))
            raise NewsItemError(f"unknown key {key!r} (known: {known})", where=where(key))
    for key in _REQUIRED:
        if key not in meta:
            raise NewsItemError(f"{key} is required", where=f"{source}:1")
    values = _string_values(meta, where)
    day = _item_date(meta["date"], where)
    if values["link"] and not _URL.match(values["link"]):
        raise NewsItemError("link must be an http(s) URL", where=where("link"))
    if values["image"] and not values["image_alt"]:
        raise NewsItemError("image_alt is required when image is set", where=where("image"))
    picture = _picture(values["image"], folder, where("image")) if values["image"] else None
    allow_html = meta.get("html", False)
    if not isinstance(allow_html, bool):
        raise NewsItemError("html must be true or false", where=where("html"))

    body_html, body_text = render_markdown(body, allow_html=allow_html)
    return NewsItem(
        source=source,
        title=values["title"],
        date=day,
        lang=values["lang"],
        summary=values["summary"],
        image=values["image"],
        image_alt=values["image_alt"],
        link=values["link"],
        author=values["author"],
        html=allow_html,
        body_markdown=body,
        body_html=body_html,
        body_text=body_text,
        image_file=picture.name if picture else "",
        image_width=picture.width if picture else 0,
        image_height=picture.height if picture else 0,
        picture=picture,
    )


_URL = re.compile(r"^https?://[^\s<>\"]+$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//")


def _picture(image: str, folder: Path | None, where: str) -> StoredImage | None:
    """The processed picture file `image` names, or None when `image` is an http(s) URL."""
    if _URL.match(image):
        return None
    if _SCHEME.match(image):
        raise NewsItemError("image must be a file beside the item or an http(s) URL", where=where)
    return load_image((folder or Path(".")) / image, where=where)


def _front_matter(text: str, source: str) -> tuple[list[str], dict[str, Any], str]:
    """Split `text` into its front matter lines, their parsed TOML and the Markdown body."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if not lines or lines[0].strip() != _FENCE:
        raise NewsItemError("must start with a +++ line (TOML front matter)", where=f"{source}:1")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == _FENCE)
    except StopIteration:
        raise NewsItemError("front matter has no closing +++ line", where=f"{source}:1") from None
    front_lines = lines[1:end]
    body = "\n".join(lines[end + 1 :]).strip("\n") + "\n"
    try:
        meta = tomllib.loads("\n".join(front_lines))
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+)", str(exc))
        line = int(match.group(1)) + 1 if match else len(front_lines) + 1
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(exc))
        raise NewsItemError(f"front matter: {reason}", where=f"{source}:{line}") from None
    return front_lines, meta, body


def _string_values(meta: dict[str, Any], where: Callable[[str], str]) -> dict[str, str]:
    """The string keys: title, lang and the optional ones (absent ones empty)."""
    values: dict[str, str] = {}
    for key in ("title", "lang", *_OPTIONAL_STR):
        value = meta.get(key, "")
        if not isinstance(value, str):
            raise NewsItemError(f"{key} must be a string", where=where(key))
        values[key] = " ".join(value.split()) if key != "summary" else value.strip()
    if not values["title"]:
        raise NewsItemError("title must not be empty", where=where("title"))
    if values["lang"] not in LANGUAGES:
        raise NewsItemError(
            f"lang must be one of {', '.join(LANGUAGES)}, not {values['lang']!r}",
            where=where("lang"),
        )
    return values


def _item_date(day: Any, where: Callable[[str], str]) -> date:
    """The `date` key: a TOML date, a date-time (its day) or an ISO date string."""
    if isinstance(day, datetime):
        return day.date()
    if isinstance(day, date):
        return day
    if isinstance(day, str):
        try:
            return date.fromisoformat(day)
        except ValueError:
            pass
    raise NewsItemError("date must be a date like 2018-11-06", where=where("date"))


def render_markdown(source: str, *, allow_html: bool = False) -> tuple[str, str]:
    """Render CommonMark `source` to (HTML, plain text wrapped at 76 columns)."""
    from markdown_it import MarkdownIt
    from markdown_it.tree import SyntaxTreeNode

    md = MarkdownIt("commonmark", {"html": allow_html})
    tokens = md.parse(source)
    html = md.renderer.render(tokens, md.options, {})
    text = _blocks(SyntaxTreeNode(tokens).children).strip("\n")
    return html, text + "\n" if text else ""


# --- Markdown to plain text: the same words and links, readable in a text part -------------


def _blocks(nodes: Any, width: int = TEXT_WIDTH) -> str:
    out: list[str] = []
    for node in nodes:
        block = _block(node, width)
        if block:
            out.append(block.rstrip("\n"))
    return "\n\n".join(out)


def _block(node: Any, width: int) -> str:
    kind = node.type
    if kind == "paragraph":
        return _fill(_inline(node.children[0]) if node.children else "", width)
    if kind == "heading":
        title = " ".join(_inline(node.children[0]).split()) if node.children else ""
        return title + "\n" + ("=" if node.tag == "h1" else "-") * min(len(title), width)
    if kind in ("bullet_list", "ordered_list"):
        start = int(node.attrs.get("start", 1)) if kind == "ordered_list" else 1
        items = []
        for n, child in enumerate(node.children):
            marker = f"{start + n}. " if kind == "ordered_list" else "- "
            inner = _blocks(child.children, width - len(marker))
            pad = " " * len(marker)
            lines = inner.split("\n") if inner else [""]
            items.append(
                "\n".join([marker + lines[0], *((pad + ln) if ln else "" for ln in lines[1:])])
            )
        return "\n".join(items)
    if kind == "blockquote":
        inner = _blocks(node.children, width - 2)
        return "\n".join(("> " + ln) if ln else ">" for ln in inner.split("\n"))
    if kind in ("fence", "code_block"):
        return "\n".join("    " + ln for ln in node.content.rstrip("\n").split("\n"))
    if kind == "hr":
        return "-" * 20
    if kind == "html_block":
        return _fill(_strip_tags(node.content), width)
    return _blocks(node.children, width) if node.children else ""


def _inline(node: Any) -> str:
    parts: list[str] = []
    for child in node.children:
        kind = child.type
        if kind == "text":
            parts.append(child.content)
        elif kind == "softbreak":
            parts.append(" ")
        elif kind == "hardbreak":
            parts.append("\n")
        elif kind == "code_inline":
            parts.append(child.content)
        elif kind == "link":
            label = _inline(child).strip()
            href = child.attrs.get("href", "")
            same = label in (href, href.removeprefix("mailto:"))
            parts.append(label if same or not href else f"{label} ({href})")
        elif kind == "image":
            parts.append(f"[{child.content or _inline(child)}]")
        elif kind == "html_inline":
            parts.append(_strip_tags(child.content))
        else:
            parts.append(_inline(child))
    return "".join(parts)


def _strip_tags(html: str) -> str:
    import html as html_module

    return html_module.unescape(re.sub(r"<[^>]*>", "", html))


def _fill(text: str, width: int) -> str:
    lines = []
    for hard in text.split("\n"):
        words = " ".join(hard.split())
        lines.append(wrap(words, width) if words else "")
    return "\n".join(lines)


def wrap(text: str, width: int = TEXT_WIDTH) -> str:
    """Wrap one paragraph at `width` columns, never breaking a word or a URL."""
    return textwrap.fill(text, width=max(width, 20), break_long_words=False, break_on_hyphens=False)
