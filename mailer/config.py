"""Read and validate mailer.toml; the only module that reads secrets from the environment."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mailer.errors import AddressError, ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

LANGUAGES = ("fi", "en", "sv", "se")
DEFAULT_KINDS = ("cluster", "municipality", "company")
SECURITY_MODES = ("starttls", "tls", "none")

_REQUIRED = object()


@dataclass(frozen=True)
class SenderConfig:
    name: str
    address: str
    reply_to: str
    postal_address: str
    list_id: str


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str
    username: str
    password_env: str
    timeout: float
    connections: int
    rate: float
    per_minute: int
    per_day: int
    max_attempts: int
    pause_after: int
    messages_per_connection: int


@dataclass(frozen=True)
class WebConfig:
    base_url: str
    secret_env: str
    secret: str
    previous_secrets: tuple[str, ...]
    host: str
    port: int


@dataclass(frozen=True)
class DkimConfig:
    domain: str
    selector: str
    private_key: Path


@dataclass(frozen=True)
class DefaultsConfig:
    language: str
    max_late_hours: float
    timezone: str = "Europe/Helsinki"  # every time shown to a person

    def zone(self) -> tzinfo:
        """The zone times are shown in (checked at load)."""
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.timezone)


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
    environ: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

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

    def dkim_key(self) -> bytes | None:
        """Return the DKIM private key (PEM) or None when DKIM is not configured."""
        if self.dkim is None:
            return None
        try:
            return self.dkim.private_key.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read DKIM key {self.dkim.private_key}: {exc.strerror}",
                where="dkim.private_key",
            ) from None


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
    },
    "web": {
        "base_url": (str, _REQUIRED),
        "secret_env": (str, "MAILER_SECRET"),
        "secret": (str, ""),
        "previous_secrets": (list, []),
        "host": (str, "127.0.0.1"),
        "port": (int, 8080),
    },
    "database": {"path": (str, "mailer.db")},
    "dkim": {
        "domain": (str, _REQUIRED),
        "selector": (str, _REQUIRED),
        "private_key": (str, _REQUIRED),
    },
    "defaults": {
        "language": (str, "fi"),
        "max_late_hours": (float, 24.0),
        "timezone": (str, "Europe/Helsinki"),
    },
    "lists": {"kinds": (list, list(DEFAULT_KINDS))},
}
_OPTIONAL_SECTIONS = {"dkim", "smtp", "database", "defaults", "lists"}


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
        data = tomllib.loads(raw.decode("utf-8"))
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
        if section != "dkim"
    }
    dkim = None
    if "dkim" in data:
        d = _section(path, "dkim", data["dkim"])
        dkim = DkimConfig(d["domain"], d["selector"], path.parent / d["private_key"])

    smtp = values["smtp"]
    _check_smtp(path, smtp)
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
    if dkim is not None and not (
        _DOMAIN.fullmatch(dkim.domain) and _LABEL.fullmatch(dkim.selector)
    ):
        raise _bad(path, "dkim.domain", "and dkim.selector must be DNS names")
    for secret in values["web"]["previous_secrets"]:
        if not isinstance(secret, str):
            raise _bad(path, "web.previous_secrets", "must be a list of strings")

    web = dict(values["web"], base_url=base_url)
    web["previous_secrets"] = tuple(web["previous_secrets"])
    return Config(
        path=path,
        sender=SenderConfig(**values["sender"]),
        smtp=SmtpConfig(**smtp),
        web=WebConfig(**web),
        database_path=path.parent / values["database"]["path"],
        defaults=DefaultsConfig(**values["defaults"]),
        list_kinds=tuple(kinds),
        dkim=dkim,
        environ=env,
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


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", list: "a list"}


def _bad(path: Path, key: str, message: str) -> ConfigError:
    return ConfigError(f"{key} {message}", where=str(path))


CONFIG_TEMPLATE = """\
# mailer configuration. Secrets come from the environment: see secret_env and password_env.

[sender]
name = "Arctic Smartness"
address = "uutiset@arcticsmartness.eu"
reply_to = "arcticsmartness@lapinliitto.fi"
postal_address = "Lapin liitto, Hallituskatu 20 B, 96100 Rovaniemi"
list_id = "arcticsmartness.eu"

[smtp]
host = "localhost"
port = 587
security = "starttls"           # starttls | tls | none
username = ""
password_env = "MAILER_SMTP_PASSWORD"
timeout = 30
connections = 4
rate = 0                        # messages per second over all connections; 0 = no limit
per_minute = 0                  # relay quotas, counted in the database; 0 = none
per_day = 0
max_attempts = 8
pause_after = 25

[web]
base_url = "https://uutiset.arcticsmartness.eu"
secret_env = "MAILER_SECRET"    # the environment variable wins over `secret`
secret = "{secret}"
previous_secrets = []
host = "127.0.0.1"
port = 8080

[database]
path = "mailer.db"

[defaults]
language = "fi"
timezone = "Europe/Helsinki"    # every time shown to a person
max_late_hours = 24
"""
