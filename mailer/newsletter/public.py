"""The public face of an issue: its archive copy, the archive's index page and Atom feeds.

The public copy is the newsletter rendered in a public context: the same template and items,
but no reader (a plain greeting, no name, no address), no unsubscribe, preference or click
token, and a subscribe link instead when signup is on. What is rendered here holds nothing
of any recipient, because nothing of a recipient is ever passed in.

Links are root-relative under the path of `web.base_url` (so the pages work on any host
name the site answers to); the feeds, read by other programs, carry absolute URLs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailer.errors import TemplateError
from mailer.i18n import LANGUAGES, format_date, text
from mailer.newsletter.render import _render, build_context, inline_css, issue_path
from mailer.newsletter.templates import load_templates

if TYPE_CHECKING:
    from mailer.config import Config
    from mailer.newsletter.spec import CampaignSpec

ATOM = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


@dataclass(frozen=True)
class Issue:
    """One public issue: the stored campaign and when it went out."""

    campaign_id: int
    spec: CampaignSpec
    published_at: datetime  # aware, UTC: when sending started

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def languages(self) -> list[str]:
        return self.spec.languages

    @property
    def default_language(self) -> str:
        return self.spec.fallback_language()

    def language_for(self, wanted: str) -> str:
        """`wanted` when the issue has it, else its default language."""
        return wanted if wanted in self.spec.subject else self.default_language

    def path(self, lang: str) -> str:
        return issue_path(self.name, lang, self.default_language)


@dataclass(frozen=True)
class Links:
    """Where the public pages point: the served archive, or its static export."""

    base_url: str  # web.base_url: the feeds' absolute links
    default_language: str
    subscribe_url: str = ""  # only when signup is on
    exported: bool = False  # a static export has no ?lang=: index.LANG.html instead

    @classmethod
    def of(cls, config: Config, *, exported: bool = False) -> Links:
        # [signup] belongs to another part of the tool; without it there is no subscribe link.
        signup = getattr(config, "signup", None)
        subscribe = f"{config.web.base_url}/subscribe" if signup else ""
        return cls(config.web.base_url, config.defaults.language, subscribe, exported)

    @property
    def prefix(self) -> str:
        """The path of base_url ('' at a site's root, '/uutiset' below one)."""
        return urlsplit(self.base_url).path.rstrip("/")

    @property
    def images(self) -> str:
        return f"{self.prefix}/m"

    def index(self, lang: str) -> str:
        if lang == self.default_language:
            return f"{self.prefix}/archive/"
        if self.exported:
            return f"{self.prefix}/archive/index.{lang}.html"
        return f"{self.prefix}/archive/?lang={lang}"

    def feed(self, lang: str) -> str:
        name = "feed.xml" if lang == self.default_language else f"feed.{lang}.xml"
        return f"{self.prefix}/archive/{name}"

    def issue(self, issue: Issue, lang: str) -> str:
        return self.prefix + issue.path(lang)

    def absolute(self, path: str) -> str:
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}{path}"


def render_public(config: Config, issue: Issue, lang: str, links: Links) -> str:
    """The public copy of `issue` in `lang` (a language it has): a complete HTML page."""
    spec = issue.spec
    html_template, _ = load_templates(config, spec.template)
    context = build_context(config, spec, lang, "public", image_base=links.images)
    index = links.index(lang)
    context.update(
        greeting=text(lang, "greeting"),
        recipient={"name": "", "email": ""},
        unsubscribe_url=links.subscribe_url or index,  # for templates that predate `public`
        archive_url="",
        public=True,
        subscribe_url=links.subscribe_url,
        archive_index_url=index,
    )
    html = inline_css(_render(html_template, context)).replace("\r\n", "\n")
    if "%%MAILER_" in html:  # a template printing a per-recipient field we did not replace
        raise TemplateError(f"the public copy of {spec.name} would hold a reader's field")
    return html


def _index_languages(issues: list[Issue], default: str) -> list[str]:
    present = {default, *(lang for issue in issues for lang in issue.languages)}
    return [lang for lang in LANGUAGES if lang in present]


def _index_environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("mailer.newsletter", "archive_templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_index(config: Config, issues: list[Issue], lang: str, links: Links) -> str:
    """The archive's index page in `lang`: every public issue, newest first."""
    entries = []
    for issue in issues:
        shown = issue.language_for(lang)
        spec = issue.spec
        entries.append(
            {
                "lang": shown,
                "title": spec.subject[shown],
                "summary": spec.preheader.get(shown, ""),
                "url": links.issue(issue, shown),
                "date": format_date(issue.published_at.date(), lang),
                "date_iso": issue.published_at.date().isoformat(),
            }
        )
    others = [
        {"lang": other, "url": links.index(other), "name": text(other, "archive_language_name")}
        for other in _index_languages(issues, links.default_language)
        if other != lang
    ]
    return (
        _index_environment()
        .get_template("index.html")
        .render(
            lang=lang,
            sender=config.sender.name,
            title=f"{text(lang, 'archive_title')} · {config.sender.name}",
            heading=text(lang, "archive_title"),
            intro=text(lang, "archive_intro", sender=config.sender.name),
            empty=text(lang, "archive_empty"),
            entries=entries,
            others=others,
            others_label=text(lang, "archive_other_languages"),
            feed_url=links.feed(lang),
            feed_label=text(lang, "archive_feed"),
            subscribe_url=links.subscribe_url,
            subscribe_intro=text(lang, "subscribe_intro"),
            subscribe_label=text(lang, "subscribe"),
            footer=f"{config.sender.name} · {config.sender.postal_address}",
        )
    )


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sub(parent: ET.Element, tag: str, value: str = "", **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    if value:
        element.text = value
    return element


def render_feed(config: Config, issues: list[Issue], lang: str, links: Links) -> bytes:
    """The Atom feed (RFC 4287) of the archive in `lang`, newest issue first."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed", {XML_LANG: lang})
    feed_url = links.absolute(links.feed(lang))
    _sub(feed, "id", feed_url)
    _sub(feed, "title", f"{config.sender.name}: {text(lang, 'archive_title')}")
    newest = issues[0].published_at if issues else datetime(2000, 1, 1, tzinfo=timezone.utc)
    _sub(feed, "updated", _stamp(newest))
    _sub(feed, "link", rel="self", type="application/atom+xml", href=feed_url)
    _sub(feed, "link", rel="alternate", type="text/html", href=links.absolute(links.index(lang)))
    author = _sub(feed, "author")
    _sub(author, "name", config.sender.name)
    for issue in issues:
        shown = issue.language_for(lang)
        spec = issue.spec
        url = links.absolute(links.issue(issue, shown))
        entry = _sub(feed, "entry")
        entry.set(XML_LANG, shown)
        _sub(entry, "id", url)
        _sub(entry, "title", spec.subject[shown])
        _sub(entry, "updated", _stamp(issue.published_at))
        _sub(entry, "published", _stamp(issue.published_at))
        _sub(entry, "link", rel="alternate", type="text/html", href=url)
        titles = "; ".join(item.title for item in spec.items_for(shown))
        _sub(entry, "summary", spec.preheader.get(shown, "") or titles, type="text")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"
