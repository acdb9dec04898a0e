"""Counted links in a variant: which links become /l/ placeholders, and stored variants load."""

from __future__ import annotations

import json

from mailer.engagement.links import LinkFiller, count_links, is_counted
from mailer.newsletter.messages import MessageBuilder, Recipient
from mailer.newsletter.variant import Variant, placeholder
from mailer.timeutil import now_utc
from mailer.tokens import verify_link_token
from tests.newsletter_helpers import UNSUB

BASE = "https://uutiset.arcticsmartness.eu"
MARKER = "abc123"


def _variant() -> Variant:
    unsub = placeholder("unsubscribe_url", MARKER)
    html = (
        '<p><a href="https://www.lapinliitto.fi/?a=1&amp;b=2" style="color:#000">Lapin liitto</a>'
        ' <a class="button" href="https://www.lapinliitto.fi/?a=1&amp;b=2">Lue lisää</a>'
        ' <a href="mailto:arcticsmartness@lapinliitto.fi">posti</a>'
        ' <a href="#alku">alkuun</a> <a href="HTTP://Example.ORG/x">x</a>'
        f' <a href="{BASE}/archive/2018-11">selaimessa</a>'
        f' <img src="{BASE}/m/abc.jpg" alt="">'
        f' <a href="{unsub}">peru</a></p>\n'
    )
    return Variant(
        "fi", "c", "Otsikko", "", html, f"Lue https://www.lapinliitto.fi/\n{unsub}\n", MARKER
    )


def test_only_outside_http_links_are_counted_and_a_repeated_url_is_one_link():
    assert is_counted("https://www.lapinliitto.fi/", BASE)
    for url in ("mailto:x@example.org", "#top", f"{BASE}/u/x", BASE, "ftp://x", "https://a b"):
        assert not is_counted(url, BASE), url
    counted = count_links(_variant(), BASE)
    assert counted.links == ("https://www.lapinliitto.fi/?a=1&b=2", "HTTP://Example.ORG/x")
    assert counted.html.count("%%MAILER_LINK0_abc123%%") == 2
    assert 'style="color:#000"' in counted.html and 'class="button"' in counted.html
    assert (
        "mailto:" in counted.html and "#alku" in counted.html and f"{BASE}/archive/" in counted.html
    )
    assert counted.text == _variant().text


def test_a_counted_variant_round_trips_as_format_3_and_older_formats_still_load():
    counted = count_links(_variant(), BASE)
    stored = json.loads(counted.to_json())
    assert stored["format"] == 3 and stored["links"] == list(counted.links)
    assert Variant.from_json(counted.to_json()) == counted
    plain = json.loads(_variant().to_json())
    assert plain["format"] == 2 and "links" not in plain  # older code reads it
    assert Variant.from_json(_variant().to_json()).links == ()


def test_each_recipient_gets_own_click_urls_and_previews_keep_the_originals():
    counted = count_links(_variant(), BASE)
    filler = LinkFiller(b"s" * 32, BASE, 7, {url: 40 + n for n, url in enumerate(counted.links)})
    urls = filler.urls(counted.links, 123)
    subject = verify_link_token([b"s" * 32], urls[0].rsplit("/", 1)[1])
    assert (subject.campaign_id, subject.link_id, subject.delivery_id) == (7, 40, 123)
    assert filler.urls(counted.links, 124) != urls
    assert filler.urls((), 123) == () and LinkFiller(b"s", BASE, 7, {}).urls(counted.links, 1) == ()
    html = counted.fill("html", "Aino", "aino@example.org", UNSUB, links=urls)
    assert html.count(urls[0]) == 2 and "lapinliitto.fi/?a" not in html
    preview = counted.fill("html", "Aino", "aino@example.org", UNSUB)
    assert "https://www.lapinliitto.fi/?a=1&amp;b=2" in preview


def test_the_built_message_carries_the_click_urls_in_html_only(workspace):
    counted = count_links(_variant(), BASE)
    builder = MessageBuilder(workspace.config(), counted)
    assert builder.links == counted.links
    urls = (f"{BASE}/l/{'A' * 38}", f"{BASE}/l/{'B' * 38}")
    built = builder.build(Recipient("aino@example.org", "Aino"), UNSUB, now=now_utc(), links=urls)
    import email
    import email.policy

    message = email.message_from_bytes(built.data, policy=email.policy.default)
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert html.count(urls[0]) == 2 and urls[1] in html
    assert "/l/" not in text and "https://www.lapinliitto.fi/" in text
