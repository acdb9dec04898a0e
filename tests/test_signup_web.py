"""Signup with double opt-in, against `mailer serve` as a subprocess and an aiosmtpd sink."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from typer.testing import CliRunner

from mailer.cli import app
from mailer.tokens import make_confirm_token, make_preferences_token, make_token
from tests import signup_helpers
from tests.conftest import SECRET, Workspace
from tests.signup_helpers import (
    aged_stamp,
    enable_signup,
    link_path,
    mails_to,
    parse_form,
    post_signup,
    wait_for_mails,
)
from tests.web_helpers import Server, add_contact

# One sink, workspace and `mailer serve` per module (tests/signup_helpers.py).
sink, ws, server = signup_helpers.sink, signup_helpers.ws, signup_helpers.server


def db_snapshot(ws: Workspace) -> dict[str, list[tuple]]:
    tables = ("contacts", "signups", "outbox", "memberships", "unsubscribe_events", "suppressions")
    with ws.store() as store:
        return {
            t: [tuple(r) for r in store.conn.execute(f"SELECT * FROM {t} ORDER BY 1")]
            for t in tables
        }


def signup_rows(ws: Workspace, email: str) -> list[dict]:
    with ws.store() as store:
        rows = store.conn.execute(
            "SELECT * FROM signups WHERE email = ? ORDER BY id", (email,)
        ).fetchall()
    return [dict(r) for r in rows]


def contact_row(ws: Workspace, email: str) -> dict | None:
    with ws.store() as store:
        row = store.conn.execute("SELECT * FROM contacts WHERE email = ?", (email,)).fetchone()
    return None if row is None else dict(row)


def test_the_form_has_labelled_fields_the_offered_lists_and_the_consent_text(server):
    for lang, button, consent_word in [
        ("fi", "Tilaa", "suostumukseni"),
        ("en", "Subscribe", "I agree"),
        ("sv", "Prenumerera", "samtycker"),
        ("se", "Diŋgo", "Mieđihan"),
    ]:
        reply = server.request("GET", f"/subscribe?lang={lang}")
        assert reply.status == 200
        assert f'<html lang="{lang}">' in reply.body
        assert f">{button}</button>" in reply.body
        assert consent_word in reply.body
        form = parse_form(reply.body)
        names = [i.get("name") for i in form.inputs]
        for field in ("email", "name", "organization", "language", "consent", "website", "stamp"):
            assert field in names, field
        lists = [i["value"] for i in form.inputs if i.get("name") == "list"]
        assert lists == ["company:sustainable-tourism", "company:circular-economy"]  # by name
        assert "Kestävä matkailu" in reply.body and "Arctic Power" not in reply.body
        visible = [i for i in form.inputs if i.get("type") not in ("hidden",)]
        assert all(i["id"] in form.labels for i in visible)  # every field has a label
        assert "<script" not in reply.body and "http" not in reply.body.split("<body>")[1]
    assert "Content-Security-Policy" in {k.title(): v for k, v in reply.headers.items()}
    assert "set-cookie" not in reply.headers


def test_a_person_signs_up_as_a_browser_does_and_confirms(ws, server, sink):
    email = "aino.selain@example.org"
    page = server.request("GET", "/subscribe?lang=en")
    form = parse_form(page.body)
    fields = [(i["name"], i.get("value", "")) for i in form.inputs if i.get("type") == "hidden"]
    fields += [
        ("email", email),
        ("name", "Aino <b>Selain</b> http://spam.example"),
        ("organization", "Lapin Yritys Oy"),
        ("language", "en"),
        ("list", "company:sustainable-tourism"),
        ("consent", "yes"),
        ("website", ""),
    ]
    time.sleep(3.1)  # a person takes a moment to fill it in
    reply = server.request(
        "POST",
        form.action,
        urlencode(fields).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status == 200, reply.body
    assert "Check your inbox" in reply.body and email not in reply.body
    assert contact_row(ws, email) is None  # pending apart from contacts
    (signup,) = signup_rows(ws, email)
    assert signup["status"] == "pending" and json.loads(signup["lists"]) == [
        "company:sustainable-tourism"
    ]
    assert signup["client_address"] is None  # not recorded unless configured

    (mail,) = wait_for_mails(sink, email, 1)
    assert mail["To"] == email  # the address alone: no name the visitor typed
    assert mail["Subject"].startswith("Confirm your newsletter subscription")
    raw = mail.as_string()
    for typed in ("Aino", "Selain", "spam.example", "Lapin Yritys"):
        assert typed not in raw
    confirm = link_path(mail, "confirm")
    assert mail["List-Unsubscribe"] == f"<https://uutiset.arcticsmartness.eu{confirm}>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["Message-ID"].endswith("@arcticsmartness.eu>")
    html = mail.get_body(("html",)).get_content()
    assert confirm in html and "72 hours" in mail.get_body(("plain",)).get_content()

    before = db_snapshot(ws)
    page = server.request("GET", confirm)
    assert page.status == 200 and "Confirm your subscription" in page.body
    assert "a***@example.org" in page.body and "Kestävä matkailu" in page.body
    assert db_snapshot(ws) == before  # a GET changes nothing

    done = server.form_post(confirm, {"action": "confirm"})
    assert done.status == 200 and "You are subscribed" in done.body
    contact = contact_row(ws, email)
    assert contact is not None and contact["status"] == "subscribed"
    assert contact["language"] == "en" and contact["organization"] == "Lapin Yritys Oy"
    assert signup_rows(ws, email)[0]["status"] == "confirmed"
    again = server.form_post(confirm, {"action": "confirm"})
    assert again.status == 200 and again.body == done.body  # single use, same answer

    shown = ws.cli("contacts", "show", email, "--format", "json")
    data = json.loads(shown.stdout)
    assert data["lists"] == ["company:sustainable-tourism"]
    (event,) = data["consent"]
    assert (event["source"], event["action"], event["version"]) == (
        "signup",
        "subscribe",
        "2026-12",
    )
    assert len(event["text_hash"]) == 64
    table = ws.cli("contacts", "show", email)
    assert re.search(r"consent:\s+\S+ signup subscribe version 2026-12", table.stdout)

    listed = ws.cli("signups", "list", "--status", "confirmed", "--format", "json")
    (row,) = [r for r in json.loads(listed.stdout) if r["email"] == email]
    assert row["lists"] == ["company:sustainable-tourism"] and row["confirmed_at"]


def test_bots_are_refused_quietly_and_nothing_is_mailed(ws, server, sink):
    email = "botti.kohde@example.org"
    check = post_signup(server, "real.person@example.org").body  # the usual answer
    wait_for_mails(sink, "real.person@example.org", 1)
    forged = aged_stamp()[:-2] + ("AA" if not aged_stamp().endswith("AA") else "BB")
    posts = {
        "honeypot": post_signup(server, email, website="http://spam.example"),
        "too fast": post_signup(server, email, stamp=aged_stamp(0.5)),
        "tampered": post_signup(server, email, stamp=forged),
        "too old": post_signup(server, email, stamp=aged_stamp(60 * 60 * 25)),
    }
    for what, reply in posts.items():
        assert reply.status == 200, what
        assert reply.body == check, what  # the same page as a person gets
    nostamp = post_signup(server, email, stamp="", name="Botti")
    assert nostamp.status == 200
    assert "Tarkista tiedot ja paina painiketta vielä kerran" in nostamp.body
    assert 'value="botti.kohde@example.org"' in nostamp.body  # pre-filled for the person
    time.sleep(1.5)
    assert mails_to(sink, email) == [] and signup_rows(ws, email) == []
    listed = ws.cli("signups", "list")
    for reason in ("honeypot 1", "too-fast 1", "bad-stamp 1", "too-old 1"):
        assert reason in listed.stderr, listed.stderr
    log = server.log_with("refused quietly: too-old")
    assert '"POST /subscribe" 200' in log and "refused quietly: honeypot" in log
    assert email not in log and "198.51.100" not in log


def test_a_hundred_posts_for_one_address_send_at_most_the_daily_limit(ws, server, sink):
    email = "pommitettu@example.org"
    for n in range(100):
        reply = post_signup(server, email, forwarded_for=f"203.0.113.{n % 250}")
        assert reply.status == 200
    time.sleep(2)
    mails = wait_for_mails(sink, email, 3)
    assert len(mails) == 3  # per_address_per_day
    (signup,) = signup_rows(ws, email)  # one pending signup, its link replaced
    assert signup["status"] == "pending"
    assert server.request("GET", link_path(mails[-1], "confirm")).status == 200
    listed = ws.cli("signups", "list")
    assert "address-limit 97" in listed.stderr, listed.stderr


def test_the_same_answer_for_every_kind_of_address(ws, server, sink):
    kinds = {
        "new": "uusi@example.org",
        "pending": "odottava@example.org",
        "subscribed": "tilaaja@example.org",
        "unsubscribed": "lahtenyt@example.org",
        "bounced": "pomppaava@example.org",
        "forgotten": "unohdettu@example.org",
    }
    with ws.store() as store:
        add_contact(store, kinds["subscribed"])
        add_contact(store, kinds["unsubscribed"], status="unsubscribed")
        add_contact(store, kinds["bounced"], status="bounced")
        add_contact(store, kinds["forgotten"])
    assert ws.cli("contacts", "forget", kinds["forgotten"], "--yes").exit_code == 0
    post_signup(server, kinds["pending"], forwarded_for="192.0.2.1")
    wait_for_mails(sink, kinds["pending"], 1)

    pages = {
        kind: post_signup(
            server, email, lists=("company:circular-economy",), forwarded_for="192.0.2.2"
        )
        for kind, email in kinds.items()
    }
    assert {r.status for r in pages.values()} == {200}
    assert len({r.body for r in pages.values()}) == 1  # byte for byte the same page

    subjects = {
        kind: [m["Subject"] for m in wait_for_mails(sink, email, 2 if kind == "pending" else 1)]
        for kind, email in kinds.items()
    }
    assert subjects["subscribed"] == ["Linkki uutiskirjeen asetuksiin – Arctic Smartness"]
    for kind in ("new", "unsubscribed", "bounced", "forgotten"):
        assert subjects[kind] == ["Vahvista uutiskirjeen tilaus – Arctic Smartness"], kind
    assert len(subjects["pending"]) == 2  # a second signup of a pending address: a new link
    first, second = (link_path(m, "confirm") for m in mails_to(sink, kinds["pending"]))
    assert server.request("GET", first).status == 404  # the newer link replaced it
    assert "/subscribe" in server.request("GET", first).body
    assert server.request("GET", second).status == 200

    # A confirmed signup brings each one back, and the event says it was their new consent.
    for kind in ("unsubscribed", "bounced", "forgotten"):
        (mail,) = mails_to(sink, kinds[kind])
        assert server.form_post(link_path(mail, "confirm"), {"action": "confirm"}).status == 200
        data = json.loads(ws.cli("contacts", "show", kinds[kind], "--format", "json").stdout)
        assert data["status"] == "subscribed", kind
        assert data["lists"] == ["company:circular-economy"]
        event = data["consent"][-1]
        assert event["version"] == "2026-12"
        after = "forgotten" if kind == "forgotten" else kind
        assert f"the person's new consent after being {after}" in event["detail"], event
    with ws.store() as store:
        assert store.conn.execute("SELECT count(*) FROM suppressions").fetchone()[0] == 0


def test_a_token_of_one_purpose_is_refused_for_another(ws, server):
    with ws.store() as store:
        contact = add_contact(store, "tarkoitus@example.org")
    secret = SECRET.encode()
    preferences = make_preferences_token(secret, contact)
    confirm = make_confirm_token(secret, 1, datetime.now(timezone.utc) + timedelta(hours=1))
    unsubscribe = make_token(secret, 1, contact)
    assert server.request("GET", f"/p/{preferences}").status == 200
    for path in (
        f"/confirm/{preferences}",
        f"/confirm/{unsubscribe}",
        f"/p/{confirm}",
        f"/p/{unsubscribe}",
        f"/u/{confirm}",
        f"/u/{preferences}",
    ):
        reply = server.request("GET", path)
        assert reply.status == 404, path
        assert server.form_post(path, {"action": "confirm"}).status == 404, path


def test_an_expired_link_answers_404_with_a_way_back_and_expired_signups_are_listed(ws, server):
    from mailer.audience.signups import SignupRequest, request_signup

    config = ws.config()
    long_ago = datetime.now(timezone.utc) - timedelta(hours=80)
    with ws.store() as store:
        outcome = request_signup(
            store, config, SignupRequest("vanha@example.org"), client="", now=long_ago
        )
    token = make_confirm_token(SECRET.encode(), outcome.signup_id, long_ago + timedelta(hours=72))
    reply = server.request("GET", f"/confirm/{token}?lang=en")
    assert reply.status == 404 and 'href="/subscribe?lang=en"' in reply.body
    assert server.form_post(f"/confirm/{token}", {"action": "confirm"}).status == 404
    assert contact_row(ws, "vanha@example.org") is None
    listed = json.loads(ws.cli("signups", "list", "--status", "expired", "--format", "json").stdout)
    assert [r["email"] for r in listed] == ["vanha@example.org"]


def test_one_click_on_a_confirmation_mail_withdraws_the_request(ws, server, sink):
    email = "peruja@example.org"
    post_signup(server, email, forwarded_for="192.0.2.9")
    (mail,) = wait_for_mails(sink, email, 1)
    target = mail["List-Unsubscribe"].strip("<>").replace("https://uutiset.arcticsmartness.eu", "")
    reply = server.request(
        "POST",
        target,
        b"List-Unsubscribe=One-Click",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status == 200
    assert signup_rows(ws, email)[0]["status"] == "expired"
    assert server.form_post(target, {"action": "confirm"}).status == 404
    assert contact_row(ws, email) is None


def test_the_client_limit_counts_posts_from_the_forwarded_address(tmp_path, sink):
    ws_path = tmp_path / "ws"
    assert (
        CliRunner().invoke(app, ["init", str(ws_path)], env={"MAILER_SECRET": SECRET}).exit_code
        == 0
    )
    ws = Workspace(ws_path)
    enable_signup(ws, sink, per_client_per_hour="5")
    server = Server.start(ws.path, ws.env())
    try:
        for n in range(8):
            post_signup(server, f"asiakas{n}@example.org", forwarded_for="198.51.100.50")
        post_signup(server, "toinen@example.org", forwarded_for="198.51.100.51")
        assert wait_for_mails(sink, "toinen@example.org", 1)
        for n in range(5):
            assert wait_for_mails(sink, f"asiakas{n}@example.org", 1)
        time.sleep(1)  # and no more come
        sent = sorted(r for item in sink.received for r in item.rcpt_tos if "asiakas" in r)
        assert sent == [f"asiakas{n}@example.org" for n in range(5)]
        assert "client-limit 3" in ws.cli("signups", "list").stderr
    finally:
        server.stop()
