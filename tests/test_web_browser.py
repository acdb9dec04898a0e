"""A real browser: headless Chromium opens a real newsletter, follows its footer link, clicks.

The newsletter is the HTML part of the message `mailer send --dry-run` writes for the contact,
with the unsubscribe URL of `[web] base_url` pointing at `mailer serve` on loopback.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import pytest

from tests.newsletter_helpers import copy_campaign
from tests.sending_helpers import ScriptedSink, point_at
from tests.web_helpers import Server, contact_events, contact_status

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def png_size_and_colours(data: bytes) -> tuple[int, int, int]:
    """Return width, height and the number of distinct byte values in the pixel data."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def test_a_reader_unsubscribes_from_the_newsletter_in_a_browser(workspace, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    assert shutil.which(CHROMIUM)
    import email
    import email.policy

    server = Server.start(workspace.path, workspace.env())
    try:
        workspace.set_config("web", "base_url", f'"http://127.0.0.1:{server.port}"')
        email_address = "selain.lukija@example.com"
        assert workspace.cli("lists", "add", "cluster:Arctic Power").exit_code == 0
        res = workspace.cli(
            "contacts", "add", email_address, "--lang", "fi", "--list", "cluster:arctic-power"
        )
        assert res.exit_code == 0, res.stderr
        assert (
            workspace.cli("campaign", "create", str(copy_campaign(workspace.path))).exit_code == 0
        )
        # The reader's own copy, as sent (a dry run's files carry test links that name nobody).
        with ScriptedSink() as sink:
            point_at(workspace, sink.port)
            res = workspace.cli("send", "uutiskirje-2018-11", "--yes")
            assert res.exit_code == 0, res.stderr
        (received,) = sink.received
        message = email.message_from_bytes(received.data, policy=email.policy.default)
        newsletter = tmp_path / "newsletter.html"
        newsletter.write_text(message.get_body(("html",)).get_content(), encoding="utf-8")
        link = message["List-Unsubscribe"].split(",")[0].strip().strip("<>")
        with workspace.store() as store:
            contact, campaign = store.conn.execute(
                "SELECT (SELECT id FROM contacts), (SELECT id FROM campaigns)"
            ).fetchone()
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 375, "height": 740})
                problems: list[str] = []
                page.on("console", lambda msg: problems.append(msg.text))
                page.goto(newsletter.as_uri())
                page.click(f'a[href="{link}"]')
                page.wait_for_load_state()
                assert page.url == link
                heading = page.get_by_role("heading", level=1)
                assert heading.inner_text() == "Perutaanko uutiskirjeen tilaus?"
                assert "s***@example.com" in page.content()
                assert contact_status(workspace.store(), contact) == "subscribed"

                # right on a phone: no sideways scrolling, styles allowed by the CSP
                assert page.evaluate("document.documentElement.scrollWidth") <= 375
                button = page.get_by_role("button", name="Peru tilaus")
                colour = button.evaluate("b => getComputedStyle(b).backgroundColor")
                assert colour == "rgb(11, 79, 138)", colour
                shot = tmp_path / "unsubscribe-375.png"
                page.screenshot(path=str(shot), full_page=True)
                width, height, colours = png_size_and_colours(shot.read_bytes())
                assert width == 375 and height > 200
                assert colours > 20  # not a blank page

                # keyboard: the button is reachable with Tab and pressed with Enter
                page.keyboard.press("Tab")
                assert page.evaluate("document.activeElement.tagName") == "BUTTON"
                page.keyboard.press("Enter")
                page.wait_for_load_state()
                page.get_by_role("heading", name="Tilaus on peruttu").wait_for()
                with workspace.store() as store:
                    assert contact_status(store, contact) == "unsubscribed"
                    assert contact_events(store, contact) == [("unsubscribe", "page", campaign)]

                page.get_by_role("button", name="Tilaa uudelleen").click()
                page.get_by_role("heading", name="Tilaus on jälleen voimassa").wait_for()
                with workspace.store() as store:
                    assert contact_status(store, contact) == "subscribed"
                assert not [m for m in problems if "Content Security Policy" in m], problems
            finally:
                browser.close()
    finally:
        server.stop()
