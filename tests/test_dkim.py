"""DKIM signed with OpenSSL (RSA-SHA256 and Ed25519-SHA256), verified by dkimpy.

Keys are made by `openssl` as an operator would (docs/deploy.md); dkimpy reads the public
keys from a DNS stub, so nothing leaves the machine.
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timezone

import dkim
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.newsletter.dkim import Signer, SigningKey, load_key, relaxed_body
from tests.contacts_helpers import write_csv
from tests.dkim_helpers import make_keys
from tests.newsletter_helpers import copy_campaign
from tests.sending_helpers import ScriptedSink, point_at

NOW = datetime(2026, 11, 28, 9, 30, 15, tzinfo=timezone.utc)
NAME = "uutiskirje-2018-11"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """(rsa.pem, ed25519.pem, DNS records by selector) made by openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make throwaway DKIM keys")
    return make_keys(tmp_path_factory.mktemp("keys"))


def _verify(data: bytes, records: dict[bytes, bytes]) -> list[bool]:
    """dkimpy's verdict on every DKIM-Signature of `data`, top to bottom."""
    count = len(re.findall(rb"(?m)^DKIM-Signature:", data.partition(b"\r\n\r\n")[0]))

    def dns(name, timeout=5):
        return records.get(name)

    def one(n: int) -> bool:
        try:
            return bool(dkim.DKIM(data).verify(idx=n, dnsfunc=dns))
        except dkim.DKIMException:  # dkim.verify() turns these into False too
            return False

    return [one(n) for n in range(count)]


def _configure(workspace, rsa, ed=None) -> None:
    workspace.set_config("dkim", "domain", '"arcticsmartness.eu"')
    workspace.set_config("dkim", "selector", '"mailer"')
    workspace.set_config("dkim", "private_key", f'"{rsa}"')
    if ed is not None:
        workspace.set_config("dkim", "ed25519_selector", '"mailered"')
        workspace.set_config("dkim", "ed25519_private_key", f'"{ed}"')


def _import(workspace) -> None:
    """Six contacts; names with runs of spaces and a tab, which canonicalisation squeezes."""
    rows = [["sähköposti", "nimi", "kieli", "klusterit"]]
    rows += [
        [f"henkilo{i}@example.org", f"Henkilö  {i}\tÄä", "fi", "Arctic Power"] for i in range(5)
    ]
    rows += [["person@example.org", "Sam O'Neill", "en", "Arctic Power"]]
    assert (
        workspace.cli(
            "contacts", "import", str(write_csv(workspace.path / "c.csv", rows))
        ).exit_code
        == 0
    )


def test_a_signed_send_delivers_rsa_and_ed25519_signatures_that_verify(workspace, keys):
    rsa, ed, records = keys
    _import(workspace)
    _configure(workspace, rsa, ed)
    assert workspace.cli("campaign", "create", str(copy_campaign(workspace.path))).exit_code == 0
    with ScriptedSink() as sink:
        point_at(workspace, sink.port, connections=2)
        res = workspace.cli("send", NAME, "--yes")
    assert res.exit_code == 0, res.stderr
    assert len(sink.received) == 6
    for item in sink.received:
        data = item.data
        head = data.partition(b"\r\n\r\n")[0]
        assert b"a=rsa-sha256" in head and b"a=ed25519-sha256" in head
        assert _verify(data, records) == [True, True], item.rcpt_tos
        signatures = head.partition(b"\r\nFrom:")[0]  # the signatures come first
        assert max(len(line) for line in signatures.split(b"\r\n")) <= 76
        # The unsubscribe link is per recipient and in the body: changing it breaks both.
        url = item.message()["List-Unsubscribe"].strip("<>").encode()
        tampered = data.replace(url, url[:-1] + (b"A" if url[-1:] != b"A" else b"B"))
        assert _verify(tampered, records) == [False, False]


def test_a_test_send_is_signed_over_its_test_header_too(workspace, keys):
    rsa, _, records = keys
    _import(workspace)
    _configure(workspace, rsa)
    assert workspace.cli("campaign", "create", str(copy_campaign(workspace.path))).exit_code == 0
    with ScriptedSink() as sink:
        point_at(workspace, sink.port)
        res = workspace.cli("send", NAME, "--test-to", "tester@example.org", "--yes")
    assert res.exit_code == 0, res.stderr
    assert sink.received
    for item in sink.received:
        data = item.data
        assert _verify(data, records) == [True]
        assert b"x-mailer-test" in data.partition(b"\r\n\r\n")[0].lower()
        removed = re.sub(rb"X-Mailer-Test: yes\r\n", b"", data)
        assert _verify(removed, records) == [False]


def test_a_wrong_or_missing_key_is_a_one_line_error_before_anything_is_stored(workspace, keys):
    rsa, ed, _ = keys
    campaign = str(copy_campaign(workspace.path))
    _configure(workspace, ed)  # an Ed25519 key where the RSA key belongs
    res = workspace.cli("campaign", "create", campaign)
    assert res.exit_code != 0
    assert "dkim.private_key" in res.stderr and "RSA" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert workspace.cli("campaign", "list", "--format", "json").stdout.strip() == "[]"
    _configure(workspace, rsa)
    workspace.set_config("dkim", "ed25519_selector", '"mailered"')
    res = workspace.cli("campaign", "create", campaign)
    assert res.exit_code == 2 and "go together" in res.stderr
    workspace.set_config("dkim", "ed25519_private_key", '"missing.pem"')
    res = workspace.cli("campaign", "create", campaign)
    assert res.exit_code != 0 and "missing.pem" in res.stderr


def test_a_damaged_rsa_key_is_refused_before_anything_is_signed(workspace, keys, tmp_path):
    # The key is loaded without OpenSSL's slow consistency check; a key whose signatures
    # its own public key refuses (here: d and the CRT exponent altered) is still refused.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys

    rsa, _, _ = keys
    numbers = serialization.load_pem_private_key(rsa.read_bytes(), None).private_numbers()
    damaged = rsa_keys.RSAPrivateNumbers(
        p=numbers.p,
        q=numbers.q,
        d=numbers.d + 2,
        dmp1=numbers.dmp1 + 2,
        dmq1=numbers.dmq1,
        iqmp=numbers.iqmp,
        public_numbers=numbers.public_numbers,
    ).private_key(unsafe_skip_rsa_key_validation=True)
    pem = tmp_path / "damaged.pem"
    pem.write_bytes(
        damaged.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    _configure(workspace, pem)
    res = workspace.cli("campaign", "create", str(copy_campaign(workspace.path)))
    assert res.exit_code != 0 and len(res.stderr.strip().splitlines()) == 1
    assert "dkim.private_key" in res.stderr and "do not verify" in res.stderr
    assert workspace.cli("campaign", "list", "--format", "json").stdout.strip() == "[]"


# Bodies and headers with what relaxed canonicalisation must squeeze: runs of spaces and tabs,
# whitespace at line ends, blank lines at the end, folded headers.
_line = st.text(alphabet=" \tab=.", max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(_line, max_size=8),
    trailing=st.sampled_from([b"", b"\r\n", b"\r\n\r\n", b"  \r\n \t\r\n"]),
    subject=st.text(alphabet=" \tSuby", min_size=1, max_size=20).filter(str.strip),
)
def test_canonicalisation_agrees_with_dkimpy(keys, lines, trailing, subject):
    rsa, ed, records = keys
    signer = Signer(
        [
            SigningKey(
                "rsa-sha256",
                "arcticsmartness.eu",
                "mailer",
                load_key(rsa.read_bytes(), "rsa-sha256", "k"),
            ),
            SigningKey(
                "ed25519-sha256",
                "arcticsmartness.eu",
                "mailered",
                load_key(ed.read_bytes(), "ed25519-sha256", "k"),
            ),
        ],
        ["from", "subject", "to", "date", "from", "subject"],
    )
    body = "\r\n".join(lines).encode() + trailing
    message = (
        b"From: <uutiset@arcticsmartness.eu>\r\nTo: a@example.org\r\n"
        b"Subject: x\r\n " + subject.encode() + b"\r\nDate: Sat, 28 Nov 2026 09:30:15 +0000\r\n"
        b"\r\n" + body
    )
    assert _verify(signer.sign(message, NOW), records) == [True, True]


def test_relaxed_body_examples_from_rfc_6376():
    # RFC 6376 section 3.4.5: " C \r\nD \t E\r\n\r\n\r\n" becomes " C\r\nD E\r\n".
    assert relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n") == b" C\r\nD E\r\n"
    assert relaxed_body(b"") == b"" and relaxed_body(b"\r\n\r\n") == b""
