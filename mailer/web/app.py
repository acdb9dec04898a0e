"""The web service: one Starlette app composed of each area's route list.

An area (today `unsubscribe`; later signup, preferences, archive, clicks) is a module with a
`routes(site)` factory that returns its `PageRoute`s, each declaring its own header set. This
module adds what every request goes through: the access log (token masked, no address), the
route's headers on every answer, the body cap (64 KiB, chunked bodies included), and /healthz.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.audience import signups
from mailer.config import Config
from mailer.errors import MailerError
from mailer.sending.outbox import OutboxWorker
from mailer.web import archive, clicks, images, preferences, subscribe, unsubscribe
from mailer.web.pages import BodyTooLarge, HeaderSet, PageRoute, mask_path, route_headers
from mailer.web.site import Site

MAX_BODY = 64 * 1024  # a one-click body is 26 bytes; the page's form is shorter still
NOTE_KEY = "mailer.note"  # a one-line reason the access log adds to an error answer

# /healthz is read by machines: nothing in it may run, be framed, cached or indexed.
HEALTH_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def create_app(config: Config, *, access_log: Callable[[str], None] | None = None) -> Starlette:
    """Build the ASGI app; `access_log` receives one line per request (no token, no address)."""
    site = Site.open(config)
    route_lists = [
        unsubscribe.routes(site),
        subscribe.routes(site),
        preferences.routes(site),
        archive.routes(site),
        images.routes(site),
        clicks.routes(site),
        health_routes(),
    ]
    services = [outbox_worker(site)] if config.signup is not None else []
    return compose(site, route_lists, access_log=access_log, services=services)


def outbox_worker(site: Site) -> OutboxWorker:
    """The thread that sends confirmation and preference-link mails within seconds."""
    from mailer.store import Store

    return OutboxWorker(
        site.config,
        lambda: Store(site.config.database_path, migrate=False),
        wake=site.outbox_wake,
        lock=site.stores.write_lock,
        housekeeping=signups.housekeeping,
    )


def compose(
    site: Site,
    route_lists: Sequence[Sequence[BaseRoute]],
    *,
    access_log: Callable[[str], None] | None = None,
    services: Sequence[OutboxWorker] = (),
) -> Starlette:
    """Compose the areas' route lists into one app with the shared middleware and answers.

    `services` (the outbox worker) start with the app and stop before the store closes.
    """
    answers = _Answers(site)
    middleware = [] if access_log is None else [Middleware(AccessLog, write=access_log)]
    middleware += [
        Middleware(RouteHeaders, default=site.default_headers),
        Middleware(BodyCap, limit=MAX_BODY),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = threading.Event()
        replayer = threading.Thread(
            target=_replay_loop, args=(site, stop, access_log), name="spool", daemon=True
        )
        replayer.start()
        for service in services:
            service.start()
        try:
            yield
        finally:
            for service in services:
                service.stop()
            stop.set()
            replayer.join(timeout=30)
            site.close()

    app = Starlette(
        routes=[route for routes in route_lists for route in routes],
        exception_handlers={
            HTTPException: answers.http_error,
            BodyTooLarge: answers.too_large,
            sqlite3.Error: answers.unavailable,
            MailerError: answers.unavailable,
        },
        middleware=middleware,
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # no redirects: /u/{token}/ is just another bad path
    return app


SPOOL_INTERVAL = 1.0  # seconds between looks at the one-click spool


def _replay_loop(site: Site, stop: threading.Event, log: Callable[[str], None] | None) -> None:
    """Move spooled one-click unsubscribes into the database as soon as it is free."""
    while True:
        try:
            count = unsubscribe.replay_spool(site)
        except sqlite3.Error:
            count = 0  # still locked: the spool stays, try again
        if count and log is not None:
            log(f"recorded {count} one-click unsubscribe(s) spooled while the database was locked")
        if stop.wait(SPOOL_INTERVAL):
            return


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


def health_routes() -> list[BaseRoute]:
    return [PageRoute("/healthz", {"GET": healthz}, headers=HEALTH_HEADERS)]


class _Answers:
    """The exception handlers: every area's errors get the same shared answers."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.pages = site.pages

    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        if status == 404:
            return self.pages.not_found()
        if status == 405:
            allow = (getattr(exc, "headers", None) or {}).get("Allow", "")
            return self.pages.method_not_allowed(allow)
        return self.pages.plain(status)

    async def too_large(self, request: Request, exc: Exception) -> Response:
        return self.pages.too_large()

    async def unavailable(self, request: Request, exc: Exception) -> Response:
        """The store is locked or broken (or another failure of the moment): try again later."""
        if isinstance(exc, MailerError) and exc.exit_code != 1:
            raise exc  # bad input reaching this far is a bug: let it be a 500 with its trace
        request.scope[NOTE_KEY] = f"{self.site.stores.path}: {exc}"
        return self.pages.unavailable()


class RouteHeaders:
    """Give every answer the header set its route declared (else the default set)."""

    def __init__(self, app: ASGIApp, default: HeaderSet) -> None:
        self.app = app
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in route_headers(scope, self.default).items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyCap:
    """Refuse a body over `limit` bytes: by its Content-Length, or as it streams in.

    The handler that reads too much gets `BodyTooLarge`, which answers 413 after routing, so
    the answer carries its route's headers. A body nobody reads is never refused.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        too_long = declared.isdigit() and int(declared) > self.limit
        seen = 0

        async def capped_receive() -> Message:
            nonlocal seen
            if too_long:
                raise BodyTooLarge()
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge()
            return message

        await self.app(scope, capped_receive, send)


class AccessLog:
    """One line per request: method, path with any token masked, status, duration.

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
            note = scope.get(NOTE_KEY)
            self.write(
                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} "
                f'"{scope["method"]} {mask_path(scope["path"])}" {status[0] or 500} '
                f"{elapsed:.1f}ms" + (f" ({note})" if note else "")
            )
