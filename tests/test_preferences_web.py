"""The preference page and "e-mail me my link", against `mailer serve` and an SMTP sink."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

from mailer.tokens import make_preferences_token
from tests import signup_helpers
from tests.conftest import SECRET, Workspace
from tests.signup_helpers import (
    aged_stamp,
    link_path,
    mails_to,
    wait_for_mails,
)
from tests.web_helpers import Server, contact_status

SHEET = (
    "sähköposti;nimi;yritys\n"
    "liisa.lahtija@example.org;Liisa Lähtijä;sustainable-tourism|circular-economy\n"
)


# One sink, workspace and `mailer serve` per module (tests/signup_helpers.py).
sink, ws, server = signup_helpers.sink, signup_helpers.ws, signup_helpers.server


def imported(ws: Workspace, tmp_path, sheet: str = SHEET) -> dict:
    path = tmp_path / "yhteystiedot.csv"
    path.write_text(sheet, encoding="utf-8")
    res = ws.cli("contacts", "import", str(path), "--report", str(tmp_path / "report.csv"))
    assert res.exit_code == 0, res.stderr
    return {
        "stderr": res.stdout + res.stderr,
        "report": (tmp_path / "report.csv").read_text("utf-8-sig"),
    }


def show(ws: Workspace, email: str) -> dict:
    res = ws.cli("contacts", "show", email, "--format", "json")
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def prefs_path(ws: Workspace, email: str) -> str:
    with ws.store() as store:
        (contact_id,) = store.conn.execute(
            "SELECT id FROM contacts WHERE email = ?", (email,)
        ).fetchone()
    return f"/p/{make_preferences_token(SECRET.encode(), contact_id)}"


def post(server: Server, path: str, fields: list[tuple[str, str]]):
    return server.request(
        "POST",
        path,
        urlencode(fields).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )


def test_a_list_left_on_the_page_is_not_rejoined_by_an_import(ws, server, tmp_path):
    imported(ws, tmp_path)
    email = "liisa.lahtija@example.org"
    assert show(ws, email)["lists"] == ["company:circular-economy", "company:sustainable-tourism"]
    path = prefs_path(ws, email)

    page = server.request("GET", path)
    assert page.status == 200 and "Uutiskirjeen asetukset" in page.body
    assert "l***@example.org" in page.body and "liisa.lahtija" not in page.body
    assert page.body.count('type="checkbox"') == 2 and page.body.count(" checked") == 2

    saved = post(
        server, path, [("action", "save"), ("list", "company:circular-economy"), ("language", "sv")]
    )
    assert saved.status == 200 and "Inställningarna är sparade." in saved.body
    data = show(ws, email)
    assert data["lists"] == ["company:circular-economy"] and data["language"] == "sv"
    assert data["consent"][-1]["source"] == "preferences"
    assert "left company:sustainable-tourism" in data["consent"][-1]["detail"]

    again = imported(ws, tmp_path)  # the nightly export still names both lists
    assert show(ws, email)["lists"] == ["company:circular-economy"]
    assert "1 suppressed" in again["stderr"]
    assert "left company:sustainable-tourism on the preference page" in again["report"]

    # Only the person brings it back.
    post(
        server,
        path,
        [
            ("action", "save"),
            ("list", "company:circular-economy"),
            ("list", "company:sustainable-tourism"),
            ("language", "sv"),
        ],
    )
    assert show(ws, email)["lists"] == ["company:circular-economy", "company:sustainable-tourism"]
    assert "0 suppressed" in imported(ws, tmp_path)["stderr"]


def test_unsubscribe_from_all_and_one_click_on_a_preference_link(ws, server, tmp_path):
    sheet = "email;name\nkaisa.kaikki@example.org;Kaisa\nolli.klikkaaja@example.org;Olli\n"
    imported(ws, tmp_path, sheet)
    path = prefs_path(ws, "kaisa.kaikki@example.org")
    reply = post(server, path, [("action", "unsubscribe")])
    assert reply.status == 200
    assert show(ws, "kaisa.kaikki@example.org")["status"] == "unsubscribed"
    assert "Peru kaikki tilaukset" not in reply.body  # nothing left to leave
    assert 'href="/subscribe?lang=fi"' in reply.body

    one_click = server.request(
        "POST",
        prefs_path(ws, "olli.klikkaaja@example.org"),
        b"List-Unsubscribe=One-Click",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status == 200
    data = show(ws, "olli.klikkaaja@example.org")
    assert data["status"] == "unsubscribed" and data["last_change"]["source"] == "one-click"
    assert post(server, path, [("action", "bogus")]).status == 400


def test_erase_my_data_asks_twice_then_forgets_like_contacts_forget(ws, server, tmp_path):
    email = "emma.erase@example.org"
    imported(ws, tmp_path, f"email;name;yritys\n{email};Emma;circular-economy\n")
    path = prefs_path(ws, email)
    question = post(server, path, [("action", "erase")])
    assert question.status == 200 and "Poistetaanko tietosi pysyvästi?" in question.body
    assert show(ws, email)["email"] == email  # nothing erased yet
    done = post(server, path, [("action", "erase-confirm")])
    assert done.status == 200 and "Tietosi on poistettu" in done.body
    assert ws.cli("contacts", "show", email).exit_code == 2
    assert server.request("GET", path).status == 404  # the token stops working
    again = imported(ws, tmp_path, f"email;name\n{email};Emma\n")
    assert "forgotten address" in again["report"]
    with ws.store() as store:
        assert (
            store.conn.execute(
                "SELECT count(*) FROM contacts WHERE email = ?", (email,)
            ).fetchone()[0]
            == 0
        )


def test_email_me_my_link_gives_the_same_answer_and_mails_only_a_known_address(
    ws, server, sink, tmp_path
):
    known = "tiina.tuttu@example.org"
    imported(ws, tmp_path, f"email;name\n{known};Tiina\n")
    form = server.request("GET", "/p?lang=en")
    assert form.status == 200 and "E-mail me my preferences link" in form.body
    answers = []
    for email in (known, "tuntematon@example.org"):
        answers.append(
            post(server, "/p?lang=en", [("email", email), ("website", ""), ("stamp", aged_stamp())])
        )
    assert answers[0].status == answers[1].status == 200
    assert answers[0].body == answers[1].body
    (mail,) = wait_for_mails(sink, known, 1)
    time.sleep(1)
    assert mails_to(sink, "tuntematon@example.org") == []
    path = link_path(mail, "p")
    assert path == prefs_path(ws, known)
    assert mail["List-Unsubscribe"].endswith(f"{path}>")
    assert server.request("GET", path).status == 200
    # Limited like signups: at most per_address_per_day mails.
    for _ in range(5):
        post(server, "/p?lang=en", [("email", known), ("website", ""), ("stamp", aged_stamp())])
    assert len(wait_for_mails(sink, known, 3)) == 3
    time.sleep(1)  # and no more come
    assert len(mails_to(sink, known)) == 3


def test_a_test_token_page_renders_and_changes_nothing(ws, server):
    path = f"/p/{make_preferences_token(SECRET.encode(), 0)}"
    page = server.request("GET", path)
    assert page.status == 200 and "testiviestistä" in page.body
    assert post(server, path, [("action", "erase-confirm")]).status == 200
    assert contact_status(ws.store(), 0) is None


def test_without_signup_the_pages_do_not_exist(workspace):
    srv = Server.start(workspace.path, workspace.env())
    try:
        for path in (
            "/subscribe",
            "/p",
            "/confirm/x",
            f"/p/{make_preferences_token(SECRET.encode(), 1)}",
        ):
            assert srv.request("GET", path).status == 404, path
    finally:
        srv.stop()
