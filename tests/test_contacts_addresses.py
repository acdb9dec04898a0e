"""Address checks: the import's split path agrees with email-validator on every input."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.addresses import clean_line, parse_address, validate

LOCAL_PIECES = [
    "a", "Z", "matti", "Virtanen", ".", "..", "+", "-", "_", "!", "#", "'", '"', " ", "\\",
    "@", "ä", "Å", "ß", "ı", "\u0308", "ｆ", "é", "postmaster", "Abuse", "x" * 30, "č", "ŋ",
    "<", ">", "(", ")", ",", ";", ":", "\u200b", "\u00a0",
]  # fmt: skip
LABELS = [
    "example", "Example", "bücher", "xn--bcher-kva", "a", "x-y", "-x", "x-", "_x", "1", "123",
    "sápmi", "ΕΛΛΑΔΑ", "a" * 63, "a" * 64, "", "exa mple", "ｅxample", "[127.0.0.1]",
]  # fmt: skip
TLDS = ["com", "fi", "org", "test", "local", "invalid", "localhost", "onion", "123", "", "COM"]

valid_ish = st.builds(
    lambda local, labels, tld: local + "@" + ".".join([*labels, tld]),
    st.lists(
        st.sampled_from(["a", "Matti", ".", "+", "ä", "ß", "x" * 30, "Abuse", "é", "_", "'"]),
        min_size=1,
        max_size=4,
    ).map("".join),
    st.lists(
        st.sampled_from(["example", "Bücher", "sápmi", "x-y", "a" * 63, "1"]),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from(["com", "fi", "ORG", "test"]),
)
addresses = (
    valid_ish
    | valid_ish
    | st.builds(
        lambda local, labels, tld, dot: "".join(local) + "@" + ".".join([*labels, tld]) + dot,
        st.lists(st.sampled_from(LOCAL_PIECES), max_size=6),
        st.lists(st.sampled_from(LABELS), max_size=3),
        st.sampled_from(TLDS),
        st.sampled_from(["", "", ".", ">"]),
    )
    | st.text(max_size=40)
)


def _plain(addr: str):
    info = validate_email(addr, check_deliverability=False)
    return info.local_part, info.ascii_local_part, info.domain, info.ascii_domain


@settings(max_examples=1500, deadline=None)
@given(addr=addresses)
def test_split_check_agrees_with_email_validator(addr):
    try:
        expected = _plain(addr)
    except EmailNotValidError as exc:
        with pytest.raises(EmailNotValidError) as raised:
            validate(addr)
        assert str(raised.value) == str(exc)
        return
    assert validate(addr) == expected


@pytest.mark.parametrize(
    ("raw", "email", "key", "name"),
    [
        (
            "  Matti.Virtanen@EXAMPLE.com ",
            "Matti.Virtanen@example.com",
            "matti.virtanen@example.com",
            "",
        ),
        ("Aino Aikio <aino@example.org>", "aino@example.org", "aino@example.org", "Aino Aikio"),
        ("äiti@Bücher.example", "äiti@bücher.example", "äiti@xn--bcher-kva.example", ""),
        ("A\u0308iti@example.com", "Äiti@example.com", "äiti@example.com", ""),
        ("PostMaster@example.com", "postmaster@example.com", "postmaster@example.com", ""),
    ],
)
def test_parse_address_normalises(raw, email, key, name):
    address = parse_address(raw)
    assert (address.email, address.key, address.display_name) == (email, key, name)


def test_a_unicode_local_part_keeps_the_ascii_domain_for_the_wire():
    from mailer.addresses import ascii_form

    address = parse_address("äiti@bücher.example")
    assert address.ascii_email is None and address.needs_smtputf8
    assert ascii_form(address) == "äiti@xn--bcher-kva.example"


def test_clean_line_removes_line_breaks():
    assert clean_line(" a\r\nb  c\u2028d ") == "a b c d"
    assert clean_line("plain text") == "plain text"
