"""Tokens with one purpose each: HMAC-SHA256 over a few ids; no address inside.

    purpose       names                          spelling               where
    unsubscribe   campaign + contact             base64url, 32 chars    {base_url}/u/{token}
    preferences   contact                        base64url, 27 chars    {base_url}/p/{token}
    confirm       pending signup + expiry        base64url, 32 chars    {base_url}/confirm/{token}
    return path   delivery                       base32 lower, 24 chars bounces+{token}@domain
    link          campaign + link + delivery     base64url, 38 chars    {base_url}/l/{token}
    form stamp    when a form was served         base64url, 27 chars    a hidden form field

Each purpose MACs its ids under its own prefix (a separate domain), so a token made for one
purpose never verifies for another, even where two purposes pack ids of the same size.
A token is accepted only in its one canonical spelling: it must decode and encode back to
the same text (base64 leaves spare bits and tolerates `+` and `/`; those spellings are
refused). The return path alone is compared case-insensitively, because mail systems may
change the case of a local part; its canonical spelling is lower case. Verification checks
the MAC against every configured secret (current and previous) with no early exit, so
timing says nothing about which secret matched, or whether any did.

The unsubscribe token is the first version's, unchanged: the tokens in newsletters already
sent keep working. A test send names campaign 0 (`TEST_CAMPAIGN_ID`), and no contact is 0.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from mailer.errors import ConfigError

TEST_CAMPAIGN_ID = 0  # unsubscribe tokens of test sends, samples and dry runs
_MAC_BYTES = 16  # 128 bits: unguessable, and the URL stays short
# The return path goes in the local part of the envelope sender (at most 64 octets with
# the operator's own local part), and some relays and bounce parsers mangle long ones.
# 88 bits keep the token at 24 characters: a forger must mail us one guess per try, and
# 2^88 tries are out of reach, while a good guess would only mark one delivery bounced.
_RETURN_PATH_MAC_BYTES = 11


@dataclass(frozen=True)
class _Purpose:
    """How one purpose packs its ids, the domain its MAC is made in, how it is spelled."""

    domain: bytes
    ids: struct.Struct
    mac_bytes: int = _MAC_BYTES
    base32: bool = False

    @property
    def length(self) -> int:
        return len(self.encode(bytes(self.ids.size + self.mac_bytes)))

    def encode(self, raw: bytes) -> str:
        if self.base32:
            return base64.b32encode(raw).decode("ascii").rstrip("=").lower()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    def decode(self, text: str) -> bytes | None:
        padded = text + "=" * (-len(text) % (8 if self.base32 else 4))
        try:
            if self.base32:
                return base64.b32decode(padded.upper())
            return base64.b64decode(padded, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            return None

    def mac(self, secret: bytes, payload: bytes) -> bytes:
        return hmac.new(secret, self.domain + payload, hashlib.sha256).digest()[: self.mac_bytes]

    def make(self, secret: bytes, *ids: int) -> str:
        try:
            payload = self.ids.pack(*ids)
        except struct.error as exc:
            raise ValueError(f"token ids out of range: {ids}") from exc
        return self.encode(payload + self.mac(secret, payload))

    def verify(self, secrets: Sequence[bytes], token: str) -> tuple[int, ...] | None:
        if not isinstance(token, str) or len(token) != self.length or not token.isascii():
            return None
        text = token.lower() if self.base32 else token
        raw = self.decode(text)
        if raw is None or self.encode(raw) != text:
            return None  # not the one canonical spelling
        payload, mac = raw[: self.ids.size], raw[self.ids.size :]
        valid = False
        for secret in secrets:
            valid |= hmac.compare_digest(mac, self.mac(secret, payload))
        return self.ids.unpack(payload) if valid else None


_UNSUBSCRIBE = _Purpose(b"mailer-unsubscribe-v1\x00", struct.Struct(">II"))
_PREFERENCES = _Purpose(b"mailer-preferences-v1\x00", struct.Struct(">I"))
_CONFIRM = _Purpose(b"mailer-confirm-v1\x00", struct.Struct(">II"))  # expiry: Unix seconds
_RETURN_PATH = _Purpose(
    b"mailer-return-path-v1\x00", struct.Struct(">I"), _RETURN_PATH_MAC_BYTES, base32=True
)
_LINK = _Purpose(b"mailer-link-v1\x00", struct.Struct(">III"))
_FORM_STAMP = _Purpose(b"mailer-form-stamp-v1\x00", struct.Struct(">I"))  # Unix seconds

TOKEN_LENGTH = _UNSUBSCRIBE.length  # 32
RETURN_PATH_TOKEN_LENGTH = _RETURN_PATH.length  # 24
_MAX_LOCAL_PART = 64  # RFC 5321 4.5.3.1.1


def _join(base_url: str, route: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/{route}/{token}"


# Unsubscribe: campaign + contact (the first version's token, unchanged).


@dataclass(frozen=True)
class TokenSubject:
    """Whom an unsubscribe token names: one contact, through one campaign's link."""

    campaign_id: int
    contact_id: int

    @property
    def is_test(self) -> bool:
        return self.campaign_id == TEST_CAMPAIGN_ID


def make_token(secret: bytes, campaign_id: int, contact_id: int) -> str:
    """Return the URL-safe token that lets one contact leave through one campaign's link."""
    return _UNSUBSCRIBE.make(secret, campaign_id, contact_id)


def verify_token(secrets: Sequence[bytes], token: str) -> TokenSubject | None:
    """Return whom an unsubscribe `token` names, or None when no secret made it."""
    ids = _UNSUBSCRIBE.verify(secrets, token)
    return None if ids is None else TokenSubject(*ids)


def unsubscribe_url(base_url: str, token: str) -> str:
    """Return `{base_url}/u/{token}`."""
    return _join(base_url, "u", token)


# Preferences: contact.


def make_preferences_token(secret: bytes, contact_id: int) -> str:
    """Return the token of one contact's preference page."""
    return _PREFERENCES.make(secret, contact_id)


def verify_preferences_token(secrets: Sequence[bytes], token: str) -> int | None:
    """Return the contact id a preference `token` names, or None."""
    ids = _PREFERENCES.verify(secrets, token)
    return None if ids is None else ids[0]


def preferences_url(base_url: str, token: str) -> str:
    """Return `{base_url}/p/{token}`."""
    return _join(base_url, "p", token)


# Confirm: pending signup + expiry.


@dataclass(frozen=True)
class ConfirmSubject:
    """The pending signup a confirmation token names, and until when it is valid."""

    signup_id: int
    expires_at: datetime


def make_confirm_token(secret: bytes, signup_id: int, expires_at: datetime) -> str:
    """Return the token of one pending signup's confirmation link, valid until `expires_at`."""
    if expires_at.tzinfo is None:
        raise ValueError("naive datetime")
    return _CONFIRM.make(secret, signup_id, int(expires_at.timestamp()))


def verify_confirm_token(
    secrets: Sequence[bytes], token: str, *, now: datetime
) -> ConfirmSubject | None:
    """Return the pending signup `token` names, or None when it is bad or expired at `now`."""
    ids = _CONFIRM.verify(secrets, token)
    if ids is None:
        return None
    signup_id, expires = ids
    if now.timestamp() >= expires:
        return None
    return ConfirmSubject(signup_id, datetime.fromtimestamp(expires, timezone.utc))


def confirm_url(base_url: str, token: str) -> str:
    """Return `{base_url}/confirm/{token}`."""
    return _join(base_url, "confirm", token)


# Return path: delivery.


def make_return_path_token(secret: bytes, delivery_id: int) -> str:
    """Return the short, lower-case token that names a delivery in the envelope sender."""
    return _RETURN_PATH.make(secret, delivery_id)


def verify_return_path_token(secrets: Sequence[bytes], token: str) -> int | None:
    """Return the delivery id a return-path `token` names (in any letter case), or None."""
    ids = _RETURN_PATH.verify(secrets, token)
    return None if ids is None else ids[0]


def return_path_address(bounce_address: str, token: str) -> str:
    """Return `LOCAL+TOKEN@DOMAIN` for `bounces.address` = `LOCAL@DOMAIN`."""
    local, at, domain = bounce_address.rpartition("@")
    if not at or not local or not domain:
        raise ConfigError(f"not an address: {bounce_address!r}", where="bounces.address")
    if len(local) + 1 + len(token) > _MAX_LOCAL_PART:
        raise ConfigError(
            f"local part {local!r} is too long: with '+' and the {len(token)}-character token"
            f" it must fit in {_MAX_LOCAL_PART} characters",
            where="bounces.address",
        )
    return f"{local}+{token}@{domain}"


def return_path_token(address: str) -> str | None:
    """Return TOKEN of `LOCAL+TOKEN@DOMAIN` (unchecked), or None when there is none."""
    local = address.strip().strip("<>").rpartition("@")[0]
    token = local.rpartition("+")[2] if "+" in local else ""
    return token or None


# Link: campaign + link + delivery.


@dataclass(frozen=True)
class LinkSubject:
    """The stored link of a campaign that a click token names, and the delivery it went in."""

    campaign_id: int
    link_id: int
    delivery_id: int


def make_link_token(secret: bytes, campaign_id: int, link_id: int, delivery_id: int) -> str:
    """Return the token of one link in one delivered message."""
    return _LINK.make(secret, campaign_id, link_id, delivery_id)


def verify_link_token(secrets: Sequence[bytes], token: str) -> LinkSubject | None:
    """Return the link and delivery a click `token` names, or None."""
    ids = _LINK.verify(secrets, token)
    return None if ids is None else LinkSubject(*ids)


def link_url(base_url: str, token: str) -> str:
    """Return `{base_url}/l/{token}`."""
    return _join(base_url, "l", token)


# Form stamp: when a public form was served (bots post at once, or replay an old form).


def make_form_stamp(secret: bytes, served_at: datetime) -> str:
    """Return the signed time at which a form was served, for its hidden field."""
    if served_at.tzinfo is None:
        raise ValueError("naive datetime")
    return _FORM_STAMP.make(secret, int(served_at.timestamp()))


def verify_form_stamp(secrets: Sequence[bytes], stamp: str) -> datetime | None:
    """Return when the form carrying `stamp` was served, or None when it was not ours."""
    ids = _FORM_STAMP.verify(secrets, stamp)
    return None if ids is None else datetime.fromtimestamp(ids[0], timezone.utc)
