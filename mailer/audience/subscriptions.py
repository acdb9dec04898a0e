"""Unsubscribe and resubscribe: the core behind `mailer serve`, `stats` and reporting.

Every change is one transaction: a conditional status UPDATE whose row count is checked,
plus one `unsubscribe_events` row. A repeat changes nothing and records nothing, so the
counts stay honest when a mail client retries its one-click POST.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, tzinfo

from mailer.errors import InputError, NotFoundError
from mailer.i18n import LANGUAGES
from mailer.store import Store
from mailer.store import subscriptions as q
from mailer.timeutil import from_db

SOURCES = q.SOURCES
# Sources a token holder acts through; only an unsubscribe made this way may be undone by
# a token (staff decisions and bounces are not the recipient's to reverse).
WEB_SOURCES = ("one-click", "page")
# Id 0 in a token marks a test or sample message: campaign 0 (`mailer render` samples) or
# contact 0 (`mailer send --test-to`). Its page renders; its POST changes nothing.
TEST_CAMPAIGN_ID = 0
TEST_CONTACT_ID = 0


@dataclass(frozen=True)
class ChangeReport:
    """What an unsubscribe or resubscribe did."""

    contact_id: int
    campaign_id: int | None
    action: str  # unsubscribe | resubscribe
    changed: bool  # the status changed and an event was recorded
    status: str  # the contact's status afterwards
    refused: bool = False  # a resubscribe that this source may not make


@dataclass(frozen=True)
class Event:
    """One recorded unsubscribe or resubscribe."""

    at: datetime
    action: str
    source: str
    campaign_id: int | None
    campaign: str  # the campaign's name; '' when none or deleted
    contact_id: int | None  # None once the contact was forgotten
    email: str = ""  # '' once the contact was forgotten

    def to_dict(self) -> dict[str, object]:
        return {
            "at": self.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "action": self.action,
            "source": self.source,
            "campaign": self.campaign,
            "email": self.email,
        }


@dataclass(frozen=True)
class PageInfo:
    """What the unsubscribe page shows for one valid token."""

    language: str
    masked_address: str
    newsletter: str  # the campaign's subject in the contact's language, else its name
    status: str
    test: bool  # a test or sample message: nothing will change
    can_undo: bool  # the contact left through a link and may come back through one


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise InputError(f"unknown source {source!r} (one of {', '.join(SOURCES)})")


def _contact(conn: sqlite3.Connection, contact_id: int) -> sqlite3.Row:
    row = q.contact_for_page(conn, contact_id)
    if row is None:
        raise NotFoundError(f"no contact with id {contact_id}")
    return row


def _check_campaign(conn: sqlite3.Connection, campaign_id: int | None) -> None:
    if campaign_id is not None and q.campaign_for_page(conn, campaign_id) is None:
        raise NotFoundError(f"no campaign with id {campaign_id}")


def unsubscribe(
    store: Store, contact_id: int, campaign_id: int | None, source: str, now: datetime
) -> ChangeReport:
    """Unsubscribe a contact (through `campaign_id`'s link, or None) and record the event."""
    _check_source(source)
    with store.transaction() as conn:
        contact = _contact(conn, contact_id)
        _check_campaign(conn, campaign_id)
        changed = contact["status"] == "subscribed" and q.change_status(
            conn, contact_id, "subscribed", "unsubscribed", now
        )
        if changed:
            q.insert_event(
                conn,
                contact_id=contact_id,
                campaign_id=campaign_id,
                action="unsubscribe",
                source=source,
                now=now,
            )
        status = "unsubscribed" if changed else contact["status"]
    return ChangeReport(contact_id, campaign_id, "unsubscribe", changed, status)


def _undoable(conn: sqlite3.Connection, contact_id: int, status: str) -> bool:
    if status != "unsubscribed":
        return False
    last = q.last_event(conn, contact_id)
    return last is not None and last["action"] == "unsubscribe" and last["source"] in WEB_SOURCES


def resubscribe(
    store: Store, contact_id: int, campaign_id: int | None, source: str, now: datetime
) -> ChangeReport:
    """Undo an unsubscribe; through a link (`page`) only one that was made through a link.

    A bounced contact stays bounced whatever the source.
    """
    _check_source(source)
    with store.transaction() as conn:
        contact = _contact(conn, contact_id)
        _check_campaign(conn, campaign_id)
        status = contact["status"]
        if status == "subscribed":
            return ChangeReport(contact_id, campaign_id, "resubscribe", False, status)
        allowed = status == "unsubscribed" and (
            source not in WEB_SOURCES or _undoable(conn, contact_id, status)
        )
        changed = allowed and q.change_status(conn, contact_id, status, "subscribed", now)
        if changed:
            q.insert_event(
                conn,
                contact_id=contact_id,
                campaign_id=campaign_id,
                action="resubscribe",
                source=source,
                now=now,
            )
    return ChangeReport(
        contact_id,
        campaign_id,
        "resubscribe",
        changed,
        "subscribed" if changed else status,
        refused=not changed,
    )


def _event(row: sqlite3.Row) -> Event:
    keys = row.keys()
    return Event(
        at=from_db(row["at"]),
        action=row["action"],
        source=row["source"],
        campaign_id=row["campaign_id"],
        campaign=row["campaign"] or "",
        contact_id=row["contact_id"],
        email=(row["email"] or "") if "email" in keys else "",
    )


def events(store: Store, campaign: str | None = None, since: datetime | None = None) -> list[Event]:
    """List the recorded events, oldest first; `campaign` is a campaign's name."""
    conn = store.conn
    campaign_id = None
    if campaign is not None:
        campaign_id = q.campaign_id_by_name(conn, campaign)
        if campaign_id is None:
            raise NotFoundError(f"no campaign named {campaign!r}")
    return [_event(r) for r in q.list_events(conn, campaign_id=campaign_id, since=since)]


def count_for_campaign(conn: sqlite3.Connection, campaign_id: int) -> int:
    """Count the unsubscribes through this campaign's links that were not undone."""
    return q.count_for_campaign(conn, campaign_id)


def last_event(conn: sqlite3.Connection, contact_id: int) -> Event | None:
    """Return the contact's latest unsubscribe or resubscribe (when, how, which campaign)."""
    row = q.last_event(conn, contact_id)
    return None if row is None else _event(row)


def mask_address(email: str) -> str:
    """Show enough of an address to recognise it: `m***@example.com`."""
    local, _, domain = email.rpartition("@")
    if not local:
        return "***"
    return f"{local[0]}***@{domain}"


def _newsletter_name(definition: str, language: str, default: str, fallback: str) -> str:
    try:
        data = json.loads(definition)
    except (TypeError, ValueError):
        return fallback
    subject = data.get("subject") if isinstance(data, dict) else None
    if isinstance(subject, dict):
        subject = subject.get(language) or subject.get(default) or next(iter(subject.values()), "")
    if isinstance(subject, str) and subject.strip():
        return " ".join(subject.split())
    return fallback


def page_info(
    store: Store, campaign_id: int, contact_id: int, default_language: str
) -> PageInfo | None:
    """Return what the page for this (verified) token shows, or None for the 404 page."""
    conn = store.conn
    contact = q.contact_for_page(conn, contact_id) if contact_id != TEST_CONTACT_ID else None
    campaign = q.campaign_for_page(conn, campaign_id) if campaign_id != TEST_CAMPAIGN_ID else None
    if campaign_id == TEST_CAMPAIGN_ID or contact_id == TEST_CONTACT_ID:
        if campaign_id != TEST_CAMPAIGN_ID and campaign is None:
            return None
        language = contact["language"] if contact is not None else default_language
        language = language if language in LANGUAGES else default_language
        return PageInfo(
            language=language,
            masked_address=mask_address(contact["email"]) if contact is not None else "",
            newsletter=""
            if campaign is None
            else _newsletter_name(
                campaign["definition"], language, default_language, campaign["name"]
            ),
            status="subscribed",
            test=True,
            can_undo=False,
        )
    if contact is None or campaign is None:
        return None
    language = contact["language"] if contact["language"] in LANGUAGES else default_language
    return PageInfo(
        language=language,
        masked_address=mask_address(contact["email"]),
        newsletter=_newsletter_name(
            campaign["definition"], language, default_language, campaign["name"]
        ),
        status=contact["status"],
        test=False,
        can_undo=_undoable(conn, contact_id, contact["status"]),
    )


def parse_since(value: str) -> datetime:
    """Parse `--since`: a date (midnight, Helsinki time) or an ISO date-time (naive: Helsinki)."""
    from datetime import date, time, timezone

    try:
        from zoneinfo import ZoneInfo

        local: tzinfo = ZoneInfo("Europe/Helsinki")
    except Exception:  # no time zone database: fall back to UTC
        local = timezone.utc
    text_value = value.strip()
    try:
        if len(text_value) == 10:
            moment = datetime.combine(date.fromisoformat(text_value), time(0), local)
        else:
            moment = datetime.fromisoformat(text_value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--since {value!r} is not a date (YYYY-MM-DD) or ISO date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=local)
    return moment.astimezone(timezone.utc)
