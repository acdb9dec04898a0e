"""Complete messages: headers, encodings and bodies parse back; DKIM verifies."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
import shutil
import subprocess
from datetime import datetime, timezone
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime

import pytest

from mailer.newsletter.messages import MessageBuilder, Recipient
from mailer.newsletter.render import render_campaign
from mailer.newsletter.spec import load_campaign
from mailer.newsletter.variant import Variant, placeholder
from tests.newsletter_helpers import UNSUB, copy_campaign

NOW = datetime(2026, 11, 28, 9, 30, 15, tzinfo=timezone.utc)
ENCODED_WORD = re.compile(rb"=\?[^?]+\?[bqBQ]\?[^?]*\?=")


@pytest.fixture
def campaign(workspace):
    spec = load_campaign(copy_campaign(workspace.path), workspace.config())
    return workspace, render_campaign(workspace.config(), spec)


def _parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def _check_wire_rules(data: bytes) -> None:
    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    lines = data.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    head, _, body = data.partition(b"\r\n\r\n")
    for word in ENCODED_WORD.findall(head):
        assert len(word) <= 75, word
    assert b"?==?" not in head
    for line in head.split(b"\r\n"):
        if b"=?" in line:
            assert len(line) <= 76, line
    msg = _parse(data)
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            assert part["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    # Encoded bodies: every line at most 76 characters, and the message is 7-bit clean.
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert data.isascii()


def test_a_message_has_every_header_once_and_parses_back(campaign):
    workspace, variants = campaign
    fi = variants["fi"]
    builder = MessageBuilder(workspace.config(), fi)
    name = "Maija Meikäläinen-Pohjoisranta, Rovaniemen kaupunki, elinkeinopalvelut"
    built = builder.build(Recipient("maija@example.fi", name, "maija@example.fi"), UNSUB, now=NOW)
    _check_wire_rules(built.data)
    msg = _parse(built.data)
    for header in (
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "Reply-To",
    ):
        assert len(msg.get_all(header)) == 1, header
    assert msg["From"].addresses[0].display_name == "Arctic Smartness"
    assert msg["From"].addresses[0].addr_spec == "uutiset@arcticsmartness.eu"
    assert msg["To"].addresses[0].display_name == name
    assert msg["To"].addresses[0].addr_spec == "maija@example.fi"
    assert msg["Subject"] == fi.subject
    assert (
        str(
            make_header(
                decode_header(built.data.split(b"Subject: ")[1].split(b"\r\nDate")[0].decode())
            )
        )
        == fi.subject
    )
    assert parsedate_to_datetime(msg["Date"]) == NOW
    assert msg["Message-ID"] == built.message_id
    assert re.fullmatch(r"<[^<>@\s]+@arcticsmartness\.eu>", built.message_id)
    assert msg["List-Id"] == "Arctic Smartness <arcticsmartness.eu>"
    assert msg["List-Unsubscribe"] == f"<{UNSUB}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Reply-To"] == "arcticsmartness@lapinliitto.fi"
    assert msg["MIME-Version"] == "1.0"
    assert "X-Mailer-Test" not in msg
    # multipart/alternative: text first, then HTML; both say the same as the variant.
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.get_payload()
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    expected = fi.fill("text", name, "maija@example.fi", UNSUB)
    assert text.get_content().replace("\r\n", "\n") == expected
    expected_html = fi.fill("html", name, "maija@example.fi", UNSUB)
    assert html.get_content().replace("\r\n", "\n") == expected_html
    assert UNSUB in text.get_content() and f'href="{UNSUB}"' in html.get_content()


def test_message_ids_are_unique_and_dates_are_stamped_at_build(campaign):
    workspace, variants = campaign
    builder = MessageBuilder(workspace.config(), variants["en"])
    recipient = Recipient("a@example.com", "A", "a@example.com")
    ids = {builder.build(recipient, UNSUB, now=NOW).message_id for _ in range(200)}
    assert len(ids) == 200
    later = datetime(2026, 11, 29, 1, 2, 3, tzinfo=timezone.utc)
    msg = _parse(builder.build(recipient, UNSUB, now=later).data)
    assert parsedate_to_datetime(msg["Date"]) == later
    with pytest.raises(ValueError):
        builder.build(recipient, UNSUB, now=datetime(2026, 1, 1))


def test_names_cannot_inject_headers_or_markup(campaign):
    workspace, variants = campaign
    builder = MessageBuilder(workspace.config(), variants["fi"])
    hostile = 'Eve <b>"bold"</b>\r\nBcc: victim@example.org\n'
    built = builder.build(Recipient("eve@example.fi", hostile, "eve@example.fi"), UNSUB, now=NOW)
    _check_wire_rules(built.data)
    msg = _parse(built.data)
    assert "Bcc" not in msg and b"\r\nBcc:" not in built.data
    assert msg["To"].addresses[0].display_name == 'Eve <b>"bold"</b> Bcc: victim@example.org'
    assert msg["To"].addresses[0].addr_spec == "eve@example.fi"
    text, html = (p.get_content() for p in msg.get_payload())
    assert "<b>" not in html and "Eve &lt;b&gt;&quot;bold&quot;&lt;/b&gt;" in html
    assert 'Hei Eve <b>"bold"</b> Bcc: victim@example.org,' in text


def test_long_non_ascii_names_split_into_short_encoded_words(campaign):
    workspace, variants = campaign
    builder = MessageBuilder(workspace.config(), variants["fi"])
    name = "Áŋŋá Čáhcegáddi-Ávžžuhusgielddat Sámedikki ođasreivve lohkki ja ášši dovdi " * 2
    data = builder.build(Recipient("anna@example.no", name), UNSUB, now=NOW).data
    _check_wire_rules(data)
    raw = data.split(b"To: ")[1].split(b"\r\nSubject:")[0].decode()
    decoded = str(make_header(decode_header(raw.replace("\r\n", ""))))
    assert decoded == " ".join(name.split()) + " <anna@example.no>"


def test_plain_and_special_ascii_names(campaign):
    workspace, variants = campaign
    builder = MessageBuilder(workspace.config(), variants["en"])
    for name, expected in [
        ("Alex Example", b"To: Alex Example <alex@example.com>\r\n"),
        ("Example, Alex", b'To: "Example, Alex" <alex@example.com>\r\n'),
        ("", b"To: alex@example.com\r\n"),
    ]:
        data = builder.build(Recipient("alex@example.com", name), UNSUB, now=NOW).data
        assert expected in data
        assert _parse(data)["To"].addresses[0].display_name == name


def test_test_sends_are_marked(campaign):
    workspace, variants = campaign
    builder = MessageBuilder(workspace.config(), variants["fi"])
    data = builder.build(Recipient("a@example.fi"), UNSUB, now=NOW, test=True).data
    _check_wire_rules(data)
    msg = _parse(data)
    assert msg["Subject"] == "[TEST] " + variants["fi"].subject
    assert msg["X-Mailer-Test"] == "yes"


def test_an_internationalised_address_goes_out_in_utf8(campaign):
    workspace, variants = campaign
    builder = MessageBuilder(workspace.config(), variants["fi"])
    data = builder.build(
        Recipient("jörg@exämple.fi", "Jörg", "jörg@xn--exmple-cua.fi"), UNSUB, now=NOW
    ).data
    assert "<jörg@xn--exmple-cua.fi>".encode() in data
    msg = email.message_from_string(data.decode("utf-8"), policy=email.policy.default)
    assert msg["To"].addresses[0].username == "jörg"


def _openssl_key(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a throwaway DKIM key")
    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    pub = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    import base64

    return key, base64.b64encode(pub)


def _sign_with_a_new_key(workspace, folder) -> bytes:
    """Configure [dkim] with a fresh RSA key; return its public key as published in DNS."""
    key, public = _openssl_key(folder)
    workspace.set_config("dkim", "domain", '"arcticsmartness.eu"')
    workspace.set_config("dkim", "selector", '"mailer"')
    workspace.set_config("dkim", "private_key", f'"{key}"')
    return public


def test_dkim_signature_covers_the_list_headers_and_verifies(campaign, tmp_path):
    import dkim

    workspace, variants = campaign
    public = _sign_with_a_new_key(workspace, tmp_path)
    builder = MessageBuilder(workspace.config(), variants["fi"])
    data = builder.build(Recipient("maija@example.fi", "Maija Meikäläinen"), UNSUB, now=NOW).data
    assert data.startswith(b"DKIM-Signature:")

    def dns(name, timeout=5):
        assert name == b"mailer._domainkey.arcticsmartness.eu."
        return b"v=DKIM1; k=rsa; p=" + public

    assert dkim.verify(data, dnsfunc=dns)
    signature = _parse(data)["DKIM-Signature"]
    h = {n.strip().lower() for n in re.search(r"h=([^;]+)", signature).group(1).split(":")}
    assert {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "reply-to",
        "feedback-id",
    } <= h
    assert "d=arcticsmartness.eu" in signature.replace(" ", "")
    assert _parse(data)["Feedback-ID"] == f"{variants['fi'].campaign}:newsletter:arcticsmartness"
    tampered = data.replace(UNSUB.encode(), UNSUB.encode()[:-1] + b"B")
    assert not dkim.verify(tampered, dnsfunc=dns)
    added = data.replace(
        b"MIME-Version:", b"List-Unsubscribe: <https://evil.example/>\r\nMIME-Version:", 1
    )
    assert not dkim.verify(added, dnsfunc=dns)  # over-signed: a second instance breaks it


def test_the_prepared_signature_equals_one_made_from_the_finished_message(campaign, tmp_path):
    # The builder canonicalises its fixed headers once and hands the signer only the ones
    # that vary; the signature must be the one made by parsing the whole message (RSA
    # PKCS#1 v1.5 is deterministic), for list, test and one-off messages alike.
    workspace, variants = campaign
    _sign_with_a_new_key(workspace, tmp_path)
    workspace.set_config("sender", "reply_to", '"toimitus@arcticsmartness.eu"')
    config = workspace.config()
    for builder, test in (
        (MessageBuilder(config, variants["fi"]), False),
        (MessageBuilder(config, variants["en"]), True),
        (MessageBuilder(config, _one_off(links_unsubscribe=False), list_message=False), False),
    ):
        url = UNSUB if builder.list_message else ""
        who = Recipient("maija@example.fi", 'Maija "Mäki" Meikäläinen-Pitkänimi von Lappi')
        data = builder.build(who, url, now=NOW, test=test).data
        head, _, message = data.partition(b"\r\nFrom:")
        signatures = head + b"\r\n"
        unsigned = b"From:" + message
        assert builder._signers[test].sign(unsigned, NOW) == signatures + unsigned


def test_only_messages_without_a_line_starting_with_a_dot_skip_dot_stuffing(campaign):
    workspace, variants = campaign
    builder = MessageBuilder(workspace.config(), variants["fi"])
    plain = builder.build(Recipient("maija@example.fi", "Maija"), UNSUB, now=NOW)
    assert plain.dot_free and b"\n." not in plain.data
    # "Hei " and 71 letters fill a quoted-printable line: ".Maija" starts the next one.
    dotted = builder.build(Recipient("maija@example.fi", "A" * 71 + ".Maija"), UNSUB, now=NOW)
    assert not dotted.dot_free and b"\r\n.Maija" in dotted.data
    variant = variants["fi"]
    text = variant.text.replace("\n", "\n.piste alussa\n", 1)
    with_dot = dataclasses.replace(variant, text=text)
    message = MessageBuilder(workspace.config(), with_dot).build(
        Recipient("maija@example.fi", "Maija"), UNSUB, now=NOW
    )
    assert not message.dot_free and b"\r\n.piste" in message.data


def _one_off(*, links_unsubscribe: bool) -> Variant:
    """A message made from strings, as sending/oneoff makes one: no campaign behind it."""
    marker = "0ff1ce"
    link = f"\n\nPeru tilaus: {placeholder('unsubscribe_url', marker)}" if links_unsubscribe else ""
    return Variant(
        language="fi",
        campaign="one-off",
        subject="Vahvista uutiskirjeen tilaus – Arctic Smartness, Lapin liitto ja Älykäs Lappi",
        preheader="",
        html=f"<p>{placeholder('greeting', marker)}</p>\n<p>Vahvista tilaus: "
        '<a href="https://uutiset.arcticsmartness.eu/c/x">vahvista</a>.</p>\n',
        text=f"{placeholder('greeting', marker)}\n\nVahvista tilaus: "
        f"https://uutiset.arcticsmartness.eu/c/x{link}\n",
        marker=marker,
    )


def test_a_one_off_message_follows_the_same_encoding_rules(workspace):
    builder = MessageBuilder(workspace.config(), _one_off(links_unsubscribe=True))
    recipient = Recipient("maija@example.fi", "Maija Meikäläinen", "maija@example.fi")
    built = builder.build(recipient, UNSUB, now=NOW, test=True)
    _check_wire_rules(built.data)
    msg = _parse(built.data)
    assert msg["Subject"].startswith("[TEST] Vahvista uutiskirjeen tilaus")
    assert msg["List-Unsubscribe"] == f"<{UNSUB}>" and msg["X-Mailer-Test"] == "yes"
    text, html = msg.get_payload()
    assert text.get_content().replace("\r\n", "\n") == (
        f"Hei Maija Meikäläinen,\n\nVahvista tilaus: https://uutiset.arcticsmartness.eu/c/x"
        f"\n\nPeru tilaus: {UNSUB}\n"
    )
    assert html.get_content().startswith("<p>Hei Maija Meikäläinen,</p>")


def test_a_one_off_message_outside_the_list_has_no_list_headers(workspace, tmp_path):
    import dkim

    key, public = _openssl_key(tmp_path)
    workspace.set_config("dkim", "domain", '"arcticsmartness.eu"')
    workspace.set_config("dkim", "selector", '"mailer"')
    workspace.set_config("dkim", "private_key", f'"{key}"')
    config = workspace.config()
    recipient = Recipient("uusi@example.fi", "", "uusi@example.fi")
    builder = MessageBuilder(config, _one_off(links_unsubscribe=False), list_message=False)
    built = builder.build(recipient, now=NOW)  # nobody to unsubscribe yet: no URL needed
    _check_wire_rules(built.data)
    msg = _parse(built.data)
    for header in ("List-Id", "List-Unsubscribe", "List-Unsubscribe-Post"):
        assert header not in msg, header
    assert msg["To"].addresses[0].addr_spec == "uusi@example.fi"
    assert msg["Reply-To"] == "arcticsmartness@lapinliitto.fi"
    text = msg.get_payload()[0].get_content().replace("\r\n", "\n")
    assert text == "Hei,\n\nVahvista tilaus: https://uutiset.arcticsmartness.eu/c/x\n"

    def dns(name, timeout=5):
        return b"v=DKIM1; k=rsa; p=" + public

    assert dkim.verify(built.data, dnsfunc=dns)
    added = built.data.replace(
        b"MIME-Version:", b"List-Unsubscribe: <https://evil.example/>\r\nMIME-Version:", 1
    )
    assert not dkim.verify(added, dnsfunc=dns)  # nobody can add one either
    # A text that links the unsubscribe page still needs its URL.
    linked = MessageBuilder(config, _one_off(links_unsubscribe=True), list_message=False)
    with pytest.raises(ValueError, match="bad unsubscribe URL"):
        linked.build(recipient, now=NOW)
    assert (
        UNSUB in _parse(linked.build(recipient, UNSUB, now=NOW).data).get_payload()[0].get_content()
    )


def test_a_non_ascii_sender_name_is_encoded_in_from_and_list_id(workspace):
    workspace.set_config("sender", "name", '"Lapin liitto – Arctic Smartness, Älykäs Lappi"')
    workspace.set_config("sender", "reply_to", '""')
    config = workspace.config()
    spec = load_campaign(copy_campaign(workspace.path), config)
    variant = render_campaign(config, spec)["fi"]
    data = MessageBuilder(config, variant).build(Recipient("a@example.fi"), UNSUB, now=NOW).data
    _check_wire_rules(data)
    msg = _parse(data)
    assert msg["From"].addresses[0].display_name == config.sender.name
    assert "Reply-To" not in msg
    list_id = data.split(b"List-Id: ")[1].split(b"\r\nList-Unsubscribe:")[0].decode()
    assert "=?utf-8?b?" in list_id
    decoded = str(make_header(decode_header(list_id.replace("\r\n", ""))))
    assert decoded == f"{config.sender.name} <arcticsmartness.eu>"
    assert "Lapin liitto – Arctic Smartness, Älykäs Lappi" in variant.html  # the footer


def test_a_long_ascii_subject_is_folded_at_spaces(workspace):
    folder = copy_campaign(workspace.path).parent
    subject = "Arctic Smartness newsletter " + "with many plain words " * 6 + "end"
    (folder / "long.toml").write_text(
        f'name = "n"\nsubject = "{subject}"\nsegment = "all"\nitems = ["news/strategy.en.md"]\n',
        encoding="utf-8",
    )
    config = workspace.config()
    variant = render_campaign(config, load_campaign(folder / "long.toml", config))["en"]
    data = MessageBuilder(config, variant).build(Recipient("a@example.fi"), UNSUB, now=NOW).data
    _check_wire_rules(data)
    raw = data.split(b"\r\nSubject: ")[1].split(b"\r\nDate: ")[0]
    assert raw.count(b"\r\n ") >= 2  # folded at spaces
    assert max(len(line) for line in (b"Subject: " + raw).split(b"\r\n")) <= 76
    assert _parse(data)["Subject"] == subject


def test_any_name_round_trips_through_the_pre_encoded_message(campaign):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    workspace, variants = campaign
    fi = variants["fi"]
    builder = MessageBuilder(workspace.config(), fi)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.text(max_size=80))
    def check(name):
        data = builder.build(Recipient("x@example.fi", name), UNSUB, now=NOW).data
        _check_wire_rules(data)
        msg = _parse(data)
        assert len(msg.get_all("To")) == 1 and "Bcc" not in msg
        cleaned = " ".join("".join(c if c.isprintable() else " " for c in name).split())
        text, html = (p.get_content().replace("\r\n", "\n") for p in msg.get_payload())
        assert text == fi.fill("text", cleaned, "x@example.fi", UNSUB)
        assert html == fi.fill("html", cleaned, "x@example.fi", UNSUB)
        raw_to = data.split(b"\r\nTo: ")[1].split(b"\r\nSubject: ")[0].decode()
        assert str(make_header(decode_header(raw_to.replace("\r\n", "")))).endswith(
            "x@example.fi>" if cleaned else "x@example.fi"
        )

    check()


def test_quoted_printable_pieces_join_into_the_whole_text():
    import binascii

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from mailer.newsletter.messages import qp_piece

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"])), max_size=6))
    def check(parts):
        joined = b"".join(qp_piece(p) for p in parts)
        assert all(len(line) <= 76 for line in joined.split(b"\r\n"))
        assert b"\n" not in joined.replace(b"\r\n", b"")
        expected = "".join(parts).replace("\r\n", "\n").replace("\r", "\n")
        decoded = binascii.a2b_qp(joined).decode("utf-8").replace("\r\n", "\n")
        assert decoded == expected

    check()


@pytest.mark.parametrize("length", range(70, 82))
@pytest.mark.parametrize("tail", ["", "ä", "=", " ", "€x"])
def test_pieces_ending_near_column_76_stay_within_it(length, tail):
    import binascii

    from mailer.newsletter.messages import qp_piece

    for lead in ("", "\n", "x\n"):
        text = lead + "a" * length + tail
        encoded = qp_piece(text) + qp_piece("Z")
        assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
        assert binascii.a2b_qp(encoded).decode().replace("\r\n", "\n") == text + "Z"


@pytest.mark.parametrize(
    "subject",
    [
        "Lue " + "x" * 1200 + " nyt",
        "y" * 1200,
        "a " + "B" * 90 + " " + "c" * 80 + " d https://example.org/" + "p" * 100,
        "Älykäs " + "z" * 300,
    ],
)
def test_an_over_long_word_in_the_subject_never_makes_an_over_long_line(workspace, subject):
    folder = copy_campaign(workspace.path).parent
    (folder / "long.toml").write_text(
        f'name = "n"\nsubject = "{subject}"\nsegment = "all"\nitems = ["news/strategy.en.md"]\n',
        encoding="utf-8",
    )
    config = workspace.config()
    variant = render_campaign(config, load_campaign(folder / "long.toml", config))["en"]
    data = MessageBuilder(config, variant).build(Recipient("a@example.fi"), UNSUB, now=NOW).data
    _check_wire_rules(data)
    raw = data.split(b"\r\nSubject: ")[1].split(b"\r\nDate: ")[0]
    assert max(len(line) for line in (b"Subject: " + raw).split(b"\r\n")) <= 78
    assert _parse(data)["Subject"] == subject
