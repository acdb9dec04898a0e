"""The unsubscribe service: thin Starlette handlers over `mailer.audience.subscriptions`.

GET (and HEAD) only show a page, because mail scanners and link previews fetch every link;
POST changes state: the page's form (field `confirm=page`) or an RFC 8058 one-click body
`List-Unsubscribe=One-Click`. Every bad token gets the same 404 page: forged, truncated,
made with another secret, naming a forgotten contact or an unknown campaign.

A token with campaign 0 (`mailer render` samples) or contact 0 (`mailer send --test-to`)
comes from a test message: its page renders (with a note) and its POSTs answer 200 but
change nothing, so a test recipient cannot unsubscribe the sample contact.
"""

from __future__ import annotations

import base64
import hashlib
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.audience import subscriptions as unsubscribes
from mailer.config import Config
from mailer.errors import NotFoundError
from mailer.i18n import LANGUAGES, text
from mailer.store import Store
from mailer.timeutil import now_utc
from mailer.tokens import verify_token

ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"
PAGE_FIELD = "confirm"
PAGE_VALUE = "page"
MAX_BODY = 64 * 1024  # a one-click body is 26 bytes; the page's form is shorter still
TOKEN_MASK = "***"


@dataclass(frozen=True)
class _Form:
    action: str
    field: str
    value: str
    button: str
    intro: str = ""
    secondary: bool = False


class _Stores:
    """A small pool of store connections, one per worker thread at most."""

    def __init__(self, config: Config) -> None:
        self.path = config.database_path
        self._idle: queue.SimpleQueue[Store] = queue.SimpleQueue()
        # SQLite admits one writer at a time and its busy handler sleeps in growing steps;
        # queueing our own writers on a lock keeps the tail latency down under load, and
        # only this one lock holder competes with other processes (a running send).
        self.write_lock = threading.Lock()
        Store(self.path).close()  # create or migrate once, before serving

    @contextmanager
    def get(self) -> Iterator[Store]:
        try:
            store = self._idle.get_nowait()
        except queue.Empty:
            store = Store(self.path, migrate=False)
        try:
            yield store
        finally:
            self._idle.put(store)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("mailer.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
    )


def _css() -> str:
    return (resources.files("mailer.web") / "templates" / "style.css").read_text("utf-8").strip()


def security_headers(css: str) -> dict[str, str]:
    """Headers on every response: no scripts, no external resources, no framing, no cache."""
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'sha256-{digest}'; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Robots-Tag": "noindex, nofollow",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
    }


def create_app(config: Config, *, access_log: Callable[[str], None] | None = None) -> Starlette:
    """Build the ASGI app; `access_log` receives one line per request (no token, no address)."""
    env = _templates()
    css = _css()
    headers = security_headers(css)
    secrets = config.secrets()
    default_language = config.defaults.language
    contact = config.sender.reply_to or config.sender.address
    stores = _Stores(config)

    def render(template: str, status: int, lang: str, **context: Any) -> HTMLResponse:
        html = env.get_template(template).render(css=Markup(css), lang=lang, **context)
        return HTMLResponse(html, status_code=status, headers=headers)

    def not_found() -> HTMLResponse:
        order = [default_language, *(lang for lang in LANGUAGES if lang != default_language)]
        sections = [
            {
                "lang": lang,
                "heading": text(lang, "web_heading_notfound"),
                "text": text(lang, "web_notfound_text", contact=contact),
            }
            for lang in order
        ]
        return render(
            "notfound.html",
            404,
            default_language,
            title=text(default_language, "web_heading_notfound"),
            sections=sections,
        )

    def bad_request(lang: str) -> HTMLResponse:
        return page(
            400, lang, text(lang, "web_heading_bad_request"), [text(lang, "web_bad_request_text")]
        )

    def page(
        status: int,
        lang: str,
        heading: str,
        paragraphs: list[str],
        *,
        info: unsubscribes.PageInfo | None = None,
        note: str = "",
        form: _Form | None = None,
    ) -> HTMLResponse:
        details = []
        if info is not None:
            if info.newsletter:
                details.append((text(lang, "web_label_newsletter"), info.newsletter))
            details.append((text(lang, "web_label_sender"), config.sender.name))
            if info.masked_address:
                details.append((text(lang, "web_label_address"), info.masked_address))
        return render(
            "page.html",
            status,
            lang,
            title=f"{text(lang, 'web_title')} · {config.sender.name}",
            heading=heading,
            details=details,
            paragraphs=paragraphs,
            note=note,
            form=form,
            footer=f"{config.sender.name} · {config.sender.postal_address}",
        )

    def lookup(token: str) -> tuple[unsubscribes.PageInfo, int, int] | None:
        subject = verify_token(secrets, token)
        if subject is None:
            return None
        with stores.get() as store:
            info = unsubscribes.page_info(
                store, subject.campaign_id, subject.contact_id, default_language
            )
        if info is None:
            return None
        return info, subject.campaign_id, subject.contact_id

    def show(token: str, info: unsubscribes.PageInfo) -> HTMLResponse:
        """The page a GET shows; it changes nothing."""
        lang = info.language
        unsubscribe_form = _Form("", PAGE_FIELD, PAGE_VALUE, text(lang, "web_button_unsubscribe"))
        if info.test:
            return page(
                200,
                lang,
                text(lang, "web_heading_confirm"),
                [text(lang, "web_confirm_text")],
                info=info,
                note=text(lang, "web_test_text"),
                form=unsubscribe_form,
            )
        if info.status == "subscribed":
            return page(
                200,
                lang,
                text(lang, "web_heading_confirm"),
                [text(lang, "web_confirm_text")],
                info=info,
                form=unsubscribe_form,
            )
        return done(token, info)

    def done(token: str, info: unsubscribes.PageInfo) -> HTMLResponse:
        lang = info.language
        if info.status == "unsubscribed":
            form = None
            if info.can_undo:
                form = _Form(
                    f"{token}/resubscribe",
                    PAGE_FIELD,
                    PAGE_VALUE,
                    text(lang, "web_button_undo"),
                    intro=text(lang, "web_undo_text"),
                    secondary=True,
                )
            return page(
                200,
                lang,
                text(lang, "web_heading_done"),
                [text(lang, "web_done_text")],
                info=info,
                form=form,
            )
        return page(
            200,
            lang,
            text(lang, "web_heading_stopped"),
            [text(lang, "web_stopped_text", contact=contact)],
            info=info,
        )

    async def form_source(request: Request) -> str | None:
        """Return the source a POST body names ('one-click' or 'page'), None when neither."""
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return None
        try:
            form = await request.form(max_files=0, max_fields=16)
        except Exception:  # malformed multipart or urlencoded data: a bad request
            return None
        try:
            if form.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE:
                return "one-click"
            if form.get(PAGE_FIELD) == PAGE_VALUE:
                return "page"
            return None
        finally:
            await form.close()

    def do_unsubscribe(token: str, source: str) -> Response:
        found = lookup(token)
        if found is None:
            return not_found()
        info, campaign_id, contact_id = found
        lang = info.language
        if info.test:
            return page(
                200,
                lang,
                text(lang, "web_heading_done"),
                [text(lang, "web_test_done_text")],
                info=info,
            )
        with stores.get() as store:
            try:
                with stores.write_lock:
                    unsubscribes.unsubscribe(store, contact_id, campaign_id, source, now_utc())
            except NotFoundError:  # forgotten between the lookup and now
                return not_found()
            after = unsubscribes.page_info(store, campaign_id, contact_id, default_language)
        if after is None:
            return not_found()
        return done(token, after)

    def do_resubscribe(token: str) -> Response:
        found = lookup(token)
        if found is None:
            return not_found()
        info, campaign_id, contact_id = found
        lang = info.language
        if info.test:
            return page(
                200,
                lang,
                text(lang, "web_heading_resubscribed"),
                [text(lang, "web_test_done_text")],
                info=info,
            )
        with stores.get() as store:
            try:
                with stores.write_lock:
                    report = unsubscribes.resubscribe(
                        store, contact_id, campaign_id, "page", now_utc()
                    )
            except NotFoundError:
                return not_found()
        if report.status == "subscribed":
            return page(
                200,
                lang,
                text(lang, "web_heading_resubscribed"),
                [text(lang, "web_resubscribed_text")],
                info=info,
            )
        return page(
            200,
            lang,
            text(lang, "web_heading_stopped"),
            [text(lang, "web_refused_text", contact=contact)],
            info=info,
        )

    def get_page(request: Request) -> Response:
        token = request.path_params["token"]
        found = lookup(token)
        if found is None:
            return not_found()
        return show(token, found[0])

    async def post_page(request: Request) -> Response:
        token = request.path_params["token"]
        source = await form_source(request)
        if source is None:
            found = await run_in_threadpool(lookup, token)
            if found is None:
                return not_found()
            return bad_request(found[0].language)
        return await run_in_threadpool(do_unsubscribe, token, source)

    async def post_resubscribe(request: Request) -> Response:
        token = request.path_params["token"]
        source = await form_source(request)
        if source != "page":
            found = await run_in_threadpool(lookup, token)
            if found is None:
                return not_found()
            return bad_request(found[0].language)
        return await run_in_threadpool(do_resubscribe, token)

    def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n", headers=headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        if status == 404:
            return not_found()
        return PlainTextResponse(f"{status}\n", status_code=status, headers=headers)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        stores.close()

    app = Starlette(
        routes=[
            Route("/u/{token}", get_page, methods=["GET"]),
            Route("/u/{token}", post_page, methods=["POST"]),
            Route("/u/{token}/resubscribe", post_resubscribe, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
        middleware=[] if access_log is None else [Middleware(AccessLog, write=access_log)],
        lifespan=lifespan,
    )
    return app


def mask_path(path: str) -> str:
    """Replace the token in /u/{token}[/…] so logs carry no token."""
    parts = path.split("/")
    if len(parts) >= 3 and parts[1] == "u":
        parts[2] = TOKEN_MASK
    return "/".join(parts)


class AccessLog:
    """One line per request: method, path with the token masked, status, duration.

    No client address, no query string, no token, no e-mail address.
    """

    def __init__(self, app: ASGIApp, write: Callable[[str], None]) -> None:
        self.app = app
        self.write = write

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [0]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            self.write(
                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
                f'"{scope["method"]} {mask_path(scope["path"])}" {status[0] or 500} '
                f"{elapsed:.1f}ms"
            )
