"""Helpers for the click-counting tests: a sent campaign with counted links, its click URLs."""

from __future__ import annotations

import json
import re
import sqlite3
from urllib.parse import urlsplit

from tests.newsletter_helpers import copy_campaign
from tests.smtp_sink import SmtpSink

NAME = "uutiskirje-2018-11"
_HREF = re.compile(r'href="([^"]+)"')


def send_campaign(ws, emails: list[str], *, clicks: bool = True) -> None:
    """Turn click counting on (or off), add contacts, create and send the fixture campaign."""
    ws.set_config("tracking", "clicks", "true" if clicks else "false")
    ws.ensure_lists("cluster:arctic-power")
    for email in emails:
        res = ws.cli("contacts", "add", email, "--list", "cluster:arctic-power")
        assert res.exit_code == 0, res.stderr
    path = copy_campaign(ws.path)
    assert ws.cli("campaign", "create", str(path)).exit_code == 0
    res = ws.cli("send", NAME, "--yes")
    assert res.exit_code == 0, res.stderr


def parts(sink: SmtpSink, email: str) -> tuple[str, str]:
    """The decoded text and HTML parts of the message `email` got."""
    (message,) = [item.message() for item in sink.received if email in item.rcpt_tos]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    return text, html


def hrefs(html: str) -> list[str]:
    return [h.replace("&amp;", "&") for h in _HREF.findall(html)]


def click_paths(sink: SmtpSink, email: str) -> list[str]:
    """The /l/{token} paths of the message `email` got, in the order they appear."""
    return [urlsplit(h).path for h in hrefs(parts(sink, email)[1]) if "/l/" in h]


def stats(ws, name: str = NAME) -> dict:
    res = ws.cli("stats", name, "--format", "json")
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def db_rows(ws, sql: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(ws.path / "mailer.db")
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
