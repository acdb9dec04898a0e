"""Rendering: Jinja2 + premailer once per language; the prepared HTML and text parts."""

from __future__ import annotations

import email
import email.policy
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import html5lib
import pytest

from mailer.errors import InputError, MailerError
from mailer.newsletter.messages import MessageBuilder, Recipient
from mailer.newsletter.render import render_campaign
from mailer.newsletter.spec import load_campaign
from mailer.newsletter.variant import FIELDS, Variant, VariantFormatError, choose_variant
from tests.newsletter_helpers import UNSUB, copy_campaign, write_campaign, write_item

STORED = Path(__file__).parent / "data" / "variants"


@pytest.fixture
def rendered(workspace):
    spec = load_campaign(copy_campaign(workspace.path), workspace.config())
    return spec, render_campaign(workspace.config(), spec)


def _links(html: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', html)


def test_the_html_is_a_complete_inlined_document(rendered):
    spec, variants = rendered
    assert list(variants) == ["fi", "en"]
    html = variants["fi"].fill("html", "Maija Meikäläinen", "maija@example.fi", UNSUB)
    parser = html5lib.HTMLParser(strict=False, namespaceHTMLElements=False)
    doc = parser.parse(html)
    assert doc.find(".//title").text == spec.subject["fi"]
    assert doc.get("lang") == "fi"
    assert not parser.errors, parser.errors[:3]
    assert len(doc.findall(".//*[@style]")) > 20  # CSS inlined
    style = "".join(s.text for s in doc.findall(".//style"))
    assert "@media screen and (max-width: 620px)" in style
    assert "prefers-color-scheme: dark" in style
    assert "!important" in style  # premailer told not to strip it
    for item in spec.items_for("fi"):
        assert item.title in html
    assert UNSUB in _links(html)
    assert "Hei Maija Meikäläinen," in html
    assert "maija@example.fi" in html
    assert "Lapin liitto, Hallituskatu 20 B, 96100 Rovaniemi" in html
    # No external fonts, styles or scripts.
    assert doc.find(".//script") is None and doc.find(".//link") is None
    assert "@import" not in style and "@font-face" not in style
    # The preheader is hidden without a low-contrast colour trick.
    pre = doc.find(".//div[@class='preheader']")
    assert "display:none" in pre.get("style") and "color" not in pre.get("style")


def test_the_text_part_has_the_same_titles_and_links(rendered):
    spec, variants = rendered
    html = variants["en"].fill("html", "", "alex@example.com", UNSUB)
    text = variants["en"].fill("text", "", "alex@example.com", UNSUB)
    for item in spec.items_for("en"):
        assert item.title in text
    for link in _links(html):
        assert link in text, link
    assert text.startswith("Arctic Smartness\n")
    assert "Hello,\n" in text  # no name: a greeting without one
    assert UNSUB in text and "Regional Council of Lapland" in text
    assert max(len(line) for line in text.splitlines()) <= 76


def test_each_language_gets_only_its_items(rendered):
    spec, variants = rendered
    fi, en = variants["fi"], variants["en"]
    assert "Kunnat mukaan klusterityöhön" in fi.html
    assert "Kunnat mukaan" not in en.html and "Lapland's smart" not in fi.html
    assert en.subject == spec.subject["en"] and "Unsubscribe" in en.html
    assert "6 November 2018" in en.html and "6. marraskuuta 2018" in fi.html
    assert choose_variant(variants, "en", "fi") is en
    assert choose_variant(variants, "sv", "fi") is fi  # no Swedish items: the default
    assert choose_variant({"en": en}, "sv", "fi") is en  # no default either: what exists
    # Neither the contact's nor the default: the first in catalogue order (fi, en, sv, se).
    assert choose_variant({"se": en, "sv": fi}, "fi", "fi") is fi


def test_variants_survive_json(rendered):
    _, variants = rendered
    again = Variant.from_json(variants["fi"].to_json())
    assert again == variants["fi"]
    assert again.fill("text", "A", "a@b.fi", UNSUB) == variants["fi"].fill(
        "text", "A", "a@b.fi", UNSUB
    )


def test_a_stored_variant_lists_its_placeholder_fields(rendered):
    _, variants = rendered
    stored = json.loads(variants["fi"].to_json())
    assert stored["format"] == 2
    # The bundled template greets by name ("Hei Maija,") but never prints the bare name.
    assert stored["fields"] == ["greeting", "email", "unsubscribe_url"]
    assert Variant.from_json(variants["fi"].to_json()).fields == tuple(stored["fields"])


def test_a_variant_frozen_by_the_first_format_still_fills_the_same(workspace):
    # format1.fi.json is exactly what Variant.to_json stored before format 2 existed;
    # the .filled files are what that code filled it to for this reader.
    frozen = (STORED / "format1.fi.json").read_text(encoding="utf-8")
    assert json.loads(frozen)["format"] == 1 and "fields" not in json.loads(frozen)
    variant = Variant.from_json(frozen)
    name, address = 'Åsa "Ö" <Ylitalo> & co', "asa@example.fi"
    for part, suffix in (("html", "html"), ("text", "txt")):
        expected = (STORED / f"format1.fi.filled.{suffix}").read_text(encoding="utf-8")
        assert variant.fill(part, name, address, UNSUB) == expected
    # And it still makes a message that parses back to the same parts.
    now = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
    built = MessageBuilder(workspace.config(), variant).build(
        Recipient(address, name, address), UNSUB, now=now
    )
    msg = email.message_from_bytes(built.data, policy=email.policy.default)
    text, html = msg.get_payload()
    assert text.get_content().replace("\r\n", "\n") == variant.fill("text", name, address, UNSUB)
    assert html.get_content().replace("\r\n", "\n") == variant.fill("html", name, address, UNSUB)
    # Stored again, it is format 2 with the fields format 1 implied.
    again = Variant.from_json(variant.to_json())
    assert again == variant and again.fields == ("greeting", "name", "email", "unsubscribe_url")


def test_a_variant_from_a_newer_mailer_is_a_clear_error():
    stored = json.loads((STORED / "format1.fi.json").read_text(encoding="utf-8"))
    with pytest.raises(VariantFormatError, match=r"has format 4, .* reads formats 1 to 3"):
        Variant.from_json(json.dumps(dict(stored, format=4)))
    newer = dict(stored, format=2, fields=["greeting", "view_url", "unsubscribe_url"])
    with pytest.raises(VariantFormatError, match=r"uses the field\(s\) view_url"):
        Variant.from_json(json.dumps(newer))
    assert issubclass(VariantFormatError, MailerError)  # one line on the CLI, exit 1


def test_a_variant_fills_only_the_fields_it_lists():
    marker = "abc123"
    variant = Variant(
        language="en",
        campaign="c",
        subject="S",
        preheader="",
        html=f'<a href="%%MAILER_UNSUBSCRIBE_URL_{marker}%%">x</a> %%MAILER_NAME_{marker}%%\n',
        text=f"Link: %%MAILER_UNSUBSCRIBE_URL_{marker}%%\n",
        marker=marker,
        fields=("unsubscribe_url",),
    )
    again = Variant.from_json(variant.to_json())
    assert again == variant
    # A placeholder of a field the variant does not list stays as it is.
    assert again.fill("html", "A", "a@b.fi", UNSUB) == (
        f'<a href="{UNSUB}">x</a> %%MAILER_NAME_{marker}%%\n'
    )
    assert again.fill("text", "A", "a@b.fi", UNSUB) == f"Link: {UNSUB}\n"
    assert Variant("en", "c", "S", "", "", "", marker).fields == FIELDS


def test_hostile_content_is_escaped(workspace):
    folder = workspace.path / "c"
    write_item(
        folder,
        "x.md",
        'title = "<script>alert(1)</script> & co"\n'
        'date = 2018-11-06\nlang = "fi"\nsummary = "<img src=x onerror=y>"\n'
        'link = "https://example.fi/?a=1&b=2"',
    )
    path = write_campaign(
        folder,
        'name = "n"\nsubject = "<b>S</b>"\nsegment = "all"\n'
        'items = ["x.md"]\nintro = "<i>hi</i>"\n',
    )
    variant = render_campaign(workspace.config(), load_campaign(path, workspace.config()))["fi"]
    html = variant.fill("html", '<a href="x">Eve</a>\r\nBcc: x@y', "eve@example.fi", UNSUB)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    assert "<img src=x" not in html and "<b>S</b>" not in html and "<i>hi</i>" not in html
    assert '<a href="x">' not in html and "&lt;a href=&quot;x&quot;&gt;Eve" in html
    assert "\r" not in html
    text = variant.fill("text", '<a href="x">Eve</a>', "eve@example.fi", UNSUB)
    assert "<script>alert(1)</script> & co" in text  # text is text: nothing to escape


def test_the_workspace_template_wins_and_a_broken_one_is_exit_2(workspace):
    path = copy_campaign(workspace.path)
    template = workspace.path / "templates" / "newsletter.html"
    template.write_text(
        template.read_text(encoding="utf-8").replace("<body>", "<body><p>OMA POHJA</p>"),
        encoding="utf-8",
    )
    variants = render_campaign(workspace.config(), load_campaign(path, workspace.config()))
    assert "OMA POHJA" in variants["fi"].html

    lines = template.read_text(encoding="utf-8").splitlines()
    lines[70] = "{% if %}"
    template.write_text("\n".join(lines), encoding="utf-8")
    res = workspace.cli("render", str(path), "--out", str(workspace.path / "out"))
    assert res.exit_code == 2
    assert f"{template}:71" in res.stderr and "Traceback" not in res.stderr

    template.write_text("{{ no_such_value }}", encoding="utf-8")
    with pytest.raises(InputError, match=r"newsletter\.html:1: template failed"):
        render_campaign(workspace.config(), load_campaign(path, workspace.config()))


def test_render_command_writes_each_language(workspace):
    path = copy_campaign(workspace.path)
    out = workspace.path / "preview"
    res = workspace.cli("render", str(path), "--out", str(out))
    assert res.exit_code == 0, res.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "index.en.html",
        "index.en.txt",
        "index.fi.html",
        "index.fi.txt",
        "sample.en.eml",
        "sample.fi.eml",
    ]
    assert str(out / "index.fi.html") in res.stdout
    html = (out / "index.fi.html").read_text(encoding="utf-8")
    assert "https://uutiset.arcticsmartness.eu/u/" in html and "%%MAILER" not in html
    eml = (out / "sample.en.eml").read_bytes()
    assert b"To: Alex Example <alex@example.com>\r\n" in eml


def test_render_uses_a_real_contact_of_that_language(workspace):
    from mailer.store.contacts import insert_contact
    from mailer.timeutil import now_utc

    path = copy_campaign(workspace.path)
    with workspace.store() as store, store.transaction() as conn:
        insert_contact(
            conn,
            email="pekka@example.fi",
            email_ascii="pekka@example.fi",
            email_key="pekka@example.fi",
            name="Pekka Puupää",
            organization="",
            language="fi",
            attributes={},
            consent_source="test",
            now=now_utc(),
        )
    res = workspace.cli("render", str(path), "--out", str(workspace.path / "p"))
    assert res.exit_code == 0, res.stderr
    assert "Hei Pekka Puupää," in (workspace.path / "p" / "index.fi.txt").read_text("utf-8")
    # The sample shows Pekka's name, but its unsubscribe link is a test token naming nobody.
    from mailer.tokens import verify_token
    from tests.conftest import SECRET

    eml = (workspace.path / "p" / "sample.fi.eml").read_bytes()
    token = re.search(rb"List-Unsubscribe: <[^>]*/u/([^>]+)>", eml).group(1).decode()
    subject = verify_token([SECRET.encode()], token)
    assert subject is not None and (subject.campaign_id, subject.contact_id) == (0, 0)


def test_the_demo_campaign_renders(workspace):
    from pathlib import Path

    import mailer

    demo = Path(mailer.__file__).parent / "demo_content" / "campaign.toml"
    if not demo.is_file():
        pytest.skip("no demo content in this checkout")
    spec = load_campaign(demo, workspace.config())
    variants = render_campaign(workspace.config(), spec)
    assert list(variants) == ["fi", "en"]
    assert "Neljä liiketoiminta-aluetta vuoteen 2022" in variants["fi"].html


def test_render_reports_a_bad_campaign_file_in_one_line(workspace):
    folder = workspace.path / "c"
    write_item(
        folder, "x.md", 'title = "T"\ndate = 2018-11-06\nlang = "fi"\nimage = "https://a.fi/b.jpg"'
    )
    path = write_campaign(folder, 'name = "n"\nsubject = "S"\nsegment = "all"\nitems = ["x.md"]\n')
    res = workspace.cli("render", str(path), "--out", str(workspace.path / "out"))
    assert res.exit_code == 2
    assert (
        res.stderr.strip() == f"Error: {folder / 'x.md'}:5: image_alt is required when image is set"
    )
    assert not (workspace.path / "out").exists()


def test_render_warns_when_gmail_would_clip_the_message(workspace):
    folder = workspace.path / "c"
    body = "\n\n".join(f"Kappale {n}: " + "sanoja ja lauseita " * 40 for n in range(160))
    write_item(folder, "big.md", 'title = "Iso"\ndate = 2018-11-06\nlang = "fi"', body)
    path = write_campaign(
        folder, 'name = "n"\nsubject = "S"\nsegment = "all"\nitems = ["big.md"]\n'
    )
    res = workspace.cli("render", str(path), "--out", str(workspace.path / "out"))
    assert res.exit_code == 0, res.stderr
    assert "Warning: fi: the HTML is" in res.stderr and "Gmail clips" in res.stderr


def test_render_out_pointing_at_a_file_is_one_line_error(workspace):
    path = copy_campaign(workspace.path)
    taken = workspace.path / "preview.html"
    taken.write_text("mine", encoding="utf-8")
    for target in (taken, taken / "sub"):
        res = workspace.cli("render", str(path), "--out", str(target))
        assert res.exit_code == 2, res.stderr
        assert res.stderr.startswith("Error:") and "--out" in res.stderr
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert taken.read_text(encoding="utf-8") == "mine"
