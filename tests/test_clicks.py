"""Click counting end to end: a real send with counted links, `mailer serve`, `mailer stats`."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

from mailer.timeutil import from_db
from mailer.tokens import make_link_token
from tests.clicks_helpers import NAME, click_paths, db_rows, hrefs, parts, send_campaign, stats
from tests.conftest import SECRET
from tests.web_helpers import Server

FI, EN = "lukija@example.org", "reader@example.org"
ARTICLE = "https://www.lapinliitto.fi/arctic-smartness/"
COUNCIL = "https://www.lapinliitto.fi/"


def test_links_point_at_the_service_in_html_only_and_each_click_is_counted(
    smtp_workspace, smtp_server
):
    ws = smtp_workspace
    ws.set_config("tracking", "ignore_first_seconds", "0")
    ws.ensure_lists("cluster:arctic-power")
    ws.cli("contacts", "add", EN, "--lang", "en", "--list", "cluster:arctic-power")
    send_campaign(ws, [FI])

    text, html = parts(smtp_server, FI)
    links = hrefs(html)
    base = "https://uutiset.arcticsmartness.eu"
    counted = [h for h in links if h.startswith(base + "/l/")]
    assert len(counted) == 3  # the title and its button share one link; the council's page
    assert ARTICLE not in html and COUNCIL not in html
    assert any(h.startswith(base + "/u/") for h in links)  # unsubscribe stays as it is
    assert ARTICLE in text and COUNCIL in text  # the text part keeps the readable URLs
    assert "/l/" not in text
    # The same link in two places has one URL; a token is per recipient.
    assert counted[0] == counted[2] != counted[1]
    assert not set(click_paths(smtp_server, FI)) & set(click_paths(smtp_server, EN))

    server = Server.start(ws.path, ws.env())
    try:
        article, council, _ = click_paths(smtp_server, FI)
        first = server.request("GET", article)
        assert first.status == 302 and first.headers["location"] == ARTICLE
        assert first.headers["cache-control"] == "no-store"
        assert first.headers["referrer-policy"] == "no-referrer"
        assert server.request("GET", article).status == 302  # the same reader again
        # A query or fragment on /l/ changes nothing: only stored URLs are targets.
        evil = server.request("GET", council + "?url=https://evil.example/")
        assert evil.status == 302 and evil.headers["location"] == COUNCIL
        head = server.request("HEAD", council)  # not counted
        assert head.status == 302 and head.headers["location"] == COUNCIL
        (en_article, *_) = click_paths(smtp_server, EN)
        assert (
            server.request("GET", en_article).headers["location"].endswith("/en/arctic-smartness/")
        )
        assert server.request("GET", "/l/" + "A" * 51).status == 404  # forged
        assert server.request("GET", article[:-1] + "B").status == 404
    finally:
        code, log = server.stop()
    assert code == 0
    assert "/l/***" in log and article.rsplit("/", 1)[1] not in log  # the log masks tokens

    result = stats(ws)
    assert (result["clicks"], result["unique_clicks"]) == (4, 2)
    assert [link["url"] for link in result["links"]] == [
        ARTICLE,
        COUNCIL,
        "https://www.lapinliitto.fi/en/arctic-smartness/",
        "https://www.lapinliitto.fi/en/",
    ]
    by_url = {link["url"]: link for link in result["links"]}
    assert (by_url[ARTICLE]["clicks"], by_url[ARTICLE]["unique_clicks"]) == (2, 1)
    assert (by_url[COUNCIL]["clicks"], by_url[COUNCIL]["unique_clicks"]) == (1, 1)
    table = ws.cli("stats", NAME).stdout
    assert "unique_clicks" in table and ARTICLE in table


def test_a_token_of_another_campaign_or_a_test_message_changes_no_count(
    smtp_workspace, smtp_server
):
    ws = smtp_workspace
    ws.set_config("tracking", "ignore_first_seconds", "0")
    send_campaign(ws, [FI])
    ((campaign_id,),) = db_rows(ws, "SELECT id FROM campaigns")
    ((link_id, delivery_id),) = db_rows(
        ws,
        "SELECT l.id, d.id FROM campaign_links l, deliveries d"
        " WHERE l.position = 0 AND d.campaign_id = l.campaign_id",
    )
    other = make_link_token(SECRET.encode(), campaign_id + 1, link_id, delivery_id)
    test = make_link_token(SECRET.encode(), campaign_id, link_id, 0)
    server = Server.start(ws.path, ws.env())
    try:
        assert server.request("GET", f"/l/{other}").status == 404
        reply = server.request("GET", f"/l/{test}")  # a test message's link works, uncounted
        assert reply.status == 302 and reply.headers["location"] == ARTICLE
        assert server.request("POST", f"/l/{test}").status == 405
    finally:
        server.stop()
    result = stats(ws)
    assert (result["clicks"], result["unique_clicks"]) == (0, 0)


def test_clicks_right_after_sending_are_mail_scanners_and_not_counted(smtp_workspace, smtp_server):
    ws = smtp_workspace
    ws.set_config("tracking", "ignore_first_seconds", "3600")
    send_campaign(ws, [FI])
    server = Server.start(ws.path, ws.env())
    try:
        for path in click_paths(smtp_server, FI):
            assert server.request("GET", path).status == 302  # the scanner still gets there
    finally:
        server.stop()
    result = stats(ws)
    assert (result["clicks"], result["unique_clicks"]) == (0, 0)
    assert db_rows(ws, "SELECT sum(early) FROM campaign_links") == [(3,)]


def test_without_click_counting_links_stay_and_stats_say_null(smtp_workspace, smtp_server):
    ws = smtp_workspace
    send_campaign(ws, [FI], clicks=False)
    text, html = parts(smtp_server, FI)
    assert ARTICLE in hrefs(html) and COUNCIL in hrefs(html)
    assert not [h for h in hrefs(html) if "/l/" in h]
    result = stats(ws)
    assert (result["clicks"], result["unique_clicks"], result["links"]) == (None, None, [])


def test_unique_hashes_go_after_keep_days_and_with_a_forgotten_contact(smtp_workspace, smtp_server):
    from mailer.engagement.clicks import purge_expired

    ws = smtp_workspace
    ws.set_config("tracking", "ignore_first_seconds", "0")
    send_campaign(ws, [FI, EN])
    server = Server.start(ws.path, ws.env())
    try:
        for email in (FI, EN):
            assert server.request("GET", click_paths(smtp_server, email)[0]).status == 302
    finally:
        server.stop()
    assert db_rows(ws, "SELECT count(*) FROM click_hashes") == [(4,)]  # 2 links + 2 "any"

    # Forgetting a person leaves nothing that links a click to them; the counts stay.
    assert ws.cli("contacts", "forget", EN, "--yes").exit_code == 0
    assert db_rows(ws, "SELECT count(*) FROM click_hashes") == [(2,)]
    assert (stats(ws)["clicks"], stats(ws)["unique_clicks"]) == (2, 2)
    for table in ("click_campaigns", "campaign_links", "click_hashes"):
        columns = [r[1] for r in db_rows(ws, f"PRAGMA table_info({table})")]
        assert not [c for c in columns if "contact" in c or "delivery" in c], table

    ((frozen,),) = db_rows(ws, "SELECT frozen_at FROM campaigns")
    with ws.store() as store:
        config = ws.config()
        assert purge_expired(store, config, now=from_db(frozen) + timedelta(days=89)) == []
        assert db_rows(ws, "SELECT count(*) FROM click_hashes") == [(2,)]
        assert len(purge_expired(store, config, now=from_db(frozen) + timedelta(days=90))) == 1
    assert db_rows(ws, "SELECT count(*) FROM click_hashes") == [(0,)]
    assert db_rows(ws, "SELECT count(*) FROM click_campaigns WHERE hash_key IS NULL") == [(1,)]

    # After the purge only the counts remain: a click counts, but no longer as unique.
    server = Server.start(ws.path, ws.env())
    try:
        assert server.request("GET", click_paths(smtp_server, FI)[0]).status == 302
    finally:
        server.stop()
    result = stats(ws)
    assert (result["clicks"], result["unique_clicks"]) == (3, 2)
    assert db_rows(ws, "SELECT count(*) FROM click_hashes") == [(0,)]


def test_send_due_deletes_expired_click_hashes_when_the_service_is_down(
    smtp_workspace, smtp_server
):
    ws = smtp_workspace
    ws.set_config("tracking", "ignore_first_seconds", "0")
    send_campaign(ws, [FI])
    server = Server.start(ws.path, ws.env())
    try:
        assert server.request("GET", click_paths(smtp_server, FI)[0]).status == 302
    finally:
        server.stop()  # and it stays down: cron's send-due keeps the promise
    res = ws.cli("send-due")
    assert res.exit_code == 0 and "Click hashes" not in res.stderr
    assert db_rows(ws, "SELECT count(*) FROM click_hashes") == [(2,)]
    conn = sqlite3.connect(ws.path / "mailer.db")
    with conn:  # as if the campaign had been frozen on New Year's Day, long past 90 days
        conn.execute("UPDATE click_campaigns SET tracked_at = '2026-01-01T00:00:00.000000Z'")
    conn.close()
    res = ws.cli("send-due")
    assert res.exit_code == 0 and "Click hashes of 1 campaign(s) older than 90 days" in res.stderr
    assert db_rows(ws, "SELECT count(*) FROM click_hashes") == [(0,)]
    assert stats(ws)["clicks"] == 1
