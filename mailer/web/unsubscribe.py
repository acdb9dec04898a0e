"""The unsubscribe pages (/u/{token}): thin handlers over `mailer.audience.subscriptions`.

GET (and HEAD) only show a page, because mail scanners and link previews fetch every link;
POST changes state: the page's form (field `confirm=page`) or an RFC 8058 one-click body
`List-Unsubscribe=One-Click`. Every bad token gets the same 404 page: forged, truncated,
made with another secret, naming a forgotten contact or an unknown campaign.

A token with campaign 0 (`mailer render` samples) or contact 0 (`mailer send --test-to`)
comes from a test message: its page renders (with a note) and its POSTs answer 200 but
change nothing, so a test recipient cannot unsubscribe the sample contact.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from mailer.audience import subscriptions
from mailer.audience.subscriptions import TEST_CAMPAIGN_ID, ChangeReport, PageInfo
from mailer.errors import NotFoundError
from mailer.i18n import text
from mailer.store import Store, is_busy
from mailer.timeutil import now_utc
from mailer.tokens import verify_token
from mailer.web.pages import BodyTooLarge, Form, PageRoute, page_headers
from mailer.web.site import Site

ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"
PAGE_FIELD = "confirm"
PAGE_VALUE = "page"

Change = Callable[[Store, int, int | None, str, datetime], ChangeReport]


@dataclass(frozen=True)
class _Found:
    info: PageInfo
    campaign_id: int
    contact_id: int


def replay_spool(site: Site) -> int:
    """Record the spooled one-click unsubscribes once the database is free (0 when none).

    Raises sqlite3.Error while the database is still locked; the spool stays.
    """
    spool = site.stores.spool
    if not spool.pending():
        return 0
    with site.stores.get() as store, site.stores.write_lock:
        return spool.replay(store)


def routes(site: Site) -> list[BaseRoute]:
    """The /u/ routes, each answering with the strict page headers."""
    area = _Unsubscribe(site)
    headers = page_headers(site.pages.css)  # no scripts, no framing, no cache, no indexing
    return [
        PageRoute("/u/{token}", {"GET": area.get_page, "POST": area.post_page}, headers=headers),
        PageRoute("/u/{token}/resubscribe", {"POST": area.post_resubscribe}, headers=headers),
    ]


async def form_source(request: Request) -> str | None:
    """Return the source a POST body names ('one-click' or 'page'), None when neither."""
    try:
        form = await request.form(max_files=0, max_fields=16)
    except BodyTooLarge:
        raise
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


class _Unsubscribe:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.pages = site.pages

    def lookup(self, token: str) -> _Found | None:
        subject = verify_token(self.site.secrets, token)
        if subject is None:
            return None
        with self.site.stores.get() as store:
            info = subscriptions.page_info(
                store, subject.campaign_id, subject.contact_id, self.site.default_language
            )
        if info is None:
            return None
        return _Found(info, subject.campaign_id, subject.contact_id)

    # -- handlers ---------------------------------------------------------------------------

    async def get_page(self, request: Request) -> Response:
        return await run_in_threadpool(self.show, request.path_params["token"])

    async def post_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        source = await form_source(request)
        if source is None:
            return await run_in_threadpool(self.bad_request, token)
        return await run_in_threadpool(self.change, token, "unsubscribe", source)

    async def post_resubscribe(self, request: Request) -> Response:
        token = request.path_params["token"]
        if await form_source(request) != "page":
            return await run_in_threadpool(self.bad_request, token)
        return await run_in_threadpool(self.change, token, "resubscribe", "page")

    # -- work (in a worker thread) ------------------------------------------------------------

    def show(self, token: str) -> Response:
        """The page a GET shows; it changes nothing."""
        found = self.lookup(token)
        if found is None:
            return self.pages.not_found()
        info = found.info
        if not info.test and info.status != "subscribed":
            return self.done(token, info)
        lang = info.language
        return self.pages.page(
            200,
            lang,
            text(lang, "web_heading_confirm"),
            [text(lang, "web_confirm_text")],
            info=info,
            note=text(lang, "web_test_text") if info.test else "",
            form=Form("", PAGE_FIELD, PAGE_VALUE, text(lang, "web_button_unsubscribe")),
        )

    def bad_request(self, token: str) -> Response:
        found = self.lookup(token)
        if found is None:
            return self.pages.not_found()
        return self.pages.bad_request(found.info.language)

    def change(self, token: str, action: str, source: str) -> Response:
        """Unsubscribe or resubscribe the token's contact; a test token changes nothing.

        A one-click unsubscribe that finds the database locked past its busy timeout is
        spooled (fsynced) and answered 200: the provider never sends it again.
        """
        try:
            return self._change(token, action, source)
        except sqlite3.OperationalError as exc:
            if (action, source) != ("unsubscribe", "one-click") or not is_busy(exc):
                raise
            return self.spool(token)

    def spool(self, token: str) -> Response:
        subject = verify_token(self.site.secrets, token)
        if subject is None or subject.campaign_id == TEST_CAMPAIGN_ID or not subject.contact_id:
            return self.pages.not_found()  # checked before; a test token never gets here
        try:
            found = self.lookup(token)  # WAL readers pass a writer's lock
        except sqlite3.Error:
            found = None
            info = PageInfo(self.site.default_language, "", "", "unsubscribed", False, False)
        else:
            if found is None:
                return self.pages.not_found()
            info = replace(found.info, status="unsubscribed", can_undo=False)
        self.site.stores.spool.append(subject.campaign_id, subject.contact_id, now_utc())
        return self.done(token, info)

    def _change(self, token: str, action: str, source: str) -> Response:
        found = self.lookup(token)
        if found is None:
            return self.pages.not_found()
        info = found.info
        if info.test:
            lang = info.language
            heading = "web_heading_done" if action == "unsubscribe" else "web_heading_resubscribed"
            return self.pages.page(
                200, lang, text(lang, heading), [text(lang, "web_test_done_text")], info=info
            )
        write: Change = (
            subscriptions.unsubscribe if action == "unsubscribe" else subscriptions.resubscribe
        )
        with self.site.stores.get() as store:
            try:
                with self.site.stores.write_lock:
                    report = write(store, found.contact_id, found.campaign_id, source, now_utc())
            except NotFoundError:  # forgotten between the lookup and now
                return self.pages.not_found()
            after = None
            if action == "unsubscribe":
                after = subscriptions.page_info(
                    store, found.campaign_id, found.contact_id, self.site.default_language
                )
        if action == "resubscribe":
            return self.resubscribed(info, report)
        if after is None:
            return self.pages.not_found()
        return self.done(token, after)

    def done(self, token: str, info: PageInfo) -> Response:
        """The page of a contact who is no longer subscribed (with an undo when allowed)."""
        lang = info.language
        if info.status != "unsubscribed":
            return self.pages.page(
                200,
                lang,
                text(lang, "web_heading_stopped"),
                [text(lang, "web_stopped_text", contact=self.pages.contact)],
                info=info,
            )
        form = None
        if info.can_undo:
            form = Form(
                f"{token}/resubscribe",
                PAGE_FIELD,
                PAGE_VALUE,
                text(lang, "web_button_undo"),
                intro=text(lang, "web_undo_text"),
                secondary=True,
            )
        return self.pages.page(
            200,
            lang,
            text(lang, "web_heading_done"),
            [text(lang, "web_done_text")],
            info=info,
            form=form,
        )

    def resubscribed(self, info: PageInfo, report: ChangeReport) -> Response:
        lang = info.language
        if report.status == "subscribed":
            heading, paragraph = "web_heading_resubscribed", text(lang, "web_resubscribed_text")
        else:
            heading = "web_heading_stopped"
            paragraph = text(lang, "web_refused_text", contact=self.pages.contact)
        return self.pages.page(200, lang, text(lang, heading), [paragraph], info=info)
