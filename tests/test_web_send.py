"""The whole path: a real send, a one-click POST on its List-Unsubscribe, the next send."""

from __future__ import annotations

import json
import re
import shutil
from urllib.parse import urlsplit

from mailer.audience.subscriptions import count_for_campaign, last_event
from tests import newsletter_helpers as newsletter
from tests.web_helpers import Server


def test_the_next_send_skips_a_contact_who_unsubscribed_by_one_click(smtp_workspace, smtp_server):
    ws = smtp_workspace
    server = Server.start(ws.path, ws.env())
    try:
        ws.set_config("web", "base_url", f'"http://127.0.0.1:{server.port}"')
        assert ws.cli("lists", "add", "cluster:Arctic Power").exit_code == 0
        for email in ("lahtija@example.org", "jaaja@example.org"):
            res = ws.cli("contacts", "add", email, "--list", "cluster:arctic-power")
            assert res.exit_code == 0, res.stderr
        first = newsletter.copy_campaign(ws.path)
        assert ws.cli("campaign", "create", str(first)).exit_code == 0
        res = ws.cli("send", "uutiskirje-2018-11", "--yes")
        assert res.exit_code == 0, res.stderr
        (message,) = [
            item.message()
            for item in smtp_server.received
            if "lahtija@example.org" in item.rcpt_tos
        ]
        header = message["List-Unsubscribe"]
        url = re.search(r"<(http[^>]+)>", header).group(1)
        assert url.startswith(f"http://127.0.0.1:{server.port}/u/")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

        # what a mail client does for RFC 8058 one-click: a bare POST to the header's URL
        assert server.one_click(urlsplit(url).path.rsplit("/", 1)[1]).status == 200

        second_dir = ws.path / "second"
        shutil.copytree(first.parent, second_dir)
        second = second_dir / "campaign.toml"
        second.write_text(
            second.read_text(encoding="utf-8").replace("uutiskirje-2018-11", "uutiskirje-2018-12"),
            encoding="utf-8",
        )
        assert ws.cli("campaign", "create", str(second)).exit_code == 0
        before = len(smtp_server.received)
        res = ws.cli("send", "uutiskirje-2018-12", "--yes")
        assert res.exit_code == 0, res.stderr
        later = [r for item in smtp_server.received[before:] for r in item.rcpt_tos]
        assert later == ["jaaja@example.org"]
        with ws.store() as store:
            (first_id,) = store.conn.execute(
                "SELECT id FROM campaigns WHERE name = 'uutiskirje-2018-11'"
            ).fetchone()
            assert count_for_campaign(store.conn, first_id) == 1
            (contact_id,) = store.conn.execute(
                "SELECT id FROM contacts WHERE email = 'lahtija@example.org'"
            ).fetchone()
            event = last_event(store.conn, contact_id)
            assert (event.source, event.campaign) == ("one-click", "uutiskirje-2018-11")
        stats = json.loads(ws.cli("stats", "uutiskirje-2018-11", "--format", "json").stdout)
        assert (stats["sent"], stats["unsubscribed"]) == (2, 1)
        shown = json.loads(ws.cli("contacts", "show", "lahtija@example.org", "-f", "json").stdout)
        assert shown["status"] == "unsubscribed"
        assert shown["last_change"]["campaign"] == "uutiskirje-2018-11"
        assert shown["last_change"]["source"] == "one-click"
        table = ws.cli("contacts", "show", "lahtija@example.org").stdout
        assert "unsubscribed:" in table and "uutiskirje-2018-11" in table
        # An undo through the page counts the campaign's unsubscribe out again.
        token = urlsplit(url).path.rsplit("/", 1)[1]
        assert server.form_post(f"/u/{token}/resubscribe", {"confirm": "page"}).status == 200
        stats = json.loads(ws.cli("stats", "uutiskirje-2018-11", "--format", "json").stdout)
        assert stats["unsubscribed"] == 0
    finally:
        server.stop()
