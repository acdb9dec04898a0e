"""`mailer signup form`, `mailer signups list`, [signup] in the config, the newsletter footer."""

from __future__ import annotations

import json
import re

from mailer.capture import free_port
from mailer.newsletter.variant import Variant
from tests.contacts_helpers import tool_csv
from tests.newsletter_helpers import copy_campaign
from tests.signup_helpers import enable_signup, parse_form
from tests.web_helpers import Server


def test_signup_form_prints_a_snippet_that_posts_to_the_service(workspace):
    off = workspace.cli("signup", "form")
    assert off.exit_code == 2 and "signups are off: add a [signup] section" in off.stderr
    assert len(off.stderr.strip().splitlines()) == 1
    enable_signup(workspace)
    res = workspace.cli("signup", "form", "--lang", "en")
    assert res.exit_code == 0, res.stderr
    form = parse_form(res.stdout)
    assert form.action == "https://uutiset.arcticsmartness.eu/subscribe?lang=en"
    names = {i.get("name") for i in form.inputs}
    assert {"email", "name", "organization", "language", "list", "consent", "website"} <= names
    assert "stamp" not in names  # a pasted page cannot make one: the service asks once more
    assert "I agree that the Regional Council" in res.stdout
    assert 'style="position:absolute;left:-10000px' in res.stdout  # the honeypot hides itself
    assert "<script" not in res.stdout
    bad = workspace.cli("signup", "form", "--lang", "de")
    assert bad.exit_code == 2 and "--lang" in bad.stderr


def test_a_bad_signup_section_is_one_line_naming_the_key(workspace):
    enable_signup(workspace)
    workspace.set_config("signup", "lists", '["region:*"]')
    res = workspace.cli("signups", "list")
    assert res.exit_code == 2 and "signup.lists" in res.stderr
    workspace.set_config("signup", "lists", '["company:*"]')
    workspace.set_config("signup", "per_address_per_day", "0")
    res = workspace.cli("signups", "list")
    assert res.exit_code == 2 and "signup.per_address_per_day" in res.stderr
    workspace.set_config("signup", "per_address_per_day", "3")
    workspace.set_config("web", "trusted_proxies", '["proxy.example"]')
    res = workspace.cli("signups", "list")
    assert res.exit_code == 2 and "web.trusted_proxies" in res.stderr


def test_serve_refuses_a_changed_consent_text_under_the_same_version(workspace):
    assert "[se]" in (workspace.path / "consent.toml").read_text("utf-8")  # init wrote them
    enable_signup(workspace)
    server = Server.start(workspace.path, workspace.env())
    server.stop()
    consent = workspace.path / "consent.toml"
    consent.write_text(
        consent.read_text("utf-8").replace("Arctic Smartness", "Arctic Smartness ja kumppanit", 1),
        encoding="utf-8",
    )
    res = workspace.run("serve", "--port", str(free_port()), timeout=60)
    assert res.returncode == 2
    assert "consent text changed but signup.consent_version" in res.stderr
    workspace.set_config("signup", "consent_version", '"2027-01"')
    server = Server.start(workspace.path, workspace.env())
    server.stop()
    with workspace.store() as store:
        versions = [r[0] for r in store.conn.execute("SELECT version FROM consent_texts")]
    assert sorted(versions) == ["2026-12", "2027-01"]


def test_signups_list_formats_and_a_bad_status(workspace):
    enable_signup(workspace)
    res = workspace.cli("signups", "list", "--format", "csv")
    assert res.exit_code == 0
    # CSV for Finnish Excel: a BOM and `;` (defaults.csv_delimiter).
    header = "\ufeffemail;status;lists;language;requested_at;confirmed_at"
    assert res.stdout.splitlines()[0] == header
    assert "Refused quietly in the last 30 days: none" in res.stderr
    bad = workspace.cli("signups", "list", "--status", "maybe")
    assert bad.exit_code == 2 and "--status" in bad.stderr


def test_the_newsletter_footer_links_the_preference_page_only_with_signup(workspace):
    campaign = copy_campaign(workspace.path)
    out = workspace.path / "off"
    assert workspace.cli("render", str(campaign), "--out", str(out)).exit_code == 0
    assert "/p/" not in (out / "index.fi.html").read_text("utf-8")
    assert "/p/" not in (out / "index.fi.txt").read_text("utf-8")

    enable_signup(workspace)
    # The workspace's own template predates the link: staff copy the new footer in.
    for name in ("newsletter.html", "newsletter.txt"):
        (workspace.path / "templates" / name).unlink()
    out = workspace.path / "on"
    res = workspace.cli("render", str(campaign), "--out", str(out))
    assert res.exit_code == 0, res.stderr
    html = (out / "index.fi.html").read_text("utf-8")
    text = (out / "index.fi.txt").read_text("utf-8")
    link = re.search(r"https://uutiset\.arcticsmartness\.eu/p/[A-Za-z0-9_-]{27}", text)
    assert link and f'href="{link.group(0)}"' in html
    assert "Tilauksen asetukset" in html and "Muuta aiheita tai kieltä" in text


def test_a_stored_variant_without_the_preference_field_still_fills():
    stored = {
        "format": 2,
        "language": "fi",
        "campaign": "vanha",
        "subject": "Vanha",
        "preheader": "",
        "html": "<p>%%MAILER_GREETING_abc%% %%MAILER_UNSUBSCRIBE_URL_abc%%</p>",
        "text": "%%MAILER_GREETING_abc%% %%MAILER_UNSUBSCRIBE_URL_abc%%\n",
        "marker": "abc",
        "fields": ["greeting", "unsubscribe_url"],
    }
    variant = Variant.from_json(json.dumps(stored))
    assert variant.fill("text", "Aino", "a@example.org", "https://x/u/t", "https://x/p/t") == (
        "Hei Aino, https://x/u/t\n"
    )
    first = dict(stored, format=1)
    del first["fields"]
    assert Variant.from_json(json.dumps(first)).fields == (
        "greeting",
        "name",
        "email",
        "unsubscribe_url",
    )


def test_contacts_export_can_add_the_consent_columns(workspace):
    assert workspace.cli("contacts", "add", "vienti@example.org").exit_code == 0
    res = workspace.cli("contacts", "export", "--consent")
    assert res.exit_code == 0, res.stderr
    rows = tool_csv(res.stdout)
    assert rows[0]["consent_source"] == "cli" and rows[0]["consent_at"]
    assert rows[0]["consent_version"] == ""
    plain = workspace.cli("contacts", "export")
    assert "consent_source" not in plain.stdout


def test_a_sent_newsletter_links_each_readers_own_preference_page(smtp_workspace, smtp_server):
    from mailer.tokens import make_preferences_token
    from tests.conftest import SECRET

    ws = smtp_workspace
    enable_signup(ws)
    for name in ("newsletter.html", "newsletter.txt"):  # the bundled footer, with the link
        (ws.path / "templates" / name).unlink()
    res = ws.cli("contacts", "add", "lukija@example.org", "--list", "cluster:arctic-power")
    assert res.exit_code == 0, res.stderr
    assert ws.cli("campaign", "create", str(copy_campaign(ws.path))).exit_code == 0
    res = ws.cli("send", "uutiskirje-2018-11", "--yes")
    assert res.exit_code == 0, res.stderr
    (item,) = smtp_server.received
    message = item.message()
    with ws.store() as store:
        (contact,) = store.conn.execute("SELECT id FROM contacts").fetchone()
    url = f"https://uutiset.arcticsmartness.eu/p/{make_preferences_token(SECRET.encode(), contact)}"
    assert url in message.get_body(("plain",)).get_content()
    assert f'href="{url}"' in message.get_body(("html",)).get_content()


def test_a_workspace_template_without_a_footer_link_is_refused_naming_it(workspace):
    # A workspace made before [signup] existed keeps an older copy of the templates: with
    # [signup] on, its footer would silently lack the preference link.
    campaign = copy_campaign(workspace.path)
    html = workspace.path / "templates" / "newsletter.html"
    source = html.read_text(encoding="utf-8")
    start = source.index("{% if preferences_url %}")
    end = source.index("{% endif %}", start) + len("{% endif %}")
    html.write_text(source[:start] + source[end:], encoding="utf-8")
    out = workspace.path / "out"
    assert workspace.cli("render", str(campaign), "--out", str(out)).exit_code == 0  # no [signup]

    enable_signup(workspace)
    for command in (
        ["render", str(campaign), "--out", str(out)],
        ["campaign", "create", str(campaign)],
    ):
        res = workspace.cli(*command)
        assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
        assert str(html) in res.stderr and "{{ preferences_url }}" in res.stderr
    assert workspace.cli("campaign", "list", "--format", "json").stdout.strip() == "[]"

    html.write_text(source.replace('href="{{ unsubscribe_url }}"', 'href="#"'), encoding="utf-8")
    res = workspace.cli("render", str(campaign), "--out", str(out))
    assert res.exit_code == 2 and "{{ unsubscribe_url }}" in res.stderr
