"""Headless Chromium: /subscribe and /p/{token} on a phone and a laptop, used with the keyboard."""

from __future__ import annotations

import html
import time
from pathlib import Path

import pytest

from mailer.tokens import make_preferences_token
from tests.conftest import SECRET
from tests.signup_helpers import enable_signup, wait_for_mails
from tests.smtp_sink import SmtpSink
from tests.test_web_browser import ARGS, CHROMIUM
from tests.web_helpers import Server, add_contact

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]
WIDTHS = (375, 800)


def frame_width(page, markup: str, width: int) -> int:
    """The page's scroll width inside an iframe of `width` px (Chromium's windows are wider)."""
    page.set_content(
        f'<iframe id="f" style="border:0;width:{width}px;height:900px" '
        f'srcdoc="{html.escape(markup, quote=True)}"></iframe>'
    )
    page.wait_for_function("document.getElementById('f').contentDocument.readyState == 'complete'")
    return int(
        page.evaluate("document.getElementById('f').contentDocument.documentElement.scrollWidth")
    )


def test_a_person_signs_up_and_changes_preferences_with_the_keyboard(workspace):
    playwright = pytest.importorskip("playwright.sync_api")
    with SmtpSink() as sink:
        enable_signup(workspace, sink, per_client_per_hour="100")
        with workspace.store() as store:
            contact = add_contact(store, "lukija@example.org")
        prefs = f"/p/{make_preferences_token(SECRET.encode(), contact)}"
        server = Server.start(workspace.path, workspace.env())
        try:
            base = f"http://127.0.0.1:{server.port}"
            markup = {
                path: server.request("GET", path).body for path in ("/subscribe", prefs, "/p")
            }
            with playwright.sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    measure = browser.new_page(viewport={"width": 1000, "height": 900})
                    for path, body in markup.items():
                        for width in (320, *WIDTHS):
                            assert frame_width(measure, body, width) <= width, (path, width)
                    for n, width in enumerate(WIDTHS):
                        page = browser.new_page(
                            viewport={"width": width, "height": 900}, locale="fi-FI"
                        )
                        problems: list[str] = []
                        page.on("console", lambda msg, found=problems: found.append(msg.text))
                        sign_up(page, base, f"selain{n}@example.org", width)
                        change_preferences(page, base + prefs, width)
                        assert not [m for m in problems if "Content Security Policy" in m]
                        page.close()
                finally:
                    browser.close()
            for n in range(len(WIDTHS)):
                (mail,) = wait_for_mails(sink, f"selain{n}@example.org", 1)
                assert mail["Subject"].startswith("Vahvista")
        finally:
            server.stop()
    shown = workspace.cli("contacts", "show", "lukija@example.org")
    assert "company:circular-economy" in shown.stdout and "sustainable" not in shown.stdout


def sign_up(page, base: str, email: str, width: int) -> None:
    page.goto(base + "/subscribe")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "email"
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type("Selma Selain")
    page.keyboard.press("Tab")  # organisation: left empty
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "language"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.value") == "company:sustainable-tourism"
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "consent"
    page.keyboard.press("Space")
    page.keyboard.press("Tab")  # the honeypot is out of the tab order
    assert page.evaluate("document.activeElement.tagName") == "BUTTON"
    time.sleep(3.1)  # people take a moment; the form stamp knows
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Tarkista sähköpostisi").wait_for()


def change_preferences(page, url: str, width: int) -> None:
    page.goto(url)
    assert page.get_by_role("heading", level=1).inner_text() == "Uutiskirjeen asetukset"
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.value") == "company:sustainable-tourism"
    page.keyboard.press("Tab")
    if not page.evaluate("document.activeElement.checked"):
        page.keyboard.press("Space")  # join circular economy
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "language"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.tagName") == "BUTTON"
    page.keyboard.press("Enter")
    page.get_by_text("Asetukset on tallennettu.").or_(
        page.get_by_text("Mitään ei muutettu.")
    ).wait_for()
