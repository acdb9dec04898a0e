"""Unsubscribe tokens: HMAC-SHA256 over (campaign, contact); no address inside."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass

_PREFIX = b"mailer-unsubscribe-v1\x00"
_IDS = struct.Struct(">II")
_MAC_BYTES = 16  # 128 bits: unguessable, and the URL stays short
TOKEN_LENGTH = 32  # base64url of 8 id bytes + 16 MAC bytes, without padding


@dataclass(frozen=True)
class TokenSubject:
    campaign_id: int
    contact_id: int


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, _PREFIX + payload, hashlib.sha256).digest()[:_MAC_BYTES]


def make_token(secret: bytes, campaign_id: int, contact_id: int) -> str:
    """Return the URL-safe token that lets one contact leave through one campaign's link."""
    payload = _IDS.pack(campaign_id, contact_id)
    raw = payload + _mac(secret, payload)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def verify_token(secrets: Sequence[bytes], token: str) -> TokenSubject | None:
    """Return whom `token` names, or None when it was not made with one of `secrets`."""
    if len(token) != TOKEN_LENGTH:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    if len(raw) != _IDS.size + _MAC_BYTES:
        return None
    payload, mac = raw[: _IDS.size], raw[_IDS.size :]
    valid = False
    for secret in secrets:
        # Compare with every secret (no early exit) so timing says nothing about which.
        valid |= hmac.compare_digest(mac, _mac(secret, payload))
    if not valid:
        return None
    campaign_id, contact_id = _IDS.unpack(payload)
    return TokenSubject(campaign_id, contact_id)


def unsubscribe_url(base_url: str, token: str) -> str:
    """Return `{base_url}/u/{token}`."""
    return f"{base_url.rstrip('/')}/u/{token}"
