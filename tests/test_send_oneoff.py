"""One message outside a campaign (mailer.sending.oneoff) against a real aiosmtpd sink."""

from __future__ import annotations

import email
import email.policy
import re

import pytest

from mailer.errors import SmtpError
from mailer.sending.oneoff import make_variant, send_one
from tests.sending_helpers import ScriptedSink, point_at
from tests.smtp_sink import free_port

URL = "https://uutiset.arcticsmartness.eu/u/test-token"
SUBJECT = (
    "Vahvista tilauksesi: Arktisen älykkään erikoistumisen uutiskirje\r\n"
    "Bcc: everyone@example.com\nX-Evil: yes " + "pitkä sana " * 12
)
TEXT = (
    "Hei!\n\nVahvista tilauksesi avaamalla linkki. Tämä rivi on tarkoituksella pitkä, jotta "
    "koodattu rivi joutuu taittumaan: äöå ÄÖÅ – “lainausmerkit” ja € merkit.\n\n"
    ". Piste rivin alussa ei katkaise viestiä.\n"
)


def _lines(data: bytes) -> list[bytes]:
    assert data.endswith(b"\r\n")
    body = data[:-2]
    assert b"\n" not in body.replace(b"\r\n", b"") and b"\r" not in body.replace(b"\r\n", b"")
    return body.split(b"\r\n")


def test_a_one_off_is_one_clean_message_with_its_headers_once_and_no_record(workspace):
    with ScriptedSink() as sink:
        point_at(workspace, sink.port)
        config = workspace.config()
        variant = make_variant(language="fi", subject=SUBJECT, text=TEXT)
        report = send_one(
            config,
            variant,
            "tilaaja@example.org",
            name="Matti\r\nBcc: evil@example.com Meikäläinen",
            unsubscribe_url=URL,
        )
    assert [item.rcpt_tos for item in sink.received] == [["tilaaja@example.org"]]
    received = sink.received[0]
    sender = config.sender.address
    assert received.mail_from == sender
    data = received.data
    lines = _lines(data)  # CRLF only, no bare CR or LF anywhere
    head, _, _ = data.partition(b"\r\n\r\n")
    names = [
        line.split(b":", 1)[0].lower() for line in head.split(b"\r\n") if line[:1] not in b" \t"
    ]
    for header in (b"from", b"to", b"subject", b"date", b"message-id"):
        assert names.count(header) == 1, header
    assert b"bcc" not in names and b"x-evil" not in names  # a CR/LF never starts a header
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["Subject"] == " ".join(SUBJECT.split())
    assert msg["To"].addresses[0].addr_spec == "tilaaja@example.org"
    assert msg["To"].addresses[0].display_name == "Matti Bcc: evil@example.com Meikäläinen"
    domain = sender.rsplit("@", 1)[1]
    assert re.fullmatch(rf"<[^<>@\s]+@{re.escape(domain)}>", msg["Message-ID"])
    assert msg["Message-ID"] == report.message_id
    assert msg["List-Unsubscribe"] == f"<{URL}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Date"].datetime.tzinfo is not None
    # RFC 2047: the subject is encoded-words of at most 75 characters.
    raw_subject = re.search(rb"(?m)^Subject:(.*(?:\r\n[ \t].*)*)", head).group(1).decode()
    words = re.findall(r"=\?[^?]+\?[bBqQ]\?[^?]*\?=", raw_subject)
    assert words and all(len(w) <= 75 for w in words)
    # Bodies: quoted-printable or base64, lines of at most 76, decoding back to the text.
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    body_start = lines.index(b"")
    assert all(len(line) <= 76 for line in lines[body_start:])
    assert parts[0].get_content().replace("\r\n", "\n") == TEXT
    assert "Vahvista tilauksesi avaamalla linkki" in parts[1].get_content()
    rows = workspace.store().conn.execute(
        "SELECT (SELECT count(*) FROM campaigns), (SELECT count(*) FROM deliveries)"
    )
    assert tuple(rows.fetchone()) == (0, 0)


def test_a_one_off_to_an_unreachable_server_is_a_one_line_error(workspace):
    port = free_port()
    point_at(workspace, port)
    variant = make_variant(language="en", subject="Confirm", text="Confirm, please.\n")
    with pytest.raises(SmtpError, match=f"127.0.0.1:{port}"):
        send_one(workspace.config(), variant, "reader@example.org", unsubscribe_url=URL)


def test_a_refused_one_off_raises_and_names_the_address(workspace):
    with ScriptedSink(rcpt_reply=lambda address: "550 5.1.1 no such user") as sink:
        point_at(workspace, sink.port)
        variant = make_variant(language="en", subject="Confirm", text="Confirm, please.\n")
        with pytest.raises(SmtpError, match="nobody@example.org not sent: 550"):
            send_one(workspace.config(), variant, "nobody@example.org", unsubscribe_url=URL)
    assert sink.received == []
