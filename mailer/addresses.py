"""Normalise e-mail addresses with email-validator; split `Name <address>` forms."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mailer.errors import AddressError, InputError


class InvalidAddress(AddressError):
    """email-validator refused an address; `reason` is its message without the address."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"{address!r}: {reason}")
        self.address = address
        self.reason = reason


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
_domains: dict[str, tuple[str, str]] = {}  # domain as written -> (domain, ASCII domain)
# A local part is checked beside an address literal: the cheapest domain to validate.
_PROBE_DOMAIN = "[127.0.0.1]"
_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"  # RFC 5322 atext, ASCII
_DOT_ATOM = re.compile(f"[{_ATEXT}]+(?:\\.[{_ATEXT}]+)*")
_SPACE = re.compile(r"\s")


def _email_validator() -> Any:
    global _validator
    if _validator is None:
        # Imported on first use: `mailer --help` must not pay for email-validator.
        import email_validator

        _validator = email_validator
    return _validator


def validate(addr: str) -> tuple[str, str | None, str, str]:
    """Check `addr` with email-validator: (local part, ASCII local part or None, domain,
    ASCII domain). Raises email_validator.EmailNotValidError.

    A spreadsheet repeats a few domains over thousands of rows, and checking the domain is
    most of email-validator's work, so each domain is checked once and the local part is
    checked beside an address literal (the cheapest domain to check). Anything the split
    path does not accept, and any address long enough to meet the length limits, goes
    through one whole check, so the result and every error message are email-validator's.
    """
    v = _email_validator()
    local, at, domain = addr.rpartition("@")
    if at and local and domain and domain[0] != "[" and len(addr.encode("utf-8")) <= 200:
        try:
            known = _domains.get(domain)
            if known is None:
                info = v.validate_email("a@" + domain, check_deliverability=False)
                known = (info.domain, info.ascii_domain)
                if len(_domains) < 100_000:
                    _domains[domain] = known
            if len(local) <= 64 and _DOT_ATOM.fullmatch(local) and not _role_name(v, local):
                # The usual local part: RFC 5322 dot-atom in ASCII, which email-validator
                # accepts as it is (no normalisation; ASCII form = itself). RFC 2142 role
                # names (Abuse@, Info@) it lower-cases: those take the path below.
                return local, local, known[0], known[1]
            info = v.validate_email(
                local + "@" + _PROBE_DOMAIN, check_deliverability=False, allow_domain_literal=True
            )
        except v.EmailNotValidError:
            pass  # the whole check below gives email-validator's exact reason
        else:
            return info.local_part, info.ascii_local_part, known[0], known[1]
    info = v.validate_email(addr, check_deliverability=False)
    return info.local_part, info.ascii_local_part, info.domain, info.ascii_domain


def _role_name(v: Any, local: str) -> bool:
    return local.lower() in v.rfc_constants.CASE_INSENSITIVE_MAILBOX_NAMES


_NAME_AND_ADDRESS = re.compile(r"(?P<name>[^<>]*)<(?P<address>[^<>]*)>")
_QUOTED = re.compile(r'"(?P<text>(?:[^"\\]|\\.)*)"')
_ONE_FORM = "one address, optionally as Name <address>"


def _split(text: str) -> tuple[str, str]:
    """(display name, address) of `address` or `Name <address>`; anything else is refused.

    Strict on purpose (PRODUCT.md "Safe by default"): `parseaddr` and friends drop or glue
    what does not fit (`old@x <new@x>` → `old@x`), which silently changes who gets mail.
    """
    if "<" not in text and ">" not in text:
        if _SPACE.search(text):
            raise AddressError(f"{text!r} holds more than {_ONE_FORM}")
        return "", text
    match = _NAME_AND_ADDRESS.fullmatch(text)
    if match is None:
        raise AddressError(f"{text!r} holds more than {_ONE_FORM}")
    name, address = match.group("name").strip(), match.group("address").strip()
    quoted = _QUOTED.fullmatch(name)
    if quoted:
        name = re.sub(r"\\(.)", r"\1", quoted.group("text"))
    elif '"' in name or "@" in name:
        raise AddressError(f"{text!r} holds more than {_ONE_FORM}")
    if not address or _SPACE.search(address):
        raise AddressError(f"{text!r}: <{address}> is not {_ONE_FORM}")
    return clean_line(name), address


def parse_address(raw: str) -> Address:
    """Validate `raw` (an address or `Name <address>`) and return its normalised form.

    A line break, a control character, a second address or any text outside those two
    forms makes it invalid (AddressError): nothing is shortened or glued together.
    """
    v = _email_validator()
    text = raw.strip()
    if not text:
        raise AddressError("empty e-mail address")
    if has_control(text):
        raise AddressError(f"{text!r} contains a line break or a control character")
    display, addr = _split(text)
    try:
        local, ascii_local, domain, ascii_domain = validate(addr)
    except v.EmailNotValidError as exc:
        raise InvalidAddress(addr, str(exc)) from None
    ascii_email = f"{ascii_local}@{ascii_domain}" if ascii_local and ascii_domain else None
    key = f"{local.casefold()}@{ascii_domain.lower()}"
    return Address(f"{local}@{domain}", ascii_email, key, display)


# C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a terminal shows.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def has_control(text: str) -> bool:
    """True when `text` holds a control character (an escape sequence starts with one)."""
    return _CONTROL.search(text) is not None


def check_printable(value: str, option: str) -> str:
    """`value` when it is safe to print on a terminal; else InputError naming `option`.

    Names, organisations and subjects reach terminals and logs: an escape sequence in one
    (`\\e]0;…\\a` retitles the window, `\\e[2J` clears it) is refused, as `import` refuses
    such bytes in a file. A line break is not refused here: callers fold it into a space.
    """
    stripped = value.replace("\r", " ").replace("\n", " ")
    found = _CONTROL.search(stripped)
    if found:
        raise InputError(
            f"{option} contains a control character ({ord(found.group()):#04x});"
            " names and organisations must be plain text"
        )
    return value


def ascii_form(address: Address) -> str:
    """The stored wire form: the IDNA domain, and the local part as written."""
    if address.ascii_email:
        return address.ascii_email
    return address.email.rsplit("@", 1)[0] + "@" + address.key.rsplit("@", 1)[1]


def secret_id(secret: bytes) -> str:
    """A short fingerprint of a secret that tells which one keyed a hash (not the secret)."""
    import hashlib
    import hmac

    return hmac.new(secret, b"mailer-suppression-key-id", hashlib.sha256).hexdigest()[:16]


def suppression_hash(secret: bytes, email_key: str) -> str:
    """The keyed hash a forgotten address leaves behind: HMAC-SHA256 of its email_key."""
    import hashlib
    import hmac

    return hmac.new(secret, email_key.encode("utf-8"), hashlib.sha256).hexdigest()
