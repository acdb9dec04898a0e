"""The public archive end to end: create, send, `mailer serve` publishes; export; withdraw.

Every published byte (pages per language, index, feeds, pictures, the static export) is
scanned for every test contact's name, address and unsubscribe token.
"""

from __future__ import annotations

import http.client
import io
import re
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import html5lib
import pytest
from PIL import Image

from tests.archive_helpers import archived_campaign
from tests.newsletter_helpers import copy_campaign
from tests.web_helpers import Server

NAME = "uutiskirje-2018-11"
ATOM = "{http://www.w3.org/2005/Atom}"
CONTACTS = [
    ("maija.lukija@example.org", "Maija Lukijatar", "fi"),
    ("erkki.esimerkki@example.com", "Erkki Esimerkkinen", "fi"),
    ("alex.reader@example.net", "Alex Readington", "en"),
]


def _get_bytes(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET `path` and return status, headers and the body as bytes (pictures)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _html_checks(html: str, lang: str) -> None:
    """What the newsletter's own HTML passes: a complete document, nothing external."""
    parser = html5lib.HTMLParser(strict=False, namespaceHTMLElements=False)
    doc = parser.parse(html)
    assert not parser.errors, parser.errors[:3]
    assert doc.get("lang") == lang and doc.find(".//title").text
    assert doc.find(".//script") is None
    assert "noindex" not in html  # meant to be found


def _secrets_of(messages) -> list[str]:
    """Each recipient's name, address, local part and unsubscribe token."""
    found = []
    for email, name, _ in CONTACTS:
        found += [email, email.split("@")[0], name]
    for message in messages:
        url = re.search(r"<(http[^>]+)>", message["List-Unsubscribe"]).group(1)
        found.append(urlsplit(url).path.rsplit("/", 1)[1])
    return found


@pytest.fixture
def sent(smtp_workspace, smtp_server):
    """An archived campaign with a photo, sent to three contacts; `mailer serve` running."""
    ws = smtp_workspace
    server = Server.start(ws.path, ws.env())
    ws.set_config("web", "base_url", f'"http://127.0.0.1:{server.port}"')
    ws.ensure_lists("cluster:arctic-power")
    for email, name, lang in CONTACTS:
        res = ws.cli(
            "contacts",
            "add",
            email,
            "--name",
            name,
            "--lang",
            lang,
            "--list",
            "cluster:arctic-power",
        )
        assert res.exit_code == 0, res.stderr
    assert ws.cli("campaign", "create", str(archived_campaign(ws.path))).exit_code == 0
    res = ws.cli("send", NAME, "--yes")
    assert res.exit_code == 0, res.stderr
    try:
        yield ws, server, [item.message() for item in smtp_server.received]
    finally:
        server.stop()


def test_the_sent_issue_is_published_with_its_picture_and_holds_no_reader(sent, tmp_path):
    ws, server, messages = sent
    base = f"http://127.0.0.1:{server.port}"
    assert len(messages) == 3

    # the messages: the picture from /m/, "view in a browser" in both parts
    by_lang = {}
    for message in messages:
        html = message.get_body(("html",)).get_content()
        text = message.get_body(("plain",)).get_content()
        lang = "en" if "alex" in message["To"] else "fi"
        page = f"{base}/archive/{NAME}" + ("/en" if lang == "en" else "")
        assert f'href="{page}"' in html and page in text
        by_lang[lang] = html
    (src,) = re.findall(r'<img class="photo" src="([^"]+)"', by_lang["fi"])
    assert src.startswith(f"{base}/m/") and re.search(r'width="536" height="715"', by_lang["fi"])
    status, headers, picture = _get_bytes(server.port, urlsplit(src).path)
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert headers["cache-control"] == "public, max-age=31536000, immutable"

    # the pages, per language, and the index
    pages = {}
    for path, lang in (
        (f"/archive/{NAME}", "fi"),
        (f"/archive/{NAME}/en", "en"),
        (f"/archive/{NAME}?lang=en", "en"),
        ("/archive/", "fi"),
        ("/archive/?lang=en", "en"),
    ):
        reply = server.request("GET", path)
        assert reply.status == 200, path
        assert "x-robots-tag" not in reply.headers
        csp = reply.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "img-src 'self'" in csp
        _html_checks(reply.body, lang)
        pages[path] = reply.body
    issue = pages[f"/archive/{NAME}"]
    assert "Lapin älykkään erikoistumisen painopisteet" in issue and "Hei," in issue
    assert f'src="/m/{src.rsplit("/", 1)[1]}"' in issue
    assert "Peru tilaus" not in issue and "/u/" not in issue and "/subscribe" not in issue
    assert f'href="/archive/{NAME}"' in pages["/archive/"]
    assert f'href="/archive/{NAME}/en"' in pages["/archive/?lang=en"]

    # the feeds parse as Atom
    feeds = {}
    for path, lang in (("/archive/feed.xml", "fi"), ("/archive/feed.en.xml", "en")):
        reply = server.request("GET", path)
        assert reply.status == 200 and reply.headers["content-type"].startswith(
            "application/atom+xml"
        )
        root = ET.fromstring(reply.body.encode())
        assert root.tag == f"{ATOM}feed"
        assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == lang
        (entry,) = root.findall(f"{ATOM}entry")
        assert (
            entry.find(f"{ATOM}link")
            .get("href")
            .endswith(f"/archive/{NAME}" + ("/en" if lang == "en" else ""))
        )
        for tag in ("id", "title", "updated"):
            assert root.find(f"{ATOM}{tag}").text and entry.find(f"{ATOM}{tag}").text
        feeds[path] = reply.body

    # the static export
    out = tmp_path / "site"
    res = ws.cli("archive", "export", str(out))
    assert res.exit_code == 0, res.stderr
    exported = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert exported == sorted(
        [
            ".mailer-archive",
            "archive/feed.en.xml",
            "archive/feed.xml",
            "archive/index.en.html",
            "archive/index.html",
            f"archive/{NAME}/en/index.html",
            f"archive/{NAME}/index.html",
            f"m/{src.rsplit('/', 1)[1]}",
        ]
    )
    assert (out / "m" / src.rsplit("/", 1)[1]).read_bytes() == picture
    ET.parse(out / "archive" / "feed.xml")

    # nothing published holds a reader's name, address or token
    published = list(pages.values()) + list(feeds.values())
    published = [body.encode() for body in published]
    published += [p.read_bytes() for p in out.rglob("*") if p.is_file()] + [picture]
    for secret in _secrets_of(messages):
        for body in published:
            assert secret.encode() not in body, secret


def test_the_published_picture_is_upright_small_and_without_location(sent):
    ws, server, messages = sent
    # The photo is in a Finnish item; the messages arrive in any order (several connections).
    finnish = next(m for m in messages if m["To"].addresses[0].username != "alex.reader")
    (src,) = re.findall(
        r'<img class="photo" src="([^"]+)"', finnish.get_body(("html",)).get_content()
    )
    status, _, data = _get_bytes(server.port, urlsplit(src).path)
    assert status == 200
    picture = Image.open(io.BytesIO(data))
    assert picture.size == (1200, 1600) and picture.getexif() == {}
    assert b"Exif" not in data
    for path in ("/m/", "/m/nothing.jpg", "/m/0123456789abcdef.jpg", "/m/..%2fmailer.db"):
        reply = server.request("GET", path)
        assert reply.status == 404 and reply.headers["cache-control"] == "no-store", path


def test_withdraw_and_publish_again(sent, tmp_path):
    ws, server, _ = sent
    out = tmp_path / "site"
    assert ws.cli("archive", "export", str(out)).exit_code == 0

    res = ws.cli("archive", "remove", NAME)
    assert res.exit_code == 0 and "withdrawn" in res.stderr
    assert server.request("GET", f"/archive/{NAME}").status == 404
    assert NAME not in server.request("GET", "/archive/").body
    assert NAME not in server.request("GET", "/archive/feed.xml").body
    res = ws.cli("archive", "export", str(out))
    assert res.exit_code == 0 and "5 old files removed" in res.stderr, res.stderr
    assert not (out / "archive" / NAME).exists() and not list((out / "m").glob("*"))

    res = ws.cli("archive", "add", NAME)
    assert res.exit_code == 0 and "now public" in res.stderr
    assert server.request("GET", f"/archive/{NAME}/en").status == 200


def test_a_campaign_without_archive_is_not_published(smtp_workspace, tmp_path):
    ws = smtp_workspace
    ws.ensure_lists("cluster:arctic-power")
    assert (
        ws.cli("contacts", "add", "a@example.org", "--list", "cluster:arctic-power").exit_code == 0
    )
    assert ws.cli("campaign", "create", str(copy_campaign(ws.path))).exit_code == 0
    res = ws.cli("archive", "add", NAME)
    assert res.exit_code == 2 and "has not started sending" in res.stderr
    assert ws.cli("send", NAME, "--yes").exit_code == 0
    server = Server.start(ws.path, ws.env())
    try:
        assert server.request("GET", f"/archive/{NAME}").status == 404
        assert server.request("GET", f"/archive/{NAME}/en").status == 404
        assert NAME not in server.request("GET", "/archive/").body
        assert server.request("GET", "/archive/feed.xml").status == 200
        assert server.request("GET", "/archive/feed.fi.xml").status == 404  # it is feed.xml
        assert server.request("POST", "/archive/").status == 405
    finally:
        server.stop()
    assert ws.cli("archive", "export", str(tmp_path / "site")).exit_code == 0
    assert not (tmp_path / "site" / "archive" / NAME).exists()
    res = ws.cli("archive", "remove", "no-such-issue")
    assert res.exit_code == 2 and "no campaign named" in res.stderr


def test_export_refuses_a_folder_it_did_not_write(workspace, tmp_path):
    folder = tmp_path / "www"
    folder.mkdir()
    (folder / "index.html").write_text("someone's site")
    res = workspace.cli("archive", "export", str(folder))
    assert res.exit_code == 2 and "not empty" in res.stderr
    assert (folder / "index.html").read_text() == "someone's site"


def test_the_archive_key_must_be_a_boolean(workspace):
    campaign = copy_campaign(workspace.path)
    campaign.write_text(campaign.read_text(encoding="utf-8") + 'archive = "yes"\n', "utf-8")
    res = workspace.cli("campaign", "create", str(campaign))
    assert res.exit_code == 2 and "archive must be true or false" in res.stderr


def test_archive_default_in_the_config_publishes_campaigns_without_the_key(workspace):
    workspace.set_config("archive", "default", "true")
    from mailer.newsletter.spec import load_campaign

    spec = load_campaign(copy_campaign(workspace.path), workspace.config())
    assert spec.archive is True
    workspace.set_config("archive", "default", '"yes"')
    res = workspace.cli("campaign", "list")
    assert res.exit_code == 2 and "archive.default must be true or false" in res.stderr


def test_files_of_the_export_are_written_whole(workspace, tmp_path):
    out = tmp_path / "site"
    assert workspace.cli("archive", "export", str(out)).exit_code == 0
    assert not [p for p in out.rglob(".tmp-*")]
    index = (out / "archive" / "index.html").read_text(encoding="utf-8")
    assert "Julkaistuja numeroita ei vielä ole." in index
    assert (out / "archive" / "feed.xml").read_bytes().startswith(b"<?xml")


def test_the_demo_publishes_its_issue_and_prints_where(tmp_path):
    from typer.testing import CliRunner

    from mailer.cli import app
    from tests.conftest import SECRET, Workspace

    folder = tmp_path / "demo"
    res = CliRunner().invoke(app, ["demo", str(folder)], env={"MAILER_SECRET": SECRET})
    assert res.exit_code == 0, res.stderr
    url = f"http://127.0.0.1:8080/archive/{NAME}"
    assert f"Archive     {url}" in res.stdout
    ws = Workspace(folder)
    server = Server.start(folder, ws.env())
    try:
        page = server.request("GET", f"/archive/{NAME}")
        assert page.status == 200 and "Neljä liiketoiminta-aluetta" in page.body
        (src,) = re.findall(r'<img class="photo" src="(/m/[0-9a-f]{16}\.jpg)"', page.body)
        status, headers, data = _get_bytes(server.port, src)
        assert status == 200 and Image.open(io.BytesIO(data)).size == (1200, 600)
    finally:
        server.stop()
