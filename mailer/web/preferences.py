"""The preference page (/p/{token}) and "e-mail me my link" (/p); only with [signup].

GET shows; POST saves (the page's forms, field `action`), or unsubscribes from everything
on an RFC 8058 one-click body (the List-Unsubscribe of a preference-link mail). "Erase my
data" asks once more before it does what `mailer contacts forget` does. A token naming
contact 0 comes from a test message: its page renders with a note, its POSTs change nothing.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute

from mailer.audience import preferences, signups
from mailer.audience.preferences import PreferencesView
from mailer.errors import NotFoundError
from mailer.i18n import LANGUAGES, text
from mailer.timeutil import now_utc
from mailer.tokens import make_form_stamp, verify_preferences_token
from mailer.web.pages import Form, PageRoute, page_headers
from mailer.web.site import Site
from mailer.web.subscribe import (
    ONE_CLICK_FIELD,
    ONE_CLICK_VALUE,
    check_post,
    client_address,
    log_refusal,
    read_form,
    visitor_language,
)

TEST_CONTACT_ID = 0
ACTIONS = ("save", "unsubscribe", "erase", "erase-confirm")


def routes(site: Site) -> list[BaseRoute]:
    """/p and /p/{token}; none without [signup]."""
    if site.config.signup is None:
        return []
    area = Preferences(site)
    headers = page_headers(site.pages.css)
    return [
        PageRoute("/p", {"GET": area.get_link, "POST": area.post_link}, headers=headers),
        PageRoute("/p/{token}", {"GET": area.get_page, "POST": area.post_page}, headers=headers),
    ]


class Preferences:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.pages = site.pages
        self.config = site.config

    # -- handlers ---------------------------------------------------------------------------

    async def get_link(self, request: Request) -> Response:
        lang = visitor_language(request, self.site.default_language)
        return await run_in_threadpool(self.link_page, lang, "", "")

    async def post_link(self, request: Request) -> Response:
        lang = visitor_language(request, self.site.default_language)
        form = await read_form(request)
        if form is None:
            return self.pages.bad_request(lang)
        client = client_address(request, self.config.web.trusted_proxies)
        return await run_in_threadpool(self.send_link, form, lang, client, request.scope)

    async def get_page(self, request: Request) -> Response:
        return await run_in_threadpool(self.show, request.path_params["token"], "")

    async def post_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        form = await read_form(request)
        return await run_in_threadpool(self.change, token, form)

    # -- "e-mail me my link" ------------------------------------------------------------------

    def link_page(self, lang: str, email: str, note: str) -> HTMLResponse:
        return self.pages.render(
            "link.html",
            200,
            lang,
            title=f"{text(lang, 'link_heading')} · {self.config.sender.name}",
            t=lambda key, **values: text(lang, key, **values),
            action=f"/p?lang={lang}",
            email=email,
            stamp=make_form_stamp(self.site.secrets[0], now_utc()),
            note=note,
            footer=self.pages.footer,
        )

    def send_link(
        self, form: FormData, lang: str, client: str, scope: MutableMapping[str, Any] | None = None
    ) -> Response:
        """The same answer for known and unknown addresses; mail only to a known one."""
        now = now_utc()
        email = str(form.get("email", ""))[:254]
        gate = check_post(self.site, form, client, now)
        if gate.again:
            return self.link_page(lang, email, text(lang, "signup_again_text"))
        log_refusal(scope, gate.reason)
        if gate.passed:
            with self.site.stores.get() as store, self.site.stores.write_lock:
                outcome = signups.request_link(store, self.config, email, now=now)
            if outcome.mail:
                self.site.outbox_wake.set()
        return self.pages.page(
            200, lang, text(lang, "signup_heading_check"), [text(lang, "link_sent_text")]
        )

    # -- the page -------------------------------------------------------------------------------

    def lookup(self, token: str) -> PreferencesView | None:
        contact_id = verify_preferences_token(self.site.secrets, token)
        if contact_id is None:
            return None
        if contact_id == TEST_CONTACT_ID:
            with self.site.stores.get() as store:
                lists = signups.offered_lists(store.conn, self.config)
            return PreferencesView(
                TEST_CONTACT_ID,
                "",
                self.site.default_language,
                "subscribed",
                [preferences.ListChoice(i.ref, i.name, False) for i in lists],
            )
        with self.site.stores.get() as store:
            return preferences.view(store, self.config, contact_id)

    def show(self, token: str, note: str, status: int = 200) -> Response:
        found = self.lookup(token)
        if found is None:
            return self.pages.not_found()
        lang = found.language
        if found.contact_id == TEST_CONTACT_ID:
            note = note or text(lang, "web_test_text")
        return self.pages.render(
            "preferences.html",
            status,
            lang,
            title=f"{text(lang, 'prefs_heading')} · {self.config.sender.name}",
            t=lambda key, **values: text(lang, key, **values),
            view=found,
            sender=self.config.sender.name,
            languages=[(code, text(code, "language_name")) for code in LANGUAGES],
            subscribe_page=f"/subscribe?lang={lang}",
            note=note,
            footer=self.pages.footer,
        )

    def change(self, token: str, form: FormData | None) -> Response:
        found = self.lookup(token)
        if found is None:
            return self.pages.not_found()
        lang = found.language
        action = "" if form is None else str(form.get("action", ""))
        if form is not None and form.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE:
            action = "one-click"
        elif action not in ACTIONS:
            return self.pages.bad_request(lang)
        if found.contact_id == TEST_CONTACT_ID:
            return self.show(token, text(lang, "web_test_done_text"))
        if action == "erase":
            return self.erase_question(lang)
        assert form is not None
        try:
            return self.apply(token, found, action, form)
        except NotFoundError:  # erased meanwhile
            return self.pages.not_found()

    def apply(self, token: str, found: PreferencesView, action: str, form: FormData) -> Response:
        now = now_utc()
        lang = found.language
        with self.site.stores.get() as store, self.site.stores.write_lock:
            if action == "save":
                chosen = {str(v) for v in form.getlist("list")}
                language = str(form.get("language", ""))
                saved = preferences.save(
                    store, self.config, found.contact_id, chosen, language, now=now
                )
                note_key = "prefs_saved" if saved.changed else "prefs_unchanged"
                lang = language if saved.language_changed else lang
                note = text(lang, note_key)
            elif action == "erase-confirm":
                preferences.erase(store, self.config, found.contact_id, now=now)
                return self.pages.page(
                    200, lang, text(lang, "prefs_erased_heading"), [text(lang, "prefs_erased_text")]
                )
            else:
                source = "one-click" if action == "one-click" else "preferences"
                preferences.leave_all(store, found.contact_id, source, now=now)
                note = text(lang, "web_done_text")
        return self.show(token, note)

    def erase_question(self, lang: str) -> HTMLResponse:
        """The second confirmation of "erase my data"."""
        return self.pages.render(
            "actions.html",
            200,
            lang,
            title=text(lang, "prefs_erase_heading"),
            heading=text(lang, "prefs_erase_heading"),
            details=[],
            paragraphs=[text(lang, "prefs_erase_text")],
            link=None,
            note="",
            forms=[Form("", "action", "erase-confirm", text(lang, "prefs_erase_confirm_button"))],
            footer=self.pages.footer,
        )
