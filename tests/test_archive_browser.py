"""Headless Chromium reads the archive from `mailer serve` at phone and desktop widths.

Chromium lays out no window narrower than 500 px, so each width is measured inside an
iframe of that width, on a host page of the same origin (the archive may be framed by its
own site only).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.archive_helpers import archived_campaign
from tests.test_web_browser import ARGS, CHROMIUM
from tests.web_helpers import Server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]
NAME = "uutiskirje-2018-11"


def test_archive_pages_fit_375_and_800_px_with_the_picture_loaded(smtp_workspace):
    playwright = pytest.importorskip("playwright.sync_api")
    ws = smtp_workspace
    server = Server.start(ws.path, ws.env())
    try:
        ws.set_config("web", "base_url", f'"http://127.0.0.1:{server.port}"')
        ws.ensure_lists("cluster:arctic-power")
        res = ws.cli("contacts", "add", "selain@example.org", "--list", "cluster:arctic-power")
        assert res.exit_code == 0, res.stderr
        assert ws.cli("campaign", "create", str(archived_campaign(ws.path))).exit_code == 0
        assert ws.cli("send", NAME, "--yes").exit_code == 0
        origin = f"http://127.0.0.1:{server.port}"
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1000, "height": 900})
                problems: list[str] = []
                page.on("console", lambda msg: problems.append(msg.text))
                page.route(
                    f"{origin}/frame-host",
                    lambda route: route.fulfill(
                        status=200,
                        content_type="text/html",
                        body="<!doctype html><body style='margin:0'>"
                        "<iframe id=f style='border:0;height:900px'></iframe></body>",
                    ),
                )
                external: list[str] = []
                page.on(
                    "request",
                    lambda r: external.append(r.url) if not r.url.startswith(origin) else None,
                )
                page.goto(f"{origin}/frame-host")
                for path in (f"/archive/{NAME}", f"/archive/{NAME}/en", "/archive/"):
                    for width in (375, 800):
                        _check_width(page, origin + path, width)
                assert not [m for m in problems if "Content Security Policy" in m], problems
                assert external == []
            finally:
                browser.close()
    finally:
        server.stop()


def _check_width(page, url: str, width: int) -> None:
    page.evaluate(
        """([url, width]) => new Promise(done => {
            const f = document.getElementById('f');
            f.style.width = width + 'px';
            f.onload = () => done();
            f.src = url;
        })""",
        [url, width],
    )
    frame = page.frame_locator("#f")
    handle = page.query_selector("#f").content_frame()
    handle.wait_for_load_state("load")
    scroll = handle.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
    )
    assert scroll <= width, f"{url}: horizontal overflow at {width}px: {scroll}px"
    if url.endswith(NAME):  # the Finnish issue has the photo
        image = frame.locator("img.photo")
        assert image.count() == 1
        natural, shown = image.evaluate(
            "img => [img.naturalWidth, img.getBoundingClientRect().width]"
        )
        assert natural == 1200, f"{url}: the picture did not load"
        assert 0 < shown <= width
    elif url.endswith("/archive/"):
        assert frame.locator(f'a[href="/archive/{NAME}"]').count() == 1
    else:
        assert frame.get_by_text("smart specialisation").count() > 0
