"""Counted links (/l/{token}): the one GET that counts and the one redirect the service makes.

`GET /l/{token}` answers 302 to the URL stored for that link of that campaign and hands the
click to the writer thread (mailer.engagement.clicks), so the answer never waits for the
database. Only stored URLs are targets: the query string and fragment of the request change
nothing (no open redirect). A forged token, or one naming a link of another campaign, gets
the shared 404. HEAD answers the same redirect and is not counted. The routes exist whether
or not `tracking.clicks` is on now: links in newsletters sent with it must keep working.
"""

from __future__ import annotations

import sys

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from mailer.engagement.clicks import Click, ClickRecorder, LinkTargets, Target
from mailer.store import Store
from mailer.timeutil import now_utc
from mailer.web.pages import PageRoute
from mailer.web.site import Site

# A redirect has no page: nothing may run, be framed, cached, indexed or sent as a referrer.
REDIRECT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def routes(site: Site) -> list[BaseRoute]:
    """The /l/ route; starts the click writer, which the site stops when it closes."""
    tracking = site.config.tracking
    path = site.stores.path
    recorder = ClickRecorder(
        lambda: Store(path, migrate=False),
        site.stores.write_lock,
        ignore_seconds=tracking.ignore_first_seconds,
        keep_days=tracking.keep_days,
        log=_log,
    ).start()
    site.closers.append(recorder.close)
    area = _Clicks(site, recorder)
    return [PageRoute("/l/{token}", {"GET": area.follow}, headers=REDIRECT_HEADERS)]


class _Clicks:
    def __init__(self, site: Site, recorder: ClickRecorder) -> None:
        self.site = site
        self.recorder = recorder
        self.targets = LinkTargets(site.secrets, site.stores.get)

    async def follow(self, request: Request) -> Response:
        subject = self.targets.verify(request.path_params["token"])
        if subject is None:
            return self.site.pages.not_found()
        target = self.targets.cached(subject)
        if target is False:
            target = await run_in_threadpool(self.targets.lookup, subject)
        if not isinstance(target, Target):
            return self.site.pages.not_found()
        if request.method == "GET" and target.countable:
            self.recorder.add(
                Click(subject.campaign_id, subject.link_id, subject.delivery_id, now_utc())
            )
        return RedirectResponse(target.url, status_code=302)  # non-ASCII percent-encoded
