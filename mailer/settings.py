"""The sections of mailer.toml as frozen dataclasses; `mailer.config` reads and checks them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path


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
    auth: str = "password"  # or "xoauth2": a token from token_command instead of a password
    token_command: tuple[str, ...] = ()  # run without a shell, per connection


@dataclass(frozen=True)
class WebConfig:
    base_url: str
    secret_env: str
    secret: str
    previous_secrets: tuple[str, ...]
    host: str
    port: int
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class DkimConfig:
    domain: str
    selector: str
    private_key: Path
    ed25519_selector: str = ""  # an optional second signature (RFC 8463)
    ed25519_private_key: Path | None = None


@dataclass(frozen=True)
class BouncesConfig:
    """[bounces]: the return path per delivery and the mailbox that `bounces fetch` reads."""

    address: str
    imap_host: str
    imap_port: int
    security: str
    username: str
    password_env: str
    folder: str
    auth: str
    processed_folder: str
    unrecognised_folder: str
    soft_limit: int
    soft_days: int
    token_command: tuple[str, ...] = ()  # with auth = "xoauth2", as for [smtp]


@dataclass(frozen=True)
class DefaultsConfig:
    language: str
    max_late_hours: float
    csv_delimiter: str = ";"
    timezone: str = "Europe/Helsinki"  # every time shown to a person

    def zone(self) -> tzinfo:
        """The zone times are shown in (checked at load)."""
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class ArchiveConfig:
    default: bool = False  # a campaign without an `archive` key is public only when this is


@dataclass(frozen=True)
class TrackingConfig:
    """[tracking]: click counting per link (off by default); no open pixel, ever."""

    clicks: bool = False
    keep_days: int = 90  # the keyed hashes behind unique counts are deleted after this
    ignore_first_seconds: int = 30  # clicks this soon after sending are mail scanners


@dataclass(frozen=True)
class SignupConfig:
    """[signup]: the signup form, its confirmation mail and the preference page."""

    lists: tuple[str, ...]  # KIND:* or KIND:SLUG that a visitor may choose
    consent_version: str
    consent_file: Path  # the consent texts per language (written by `mailer init`)
    confirm_hours: float
    per_address_per_day: int
    per_client_per_hour: int
    record_client_address: bool
