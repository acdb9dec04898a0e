"""Helpers for the signup tests: a workspace with [signup], form posts, mails from the sink."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from mailer.timeutil import now_utc
from mailer.tokens import make_form_stamp
from tests.conftest import SECRET, Workspace
from tests.smtp_sink import SmtpSink
from tests.web_helpers import Client, Reply, Server

LISTS = (
    ("company:sustainable-tourism", "Kestävä matkailu"),
    ("company:circular-economy", "Kiertotalous"),
    ("cluster:arctic-power", "Arctic Power"),
)


def enable_signup(ws: Workspace, sink: SmtpSink | None = None, **settings: str) -> None:
    """Turn [signup] on (company lists offered), point [smtp] at the sink, make the lists."""
    if sink is not None:
        ws.set_config("smtp", "host", '"127.0.0.1"')
        ws.set_config("smtp", "port", str(sink.port))
        ws.set_config("smtp", "security", '"none"')
    values = {"lists": '["company:*"]', "consent_version": '"2026-12"', **settings}
    for key, value in values.items():
        ws.set_config("signup", key, value)
    for ref, name in LISTS:
        res = ws.cli("lists", "add", ref, "--name", name)
        assert res.exit_code == 0, res.stderr


def signup_workspace(path, sink: SmtpSink) -> Workspace:
    """A workspace made by `mailer init` with [signup] on and a generous client limit."""
    from typer.testing import CliRunner

    from mailer.cli import app

    res = CliRunner().invoke(app, ["init", str(path)], env={"MAILER_SECRET": SECRET})
    assert res.exit_code == 0, res.stderr
    workspace = Workspace(path)
    enable_signup(workspace, sink, per_client_per_hour="1000")
    return workspace


def aged_stamp(seconds: float = 10) -> str:
    """A form stamp as if the form was served `seconds` ago (the test holds the secret)."""
    return make_form_stamp(SECRET.encode(), now_utc() - timedelta(seconds=seconds))


def post_signup(
    client: Client,
    email: str,
    *,
    lists: tuple[str, ...] = (),
    lang: str = "fi",
    name: str = "",
    organization: str = "",
    stamp: str | None = None,
    website: str = "",
    consent: bool = True,
    forwarded_for: str = "198.51.100.7",
) -> Reply:
    from urllib.parse import urlencode

    fields: list[tuple[str, str]] = [
        ("email", email),
        ("name", name),
        ("organization", organization),
        ("language", lang),
        ("website", website),
        *(("list", ref) for ref in lists),
    ]
    if consent:
        fields.append(("consent", "yes"))
    if stamp is None:
        stamp = aged_stamp()
    if stamp:
        fields.append(("stamp", stamp))
    return client.request(
        "POST",
        f"/subscribe?lang={lang}",
        urlencode(fields).encode(),
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Forwarded-For": forwarded_for,
        },
    )


def mails_to(sink: SmtpSink, address: str) -> list[EmailMessage]:
    return [r.message() for r in sink.received if address in r.rcpt_tos]


def wait_for_mails(sink: SmtpSink, address: str, count: int, timeout: float = 12) -> list:
    """The mails to `address` once there are `count` (the service sends within 10 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = mails_to(sink, address)
        if len(found) >= count:
            return found
        time.sleep(0.05)
    return mails_to(sink, address)


def link_path(message: EmailMessage, route: str) -> str:
    """The path of the first {base_url}/ROUTE/... link in the text part."""
    body = message.get_body(("plain",)).get_content()
    match = re.search(rf"https?://\S+/{route}/[A-Za-z0-9_-]+", body)
    assert match, body
    return urlsplit(match.group(0)).path


class FormParser(HTMLParser):
    """The fields of the first form of a page, as a browser would submit them untouched."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.inputs: list[dict[str, str]] = []
        self.labels: dict[str, str] = {}
        self._in_form = False
        self._done = False
        self._label_for = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and not self._done:
            self._in_form = True
            self.action = a.get("action", "")
        elif self._in_form and tag in ("input", "select", "textarea"):
            self.inputs.append({"tag": tag, **a})
        elif self._in_form and tag == "label":
            self._label_for = a.get("for", "")

    def handle_data(self, data: str) -> None:
        if self._label_for and data.strip():
            self.labels[self._label_for] = self.labels.get(self._label_for, "") + data.strip()

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._in_form:
            self._in_form = False
            self._done = True
        elif tag == "label":
            self._label_for = ""


def parse_form(html: str) -> FormParser:
    parser = FormParser()
    parser.feed(html)
    return parser


# --- module fixtures shared by the signup and preference tests: one sink, workspace, server ---


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as running:
        yield running


@pytest.fixture(scope="module")
def ws(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sink: SmtpSink):
    folder = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    return signup_workspace(folder / "ws", sink)


@pytest.fixture(scope="module")
def server(ws: Workspace) -> Iterator[Server]:
    srv = Server.start(ws.path, ws.env())
    yield srv
    srv.stop()
