"""Read and validate mailer.toml; the only module that reads secrets from the environment."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mailer.errors import AddressError, ConfigError
from mailer.settings import (
    ArchiveConfig,
    BouncesConfig,
    DefaultsConfig,
    DkimConfig,
    SenderConfig,
    SignupConfig,
    SmtpConfig,
    TrackingConfig,
    WebConfig,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

LANGUAGES = ("fi", "en", "sv", "se")
DEFAULT_KINDS = ("cluster", "municipality", "company")
SECURITY_MODES = ("starttls", "tls", "none")

_REQUIRED = object()


@dataclass(frozen=True)
class Config:
    path: Path
    sender: SenderConfig
    smtp: SmtpConfig
    web: WebConfig
    database_path: Path
    defaults: DefaultsConfig
    list_kinds: tuple[str, ...]
    dkim: DkimConfig | None = None
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    signup: SignupConfig | None = None
    bounces: BouncesConfig | None = None
    environ: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    tracking: TrackingConfig = TrackingConfig()

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def templates_dir(self) -> Path:
        """The workspace's own templates, which win over the bundled ones."""
        return self.base_dir / "templates"

    def secret(self) -> bytes:
        """Return the current HMAC secret: the environment variable wins over the file."""
        value = self.environ.get(self.web.secret_env, "") if self.web.secret_env else ""
        value = value or self.web.secret
        if not value:
            raise ConfigError(
                f"no secret: set ${self.web.secret_env} or web.secret", where=str(self.path)
            )
        return value.encode()

    def secrets(self) -> list[bytes]:
        """Return the current secret followed by those still accepted after a rotation."""
        return [self.secret(), *(s.encode() for s in self.web.previous_secrets if s)]

    def smtp_password(self) -> str:
        """Return the SMTP password from the environment ('' when unset)."""
        if not self.smtp.password_env:
            return ""
        return self.environ.get(self.smtp.password_env, "")

    def imap_password(self) -> str:
        """Return the bounce mailbox's password from the environment ('' when unset)."""
        if self.bounces is None or not self.bounces.password_env:
            return ""
        return self.environ.get(self.bounces.password_env, "")

    def dkim_key(self) -> bytes | None:
        """Return the DKIM private key (PEM) or None when DKIM is not configured."""
        if self.dkim is None:
            return None
        return _read_key(self.dkim.private_key, "dkim.private_key")

    def dkim_ed25519_key(self) -> bytes | None:
        """Return the Ed25519 DKIM private key (PEM) or None when it is not configured."""
        if self.dkim is None or self.dkim.ed25519_private_key is None:
            return None
        return _read_key(self.dkim.ed25519_private_key, "dkim.ed25519_private_key")


def _read_key(path: Path, where: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read DKIM key {path}: {exc.strerror}", where=where) from None


# section -> key -> (type, default); type is str, int, float, bool or list
_SCHEMA: dict[str, dict[str, tuple[type, Any]]] = {
    "sender": {
        "name": (str, _REQUIRED),
        "address": (str, _REQUIRED),
        "reply_to": (str, ""),
        "postal_address": (str, _REQUIRED),
        "list_id": (str, _REQUIRED),
    },
    "smtp": {
        "host": (str, "localhost"),
        "port": (int, 587),
        "security": (str, "starttls"),
        "username": (str, ""),
        "password_env": (str, "MAILER_SMTP_PASSWORD"),
        "timeout": (float, 30.0),
        "connections": (int, 4),
        "rate": (float, 0.0),
        "per_minute": (int, 0),
        "per_day": (int, 0),
        "max_attempts": (int, 8),
        "pause_after": (int, 25),
        "messages_per_connection": (int, 100),
        "auth": (str, "password"),
        "token_command": (object, ""),  # a string (split like a shell would) or a list
    },
    "web": {
        "base_url": (str, _REQUIRED),
        "secret_env": (str, "MAILER_SECRET"),
        "secret": (str, ""),
        "previous_secrets": (list, []),
        "host": (str, "127.0.0.1"),
        "port": (int, 8080),
        "trusted_proxies": (list, ["127.0.0.1", "::1"]),
    },
    "database": {"path": (str, "mailer.db")},
    "dkim": {
        "domain": (str, _REQUIRED),
        "selector": (str, _REQUIRED),
        "private_key": (str, _REQUIRED),
        "ed25519_selector": (str, ""),
        "ed25519_private_key": (str, ""),
    },
    "defaults": {
        "language": (str, "fi"),
        "max_late_hours": (float, 24.0),
        "csv_delimiter": (str, ";"),
        "timezone": (str, "Europe/Helsinki"),
    },
    "bounces": {
        "address": (str, _REQUIRED),
        "imap_host": (str, ""),
        "imap_port": (int, 993),
        "security": (str, "tls"),
        "username": (str, ""),
        "password_env": (str, "MAILER_IMAP_PASSWORD"),
        "folder": (str, "INBOX"),
        "auth": (str, "password"),
        "token_command": (object, ""),
        "processed_folder": (str, "mailer/processed"),
        "unrecognised_folder": (str, "mailer/unrecognised"),
        "soft_limit": (int, 3),
        "soft_days": (int, 30),
    },
    "lists": {"kinds": (list, list(DEFAULT_KINDS))},
    "archive": {"default": (bool, False)},
    "tracking": {
        "clicks": (bool, False),
        "keep_days": (int, 90),
        "ignore_first_seconds": (int, 30),
    },
    "signup": {
        "lists": (list, ["company:*"]),
        "consent_version": (str, _REQUIRED),
        "consent_file": (str, "consent.toml"),
        "confirm_hours": (float, 72.0),
        "per_address_per_day": (int, 3),
        "per_client_per_hour": (int, 20),
        "record_client_address": (bool, False),
    },
}
_OPTIONAL_SECTIONS = {
    "dkim",
    "smtp",
    "database",
    "defaults",
    "lists",
    "archive",
    "tracking",
    "signup",
    "bounces",
}
_ABSENT_UNLESS_WRITTEN = ("dkim", "signup", "bounces")  # sections that exist only when written


def find_config_path(explicit: str | Path | None, environ: dict[str, str]) -> Path:
    """Pick the config: --config, else $MAILER_CONFIG, else ./mailer.toml."""
    if explicit:
        return Path(explicit)
    if environ.get("MAILER_CONFIG"):
        return Path(environ["MAILER_CONFIG"])
    return Path("mailer.toml")


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    """Read, validate and return the configuration at `path`."""
    path = Path(path).absolute()
    env = dict(os.environ if environ is None else environ)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"no configuration at {path} (run `mailer init` or pass --config)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))  # Notepad writes a BOM
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", where=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML: {exc}", where=str(path)) from None
    return _build(path, data, env)


def _build(path: Path, data: dict[str, Any], env: dict[str, str]) -> Config:
    for section in data:
        if section not in _SCHEMA:
            raise ConfigError(f"unknown section [{section}]", where=str(path))
    values = {
        section: _section(path, section, data.get(section))
        for section in _SCHEMA
        if section not in _ABSENT_UNLESS_WRITTEN
    }
    dkim = None
    if "dkim" in data:
        d = _section(path, "dkim", data["dkim"])
        dkim = _dkim_config(path, d)

    bounces = _bounces(path, data["bounces"]) if "bounces" in data else None
    smtp = values["smtp"]
    _check_smtp(path, smtp)
    smtp["token_command"] = _token_auth(path, "smtp", data.get("smtp") or {}, smtp)
    language = values["defaults"]["language"]
    if language not in LANGUAGES:
        raise _bad(path, "defaults.language", f"must be one of {', '.join(LANGUAGES)}")
    _check_timezone(path, values["defaults"]["timezone"])
    kinds = values["lists"]["kinds"]
    for kind in kinds:
        if not isinstance(kind, str) or not kind.isidentifier() or kind in ("lang", "all"):
            raise _bad(path, "lists.kinds", f"{kind!r} is not a usable kind name")
    base_url = values["web"]["base_url"].rstrip("/")
    _check_base_url(path, base_url)
    _check_sender(path, values["sender"])
    for secret in values["web"]["previous_secrets"]:
        if not isinstance(secret, str):
            raise _bad(path, "web.previous_secrets", "must be a list of strings")

    _check_safety(path, values, env)

    web = dict(values["web"], base_url=base_url)
    web["previous_secrets"] = tuple(web["previous_secrets"])
    tracking = _tracking(path, values["tracking"])
    web["trusted_proxies"] = _proxies(path, web["trusted_proxies"])
    signup = None
    if "signup" in data:
        signup = _signup(path, _section(path, "signup", data["signup"]), tuple(kinds))
    return Config(
        path=path,
        sender=SenderConfig(**values["sender"]),
        smtp=SmtpConfig(**smtp),
        web=WebConfig(**web),
        database_path=path.parent / values["database"]["path"],
        defaults=DefaultsConfig(**values["defaults"]),
        list_kinds=tuple(kinds),
        dkim=dkim,
        archive=ArchiveConfig(**values["archive"]),
        signup=signup,
        bounces=bounces,
        environ=env,
        tracking=tracking,
    )


def _dkim_config(path: Path, d: dict[str, Any]) -> DkimConfig:
    if not (_DOMAIN.fullmatch(d["domain"]) and _LABEL.fullmatch(d["selector"])):
        raise _bad(path, "dkim.domain", "and dkim.selector must be DNS names")
    ed_selector, ed_key = d["ed25519_selector"], d["ed25519_private_key"]
    if bool(ed_selector) != bool(ed_key):
        raise _bad(path, "dkim.ed25519_selector", "and dkim.ed25519_private_key go together")
    if ed_selector and (not _LABEL.fullmatch(ed_selector) or ed_selector == d["selector"]):
        raise _bad(path, "dkim.ed25519_selector", "must be a DNS name other than dkim.selector")
    return DkimConfig(
        d["domain"],
        d["selector"],
        path.parent / d["private_key"],
        ed_selector,
        path.parent / ed_key if ed_key else None,
    )


def _tracking(path: Path, tracking: dict[str, Any]) -> TrackingConfig:
    if tracking["keep_days"] < 1:
        raise _bad(path, "tracking.keep_days", "must be at least 1")
    if tracking["ignore_first_seconds"] < 0:
        raise _bad(path, "tracking.ignore_first_seconds", "must not be negative")
    return TrackingConfig(**tracking)


# --- safe by default (PRODUCT.md): secrets, cleartext SMTP, CSV ---------------------------

MIN_SECRET_LENGTH = 32
CSV_DELIMITERS = {";": "';'", ",": "','", "\t": "'\\t' (tab)"}


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1): traffic that stays here."""
    import ipaddress

    name = host.strip().rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_safety(path: Path, values: dict[str, dict[str, Any]], env: dict[str, str]) -> None:
    smtp = values["smtp"]
    if smtp["security"] == "none" and not is_loopback(smtp["host"]):
        raise _bad(
            path,
            "smtp.security",
            f'"none" sends mail and the password in clear: allowed only to a loopback host'
            f' (localhost, 127.0.0.1), not {smtp["host"]}; use "starttls" or "tls"',
        )
    web = values["web"]
    secrets = [("web.secret", web["secret"])]
    if web["secret_env"] and env.get(web["secret_env"]):
        secrets.append((f"${web['secret_env']}", env[web["secret_env"]]))
    secrets += [("web.previous_secrets", s) for s in web["previous_secrets"]]
    for key, secret in secrets:
        if isinstance(secret, str) and secret and len(secret) < MIN_SECRET_LENGTH:
            where = str(path) if key.startswith("web.") else None
            raise ConfigError(
                f"{key} is {len(secret)} characters; a secret needs at least"
                f" {MIN_SECRET_LENGTH} (make one with: python3 -c"
                f" 'import secrets; print(secrets.token_urlsafe(32))')",
                where=where,
            )
    if values["defaults"]["csv_delimiter"] not in CSV_DELIMITERS:
        raise _bad(
            path, "defaults.csv_delimiter", f"must be one of {', '.join(CSV_DELIMITERS.values())}"
        )


def _check_timezone(path: Path, name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _bad(
            path, "defaults.timezone", f"{name!r} is not a time zone (e.g. Europe/Helsinki)"
        ) from None


def _check_smtp(path: Path, smtp: dict[str, Any]) -> None:
    if smtp["security"] not in SECURITY_MODES:
        raise _bad(path, "smtp.security", f"must be one of {', '.join(SECURITY_MODES)}")
    for key in ("port", "connections", "max_attempts", "pause_after", "messages_per_connection"):
        if smtp[key] < 1:
            raise _bad(path, f"smtp.{key}", "must be at least 1")
    for key in ("rate", "per_minute", "per_day", "timeout"):
        if smtp[key] < 0:
            raise _bad(path, f"smtp.{key}", "must not be negative")
    if not smtp["username"].isascii() or any(ch in smtp["username"] for ch in "\r\n\x00"):
        raise _bad(path, "smtp.username", _ASCII_LOGIN)


# smtplib and imaplib send the user name as ASCII (AUTH and LOGIN alike).
_ASCII_LOGIN = "must be one line of ASCII: the log-in sends it as ASCII (use the ASCII alias)"


BOUNCE_SECURITY = ("tls", "starttls")


def _bounces(path: Path, table: Any) -> BouncesConfig:
    """[bounces]: certificates are always verified, so there is no plain-text IMAP."""
    b = _section(path, "bounces", table)
    _check_mailbox(path, "bounces.address", b["address"])
    if "+" in b["address"].partition("@")[0]:
        raise _bad(path, "bounces.address", "must not hold '+' (the token follows it)")
    from mailer.tokens import RETURN_PATH_TOKEN_LENGTH, return_path_address

    try:  # LOCAL+TOKEN must fit in a local part
        return_path_address(b["address"], "a" * RETURN_PATH_TOKEN_LENGTH)
    except ConfigError as exc:
        raise _bad(path, "bounces.address", exc.message) from None
    if b["security"] not in BOUNCE_SECURITY:
        raise _bad(path, "bounces.security", f"must be one of {', '.join(BOUNCE_SECURITY)}")
    b["token_command"] = _token_auth(path, "bounces", table, b)
    if not 1 <= b["imap_port"] <= 65535:
        raise _bad(path, "bounces.imap_port", "must be a port number")
    for key in ("soft_limit", "soft_days"):
        if b[key] < 1:
            raise _bad(path, f"bounces.{key}", "must be at least 1")
    for key in ("imap_host", "username", "folder", "processed_folder", "unrecognised_folder"):
        if any(ch in b[key] for ch in "\r\n\x00"):
            raise _bad(path, f"bounces.{key}", "must be one line")
    if not b["username"].isascii():
        raise _bad(path, "bounces.username", _ASCII_LOGIN)
    for key in ("folder", "processed_folder", "unrecognised_folder"):
        if not b[key].strip():
            raise _bad(path, f"bounces.{key}", "must name a folder")
    if len({b["folder"], b["processed_folder"], b["unrecognised_folder"]}) < 3:
        raise _bad(path, "bounces.processed_folder", "and the other folders must all differ")
    return BouncesConfig(**b)


def _token_auth(
    path: Path, section: str, table: dict[str, Any], values: dict[str, Any]
) -> tuple[str, ...]:
    from mailer.oauth import check_auth

    try:
        return check_auth(section, table, values)
    except ValueError as exc:
        raise _bad(path, *exc.args) from None


def _check_sender(path: Path, sender: dict[str, Any]) -> None:
    for key in ("name", "address", "reply_to", "postal_address", "list_id"):
        if any(ch in sender[key] for ch in "\r\n"):
            raise _bad(path, f"sender.{key}", "must be one line")
    for key in ("address", "reply_to"):
        if key == "address" or sender[key]:
            _check_mailbox(path, f"sender.{key}", sender[key])
    if not _DOMAIN.fullmatch(sender["list_id"]):
        raise _bad(path, "sender.list_id", "must be a domain name such as arcticsmartness.eu")


_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_DOMAIN = re.compile(rf"(?:{_LABEL.pattern}\.)+{_LABEL.pattern}")


def _check_base_url(path: Path, url: str) -> None:
    """The unsubscribe links are `{base_url}/u/{token}` in every header: keep it clean ASCII."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise _bad(path, "web.base_url", "must be an https:// address")
    if not url.isascii() or any(ch.isspace() for ch in url) or parts.query or parts.fragment:
        raise _bad(
            path,
            "web.base_url",
            "must be plain ASCII without spaces, query or fragment"
            " (write an international domain in its xn-- form)",
        )


def _check_mailbox(path: Path, key: str, value: str) -> None:
    from mailer.addresses import parse_address

    try:
        address = parse_address(value)
    except AddressError as exc:
        raise _bad(path, key, f"is not a valid e-mail address ({exc.message})") from None
    if address.display_name or not value.isascii():
        raise _bad(path, key, "must be a plain ASCII address such as uutiset@example.org")


def _section(path: Path, section: str, table: Any) -> dict[str, Any]:
    schema = _SCHEMA[section]
    if table is None:
        if section not in _OPTIONAL_SECTIONS:
            raise ConfigError(f"missing section [{section}]", where=str(path))
        table = {}
    if not isinstance(table, dict):
        raise _bad(path, section, "must be a table")
    for key in table:
        if key not in schema:
            raise _bad(path, f"{section}.{key}", "unknown key")
    out: dict[str, Any] = {}
    for key, (kind, default) in schema.items():
        name = f"{section}.{key}"
        if key not in table:
            if default is _REQUIRED:
                raise _bad(path, name, "is required")
            out[key] = list(default) if isinstance(default, list) else default
            continue
        value = table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            raise _bad(path, name, f"must be {_TYPE_NAMES[kind]}, not {type(value).__name__}")
        out[key] = value
    return out


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    list: "a list",
    bool: "true or false",
}


def _proxies(path: Path, values: list[Any]) -> tuple[str, ...]:
    import ipaddress

    for value in values:
        try:
            ipaddress.ip_address(value if isinstance(value, str) else "")
        except ValueError:
            raise _bad(path, "web.trusted_proxies", f"{value!r} is not an IP address") from None
    return tuple(str(ipaddress.ip_address(v)) for v in values)


def _signup(path: Path, s: dict[str, Any], kinds: tuple[str, ...]) -> SignupConfig:
    lists: list[str] = []
    for ref in s["lists"]:
        kind, colon, slug = ref.partition(":") if isinstance(ref, str) else ("", "", "")
        if not colon or kind not in kinds or not slug or any(ch.isspace() for ch in slug):
            raise _bad(
                path, "signup.lists", f"{ref!r} is not KIND:* or KIND:SLUG of a kind in lists.kinds"
            )
        lists.append(ref)
    version = s["consent_version"].strip()
    if not version or not version.isprintable() or len(version) > 64:
        raise _bad(path, "signup.consent_version", "must be one short line such as 2026-12")
    if s["confirm_hours"] <= 0:
        raise _bad(path, "signup.confirm_hours", "must be more than 0")
    for key in ("per_address_per_day", "per_client_per_hour"):
        if s[key] < 1:
            raise _bad(path, f"signup.{key}", "must be at least 1")
    return SignupConfig(
        lists=tuple(lists),
        consent_version=version,
        consent_file=path.parent / s["consent_file"],
        confirm_hours=s["confirm_hours"],
        per_address_per_day=s["per_address_per_day"],
        per_client_per_hour=s["per_client_per_hour"],
        record_client_address=s["record_client_address"],
    )


def _bad(path: Path, key: str, message: str) -> ConfigError:
    return ConfigError(f"{key} {message}", where=str(path))
