"""Tokens: unforgeable, carry no address, one purpose each, survive secret rotation."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.errors import ConfigError
from mailer.tokens import (
    RETURN_PATH_TOKEN_LENGTH,
    TEST_CAMPAIGN_ID,
    ConfirmSubject,
    LinkSubject,
    TokenSubject,
    confirm_url,
    link_url,
    make_confirm_token,
    make_link_token,
    make_preferences_token,
    make_return_path_token,
    make_token,
    preferences_url,
    return_path_address,
    return_path_token,
    unsubscribe_url,
    verify_confirm_token,
    verify_link_token,
    verify_preferences_token,
    verify_return_path_token,
    verify_token,
)

SECRET = b"s" * 32


def test_token_round_trips_and_is_url_safe():
    token = make_token(SECRET, 7, 12345)
    assert verify_token([SECRET], token) == TokenSubject(7, 12345)
    assert all(c.isalnum() or c in "-_" for c in token)
    assert unsubscribe_url("https://x.example/", token) == f"https://x.example/u/{token}"


def test_other_secret_or_tampering_is_refused():
    token = make_token(SECRET, 7, 12345)
    assert verify_token([b"other"], token) is None
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert verify_token([SECRET], flipped) is None
    assert verify_token([SECRET], token[:-2]) is None
    assert verify_token([SECRET], "") is None


def test_previous_secret_still_accepted_after_rotation():
    token = make_token(b"old-secret", 1, 2)
    assert verify_token([b"new-secret", b"old-secret"], token) == TokenSubject(1, 2)


def test_another_campaign_cannot_reuse_the_mac():
    a = make_token(SECRET, 1, 99)
    b = make_token(SECRET, 2, 99)

    raw_a = base64.urlsafe_b64decode(a + "==")
    raw_b = base64.urlsafe_b64decode(b + "==")
    forged = base64.urlsafe_b64encode(raw_b[:8] + raw_a[8:]).rstrip(b"=").decode()
    assert verify_token([SECRET], forged) is None


@given(st.text(max_size=64))
@settings(deadline=None)  # a loaded CI machine may stall one example
def test_random_strings_never_verify_or_crash(text):
    assert verify_token([SECRET], text) is None


# Purposes: each its own MAC domain, one spelling, rotation, expiry.

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def _purposes():
    """Every purpose: (name, make(secret) -> token, verify(secrets, token) -> subject | None)."""
    return {
        "unsubscribe": (lambda s: make_token(s, 7, 12345), lambda ss, t: verify_token(ss, t)),
        "preferences": (
            lambda s: make_preferences_token(s, 12345),
            lambda ss, t: verify_preferences_token(ss, t),
        ),
        "confirm": (
            lambda s: make_confirm_token(s, 7, NOW + timedelta(hours=48)),
            lambda ss, t: verify_confirm_token(ss, t, now=NOW),
        ),
        "return path": (
            lambda s: make_return_path_token(s, 12345),
            lambda ss, t: verify_return_path_token(ss, t),
        ),
        "link": (
            lambda s: make_link_token(s, 7, 3, 12345),
            lambda ss, t: verify_link_token(ss, t),
        ),
    }


EXPECTED = {
    "unsubscribe": TokenSubject(7, 12345),
    "preferences": 12345,
    "confirm": ConfirmSubject(7, NOW + timedelta(hours=48)),
    "return path": 12345,
    "link": LinkSubject(7, 3, 12345),
}


@pytest.mark.parametrize("purpose", list(EXPECTED))
def test_every_purpose_round_trips_and_refuses_other_secrets(purpose):
    make, verify = _purposes()[purpose]
    token = make(SECRET)
    assert verify([SECRET], token) == EXPECTED[purpose]
    assert verify([b"other"], token) is None
    assert verify([], token) is None
    assert make(SECRET) == token  # deterministic: one token per subject


@pytest.mark.parametrize(
    ("made", "checked"),
    [(a, b) for a in EXPECTED for b in EXPECTED if a != b],
)
def test_a_token_of_one_purpose_is_never_accepted_for_another(made, checked):
    purposes = _purposes()
    token = purposes[made][0](SECRET)
    assert purposes[checked][1]([SECRET], token) is None
    assert purposes[checked][1]([SECRET], token.upper()) is None


def test_payloads_of_the_same_size_are_kept_apart_by_their_domain():
    """Unsubscribe and confirm both pack two ids: same length, still never interchangeable."""
    unsubscribe = make_token(SECRET, 7, 2_000_000_000)
    confirm = make_confirm_token(SECRET, 7, datetime.fromtimestamp(2_000_000_000, timezone.utc))
    assert len(unsubscribe) == len(confirm)
    assert unsubscribe[:10] == confirm[:10]  # the same ids (60 bits)…
    assert unsubscribe != confirm  # …under another MAC
    assert verify_confirm_token([SECRET], unsubscribe, now=NOW) is None
    assert verify_token([SECRET], confirm) is None


def test_the_test_send_sentinel_is_not_a_preference_token():
    """Test sends carry an unsubscribe token for campaign 0 and contact 0: it names nobody."""
    sentinel = make_token(SECRET, TEST_CAMPAIGN_ID, 0)
    subject = verify_token([SECRET], sentinel)
    assert subject == TokenSubject(0, 0) and subject.is_test
    assert verify_preferences_token([SECRET], sentinel) is None
    sample = make_token(SECRET, TEST_CAMPAIGN_ID, 5)  # `render` samples name a contact
    assert verify_preferences_token([SECRET], sample) is None
    # …and a preference token is no test token of the unsubscribe page.
    assert verify_token([SECRET], make_preferences_token(SECRET, 0)) is None
    assert verify_token([SECRET], make_preferences_token(SECRET, 5)) is None
    assert not TokenSubject(3, 5).is_test


@pytest.mark.parametrize("purpose", list(EXPECTED))
def test_any_changed_character_is_refused(purpose):
    make, verify = _purposes()[purpose]
    token = make(SECRET)
    alphabet = (
        "abcdefghijklmnopqrstuvwxyz234567"
        if purpose == "return path"
        else ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    )
    for i, old in enumerate(token):
        new = alphabet[(alphabet.index(old) + 1) % len(alphabet)]
        assert verify([SECRET], token[:i] + new + token[i + 1 :]) is None, (i, old, new)
    assert verify([SECRET], token[:-1]) is None
    assert verify([SECRET], token + token[-1]) is None
    assert verify([SECRET], token + "=") is None


def test_base64_spare_bits_and_other_alphabets_are_not_the_canonical_spelling():
    token = make_preferences_token(SECRET, 12345)  # 20 bytes: 2 spare bits in the last char
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    twins = [token[:-1] + alphabet[last | bits] for bits in (1, 2, 3)]
    for twin in twins:
        if twin != token:
            assert base64.urlsafe_b64decode(twin + "=") == base64.urlsafe_b64decode(token + "=")
            assert verify_preferences_token([SECRET], twin) is None
    # `+` and `/` decode like `-` and `_` in lenient decoders: refused here.
    token = next(t for t in (make_token(SECRET, 7, n) for n in range(1000)) if "-" in t or "_" in t)
    swapped = token.replace("-", "+").replace("_", "/")
    assert verify_token([SECRET], swapped) is None
    assert verify_token([SECRET], token) is not None
    assert verify_token([SECRET], " " + token[1:]) is None
    assert verify_token([SECRET], "ä" + token[1:]) is None


def test_the_return_path_survives_case_changes_and_fits_the_local_part():
    token = make_return_path_token(SECRET, 987_654)
    assert token == token.lower() and len(token) == RETURN_PATH_TOKEN_LENGTH
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert verify_return_path_token([SECRET], token.upper()) == 987_654
    assert verify_return_path_token([SECRET], token.title()) == 987_654
    address = return_path_address("bounces@arcticsmartness.eu", token)
    assert address == f"bounces+{token}@arcticsmartness.eu"
    assert len(address.partition("@")[0]) <= 64
    # A relay that upper-cases the local part still leads back to the delivery.
    assert verify_return_path_token([SECRET], return_path_token(address.upper())) == 987_654
    assert return_path_token("<bounces+" + token + "@x.example>") == token
    assert return_path_token("bounces@x.example") is None


def test_a_bounce_address_whose_local_part_leaves_no_room_is_a_config_error():
    token = make_return_path_token(SECRET, 1)
    longest = "b" * (64 - 1 - len(token))
    assert len(return_path_address(f"{longest}@x.example", token).partition("@")[0]) == 64
    with pytest.raises(ConfigError, match=r"bounces\.address"):
        return_path_address(f"{longest}b@x.example", token)
    with pytest.raises(ConfigError):
        return_path_address("no-at-sign", token)


def test_a_confirmation_token_expires():
    expires = NOW + timedelta(hours=48)
    token = make_confirm_token(SECRET, 31, expires)
    assert verify_confirm_token([SECRET], token, now=NOW) == ConfirmSubject(31, expires)
    just_before = expires - timedelta(seconds=1)
    assert verify_confirm_token([SECRET], token, now=just_before) is not None
    assert verify_confirm_token([SECRET], token, now=expires) is None
    assert verify_confirm_token([SECRET], token, now=expires + timedelta(days=1)) is None
    with pytest.raises(ValueError):
        make_confirm_token(SECRET, 31, datetime(2026, 12, 1))  # naive: which zone?


def test_a_token_made_by_the_first_version_still_verifies():
    """Printed in newsletters already sent (campaign 17, contact 4242), under a rotated secret."""
    sent = "AAAAEQAAEJKsMzE9Xq4eA4uCvIwy6VUw"
    old = b"rotated-out-secret-of-2025"
    assert verify_token([b"the-current-secret", old], sent) == TokenSubject(17, 4242)
    assert make_token(old, 17, 4242) == sent
    assert verify_token([SECRET], "AAAAAAAAAAAwI8v6MmO8SD-_c8bIeYDj") == TokenSubject(0, 0)


@pytest.mark.parametrize("purpose", list(EXPECTED))
def test_rotation_accepts_the_previous_secrets_in_any_order(purpose):
    make, verify = _purposes()[purpose]
    token = make(b"old-secret")
    assert verify([b"new-secret", b"old-secret"], token) == EXPECTED[purpose]
    assert verify([b"old-secret", b"new-secret"], token) == EXPECTED[purpose]
    assert verify([b"new-secret", b"older-secret"], token) is None


def test_ids_out_of_range_are_refused_when_making():
    with pytest.raises(ValueError):
        make_preferences_token(SECRET, -1)
    with pytest.raises(ValueError):
        make_link_token(SECRET, 1, 2, 2**32)
    assert link_url("https://x.example/", "t") == "https://x.example/l/t"
    assert preferences_url("https://x.example", "t") == "https://x.example/p/t"
    assert confirm_url("https://x.example/", "t") == "https://x.example/confirm/t"


@given(st.text(max_size=64))
@settings(deadline=None)  # a loaded CI machine may stall one example
def test_random_strings_never_verify_for_any_purpose(text):
    for _, verify in _purposes().values():
        assert verify([SECRET], text) is None
