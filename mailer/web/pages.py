"""What every area of the web service shares: pages, header sets per route, log masking.

Pages are rendered with one Jinja2 environment (autoescape, StrictUndefined) and one inline
stylesheet whose hash the Content-Security-Policy names. Each route declares the header set of
every answer it gives, its errors included (`PageRoute`); an answer no route claims (an unknown
path) carries the app's default set. The shared answers (404, 400, 405, 413, 503) look the same
from every area, so a bad token says nothing about why it is bad.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mailer.audience.subscriptions import PageInfo
from mailer.config import Config
from mailer.i18n import LANGUAGES, text

HeaderSet = Mapping[str, str]
Handler = Callable[[Request], Awaitable[Response]]

HEADERS_KEY = "mailer.headers"  # the scope key where the matched route leaves its header set
TOKEN_MASK = "***"
# Routes whose second path segment is a token: unsubscribe, preferences, confirm, link.
TOKEN_ROUTES = frozenset({"u", "p", "confirm", "l"})
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9_-]{16,}")  # base64url, long enough to be a secret
# An archive name: lower-case words or numbers joined by hyphens (a UUID's mixed parts are not)
_SLUG = re.compile(r"(?:[a-z]+|[0-9]+)(?:-(?:[a-z]+|[0-9]+))+")


class BodyTooLarge(Exception):
    """A request body went past the cap (its Content-Length, or while it streamed in)."""


def stylesheet() -> str:
    """Return the pages' stylesheet, inlined in every page."""
    return (resources.files("mailer.web") / "templates" / "style.css").read_text("utf-8").strip()


def style_source(css: str) -> str:
    """Return the CSP source that admits exactly the inline stylesheet `css`."""
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    return f"'sha256-{digest}'"


def page_headers(css: str) -> dict[str, str]:
    """The strict set: no scripts, no external resources, no framing, no cache, no indexing."""
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src {style_source(css)}; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Robots-Tag": "noindex, nofollow",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
    }


class PageRoute(Route):
    """One path, a handler per method, and the header set of every answer it gives.

    A method it has no handler for gets 405 with an `Allow` that lists every method it has.
    """

    def __init__(self, path: str, handlers: Mapping[str, Handler], *, headers: HeaderSet):
        self.handlers = dict(handlers)
        if "GET" in self.handlers:
            self.handlers.setdefault("HEAD", self.handlers["GET"])
        super().__init__(path, self._dispatch, methods=list(self.handlers))
        self.headers = dict(headers)
        self.allow = ", ".join(sorted(self.handlers))

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[HEADERS_KEY] = self.headers
        if scope["method"] not in self.handlers:
            raise HTTPException(405, headers={"Allow": self.allow})
        await super().handle(scope, receive, send)

    async def _dispatch(self, request: Request) -> Response:
        return await self.handlers[request.method](request)


def route_headers(scope: Scope, default: HeaderSet) -> HeaderSet:
    """Return the header set the matched route declared, else `default`."""
    headers: HeaderSet = scope.get(HEADERS_KEY, default)
    return headers


@dataclass(frozen=True)
class Form:
    """The one-button form a page may carry."""

    action: str
    field: str
    value: str
    button: str
    intro: str = ""
    secondary: bool = False


class Pages:
    """Render the service's pages in the visitor's language, and the shared answers."""

    def __init__(self, config: Config) -> None:
        self.env = SandboxedEnvironment(  # like the newsletter's: no template reaches Python
            loader=jinja2.PackageLoader("mailer.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
        )
        self.css = stylesheet()
        self.default_language = config.defaults.language
        self.sender = config.sender.name
        self.footer = f"{config.sender.name} · {config.sender.postal_address}"
        self.contact = config.sender.reply_to or config.sender.address

    def render(
        self, template: str, status: int, lang: str, *, robots: str = "noindex", **context: Any
    ) -> HTMLResponse:
        """Render `template`; `robots` is the page's robots meta tag ('' for none)."""
        html = self.env.get_template(template).render(
            css=Markup(self.css), lang=lang, robots=robots, **context
        )
        return HTMLResponse(html, status_code=status)

    def page(
        self,
        status: int,
        lang: str,
        heading: str,
        paragraphs: list[str],
        *,
        info: PageInfo | None = None,
        note: str = "",
        form: Form | None = None,
    ) -> HTMLResponse:
        """A page about one contact's subscription (details from `info` when given)."""
        details = []
        if info is not None:
            if info.newsletter:
                details.append((text(lang, "web_label_newsletter"), info.newsletter))
            details.append((text(lang, "web_label_sender"), self.sender))
            if info.masked_address:
                details.append((text(lang, "web_label_address"), info.masked_address))
        return self.render(
            "actions.html",
            status,
            lang,
            title=f"{text(lang, 'web_title')} · {self.sender}",
            heading=heading,
            details=details,
            paragraphs=paragraphs,
            link=None,
            note=note,
            forms=[form] if form else [],
            footer=self.footer,
        )

    def for_everyone(self, status: int, heading_key: str, text_key: str) -> HTMLResponse:
        """A page for a visitor we know nothing about: every language, the default first."""
        first = self.default_language
        order = [first, *(lang for lang in LANGUAGES if lang != first)]
        sections = [
            {
                "lang": lang,
                "heading": text(lang, heading_key),
                "text": text(lang, text_key, contact=self.contact),
            }
            for lang in order
        ]
        return self.render(
            "notfound.html", status, first, title=text(first, heading_key), sections=sections
        )

    def not_found(self) -> HTMLResponse:
        """The one 404 for every bad token and unknown path: it never says why."""
        return self.for_everyone(404, "web_heading_notfound", "web_notfound_text")

    def bad_request(self, lang: str) -> HTMLResponse:
        return self.page(
            400, lang, text(lang, "web_heading_bad_request"), [text(lang, "web_bad_request_text")]
        )

    def too_large(self) -> HTMLResponse:
        return self.for_everyone(413, "web_heading_too_large", "web_too_large_text")

    def unavailable(self) -> HTMLResponse:
        response = self.for_everyone(503, "web_heading_unavailable", "web_unavailable_text")
        response.headers["Retry-After"] = "10"
        return response

    def method_not_allowed(self, allow: str) -> Response:
        return PlainTextResponse("405\n", status_code=405, headers={"Allow": allow})

    def plain(self, status: int) -> Response:
        return PlainTextResponse(f"{status}\n", status_code=status)


def _token_like(segment: str) -> bool:
    """A long base64url segment that is not a lower-case slug (an archive name, say)."""
    return bool(_TOKEN_LIKE.fullmatch(segment)) and not _SLUG.fullmatch(segment)


def mask_path(path: str) -> str:
    """Mask the token of every token route, and any segment that looks like a token.

    An e-mail address in a path is masked too: the log carries neither.
    """
    parts = path.split("/")
    # `//u/TOKEN`, `/u//TOKEN` and `/u/./TOKEN` reach no route but must not reach the log
    # either: the slot is the first real segment after a token route's name.
    named = [i for i, part in enumerate(parts) if part not in ("", ".", "..")]
    slot = named[1] if len(named) > 1 and parts[named[0]] in TOKEN_ROUTES else -1
    for i, part in enumerate(parts):
        if i == slot or _token_like(part) or "@" in part:
            parts[i] = TOKEN_MASK
    return "/".join(parts)
