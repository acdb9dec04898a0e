"""Normalise e-mail addresses with email-validator; split `Name <address>` forms."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from mailer.errors import AddressError


@dataclass(frozen=True)
class Address:
    email: str  # normalised, as printed: local part as written, domain lower-cased (Unicode)
    ascii_email: str | None  # the IDNA form used on the wire; None when the local part is non-ASCII
    key: str  # case-insensitive identity: unique per contact
    display_name: str = ""

    @property
    def wire(self) -> str:
        """The address to give the SMTP server."""
        return self.ascii_email or self.email

    @property
    def needs_smtputf8(self) -> bool:
        return self.ascii_email is None


def clean_line(text: str) -> str:
    """Collapse CR, LF and other line breaks to single spaces and strip the ends."""
    if not text:
        return ""
    # Fast path for the common cell: printable, single-spaced, no spaces at the ends.
    if text.isprintable() and "  " not in text and text[0] != " " and text[-1] != " ":
        return text
    return " ".join(text.replace("\r", " ").replace("\n", " ").split())


_validator: Any = None


def parse_address(raw: str) -> Address:
    """Validate `raw` (an address or `Name <address>`) and return its normalised form."""
    global _validator
    if _validator is None:
        # Imported on first use: `mailer --help` must not pay for email-validator.
        import email_validator

        _validator = email_validator
    EmailNotValidError = _validator.EmailNotValidError

    text = clean_line(raw)
    if not text:
        raise AddressError("empty e-mail address")
    display = ""
    if "<" in text and text.endswith(">"):
        display, addr = parseaddr(text)
        if not addr:
            raise AddressError(f"{text!r} is not an e-mail address")
        display = clean_line(display)
    else:
        addr = text
    try:
        info = _validator.validate_email(addr, check_deliverability=False)
    except EmailNotValidError as exc:
        error = AddressError(f"{addr!r}: {exc}")
        error.reason = str(exc)  # without the address, for reports that show it beside
        raise error from None
    ascii_email = info.ascii_email
    domain_ascii = ascii_email.rsplit("@", 1)[1] if ascii_email else info.domain
    key = f"{info.local_part.casefold()}@{domain_ascii.lower()}"
    return Address(info.normalized, ascii_email, key, display)


def ascii_form(address: Address) -> str:
    """The stored wire form: the IDNA domain, and the local part as written."""
    if address.ascii_email:
        return address.ascii_email
    return address.email.rsplit("@", 1)[0] + "@" + address.key.rsplit("@", 1)[1]


def suppression_hash(secret: bytes, email_key: str) -> str:
    """The keyed hash a forgotten address leaves behind: HMAC-SHA256 of its email_key."""
    import hashlib
    import hmac

    return hmac.new(secret, email_key.encode("utf-8"), hashlib.sha256).hexdigest()
