"""The unsubscribe service, against `mailer serve` running as a real subprocess."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from importlib import resources

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from mailer.tokens import make_token
from tests.conftest import SECRET, Workspace
from tests.web_helpers import (
    Client,
    Server,
    add_contact,
    contact_events,
    contact_status,
    insert_campaign_for_tests,
)

OLD_SECRET = "the-secret-before-rotation-in-november"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    path = tmp_path_factory.mktemp("web") / "ws"
    res = CliRunner().invoke(app, ["init", str(path)], env={"MAILER_SECRET": SECRET})
    assert res.exit_code == 0, res.stderr
    workspace = Workspace(path)
    workspace.set_config("web", "previous_secrets", f'["{OLD_SECRET}"]')
    return workspace


@pytest.fixture(scope="module")
def server(ws: Workspace) -> Iterator[Server]:
    srv = Server.start(ws.path, ws.env())
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def campaign(ws: Workspace) -> int:
    with ws.store() as store:
        return insert_campaign_for_tests(
            store, "2026-11", {"fi": "Marraskuun uutiset", "en": "November news"}
        )


@pytest.fixture
def person(ws: Workspace) -> int:
    """A fresh subscribed contact (Finnish)."""
    with ws.store() as store:
        return add_contact(store, f"maija.{uuid.uuid4().hex[:8]}@example.com", "fi")


def token(campaign_id: int, contact_id: int, secret: str = SECRET) -> str:
    return make_token(secret.encode(), campaign_id, contact_id)


def state(ws: Workspace, contact_id: int) -> tuple[str | None, list[tuple]]:
    with ws.store() as store:
        return contact_status(store, contact_id), contact_events(store, contact_id)


def test_healthz(server):
    reply = server.request("GET", "/healthz")
    assert reply.status == 200


def test_get_and_head_change_nothing_and_do_not_burn_the_token(ws, server, campaign, person):
    t = token(campaign, person)
    for _ in range(3):
        page = server.request("GET", f"/u/{t}")
        assert page.status == 200
        assert server.request("HEAD", f"/u/{t}").status == 200
    assert state(ws, person) == ("subscribed", [])
    assert 'method="post"' in page.body
    assert "<script" not in page.body.lower()
    # the link still works for the person's real click
    assert server.one_click(t).status == 200
    assert state(ws, person)[0] == "unsubscribed"


def test_one_click_urlencoded_unsubscribes_once(ws, server, campaign, person):
    t = token(campaign, person)
    reply = server.one_click(t)
    assert reply.status == 200
    assert "location" not in reply.headers
    assert "set-cookie" not in reply.headers
    assert state(ws, person) == ("unsubscribed", [("unsubscribe", "one-click", campaign)])
    # a mail client retrying is harmless: 200, no second event
    assert server.one_click(t).status == 200
    assert state(ws, person) == ("unsubscribed", [("unsubscribe", "one-click", campaign)])


def test_one_click_multipart_unsubscribes(ws, server, campaign, person):
    boundary = "----mailer-test-boundary"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        "One-Click\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    reply = server.request(
        "POST",
        f"/u/{token(campaign, person)}",
        body,
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert reply.status == 200
    assert state(ws, person) == ("unsubscribed", [("unsubscribe", "one-click", campaign)])


def test_the_pages_form_unsubscribes_with_source_page(ws, server, campaign, person):
    t = token(campaign, person)
    page = server.request("GET", f"/u/{t}")
    field = re.search(r'<input type="hidden" name="(\w+)" value="(\w+)">', page.body)
    assert field is not None
    reply = server.form_post(f"/u/{t}", {field.group(1): field.group(2)})
    assert reply.status == 200
    assert state(ws, person) == ("unsubscribed", [("unsubscribe", "page", campaign)])
    assert f'action="{t}/resubscribe"' in reply.body  # the undo button


def test_a_post_without_either_body_changes_nothing(ws, server, campaign, person):
    t = token(campaign, person)
    reply = server.request("POST", f"/u/{t}", b"", {"Content-Type": "text/plain"})
    assert reply.status == 400
    reply = server.form_post(f"/u/{t}", {"List-Unsubscribe": "Something-Else"})
    assert reply.status == 400
    assert state(ws, person) == ("subscribed", [])


def test_bad_tokens_get_the_same_404_and_change_nothing(ws, server, campaign, person):
    with ws.store() as store:
        other_campaign = insert_campaign_for_tests(store, f"other-{uuid.uuid4().hex[:6]}")
        gone = add_contact(store, "gone@example.com")
        store.conn.execute("DELETE FROM contacts WHERE id = ?", (gone,))
    good = token(campaign, person)
    other = token(other_campaign, person)
    swapped = good[:11] + other[11:]  # campaign A's ids with campaign B's MAC
    assert swapped != good and swapped != other
    bad = [
        "A" * 32,
        good[:-1],
        good[:20],
        good + "A",
        good[:-1] + ("A" if good[-1] != "A" else "B"),
        swapped,
        token(campaign, person, "some-other-secret"),
        token(campaign, gone),
        token(999_999, person),
        "%2e%2e",
    ]
    bodies = set()
    for t in bad:
        for reply in (
            server.request("GET", f"/u/{t}"),
            server.one_click(t),
            server.form_post(f"/u/{t}/resubscribe", {"confirm": "page"}),
        ):
            assert reply.status == 404, t
            bodies.add(reply.body)
    assert len(bodies) == 1
    body = bodies.pop()
    assert "@example.com" not in body and "2026-11" not in body
    assert server.request("GET", "/u/").status == 404
    assert server.request("GET", "/nothing-here").status == 404
    assert state(ws, person) == ("subscribed", [])


def test_links_sent_before_a_secret_rotation_still_work(ws, server, campaign, person):
    reply = server.one_click(token(campaign, person, OLD_SECRET))
    assert reply.status == 200
    assert state(ws, person)[0] == "unsubscribed"


def test_undo_resubscribes(ws, server, campaign, person):
    t = token(campaign, person)
    server.one_click(t)
    reply = server.form_post(f"/u/{t}/resubscribe", {"confirm": "page"})
    assert reply.status == 200
    assert "location" not in reply.headers
    assert state(ws, person) == (
        "subscribed",
        [("unsubscribe", "one-click", campaign), ("resubscribe", "page", campaign)],
    )
    # a resubscribe link opened by a scanner (GET) or replayed changes nothing more
    assert server.request("GET", f"/u/{t}/resubscribe").status in (404, 405)
    assert server.form_post(f"/u/{t}/resubscribe", {"confirm": "page"}).status == 200
    assert len(state(ws, person)[1]) == 2


def test_a_bounced_contact_stays_bounced(ws, server, campaign):
    with ws.store() as store:
        bounced = add_contact(store, f"b.{uuid.uuid4().hex[:6]}@example.com", status="bounced")
    t = token(campaign, bounced)
    assert server.request("GET", f"/u/{t}").status == 200
    assert server.one_click(t).status == 200
    assert server.form_post(f"/u/{t}/resubscribe", {"confirm": "page"}).status == 200
    assert state(ws, bounced) == ("bounced", [])


def test_an_unsubscribe_made_by_staff_cannot_be_undone_by_a_link(ws, server, campaign, person):
    from mailer.audience.subscriptions import unsubscribe
    from mailer.timeutil import now_utc

    with ws.store() as store:
        unsubscribe(store, person, None, "cli", now_utc())
    t = token(campaign, person)
    page = server.request("GET", f"/u/{t}")
    assert "resubscribe" not in page.body
    assert server.form_post(f"/u/{t}/resubscribe", {"confirm": "page"}).status == 200
    assert state(ws, person) == ("unsubscribed", [("unsubscribe", "cli", None)])


@pytest.mark.parametrize(
    ("language", "heading"),
    [
        ("fi", "Perutaanko uutiskirjeen tilaus?"),
        ("en", "Unsubscribe from the newsletter?"),
        ("sv", "Vill du avsluta prenumerationen?"),
        ("se", "Háliidatgo heaittihit diŋgojumi?"),
        ("xx", "Perutaanko uutiskirjeen tilaus?"),  # unknown: defaults.language (fi)
    ],
)
def test_the_page_speaks_the_contacts_language(ws, server, campaign, language, heading):
    email = f"kieli.{uuid.uuid4().hex[:6]}@example.com"
    with ws.store() as store:
        contact = add_contact(store, email, language)
    page = server.request("GET", f"/u/{token(campaign, contact)}")
    assert page.status == 200
    expected_lang = "fi" if language == "xx" else language
    assert f'<html lang="{expected_lang}">' in page.body
    assert heading in page.body
    assert "k***@example.com" in page.body and email not in page.body
    assert "Arctic Smartness" in page.body  # the sender
    newsletter = "November news" if language == "en" else "Marraskuun uutiset"
    assert newsletter in page.body
    assert 'name="viewport"' in page.body


def test_security_headers_on_every_page(server, campaign, person):
    t = token(campaign, person)
    for reply in (
        server.request("GET", f"/u/{t}"),
        server.request("GET", "/u/not-a-token"),
    ):
        h = reply.headers
        csp = h["content-security-policy"]
        assert "default-src 'none'" in csp and "form-action 'self'" in csp
        assert "script-src" not in csp  # default-src 'none' forbids scripts
        assert h["referrer-policy"] == "no-referrer"
        assert h["x-robots-tag"].startswith("noindex")
        assert h["x-content-type-options"] == "nosniff"
        assert h["cache-control"] == "no-store"
        assert h["content-type"].startswith("text/html")
        assert "set-cookie" not in h
        # no external resources: nothing is loaded from anywhere
        assert not re.search(r"(src|href)=", reply.body)


@pytest.mark.parametrize("kind", ["sample (campaign 0)", "test-to (contact 0)"])
def test_a_test_message_link_shows_the_page_but_changes_nothing(ws, server, campaign, person, kind):
    t = token(0, person) if kind.startswith("sample") else token(campaign, 0)
    page = server.request("GET", f"/u/{t}")
    assert page.status == 200
    assert "testiviestistä" in page.body
    assert server.one_click(t).status == 200
    assert server.form_post(f"/u/{t}/resubscribe", {"confirm": "page"}).status == 200
    assert state(ws, person) == ("subscribed", [])
    with ws.store() as store:
        assert (
            store.conn.execute(
                "SELECT count(*) FROM unsubscribe_events WHERE contact_id IS NULL OR contact_id = 0"
            ).fetchone()[0]
            == 0
        )
    # a test token of an unknown campaign is still a bad token
    assert server.request("GET", f"/u/{token(999_999, 0)}").status == 404


def test_the_access_log_shows_no_token_and_no_address_and_sigterm_stops_cleanly(ws, campaign):
    with ws.store() as store:
        contact = add_contact(store, f"loki.{uuid.uuid4().hex[:6]}@example.com")
    srv = Server.start(ws.path, ws.env())
    t = token(campaign, contact)
    try:
        srv.request("GET", f"/u/{t}")
        srv.one_click(t)
        srv.form_post(f"/u/{t}/resubscribe", {"confirm": "page"})
        srv.request("GET", f"/u/{t[:-2]}?email=x@example.com")
    finally:
        code, log = srv.stop()
    assert code == 0, log
    assert "/u/***" in log and "/u/***/resubscribe" in log
    assert t not in log and t[:20] not in log
    assert "@" not in log and "example.com" not in log
    assert "127.0.0.1 " not in log.split("serving on", 1)[1].split("\n", 1)[1]
    assert "Traceback" not in log


def test_serve_refuses_a_busy_port_and_a_missing_secret(ws, server):
    res = ws.run("serve", "--host", "127.0.0.1", "--port", str(server.port), timeout=30)
    assert res.returncode == 1
    assert res.stderr.startswith("Error: 127.0.0.1:") and "cannot listen" in res.stderr
    ws2 = ws.path.parent / "nosecret"
    ws2.mkdir(exist_ok=True)
    (ws2 / "mailer.toml").write_text(
        ws.config_path.read_text(encoding="utf-8").replace('secret = "', 'secret = "" # was "'),
        encoding="utf-8",
    )
    res = ws.run(
        "--config", str(ws2 / "mailer.toml"), "serve", "--port", "1", env={"MAILER_SECRET": ""}
    )
    assert res.returncode == 2, res.stderr
    assert "secret" in res.stderr and "Traceback" not in res.stderr


def test_pages_are_well_formed_html(server, campaign, person):
    html5lib = pytest.importorskip("html5lib")
    t = token(campaign, person)
    pages = [
        server.request("GET", f"/u/{t}").body,
        server.one_click(t).body,
        server.form_post(f"/u/{t}/resubscribe", {"confirm": "page"}).body,
        server.request("GET", "/u/bad").body,
    ]
    for body in pages:
        html5lib.HTMLParser(strict=True).parse(body)  # raises on any parse error
        assert body.count("<h1>") == 1


# -- headers per route, the shared answers, the body cap, a locked store --------------------

HEADER_NAMES = (
    "content-security-policy",
    "referrer-policy",
    "x-robots-tag",
    "x-content-type-options",
    "x-frame-options",
    "cache-control",
)


def style_hash() -> str:
    css = (resources.files("mailer.web") / "templates" / "style.css").read_text("utf-8").strip()
    return base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()


def unsubscribe_headers() -> dict[str, str]:
    """What the /u/ pages answered with before routes declared their own sets."""
    return {
        "content-security-policy": (
            f"default-src 'none'; style-src 'sha256-{style_hash()}'; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'"
        ),
        "referrer-policy": "no-referrer",
        "x-robots-tag": "noindex, nofollow",
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "cache-control": "no-store",
    }


HEALTH_HEADERS = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
    "x-robots-tag": "noindex, nofollow",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}


def declared(reply) -> dict[str, str]:
    return {name: reply.headers[name] for name in HEADER_NAMES if name in reply.headers}


def test_each_route_answers_with_the_header_set_it_declares(server, campaign, person):
    t = token(campaign, person)
    strict = unsubscribe_headers()
    for reply in (
        server.request("GET", f"/u/{t}"),
        server.request("HEAD", f"/u/{t}"),
        server.request("POST", f"/u/{t}", b"", {"Content-Type": "text/plain"}),  # 400
        server.request("PUT", f"/u/{t}"),  # 405
        server.request("GET", "/u/not-a-token"),  # 404 from the handler
        server.request("GET", f"/u/{t}/resubscribe"),  # 405
        server.request("GET", "/nothing-here"),  # no route: the default set
    ):
        assert declared(reply) == strict, reply.status
    for reply in (server.request("GET", "/healthz"), server.request("POST", "/healthz")):
        assert declared(reply) == HEALTH_HEADERS, reply.status
        assert reply.headers["content-type"].startswith("text/plain")


def test_a_route_list_can_declare_a_set_of_its_own(ws):
    """What the archive will need: its own policy, and no noindex."""
    import threading

    import uvicorn
    from starlette.requests import Request
    from starlette.responses import HTMLResponse

    from mailer.capture import free_port
    from mailer.web import unsubscribe
    from mailer.web.app import compose
    from mailer.web.pages import PageRoute
    from mailer.web.site import Site

    archive_headers = {
        "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'self'",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "public, max-age=300",
    }

    async def issue(request: Request) -> HTMLResponse:
        return HTMLResponse(f"<p>{request.path_params['name']}</p>")

    site = Site.open(ws.config())
    app = compose(
        site,
        [
            unsubscribe.routes(site),
            [PageRoute("/archive/{name}", {"GET": issue}, headers=archive_headers)],
        ],
    )
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if uv.started or not thread.is_alive():
                break
            threading.Event().wait(0.02)
        assert uv.started
        srv = Client(port)
        expected = {k.lower(): v for k, v in archive_headers.items()}
        for reply in (
            srv.request("GET", "/archive/2026-11"),
            srv.request("POST", "/archive/2026-11"),  # 405 keeps the route's set
        ):
            assert declared(reply) == expected, reply.status
            assert "x-robots-tag" not in reply.headers
        assert srv.request("POST", "/archive/2026-11").headers["allow"] == "GET, HEAD"
        assert declared(srv.request("GET", "/u/not-a-token")) == unsubscribe_headers()
    finally:
        uv.should_exit = True
        thread.join(timeout=15)


def test_a_wrong_method_gets_405_with_allow_and_changes_nothing(ws, server, campaign, person):
    t = token(campaign, person)
    for method, path, allow in (
        ("PUT", f"/u/{t}", "GET, HEAD, POST"),
        ("DELETE", f"/u/{t}", "GET, HEAD, POST"),
        ("GET", f"/u/{t}/resubscribe", "POST"),
        ("POST", "/healthz", "GET, HEAD"),
    ):
        reply = server.request(method, path, b"List-Unsubscribe=One-Click")
        assert (reply.status, reply.headers["allow"]) == (405, allow), (method, path)
    assert state(ws, person) == ("subscribed", [])


def test_no_redirects_a_trailing_slash_is_a_bad_path(server, campaign, person):
    t = token(campaign, person)
    not_found = server.request("GET", "/u/not-a-token")
    for path in (f"/u/{t}/", "/healthz/"):
        reply = server.request("GET", path)
        assert reply.status == 404 and "location" not in reply.headers
        assert reply.body == not_found.body


def padded_one_click(size: int) -> bytes:
    body = b"List-Unsubscribe=One-Click&pad="
    return body + b"x" * (size - len(body))


def chunks(body: bytes, size: int = 4096) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


def test_bodies_over_64_kib_get_413_even_when_chunked(ws, server, campaign):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with ws.store() as store:
        a, b, c, d = (add_contact(store, f"iso.{uuid.uuid4().hex[:8]}@example.com") for _ in "abcd")
    # at the cap is fine; one byte more is not, whether its length is declared or not
    assert (
        server.request("POST", f"/u/{token(campaign, a)}", padded_one_click(65536), form).status
        == 200
    )
    too_big = padded_one_click(65537)
    reply = server.request("POST", f"/u/{token(campaign, b)}", too_big, form)
    assert reply.status == 413
    assert declared(reply) == unsubscribe_headers()
    assert "Pyyntö on liian suuri" in reply.body
    reply = server.request("POST", f"/u/{token(campaign, c)}", chunks(too_big), form)
    assert reply.status == 413
    assert (
        server.request("POST", f"/u/{token(campaign, c)}/resubscribe", chunks(too_big), form).status
        == 413
    )
    # a small chunked one-click body still works
    reply = server.request(
        "POST", f"/u/{token(campaign, d)}", chunks(padded_one_click(100), 7), form
    )
    assert reply.status == 200
    assert [state(ws, x)[0] for x in (a, b, c, d)] == [
        "unsubscribed",
        "subscribed",
        "subscribed",
        "unsubscribed",
    ]


def test_the_access_log_masks_every_token_route(server, campaign, person):
    t = token(campaign, person)
    future = secrets.token_urlsafe(32)  # a token of a kind that comes later
    for prefix in ("u", "p", "confirm", "l"):
        for tok in (t, future, "short"):
            server.request("GET", f"/{prefix}/{tok}")
            server.request("GET", f"/{prefix}/{tok}/more")
    # a token where no route expects one, and an address, are masked too
    server.request("GET", f"/x/{t}/y")
    server.request("GET", f"/{future}")
    server.request("GET", "/x/maija@example.com")
    server.request("GET", f"/x/{uuid.uuid4()}")
    # doubled slashes and dot segments around a token route's slot
    odd = ("short", "kissa-koira", t)
    for shape in ("//u/{}", "/u//{}", "//u//{}", "/u/./{}", "///confirm///{}/x"):
        for tok in odd:
            server.request("GET", shape.format(tok))
    server.request("GET", "/archive/2026-11-marraskuun-uutiset")  # a name, not a token
    log = server.log_with('"GET /archive/2026-11-marraskuun-uutiset" 404')
    for prefix in ("u", "p", "confirm", "l"):
        assert f'"GET /{prefix}/***" 404' in log, prefix
        assert f'"GET /{prefix}/***/more" 404' in log, prefix
    assert '"GET /x/***/y" 404' in log and '"GET /***" 404' in log
    assert log.count('"GET /x/***" 404') == 2  # the address and the UUID
    assert '"GET /archive/2026-11-marraskuun-uutiset" 404' in log
    assert '"GET //u/***" 404' in log and '"GET /u//***" 404' in log
    assert '"GET /u/./***" 404' in log and '"GET ///confirm///***/x" 404' in log
    for secret_text in (t, t[:16], future, future[:16], "short", "kissa", "maija", "@"):
        assert secret_text not in log, secret_text


def test_a_locked_store_answers_503_but_a_one_click_is_spooled_and_never_lost(
    ws, server, campaign, person
):
    """A second process holds BEGIN EXCLUSIVE past the busy timeout: the page's form gets 503
    with Retry-After; the one-click POST, which its sender never repeats, is answered 200
    once spooled, and is in the database exactly once after the lock goes."""
    with ws.store() as store:
        other = add_contact(store, f"toinen.{uuid.uuid4().hex[:8]}@example.com")
    spool = ws.path / "mailer.db.spool"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    lock = sqlite3.connect(ws.path / "mailer.db", isolation_level=None, timeout=0)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        assert server.request("GET", f"/u/{token(campaign, person)}").status == 200
        replies: dict[str, object] = {}

        def post(kind: str, path: str, body: bytes) -> None:
            replies[kind] = server.request("POST", path, body, form, timeout=60)

        threads = [
            threading.Thread(
                target=post, args=("page", f"/u/{token(campaign, other)}", b"confirm=page")
            ),
            threading.Thread(
                target=post,
                args=("one-click", f"/u/{token(campaign, person)}", b"List-Unsubscribe=One-Click"),
            ),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        page, one_click = replies["page"], replies["one-click"]
        assert page.status == 503
        assert page.headers["retry-after"].isdigit()
        assert declared(page) == unsubscribe_headers()
        assert "Palvelu on hetken varattu" in page.body
        assert one_click.status == 200
        assert "Traceback" not in one_click.body
        assert declared(one_click) == unsubscribe_headers()
        # Durable before the 200 went out: in the spool, or in the file a replay (which the
        # lock keeps from finishing) has taken it to.
        spooled = [p for p in (spool, ws.path / "mailer.db.spool.replaying") if p.exists()]
        assert spooled
        assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in spooled)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    # The service replays the spool as soon as the database is free.
    deadline = time.monotonic() + 20
    while state(ws, person)[0] != "unsubscribed" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert state(ws, person) == ("unsubscribed", [("unsubscribe", "one-click", campaign)])
    assert state(ws, other) == ("subscribed", [])
    log = server.log_with("recorded 1 one-click unsubscribe(s) spooled")
    assert not spool.exists() and not spool.with_name("mailer.db.spool.replaying").exists()
    assert '"POST /u/***" 503' in log and "database is locked" in log
    assert "recorded 1 one-click unsubscribe(s) spooled" in log
    assert "Traceback" not in log
    # A second one-click for the same link changes nothing and records nothing more.
    assert server.one_click(token(campaign, person)).status == 200
    time.sleep(1.5)
    assert state(ws, person) == ("unsubscribed", [("unsubscribe", "one-click", campaign)])
    assert server.one_click(token(campaign, other)).status == 200
    assert state(ws, other)[0] == "unsubscribed"
