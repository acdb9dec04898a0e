"""A real browser renders the newsletter at phone and desktop widths without overflow."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import pytest

from mailer.newsletter.render import render_campaign
from mailer.newsletter.spec import load_campaign
from tests.newsletter_helpers import UNSUB, copy_campaign, write_item

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium (Debian `chromium`) missing"),
]


def _distinct_pixel_bytes(png: bytes) -> int:
    """How many different byte values the decompressed image data holds (blank: very few)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(idat)))


@pytest.fixture
def page_file(workspace) -> Path:
    campaign = copy_campaign(workspace.path)
    long_url = "https://www.lapinliitto.fi/" + "pitka-osoite-" * 12 + "loppu"
    write_item(
        campaign.parent,
        "news/pitka.fi.md",
        'title = "Hyvin pitkä sana: Pohjoiskalottitutkimusinfrastruktuurikehittämishanke"\n'
        'date = 2018-11-04\nlang = "fi"\nimage = "https://uutiset.arcticsmartness.eu/leveä.jpg"\n'
        'image_alt = "Leveä kuva"',
        f"Katso {long_url} ja `{'koodi' * 30}`.\n",
    )
    text = campaign.read_text(encoding="utf-8").replace(
        '"news/kunnat.fi.md"', '"news/kunnat.fi.md", "news/pitka.fi.md"'
    )
    campaign.write_text(text, encoding="utf-8")
    variants = render_campaign(workspace.config(), load_campaign(campaign, workspace.config()))
    name = "Maija Meikäläinen-Pohjoisranta"
    html = variants["fi"].fill("html", name, "maija.meikalainen@example.fi", UNSUB)
    path = workspace.path / "index.fi.html"
    path.write_text(html, encoding="utf-8")
    return path


def test_newsletter_fits_phone_and_desktop_widths(page_file, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for width in (320, 375, 600):
                page = browser.new_page(viewport={"width": width, "height": 900})
                # Offline: nothing but the file itself may load.
                page.route(
                    "**/*",
                    lambda route: (
                        route.continue_()
                        if route.request.url.startswith("file:")
                        else route.abort()
                    ),
                )
                page.goto(page_file.as_uri())
                scroll = page.evaluate(
                    "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
                )
                assert scroll <= width, f"horizontal overflow at {width}px: {scroll}px"
                shot = page.screenshot(full_page=True)
                (tmp_path / f"shot-{width}.png").write_bytes(shot)
                assert _distinct_pixel_bytes(shot) > 32, f"blank screenshot at {width}px"
                assert page.get_by_text("Lapin älykkään erikoistumisen painopisteet").count()
                link = page.locator(f'a[href="{UNSUB}"]')
                assert link.count() == 1 and link.is_visible()

                page.emulate_media(color_scheme="dark")
                background = page.evaluate("getComputedStyle(document.body).backgroundColor")
                assert background == "rgb(13, 27, 36)"  # the dark-mode rules apply
                page.close()
        finally:
            browser.close()


_CONTRAST_JS = """
() => {
  const rgb = (text) => text.match(/[\\d.]+/g).slice(0, 4).map(Number);
  const luminance = ([r, g, b]) => {
    const lin = (c) => {
      c /= 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const ratio = (a, b) => {
    const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const button = document.querySelector("a.button");
  const own = background(button);
  return {
    againstPage: ratio(own, background(button.parentElement)),
    text: ratio(rgb(getComputedStyle(button).color).slice(0, 3), own),
  };
}
"""


def test_the_read_more_button_stays_visible_in_dark_mode(page_file):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for scheme in ("light", "dark"):
                page = browser.new_page(color_scheme=scheme)
                page.goto(page_file.as_uri())
                seen = page.evaluate(_CONTRAST_JS)
                # WCAG 2.1: 3:1 for a control against what surrounds it, 4.5:1 for its text.
                assert seen["againstPage"] >= 3, (scheme, seen)
                assert seen["text"] >= 4.5, (scheme, seen)
                page.close()
        finally:
            browser.close()
