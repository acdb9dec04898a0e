"""A real browser: headless Chromium opens a newsletter, follows the unsubscribe link, clicks.

The newsletter here is a minimal HTML page written by the test with the footer link; once
rendering lands, this should open a newsletter made by `mailer render`.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import pytest

from mailer.tokens import make_token, unsubscribe_url
from tests.conftest import SECRET
from tests.web_helpers import (
    Server,
    add_contact,
    contact_events,
    contact_status,
    insert_campaign_for_tests,
)

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
    with workspace.store() as store:
        campaign = insert_campaign_for_tests(store, "2026-11", {"fi": "Marraskuun uutiset"})
        contact = add_contact(store, "selain.lukija@example.com", "fi")
    server = Server.start(workspace.path, workspace.env())
    try:
        link = unsubscribe_url(
            f"http://127.0.0.1:{server.port}", make_token(SECRET.encode(), campaign, contact)
        )
        newsletter = tmp_path / "newsletter.html"
        newsletter.write_text(
            '<!doctype html><html lang="fi"><meta charset="utf-8"><body>'
            "<h1>Marraskuun uutiset</h1><p>Klusterit koolla Rovaniemellä.</p>"
            f'<footer>Arctic Smartness · <a id="unsubscribe" href="{link}">'
            "Peru tilaus</a></footer></body></html>",
            encoding="utf-8",
        )
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 375, "height": 740})
                problems: list[str] = []
                page.on("console", lambda msg: problems.append(msg.text))
                page.goto(newsletter.as_uri())
                page.click("#unsubscribe")
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
