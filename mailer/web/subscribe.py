"""The signup form (/subscribe) and the confirmation link (/confirm/{token}).

Only with [signup]; without it these paths do not exist (404). Every post is treated as
hostile: a honeypot field people leave empty, a signed form stamp (a post under 3 seconds
after the form was served, or over a day, or with a forged stamp is refused quietly: the
same "check your inbox" page, no mail), a per-client limit on posts and a per-address
limit on mails. None needs JavaScript or a cookie. The answer to a real post is the same
page whatever the address is; only the outbox knows what was sent.
"""

from __future__ import annotations

import ipaddress
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute

from mailer.audience import signups
from mailer.audience.subscriptions import mask_address
from mailer.config import Config
from mailer.errors import AddressError
from mailer.i18n import LANGUAGES, text
from mailer.store import Store
from mailer.timeutil import now_utc
from mailer.tokens import make_form_stamp, verify_confirm_token, verify_form_stamp
from mailer.web.pages import BodyTooLarge, Form, PageRoute, page_headers
from mailer.web.site import Site

MIN_AGE = timedelta(seconds=3)  # people take longer than this to fill in a form
MAX_AGE = timedelta(days=1)
ONE_CLICK_FIELD, ONE_CLICK_VALUE = "List-Unsubscribe", "One-Click"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
NOTE_KEY = "mailer.note"  # the access log's note (mailer.web.app.NOTE_KEY): why it was refused


def routes(site: Site) -> list[BaseRoute]:
    """/subscribe and /confirm/{token}; none without [signup]."""
    if site.config.signup is None:
        return []
    area = Subscribe(site)
    headers = page_headers(site.pages.css)
    return [
        PageRoute("/subscribe", {"GET": area.get_form, "POST": area.post_form}, headers=headers),
        PageRoute(
            "/confirm/{token}",
            {"GET": area.get_confirm, "POST": area.post_confirm},
            headers=headers,
        ),
    ]


# --- what the public forms share (the preference link form too) -------------------------------


def visitor_language(request: Request, default: str) -> str:
    """?lang=, else the first of Accept-Language we have, else the default."""
    asked = request.query_params.get("lang", "")
    if asked in LANGUAGES:
        return asked
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        primary = {"sme": "se", "nb": "", "no": ""}.get(tag.split("-")[0], tag.split("-")[0])
        if primary in LANGUAGES:
            return primary
    return default


def client_address(request: Request, trusted: tuple[str, ...]) -> str:
    """The client's address; X-Forwarded-For only when the peer is a trusted proxy."""
    peer = _ip(request.client.host if request.client else "")
    if peer not in trusted:
        return peer
    hops = [_ip(h) for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    while hops and hops[-1] in trusted:
        hops.pop()
    return hops[-1] if hops and hops[-1] else peer


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return ""


async def read_form(request: Request) -> FormData | None:
    """The posted fields, or None for a body that is not a form."""
    try:
        form = await request.form(max_files=0, max_fields=100)
    except BodyTooLarge:
        raise
    except Exception:  # malformed multipart or urlencoded data
        return None
    await form.close()
    return form


@dataclass(frozen=True)
class Gate:
    """What the bot checks decided about one post of a public form."""

    passed: bool  # a person's post: go on
    again: bool = False  # no stamp (a pasted snippet): show the form to press once more
    reason: str = ""  # the quiet refusal's reason


def check_post(site: Site, form: FormData, client: str, now: datetime) -> Gate:
    """Client limit, honeypot, form stamp; every refusal counted, none shown."""
    with site.stores.get() as store:
        with site.stores.write_lock:
            if not signups.client_allowed(store, site.config, client, now):
                return Gate(False, reason="client-limit")
        reason = ""
        stamp = str(form.get("stamp", ""))
        served = verify_form_stamp(site.secrets, stamp) if stamp else None
        if str(form.get("website", "")):
            reason = "honeypot"
        elif not stamp:
            return Gate(False, again=True)
        elif served is None:
            reason = "bad-stamp"
        elif now - served < MIN_AGE:
            reason = "too-fast"
        elif now - served > MAX_AGE:
            reason = "too-old"
        if reason:
            with site.stores.write_lock:
                signups.refuse(store, reason, now)
            return Gate(False, reason=reason)
    return Gate(True)


def log_refusal(scope: MutableMapping[str, Any] | None, reason: str) -> None:
    """Say in the access log line that a post was refused quietly, and why."""
    if scope is not None and reason:
        scope[NOTE_KEY] = f"refused quietly: {reason}"


@dataclass
class SignupValues:
    email: str = ""
    name: str = ""
    organization: str = ""
    language: str = ""
    lists: list[str] = field(default_factory=list)
    consent: bool = False


# --- the area -----------------------------------------------------------------------------------


class Subscribe:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.pages = site.pages
        self.config = site.config

    # -- handlers ---------------------------------------------------------------------------

    async def get_form(self, request: Request) -> Response:
        lang = visitor_language(request, self.site.default_language)
        return await run_in_threadpool(self.form_page, 200, lang, SignupValues(language=lang))

    async def post_form(self, request: Request) -> Response:
        lang = visitor_language(request, self.site.default_language)
        form = await read_form(request)
        if form is None:
            return self.pages.bad_request(lang)
        client = client_address(request, self.config.web.trusted_proxies)
        return await run_in_threadpool(self.submit, form, lang, client, request.scope)

    async def get_confirm(self, request: Request) -> Response:
        lang = visitor_language(request, self.site.default_language)
        return await run_in_threadpool(self.confirm_page, request.path_params["token"], lang)

    async def post_confirm(self, request: Request) -> Response:
        lang = visitor_language(request, self.site.default_language)
        token = request.path_params["token"]
        form = await read_form(request)
        action = ""
        if form is not None:
            if form.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE:
                action = "cancel"
            elif form.get("action") in ("confirm", "cancel"):
                action = str(form.get("action"))
        return await run_in_threadpool(self.confirm_post, token, action, lang)

    # -- the form -------------------------------------------------------------------------------

    def context(self, lang: str) -> dict[str, Any]:
        consent = self.site.consent
        assert consent is not None
        with self.site.stores.get() as store:
            lists = signups.offered_lists(store.conn, self.config)
        return {
            "t": lambda key, **values: text(lang, key, **values),
            "lists": lists,
            "languages": [(code, text(code, "language_name")) for code in LANGUAGES],
            "consent_text": consent.texts[lang],
            "consent_version": consent.version,
            "sender": self.config.sender.name,
        }

    def form_page(
        self,
        status: int,
        lang: str,
        values: SignupValues,
        *,
        errors: dict[str, str] | None = None,
        note: str = "",
    ) -> HTMLResponse:
        stamp = make_form_stamp(self.site.secrets[0], now_utc())
        return self.pages.render(
            "subscribe.html",
            status,
            lang,
            title=f"{text(lang, 'signup_title')} · {self.config.sender.name}",
            action=f"/subscribe?lang={lang}",
            link_page=f"/p?lang={lang}",
            values=values,
            errors=errors or {},
            stamp=stamp,
            note=note,
            footer=self.pages.footer,
            inline_hide=False,
            **self.context(lang),
        )

    def check_inbox(self, lang: str) -> HTMLResponse:
        """The one answer to every post that got this far, whatever the address."""
        return self.pages.page(
            200, lang, text(lang, "signup_heading_check"), [text(lang, "signup_check_text")]
        )

    def submit(
        self, form: FormData, lang: str, client: str, scope: MutableMapping[str, Any] | None = None
    ) -> Response:
        now = now_utc()
        language = str(form.get("language", ""))
        values = SignupValues(
            email=str(form.get("email", ""))[:254],
            name=str(form.get("name", ""))[:200],
            organization=str(form.get("organization", ""))[:200],
            language=language if language in LANGUAGES else lang,
            lists=[str(v) for v in form.getlist("list")][:100],
            consent=form.get("consent") == "yes",
        )
        lang = values.language
        gate = check_post(self.site, form, client, now)
        if gate.again:
            return self.form_page(200, lang, values, note=text(lang, "signup_again_text"))
        if not gate.passed:
            log_refusal(scope, gate.reason)
            return self.check_inbox(lang)
        errors = {}
        with self.site.stores.get() as store:
            try:
                request = signups.check_request(
                    store.conn,
                    self.config,
                    email=values.email,
                    name=values.name,
                    organization=values.organization,
                    language=values.language,
                    lists=values.lists,
                )
            except AddressError:
                errors["email"] = text(lang, "signup_error_email")
            if not values.consent:
                errors["consent"] = text(lang, "signup_error_consent")
            if errors:
                return self.form_page(400, lang, values, errors=errors)
            with self.site.stores.write_lock:
                outcome = signups.request_signup(
                    store, self.config, request, client=client, now=now
                )
        if outcome.mail:
            self.site.outbox_wake.set()
        return self.check_inbox(lang)

    # -- the confirmation link --------------------------------------------------------------------

    def _signup(self, token: str) -> tuple[signups.SignupView | None, bool]:
        """The signup a token names (None when not valid now), and whether it was ever ours."""
        ours = verify_confirm_token(self.site.secrets, token, now=_EPOCH)
        if ours is None:
            return None, False
        subject = verify_confirm_token(self.site.secrets, token, now=now_utc())
        if subject is None:
            return None, True
        with self.site.stores.get() as store:
            return signups.find_signup(store, subject.signup_id, subject.expires_at), True

    def expired(self, lang: str) -> HTMLResponse:
        """404: the link expired, was replaced or withdrawn; a way to sign up again."""
        return self.pages.render(
            "actions.html",
            404,
            lang,
            title=text(lang, "web_heading_notfound"),
            heading=text(lang, "web_heading_notfound"),
            details=[],
            paragraphs=[text(lang, "confirm_expired_text")],
            link={"href": f"/subscribe?lang={lang}", "text": text(lang, "signup_title")},
            note="",
            forms=[],
            footer=self.pages.footer,
        )

    def confirm_page(self, token: str, lang: str) -> Response:
        """GET: a button (mail scanners fetch links; a GET changes nothing)."""
        signup, ours = self._signup(token)
        if signup is None:
            return self.expired(lang) if ours else self.pages.not_found()
        lang = signup.language
        if signup.status == "confirmed":
            return self.done(lang)
        with self.site.stores.get() as store:
            names = {i.ref: i.name for i in signups.offered_lists(store.conn, self.config)}
        details = [(text(lang, "web_label_address"), mask_address(signup.email))]
        if signup.name:
            details.append((text(lang, "signup_label_name"), signup.name))
        if signup.organization:
            details.append((text(lang, "signup_label_organization"), signup.organization))
        if signup.lists:
            chosen = ", ".join(names.get(ref, ref) for ref in signup.lists)
            details.append((text(lang, "prefs_lists_legend"), chosen))
        return self.pages.render(
            "actions.html",
            200,
            lang,
            title=f"{text(lang, 'confirm_heading')} · {self.config.sender.name}",
            heading=text(lang, "confirm_heading"),
            details=details,
            paragraphs=[text(lang, "confirm_text")],
            link=None,
            note="",
            forms=[
                Form("", "action", "confirm", text(lang, "confirm_button")),
                Form(
                    "",
                    "action",
                    "cancel",
                    text(lang, "confirm_cancel_button"),
                    intro=text(lang, "confirm_cancel_intro"),
                    secondary=True,
                ),
            ],
            footer=self.pages.footer,
        )

    def done(self, lang: str) -> HTMLResponse:
        return self.pages.page(
            200, lang, text(lang, "confirm_done_heading"), [text(lang, "confirm_done_text")]
        )

    def confirm_post(self, token: str, action: str, lang: str) -> Response:
        signup, ours = self._signup(token)
        if signup is None:
            return self.expired(lang) if ours else self.pages.not_found()
        lang = signup.language
        if not action:
            return self.pages.bad_request(lang)
        if signup.status == "confirmed":
            return self.done(lang)  # a second POST: the same answer, nothing changes
        now = now_utc()
        with self.site.stores.get() as store, self.site.stores.write_lock:
            if action == "cancel":
                signups.cancel_signup(store, signup.id, signup.expires_at, now=now)
                return self.pages.page(
                    200,
                    lang,
                    text(lang, "confirm_cancelled_heading"),
                    [text(lang, "confirm_cancelled_text")],
                )
            report = signups.confirm_signup(
                store, self.config, signup.id, signup.expires_at, now=now, consent=self.site.consent
            )
        if report is None:
            return self.expired(lang)
        return self.done(lang)


def form_snippet(config: Config, store: Store, lang: str) -> str:
    """The signup form as an HTML snippet for another site (`mailer signup form`).

    It carries no form stamp (a pasted page cannot make one): its first post answers the
    served form, filled in, for the person to press the button once more.
    """
    from mailer.web.pages import Pages

    signups.signup_config(config)
    consent = signups.load_consent(config)
    template = Pages(config).env.get_template("snippet.html")
    return template.render(
        t=lambda key, **values: text(lang, key, **values),
        lang=lang,
        lists=signups.offered_lists(store.conn, config),
        languages=[(code, text(code, "language_name")) for code in LANGUAGES],
        consent_text=consent.texts[lang],
        consent_version=consent.version,
        sender=config.sender.name,
        action=f"{config.web.base_url}/subscribe?lang={lang}",
        values=SignupValues(language=lang),
        errors={},
        stamp="",
        inline_hide=True,
    )
