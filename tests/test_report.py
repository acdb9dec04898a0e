"""`mailer report`: one self-contained HTML file with charts and the numbers beside them."""

from __future__ import annotations

import re
import shutil
import sqlite3
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.clicks_helpers import NAME, click_paths, send_campaign
from tests.web_helpers import Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DOCS = Path(__file__).resolve().parent.parent / "docs"
READERS = ["lukija@example.org", "toinen@example.org", "kolmas@example.org"]
GONE = "poissa@example.org"


class _Outline(HTMLParser):
    """Tags, attributes and text of a page, for asserting on what it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        if data.strip():
            self.text.append(" ".join(data.split()))


def _outline(html: str) -> _Outline:
    parser = _Outline()
    parser.feed(html)
    parser.close()
    return parser


@pytest.fixture
def reported(smtp_workspace, smtp_server, tmp_path) -> tuple[Path, object]:
    """Two campaigns: one without click counting, then one with clicks, a bounce, an unsubscribe."""
    ws = smtp_workspace
    ws.set_config("tracking", "ignore_first_seconds", "0")
    smtp_server.handler.rcpt_reply = lambda address: (
        "550 5.1.1 no such user" if address == GONE else None
    )
    ws.ensure_lists("municipality:kemi", "cluster:arctic-power")
    ws.cli(
        "contacts", "add", "reader@example.org", "--lang", "en",
        "--list", "municipality:kemi", "--list", "cluster:arctic-power",
    )  # fmt: skip
    send_campaign(ws, READERS, clicks=False)
    first_dir = ws.path / "campaigns"
    second = ws.path / "second"
    shutil.copytree(first_dir, second)
    path = second / "campaign.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(NAME, "uutiskirje-2018-12"), encoding="utf-8"
    )
    ws.set_config("tracking", "clicks", "true")
    assert ws.cli("contacts", "add", GONE, "--list", "cluster:arctic-power").exit_code == 0
    assert ws.cli("campaign", "create", str(path)).exit_code == 0
    before = len(smtp_server.received)
    assert ws.cli("send", "uutiskirje-2018-12", "--yes").exit_code == 0
    smtp_server.handler.received[:] = smtp_server.received[before:]
    server = Server.start(ws.path, ws.env())
    try:
        for email in READERS[:2]:
            assert server.request("GET", click_paths(smtp_server, email)[0]).status == 302
        assert server.request("GET", click_paths(smtp_server, READERS[0])[1]).status == 302
        message = next(i.message() for i in smtp_server.received if READERS[2] in i.rcpt_tos)
        token = re.search(r"/u/([A-Za-z0-9_-]+)", message["List-Unsubscribe"]).group(1)
        assert server.one_click(token).status == 200
    finally:
        server.stop()
    # A message comes back later as a soft bounce (a DSN found by its returned Message-ID).
    from mailer.bounces.samples import delivery_report
    from mailer.timeutil import now_utc

    original = next(i.data for i in smtp_server.received if READERS[1] in i.rcpt_tos)
    dsn = tmp_path / "returned.eml"
    dsn.write_bytes(
        delivery_report(
            original, status="4.2.2", action="delayed", now=now_utc(), diagnostic="452 4.2.2 full"
        )
    )
    assert ws.cli("bounces", "import", str(dsn)).exit_code == 0
    out = tmp_path / "raportti.html"
    res = ws.cli("report", "uutiskirje-2018-12", "--out", str(out))
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == str(out)
    return out, ws


def test_the_report_holds_every_part_with_its_numbers_and_nothing_external(reported):
    out, ws = reported
    html = out.read_text(encoding="utf-8")
    page = _outline(html)
    text = " | ".join(page.text)
    ids = {attrs.get("id") for _tag, attrs in page.tags}
    assert {"audience", "outcomes", "timeline", "bounces", "clicks", "compare"} <= ids
    svgs = [attrs for tag, attrs in page.tags if tag == "svg"]
    assert len(svgs) > 15 and all(a.get("role") == "img" and a.get("aria-label") for a in svgs)
    # Audience by list and language, with the numbers beside the bars.
    assert re.search(r"(arctic-power|Arctic Power) \| 5 \(100 %\)", text)
    assert re.search(r"(kemi|Kemi) \| 1 \(20 %\)", text)
    assert "suomi | 4 (80 %)" in text and "English | 1 (20 %)" in text
    # Outcomes: 4 sent, 1 failed with its reason; 1 unsubscribe by one click.
    assert "lähetetty | 4 (80 %)" in text and "palautui (20.0 %)" in text
    assert "5.1.1 tuntematon vastaanottaja" in text
    assert "4.2.2 (tilapäinen) postilaatikko täynnä" in text  # returned later, by mail
    assert "yhdellä napsautuksella (sähköpostiohjelma) | 1 (25 %)" in text
    # Clicks per link, in newsletter order, with unique counts.
    assert "https://www.lapinliitto.fi/arctic-smartness/ | 2 | · 2 eri vastaanottajaa" in text
    assert "https://www.lapinliitto.fi/ | 1 | · 1 eri vastaanottajaa" in text
    # Compared with the earlier campaign (sent without click counting: no click rate).
    assert "uutiskirje-2018-11" in text and "uutiskirje-2018-12" in text
    assert "–" in text
    # Self-contained: no script, no external resource, no recipient's address.
    assert "<script" not in html.lower() and "@import" not in html and "url(" not in html
    for tag, attrs in page.tags:
        for name in ("src", "href", "xlink:href", "action"):
            assert not attrs.get(name), (tag, attrs)
    assert not [e for e in [*READERS, GONE] if e in html]
    assert "/l/" not in html and "/u/" not in html


def test_the_report_in_english_and_bad_input(reported, tmp_path):
    out, ws = reported
    english = tmp_path / "report.html"
    res = ws.cli("report", "uutiskirje-2018-12", "--out", str(english), "--lang", "en")
    assert res.exit_code == 0, res.stderr
    assert "Clicks per link" in english.read_text(encoding="utf-8")
    earlier = ws.cli("report", NAME, "--out", str(tmp_path / "earlier.html"), "--lang", "en")
    assert earlier.exit_code == 0
    assert "tracking.clicks was off" in (tmp_path / "earlier.html").read_text(encoding="utf-8")
    assert "not counted" in earlier.stderr
    res = ws.cli("report", "no-such", "--out", str(tmp_path / "x.html"))
    assert res.exit_code == 2 and "no campaign named 'no-such'" in res.stderr
    assert not (tmp_path / "x.html").exists()
    res = ws.cli("report", NAME, "--out", str(tmp_path))
    assert res.exit_code == 2 and "is a folder" in res.stderr
    res = ws.cli("report", NAME, "--lang", "sv", "--out", str(tmp_path / "y.html"))
    assert res.exit_code == 2 and "--lang" in res.stderr


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium (Debian `chromium`) missing")
def test_chromium_offline_renders_the_whole_report(reported, tmp_path):
    from playwright.sync_api import sync_playwright

    from tests.test_browser_render import ARGS, _distinct_pixel_bytes

    out, _ws = reported
    asked: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": 800, "height": 900})
            page = context.new_page()
            page.on("request", lambda request: asked.append(request.url))
            page.goto(out.as_uri())
            assert asked == [out.as_uri()]  # the file itself, nothing else
            bars = page.locator("svg rect.fill")
            assert bars.count() > 15
            box = page.locator("#clicks svg rect.fill").first.bounding_box()
            assert box is not None and box["width"] > 50  # the charts are drawn, not empty
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= 800
            shot = page.screenshot(full_page=True)
            assert _distinct_pixel_bytes(shot) > 32
            (tmp_path / "report-800.png").write_bytes(shot)
            # A phone: the page fits 360 px inside an iframe (Chromium's window is >= 500 px).
            phone = out.parent / "phone.html"
            phone.write_text(
                f'<iframe src="{out.name}" width="360" height="800" style="border:0"></iframe>',
                encoding="utf-8",
            )
            frame_page = context.new_page()
            frame_page.goto(phone.as_uri())
            frame = frame_page.frames[1]
            frame.wait_for_load_state()
            assert frame.evaluate("document.documentElement.scrollWidth") <= 360
            assert frame.locator("#clicks svg rect.fill").first.bounding_box()["width"] > 20
            context.close()
        finally:
            browser.close()


def test_the_timeline_counts_each_message_in_the_second_it_was_sent(reported, tmp_path):
    # The buckets are counted in SQL (a million sent rows are never read into memory); a
    # message sent at 10:00:59.99999 UTC stays in its own 10 seconds, not the next.
    out, ws = reported
    times = [
        "2026-11-30T10:00:51.000000Z",
        "2026-11-30T10:00:59.999990Z",
        "2026-11-30T10:01:00.000001Z",
        "2026-11-30T10:01:07.500000Z",
    ]
    conn = sqlite3.connect(ws.path / "mailer.db")
    with conn:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT d.id FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id"
                " WHERE c.name = 'uutiskirje-2018-12' AND d.sent_at IS NOT NULL ORDER BY d.id"
            )
        ]
        assert len(ids) == len(times)
        for delivery_id, moment in zip(ids, times, strict=True):
            conn.execute("UPDATE deliveries SET sent_at = ? WHERE id = ?", (moment, delivery_id))
    conn.close()
    again = tmp_path / "again.html"
    assert ws.cli("report", "uutiskirje-2018-12", "--out", str(again)).exit_code == 0
    text = " | ".join(_outline(again.read_text(encoding="utf-8")).text)
    # Helsinki is UTC+2 in November: two messages in 12:00:50, two in 12:01:00.
    assert "12:00:50 | 2" in text and "12:01:00 | 2" in text, text
