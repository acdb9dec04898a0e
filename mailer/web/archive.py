"""The public archive (/archive/): the index, each issue per language, and the Atom feeds.

These pages are meant to be found: no `noindex`, cacheable for a few minutes, and a
Content-Security-Policy of their own — the newsletter's inline styles and pictures from this
site, nothing else (no script, no form, no third party). The rendered copy of an issue is
kept per campaign and language (a sent campaign's content never changes); whether it is
still public is asked of the store on every request, so `archive remove` takes effect at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from mailer.i18n import LANGUAGES
from mailer.newsletter.public import Issue, Links, render_feed, render_index, render_public
from mailer.sending import archive
from mailer.sending.archive import IssueRow
from mailer.web.pages import PageRoute
from mailer.web.site import Site

# Indexable and framable by this site only; styles inline (the newsletter's own, inlined by
# premailer into style attributes, which a hash cannot admit); pictures from /m/ only.
ARCHIVE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'self'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
}
FEED_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PAGE_CACHE = "public, max-age=300"  # a withdrawn issue leaves shared caches within minutes
HTML = "text/html; charset=utf-8"
ATOM = "application/atom+xml; charset=utf-8"


def routes(site: Site) -> list[BaseRoute]:
    """The /archive/ routes; the feeds come before `{name}`, which would match them too."""
    area = _Archive(site)
    return [
        PageRoute("/archive/", {"GET": area.index}, headers=ARCHIVE_HEADERS),
        PageRoute("/archive/feed.xml", {"GET": area.feed}, headers=FEED_HEADERS),
        PageRoute("/archive/feed.{lang}.xml", {"GET": area.feed}, headers=FEED_HEADERS),
        PageRoute("/archive/{name}", {"GET": area.issue}, headers=ARCHIVE_HEADERS),
        PageRoute("/archive/{name}/{lang}", {"GET": area.issue}, headers=ARCHIVE_HEADERS),
    ]


class _Archive:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.config = site.config
        self.links = Links.of(site.config)
        self._lock = threading.Lock()
        self._cache: dict[tuple[object, ...], bytes] = {}
        self._issues_by_id: dict[int, Issue] = {}

    def _cached(self, key: tuple[object, ...], make: Callable[[], bytes]) -> bytes:
        with self._lock:
            found = self._cache.get(key)
        if found is None:
            found = make()
            with self._lock:
                if len(self._cache) > 500:  # many languages of many issues: start over
                    self._cache.clear()
                self._cache[key] = found
        return found

    def _not_found(self) -> Response:
        response = self.site.pages.not_found()
        response.headers["Cache-Control"] = "no-store"
        return response

    def _language(self, request: Request, default: str) -> str | None:
        """`?lang=` when given (None when it names no language), else `default`."""
        wanted = request.query_params.get("lang")
        if wanted is None:
            return default
        return wanted if wanted in LANGUAGES else None

    def _issues(self) -> list[Issue]:
        with self.site.stores.get() as store:
            rows = archive.public_issue_rows(store.conn)
        return [self._issue(row) for row in rows]

    def _issue(self, row: IssueRow) -> Issue:
        """The issue of a stored row; a started campaign's definition never changes."""
        with self._lock:
            issue = self._issues_by_id.get(row.campaign_id)
        if issue is None:
            issue = archive.issue_from_row(row)
            with self._lock:
                self._issues_by_id[row.campaign_id] = issue
        return issue

    def _listing(self, kind: str, lang: str) -> bytes:
        """The index page or the feed in `lang`, rendered again when the issues change."""
        issues = self._issues()
        key = (kind, lang, *((i.campaign_id, i.published_at) for i in issues))
        if kind == "feed":
            return self._cached(key, lambda: render_feed(self.config, issues, lang, self.links))
        return self._cached(
            key, lambda: render_index(self.config, issues, lang, self.links).encode()
        )

    async def index(self, request: Request) -> Response:
        lang = self._language(request, self.links.default_language)
        if lang is None:
            return self._not_found()
        body = await run_in_threadpool(self._listing, "index", lang)
        return Response(body, media_type=HTML, headers={"Cache-Control": PAGE_CACHE})

    async def feed(self, request: Request) -> Response:
        lang = request.path_params.get("lang", self.links.default_language)
        if lang not in LANGUAGES or (
            "lang" in request.path_params and lang == self.links.default_language
        ):
            return self._not_found()  # the default language's feed is feed.xml
        body = await run_in_threadpool(self._listing, "feed", lang)
        return Response(body, media_type=ATOM, headers={"Cache-Control": PAGE_CACHE})

    def _issue_page(self, name: str, lang: str | None, wanted: str | None) -> bytes | None:
        """The page of issue `name` in `lang` (path) or `wanted` (?lang=); None: 404."""
        with self.site.stores.get() as store:
            row = archive.public_issue_row(store.conn, name)
        if row is None:
            return None
        issue = self._issue(row)
        lang = lang or wanted or issue.default_language
        if lang not in issue.languages:
            return None
        found = issue
        return self._cached(
            ("issue", issue.campaign_id, lang),
            lambda: render_public(self.config, found, lang, self.links).encode(),
        )

    async def issue(self, request: Request) -> Response:
        wanted = request.query_params.get("lang")
        body = await run_in_threadpool(
            self._issue_page, request.path_params["name"], request.path_params.get("lang"), wanted
        )
        if body is None:
            return self._not_found()
        return Response(body, media_type=HTML, headers={"Cache-Control": PAGE_CACHE})
