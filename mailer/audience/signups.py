"""Signups with double opt-in: the consent text, pending signups, limits, confirmation.

A signup is pending in its own table (never a contact) until the person opens the link of
the confirmation mail and presses the button. Then, in one transaction, the contact is
created or subscribed again through `subscriptions.record_signup`, with the consent
version and the hash of its text on the event. Every answer a visitor sees is the same
whatever the address is (new, pending, subscribed, unsubscribed, bounced, forgotten); what
differs is only which mail, if any, goes into the outbox: a confirmation mail, a
preference link for a subscribed contact, or nothing once the address's daily limit is
reached. The limits count keyed hashes, never addresses or client addresses.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING

from mailer.addresses import ascii_form, clean_line, parse_address, suppression_hash
from mailer.audience import subscriptions
from mailer.audience.subscriptions import Consent
from mailer.audience.suppressions import suppression_secrets
from mailer.errors import AddressError, ConfigError
from mailer.i18n import LANGUAGES, text
from mailer.states import SignupStatus
from mailer.store import contacts as q_contacts
from mailer.store import outbox as q_outbox
from mailer.store import signups as q
from mailer.timeutil import for_people, from_db

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from mailer.config import Config, SignupConfig
    from mailer.store import Store

KEEP_EXPIRED = timedelta(days=30)
FIELD_MAX = 200  # characters kept of a name or an organisation
# Quiet refusals (the visitor sees the usual page, nothing is mailed), counted per day.
REFUSALS = ("honeypot", "too-fast", "too-old", "bad-stamp", "client-limit", "address-limit")


def signup_config(config: Config) -> SignupConfig:
    """The [signup] section; ConfigError when signups are off."""
    if config.signup is None:
        raise ConfigError("signups are off: add a [signup] section", where=str(config.path))
    return config.signup


# --- the consent text ----------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentText:
    version: str
    texts: dict[str, str]  # language -> text

    @property
    def text_hash(self) -> str:
        canonical = json.dumps(self.texts, ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def consent(self) -> Consent:
        return Consent(self.version, self.text_hash)


def default_consent_file() -> str:
    """The consent.toml `mailer init` writes: the default text in every language."""
    lines = [
        "# The consent text shown on the signup form, per language. When you change a text,",
        "# change [signup] consent_version in mailer.toml too: each confirmed signup records",
        "# the version and a hash of these texts, and `mailer serve` refuses a changed text",
        "# under an old version.",
    ]
    for lang in LANGUAGES:
        value = json.dumps(text(lang, "signup_consent_default"), ensure_ascii=False)
        lines += ["", f"[{lang}]", f"text = {value}"]
    return "\n".join(lines) + "\n"


def load_consent(config: Config) -> ConsentText:
    """Read the consent texts of the workspace (the defaults where the file has none)."""
    signup = signup_config(config)
    texts = {lang: text(lang, "signup_consent_default") for lang in LANGUAGES}
    path = signup.consent_file
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read the consent texts: {exc}", where=str(path)) from None
        for lang, table in data.items():
            value = table.get("text") if isinstance(table, dict) else None
            if lang not in LANGUAGES or not isinstance(value, str) or not value.strip():
                raise ConfigError(
                    f'[{lang}] must be one of {", ".join(LANGUAGES)} with a text = "…"',
                    where=str(path),
                )
            texts[lang] = " ".join(value.split())
    return ConsentText(signup.consent_version, texts)


def register_consent(store: Store, config: Config, now: datetime) -> ConsentText:
    """Record this version's text; refuse a text that changed under the same version."""
    consent = load_consent(config)
    with store.transaction() as conn:
        recorded = q.consent_hash(conn, consent.version)
        if recorded is None:
            q.insert_consent(conn, consent.version, consent.text_hash, consent.texts, now)
        elif recorded != consent.text_hash:
            raise ConfigError(
                f"the consent text changed but signup.consent_version is still"
                f" {consent.version!r}: give the new text a new version",
                where=str(signup_config(config).consent_file),
            )
    return consent


# --- the lists a visitor may choose ----------------------------------------------------------


@dataclass(frozen=True)
class OfferedList:
    id: int
    ref: str  # KIND:SLUG
    name: str  # display name


def offered_lists(conn: sqlite3.Connection, config: Config) -> list[OfferedList]:
    """The lists of `signup.lists` that exist now, in the configured order."""
    out: dict[str, OfferedList] = {}
    for ref in signup_config(config).lists:
        kind, _, slug = ref.partition(":")
        rows = q.lists_of_kind(conn, kind) if slug == "*" else []
        if slug != "*":
            row = q_contacts.get_list(conn, kind, slug)
            rows = [row] if row is not None else []
        for row in rows:
            key = f"{row['kind']}:{row['slug']}"
            out.setdefault(key, OfferedList(int(row["id"]), key, row["name"]))
    return list(out.values())


# --- limits --------------------------------------------------------------------------------


def _key(secret: bytes, purpose: bytes, value: str) -> str:
    return hmac.new(secret, purpose + b"\x00" + value.encode(), hashlib.sha256).hexdigest()[:32]


def _day(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y-%m-%d")


def refuse(store: Store, reason: str, now: datetime) -> None:
    """Count one quiet refusal."""
    if reason not in REFUSALS:
        raise ValueError(reason)
    with store.transaction() as conn:
        q.add_refusal(conn, _day(now), reason)


def client_allowed(store: Store, config: Config, client: str, now: datetime) -> bool:
    """Count a form post from `client`; False (and a counted refusal) over the hourly limit."""
    limit = signup_config(config).per_client_per_hour
    key = _key(config.secret(), b"signup-client", client)
    with store.transaction() as conn:
        if q.count_since(conn, "client", key, now - timedelta(hours=1)) >= limit:
            q.add_refusal(conn, _day(now), "client-limit")
            return False
        q.add_use(conn, "client", key, now)
    return True


def _address_allowed(
    conn: sqlite3.Connection, config: Config, email_key: str, now: datetime
) -> bool:
    """Count one mail to the address; False (and a refusal) over the daily limit."""
    limit = signup_config(config).per_address_per_day
    key = _key(config.secret(), b"signup-address", email_key)
    if q.count_since(conn, "address", key, now - timedelta(days=1)) >= limit:
        q.add_refusal(conn, _day(now), "address-limit")
        return False
    q.add_use(conn, "address", key, now)
    return True


# --- a signup request ------------------------------------------------------------------------


@dataclass(frozen=True)
class SignupRequest:
    """What a visitor posted, checked: one plain address, a language, offered lists."""

    email: str
    name: str = ""
    organization: str = ""
    language: str = "fi"
    lists: tuple[str, ...] = ()


def check_request(
    conn: sqlite3.Connection,
    config: Config,
    *,
    email: str,
    name: str,
    organization: str,
    language: str,
    lists: Sequence[str],
) -> SignupRequest:
    """Check a posted form; AddressError for an address a person must correct.

    A language or list that the form never offered (a tampered post) is dropped, not
    reported: only a bot sends those.
    """
    address = parse_address(email)
    if address.display_name or "<" in email:
        raise AddressError("write the address alone, without a name")
    offered = {item.ref for item in offered_lists(conn, config)}
    chosen = tuple(dict.fromkeys(ref for ref in lists if ref in offered))
    return SignupRequest(
        email=address.email,
        name=_printable(name),
        organization=_printable(organization),
        language=language if language in LANGUAGES else config.defaults.language,
        lists=chosen,
    )


def _printable(value: str) -> str:
    return clean_line("".join(ch if ch.isprintable() else " " for ch in value))[:FIELD_MAX]


@dataclass(frozen=True)
class RequestOutcome:
    """What a signup post did (never shown to the visitor: their page is always the same)."""

    mail: str  # 'confirm', 'preferences' or '' (the address's limit was reached)
    signup_id: int | None = None


def request_signup(
    store: Store, config: Config, request: SignupRequest, *, client: str, now: datetime
) -> RequestOutcome:
    """Queue the mail this address gets: a confirmation, or a subscribed contact's link."""
    signup = signup_config(config)
    address = parse_address(request.email)
    expires = now + timedelta(hours=signup.confirm_hours)
    with store.transaction() as conn:
        contact = q_contacts.get_contact_by_key(conn, address.key)
        if not _address_allowed(conn, config, address.key, now):
            return RequestOutcome("")
        if contact is not None and contact["status"] == "subscribed":
            return _queue_link(conn, contact, now)
        pending = q.pending_by_key(conn, address.key)
        expires_at = int(expires.timestamp())
        if pending is not None:  # a new link replaces the old one, even within one second
            expires_at = max(expires_at, int(pending["expires_at"]) + 1)
        signup_id = q.save_pending(
            conn,
            signup_id=None if pending is None else int(pending["id"]),
            email=address.email,
            email_ascii=ascii_form(address),
            email_key=address.key,
            name=request.name,
            organization=request.organization,
            language=request.language,
            lists=request.lists,
            consent_version=signup.consent_version,
            client_address=client if signup.record_client_address and client else None,
            now=now,
            expires_at=expires_at,
        )
        q_outbox.enqueue(conn, "confirm", signup_id=signup_id, language=request.language, now=now)
    return RequestOutcome("confirm", signup_id)


def request_link(store: Store, config: Config, email: str, *, now: datetime) -> RequestOutcome:
    """ "E-mail me my link": a known contact's preference link; nothing for anyone else."""
    try:
        address = parse_address(email)
    except AddressError:
        return RequestOutcome("")
    with store.transaction() as conn:
        contact = q_contacts.get_contact_by_key(conn, address.key)
        if contact is None or not _address_allowed(conn, config, address.key, now):
            return RequestOutcome("")
        return _queue_link(conn, contact, now)


def _queue_link(conn: sqlite3.Connection, contact: sqlite3.Row, now: datetime) -> RequestOutcome:
    """Queue a contact's preference-link mail, in the contact's language."""
    q_outbox.enqueue(
        conn, "preferences", contact_id=int(contact["id"]), language=contact["language"], now=now
    )
    return RequestOutcome("preferences")


# --- confirmation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignupView:
    """A signup as `signups list` and the confirmation page show it."""

    id: int
    email: str
    name: str
    organization: str
    status: str
    lists: list[str]
    language: str
    requested_at: datetime
    confirmed_at: datetime | None
    expires_at: datetime

    def to_json(self, zone: tzinfo = timezone.utc, *, machine: bool = True) -> dict[str, object]:
        """The JSON shape; times in `zone` (ISO 8601 with offset, or for people)."""
        return {
            "email": self.email,
            "status": self.status,
            "lists": list(self.lists),
            "language": self.language,
            "requested_at": for_people(self.requested_at, zone, machine=machine),
            "confirmed_at": (
                None
                if self.confirmed_at is None
                else for_people(self.confirmed_at, zone, machine=machine)
            ),
        }


def _view(row: sqlite3.Row) -> SignupView:
    return SignupView(
        id=int(row["id"]),
        email=row["email"],
        name=row["name"],
        organization=row["organization"],
        status=row["status"],
        lists=list(json.loads(row["lists"])),
        language=row["language"],
        requested_at=from_db(row["requested_at"]),
        confirmed_at=from_db(row["confirmed_at"]) if row["confirmed_at"] else None,
        expires_at=datetime.fromtimestamp(int(row["expires_at"]), timezone.utc),
    )


def find_signup(store: Store, signup_id: int, expires_at: datetime) -> SignupView | None:
    """The signup a (verified) token names, while that token is its current link."""
    row = q.get_signup(store.conn, signup_id)
    if row is None or int(row["expires_at"]) != int(expires_at.timestamp()):
        return None  # a newer signup of the address replaced this link
    if row["status"] == SignupStatus.EXPIRED:
        return None
    return _view(row)


@dataclass(frozen=True)
class ConfirmReport:
    confirmed: bool  # False: it was confirmed before (a second POST)
    contact_id: int
    language: str
    lists: list[str]


def confirm_signup(
    store: Store,
    config: Config,
    signup_id: int,
    expires_at: datetime,
    *,
    now: datetime,
    consent: ConsentText | None = None,
) -> ConfirmReport | None:
    """Subscribe the signup's address to its lists, with its consent on record.

    `consent` is the text registered when the service started (read again when None).
    None when the link is no longer valid. A second confirmation changes nothing.
    """
    agreed = (consent or load_consent(config)).consent
    with store.transaction() as conn:
        row = q.get_signup(conn, signup_id)
        if row is None or int(row["expires_at"]) != int(expires_at.timestamp()):
            return None
        if row["status"] == SignupStatus.CONFIRMED and row["contact_id"] is not None:
            return ConfirmReport(False, int(row["contact_id"]), row["language"], [])
        if row["status"] != SignupStatus.PENDING:
            return None
        contact_id, joined = _subscribe(conn, config, row, agreed, now)
        if not q.mark_confirmed(conn, signup_id, contact_id, now):
            raise ConfigError("the signup changed meanwhile; try again")
    return ConfirmReport(True, contact_id, row["language"], joined)


def _subscribe(
    conn: sqlite3.Connection, config: Config, row: sqlite3.Row, consent: Consent, now: datetime
) -> tuple[int, list[str]]:
    client = f"; client {row['client_address']}" if row["client_address"] else ""
    contact = q_contacts.get_contact_by_key(conn, row["email_key"])
    if contact is None:
        secrets = suppression_secrets(conn, config)
        hashes = [suppression_hash(s, row["email_key"]) for s in secrets]
        forgotten = q.delete_suppressions(conn, hashes) > 0
        contact_id = q_contacts.insert_contact(
            conn,
            email=row["email"],
            email_ascii=row["email_ascii"],
            email_key=row["email_key"],
            name=row["name"],
            organization=row["organization"],
            language=row["language"],
            attributes={},
            consent_source="signup",
            now=now,
        )
        detail = (
            "confirmed signup: the person's new consent after being forgotten"
            if forgotten
            else "confirmed signup"
        )
        subscriptions.record_signup(
            conn, contact_id, now=now, consent=consent, detail=detail + client, new_contact=True
        )
    else:
        contact_id = int(contact["id"])
        status = contact["status"]
        detail = (
            "confirmed signup, already subscribed"
            if status == "subscribed"
            else f"confirmed signup: the person's new consent after being {status}"
        )
        subscriptions.record_signup(
            conn, contact_id, now=now, consent=consent, detail=detail + client
        )
        q.fill_contact_fields(conn, contact_id, row["name"], row["organization"], now)
        q.update_language(conn, contact_id, row["language"], now)
    joined = []
    for ref in json.loads(row["lists"]):
        kind, _, slug = ref.partition(":")
        found = q_contacts.get_list(conn, kind, slug)
        if found is None:
            continue  # removed since the form was filled in
        q_contacts.add_membership(conn, int(found["id"]), contact_id)
        q.remove_departure(conn, contact_id, int(found["id"]))
        joined.append(ref)
    return contact_id, joined


def cancel_signup(store: Store, signup_id: int, expires_at: datetime, *, now: datetime) -> bool:
    """Withdraw a pending signup (the one-click "unsubscribe" of a confirmation mail)."""
    with store.transaction() as conn:
        row = q.get_signup(conn, signup_id)
        if row is None or int(row["expires_at"]) != int(expires_at.timestamp()):
            return False
        if row["status"] != SignupStatus.PENDING:
            return row["status"] == SignupStatus.EXPIRED
        return q.expire_signup(conn, signup_id)


# --- housekeeping and listing ------------------------------------------------------------------


def housekeeping(store: Store, now: datetime) -> tuple[int, int]:
    """Expire pending signups past their link, purge those expired 30 days ago; old counters."""
    with store.transaction() as conn:
        expired = q.expire_due(conn, int(now.timestamp()))
        purged = q.purge_expired(conn, int((now - KEEP_EXPIRED).timestamp()))
        q.prune_uses(conn, now - timedelta(days=1, hours=1))
        q_outbox.prune(conn, now - KEEP_EXPIRED)
    return expired, purged


@dataclass(frozen=True)
class SignupsReport:
    signups: list[SignupView]
    refusals: dict[str, int]  # reason -> count over the last 30 days
    outbox: dict[str, int]  # mail status -> count


def list_signups(store: Store, status: str | None, *, now: datetime) -> SignupsReport:
    """Signups (pending, confirmed, expired), the quiet refusals and the outbox's state."""
    if status is not None and status not in {s.value for s in SignupStatus}:
        raise ValueError(status)
    housekeeping(store, now)
    conn = store.conn
    rows = q.list_signups(conn, status)
    since = _day(now - KEEP_EXPIRED)
    return SignupsReport(
        [_view(r) for r in rows], q.refusal_counts(conn, since), q_outbox.counts(conn)
    )


def erase_signups(conn: sqlite3.Connection, email_key: str, contact_id: int | None) -> None:
    """Remove an address's signups, queued mail and the client addresses on its events."""
    q.delete_signups_of(conn, email_key)
    if contact_id is not None:
        q.clear_signup_details(conn, contact_id)
