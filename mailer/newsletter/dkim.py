"""DKIM signatures (RFC 6376) made with OpenSSL: RSA-SHA256, and Ed25519-SHA256 (RFC 8463).

dkimpy signs RSA with Python's `pow()` (11-13 ms a message); the `cryptography` package calls
OpenSSL (about 0.4 ms for RSA-2048, 0.06 ms for Ed25519), so a signed send runs near the
unsigned rate. Canonicalisation is relaxed/relaxed, no `l=` tag: the whole body is covered.
The body differs per recipient (name, unsubscribe link), so its hash is taken per message;
what does not vary (the keys, the tag text, the `h=` list) is prepared once per builder.
dkimpy verifies these signatures in the tests.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from mailer.errors import ConfigError

if TYPE_CHECKING:
    from mailer.config import Config

CRLF = b"\r\n"
MAX_LINE = 76
MIN_RSA_BITS = 1024  # RFC 8301: verifiers must not accept smaller RSA keys
_WSP_RUN = re.compile(rb"[ \t]+")


# --- canonicalisation (RFC 6376 section 3.4) --------------------------------------------


def relaxed_piece(data: bytes) -> bytes:
    """Whitespace runs to one space and none before a CRLF: relaxed body rules inside lines.

    These rules work within a line, so a body made of pieces that each end at a line end can
    be canonicalised piece by piece (and the pieces that never change, once).
    """
    # bytes.replace runs at memory speed; a regex over 40 KB costs ~0.3 ms a message.
    if b"\t" in data:
        data = data.replace(b"\t", b" ")
    while b"  " in data:  # a run of n spaces takes log2(n) passes
        data = data.replace(b"  ", b" ")
    if b" \r\n" in data:
        data = data.replace(b" \r\n", CRLF)
    return data


def _without_blank_end(body: bytes) -> bytes:
    while body.endswith(CRLF):
        body = body[:-2]
    return body + CRLF if body else b""


def relaxed_body(body: bytes) -> bytes:
    """Relaxed body: whitespace runs to one space, none before CRLF, no blank lines at the end."""
    return _without_blank_end(relaxed_piece(body))


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """One header field, relaxed: lower-case name, value unfolded and its whitespace squeezed."""
    value = _WSP_RUN.sub(b" ", value.replace(CRLF, b"")).strip(b" ")
    return name.strip(b" \t").lower() + b":" + value + CRLF


def header_fields(head: bytes) -> dict[bytes, list[bytes]]:
    """The header block (ending in CRLF) as lower-case name -> raw values, in order."""
    fields: dict[bytes, list[bytes]] = {}
    for field in re.split(rb"\r\n(?![ \t])", head.removesuffix(CRLF)):
        name, colon, value = field.partition(b":")
        if colon:
            fields.setdefault(name.strip(b" \t").lower(), []).append(value)
    return fields


def signed_headers(fields: dict[bytes, list[bytes]], names: Sequence[bytes]) -> bytes:
    """The canonical headers named in h=, each instance taken from the bottom up.

    A name listed more often than it occurs adds nothing for the extra listings: that is
    over-signing, which makes a later-added instance break the signature.
    """
    canonical = {
        name: [relaxed_header(name, value) for value in values] for name, values in fields.items()
    }
    return _pick(canonical, names)


def _pick(canonical: dict[bytes, list[bytes]], names: Sequence[bytes]) -> bytes:
    """The h= selection over fields already in canonical form (instances in header order)."""
    used: dict[bytes, int] = {}
    out: list[bytes] = []
    for name in names:
        instances = canonical.get(name, ())
        taken = used.get(name, 0)
        if taken < len(instances):
            out.append(instances[len(instances) - 1 - taken])
            used[name] = taken + 1
    return b"".join(out)


def _fold_list(prefix: str, items: Sequence[str], sep: str) -> str:
    """`prefix` + items joined by `sep`, folded with CRLF + space before lines grow past 76."""
    lines = [prefix]
    for n, item in enumerate(items):
        piece = item + (sep if n + 1 < len(items) else "")
        if len(lines[-1]) + len(piece) > MAX_LINE and lines[-1].strip():
            lines.append(" ")
        lines[-1] += piece
    return "\r\n".join(lines)


# --- keys and signing --------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    algorithm: str  # "rsa-sha256" or "ed25519-sha256"
    domain: str
    selector: str
    key: Any  # cryptography's RSAPrivateKey or Ed25519PrivateKey

    def sign(self, digest: bytes) -> bytes:
        """Sign the SHA-256 `digest` of the canonical headers."""
        if self.algorithm == "ed25519-sha256":
            return bytes(self.key.sign(digest))  # RFC 8463: PureEdDSA over the SHA-256 hash
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, utils

        return bytes(self.key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())))


@lru_cache(maxsize=8)
def load_key(pem: bytes, algorithm: str, where: str) -> Any:
    """Parse a PEM private key of the expected kind; a bad one is a ConfigError at `where`."""
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        # OpenSSL's key check costs ~45 ms a run; `_signs_correctly` below checks what
        # matters here (signatures the public key verifies) for ~0.3 ms.
        key = load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"not a usable unencrypted PEM private key ({exc})", where=where
        ) from None
    if algorithm == "rsa-sha256":
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigError("must be an RSA private key", where=where)
        if key.key_size < MIN_RSA_BITS:
            raise ConfigError(
                f"an RSA key of {key.key_size} bits is refused by receivers; use 2048",
                where=where,
            )
    elif not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError("must be an Ed25519 private key", where=where)
    if not _signs_correctly(key, algorithm):
        raise ConfigError("a damaged key: its signatures do not verify", where=where)
    return key


def _signs_correctly(key: Any, algorithm: str) -> bool:
    """Whether a signature made with `key` verifies with its own public key."""
    from cryptography.exceptions import InvalidSignature

    digest = hashlib.sha256(b"mailer DKIM key check").digest()
    signature = SigningKey(algorithm, "", "", key).sign(digest)
    try:
        if algorithm == "ed25519-sha256":
            key.public_key().verify(signature, digest)
        else:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding, utils

            key.public_key().verify(
                signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
            )
    except InvalidSignature:
        return False
    return True


def signing_keys(config: Config) -> tuple[SigningKey, ...]:
    """The configured keys: RSA, then the optional Ed25519 one; () without [dkim]."""
    dkim = config.dkim
    if dkim is None:
        return ()
    rsa_pem = config.dkim_key()
    assert rsa_pem is not None
    keys = [
        SigningKey(
            "rsa-sha256",
            dkim.domain,
            dkim.selector,
            load_key(rsa_pem, "rsa-sha256", "dkim.private_key"),
        )
    ]
    ed_pem = config.dkim_ed25519_key()
    if ed_pem is not None:
        key = load_key(ed_pem, "ed25519-sha256", "dkim.ed25519_private_key")
        keys.append(SigningKey("ed25519-sha256", dkim.domain, dkim.ed25519_selector, key))
    return tuple(keys)


class Signer:
    """Signs messages with every configured key over the same header names.

    `names` is the h= list, lower case, over-signed names repeated.
    """

    def __init__(
        self, keys: Sequence[SigningKey], names: Sequence[str], fixed: bytes = b""
    ) -> None:
        self.names = tuple(n.lower().encode("ascii") for n in names)
        h_tag = _fold_list(" h=", [n.lower() for n in names], ":")
        self._templates = [
            (
                key,
                f"DKIM-Signature: v=1; a={key.algorithm}; c=relaxed/relaxed;\r\n"
                f" d={key.domain}; s={key.selector}; t=%d;\r\n{h_tag};\r\n bh=%s;\r\n b=",
            )
            for key in keys
        ]
        # `fixed`: header fields that every message of this signer carries unchanged (From,
        # Subject, the list headers, the MIME ones); their canonical form is made once here.
        self._fixed = {
            name: [relaxed_header(name, value) for value in values]
            for name, values in header_fields(fixed).items()
            if name in self.names
        }

    def sign(
        self,
        message: bytes,
        now: datetime,
        *,
        relaxed: bytes | None = None,
        varying: Sequence[tuple[bytes, bytes]] | None = None,
    ) -> bytes:
        """Return the DKIM-Signature headers followed by `message` (CRLF bytes).

        `relaxed` is the body already put through `relaxed_piece` (piece by piece) when the
        caller has it; otherwise the body is canonicalised here. `varying` is the caller's
        list of (lower-case name, raw value) for the fields that are not among the signer's
        fixed ones; without it the message's header block is parsed.
        """
        split = message.find(CRLF + CRLF)
        if split < 0:
            raise ValueError("a message needs a header block and a body")
        if varying is None:
            canonical = signed_headers(header_fields(message[: split + 2]), self.names)
        else:
            fields = dict(self._fixed)
            for name, value in varying:
                if name in self._fixed:
                    raise ValueError(f"{name.decode()} is both fixed and varying")
                fields.setdefault(name, []).append(relaxed_header(name, value))
            canonical = _pick(fields, self.names)
        body = (
            relaxed_body(message[split + 4 :]) if relaxed is None else _without_blank_end(relaxed)
        )
        body_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()
        timestamp = int(now.timestamp())
        out = []
        for key, template in self._templates:
            unsigned = template % (timestamp, body_hash)
            name, _, value = unsigned.encode("ascii").partition(b":")
            # The signature's own header, b= empty and without its CRLF, ends the hashed data.
            digest = hashlib.sha256(canonical + relaxed_header(name, value)[:-2]).digest()
            signature = base64.b64encode(key.sign(digest)).decode("ascii")
            chunks = [signature[i : i + 72] for i in range(0, len(signature), 72)]
            out.append((unsigned + "\r\n ".join(chunks)).encode("ascii") + CRLF)
        return b"".join(out) + message
