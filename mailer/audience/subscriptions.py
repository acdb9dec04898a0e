"""Contact status: its one writer, `change_status`, and the unsubscribe service's core.

Every change of a contact's status goes through `change_status`, in the caller's
transaction: it checks the move against `mailer.states` and the rules of who may make it
(PRODUCT.md, Concepts → Contact), writes it as a compare-and-set UPDATE and records the
event with its source. `unsubscribe`, `resubscribe` and `unbounce` wrap it in one
transaction each for the web service and the CLI. A repeat changes nothing and records
nothing, so the counts stay honest when a mail client retries its one-click POST.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, tzinfo

from mailer.errors import InputError, NotFoundError
from mailer.i18n import LANGUAGES
from mailer.states import ContactStatus, contact_may_move
from mailer.store import Store
from mailer.store import subscriptions as q
from mailer.store.campaigns import campaign_id_by_name
from mailer.timeutil import from_db

SUBSCRIBED, UNSUBSCRIBED, BOUNCED = (s.value for s in ContactStatus)
SOURCES = q.SOURCES
ACTIONS = q.ACTIONS
# Sources a token holder acts through; only an unsubscribe made this way may be undone by
# a token (staff decisions and bounces are not the recipient's to reverse).
WEB_SOURCES = ("one-click", "page")
# A person's own decision to leave: staff override it only with --force, and the event says so.
PERSONAL_SOURCES = ("one-click", "page", "preferences", "complaint")
FORCED = "forced by staff over the person's own unsubscribe"
# Who may move a contact to each status.
_MOVERS: dict[str, frozenset[str]] = {
    UNSUBSCRIBED: frozenset({"import", "cli", "one-click", "page", "complaint", "preferences"}),
    BOUNCED: frozenset({"import", "bounce"}),
    SUBSCRIBED: frozenset({"cli", "one-click", "page", "signup"}),
}
# Recorded even when the status stays: the bounce of an unsubscribed address still happened.
_ALWAYS_RECORDED = frozenset({"bounce", "complaint"})
# What `mailer unsubscribes` lists.
UNSUBSCRIBE_ACTIONS = ("unsubscribe", "resubscribe")
_DETAIL_MAX = 500
# Id 0 in a token marks a test or sample message: campaign 0 (`mailer render` samples) or
# contact 0 (`mailer send --test-to`). Its page renders; its POST changes nothing.
TEST_CAMPAIGN_ID = 0
TEST_CONTACT_ID = 0


@dataclass(frozen=True)
class Consent:
    """What a signup agreed to: the consent text's version and the SHA-256 of its text."""

    version: str
    text_hash: str


@dataclass(frozen=True)
class StatusChange:
    """What `change_status` did."""

    contact_id: int
    email: str
    old: str  # the status before
    new: str  # the status after
    action: str  # the event's action (unsubscribe, bounce, …), recorded or not
    changed: bool  # the status changed
    recorded: bool  # an event was written
    refused: str = ""  # why this source may not make this move ('' when it may)


@dataclass(frozen=True)
class ChangeReport:
    """What an unsubscribe or resubscribe did."""

    contact_id: int
    campaign_id: int | None
    action: str  # unsubscribe | resubscribe
    changed: bool  # the status changed and an event was recorded
    status: str  # the contact's status afterwards
    refused: bool = False  # a resubscribe that this source may not make
    reason: str = ""  # why it was refused


@dataclass(frozen=True)
class Event:
    """One recorded status event."""

    at: datetime
    action: str
    source: str
    campaign_id: int | None
    campaign: str  # the campaign's name; '' when none or deleted
    contact_id: int | None  # None once the contact was forgotten
    email: str = ""  # '' once the contact was forgotten
    detail: str = ""

    def to_dict(self, zone: tzinfo | None = None, *, machine: bool = True) -> dict[str, object]:
        """The event for output: `at` in `zone` (UTC when None), ISO 8601 with its offset
        for JSON and CSV (`machine`), `YYYY-MM-DD HH:MM` for a table."""
        from datetime import timezone

        from mailer.timeutil import for_people

        return {
            "at": for_people(self.at, zone or timezone.utc, machine=machine),
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
    can_undo: bool  # the contact left through this link and may come back through it


# --- the one writer -----------------------------------------------------------------------


def change_status(
    conn: sqlite3.Connection,
    contact_id: int,
    target: str,
    *,
    source: str,
    now: datetime,
    campaign_id: int | None = None,
    detail: str | None = None,
    force: bool = False,
    consent: Consent | None = None,
    only_from: str | None = None,
) -> StatusChange:
    """Move a contact to `target` when `source` may, and record the event (caller's transaction).

    `only_from` refuses the move unless the contact is in that status now (a resubscribe
    is not an unbounce). `force` lets staff (`cli`) override a person's own unsubscribe.
    Raises InputError for a source that can never make this move, NotFoundError for an
    unknown contact or campaign.
    """
    _check_call(target, source, force, consent)
    contact = _contact(conn, contact_id)
    _check_campaign(conn, campaign_id)
    current = str(contact["status"])
    action = _action(current, target, source)
    refused = ""
    if only_from is not None and current not in (only_from, target):
        refused = current
    elif current != target:
        refused = _refusal(conn, contact_id, current, target, source, campaign_id, force)
    move = current != target and not refused and contact_may_move(current, target)
    record = move or (source in _ALWAYS_RECORDED and not refused)
    if move and not q.change_status(conn, contact_id, current, target, now):
        return StatusChange(
            contact_id,
            contact["email"],
            current,
            current,
            action,
            False,
            False,
            "changed meanwhile",
        )
    if record:
        forced = move and force and _needs_force(conn, contact_id, current, target, source)
        q.insert_event(
            conn,
            contact_id=contact_id,
            campaign_id=campaign_id,
            action=action,
            source=source,
            now=now,
            detail=_one_line(FORCED if forced else None, detail),
            consent_version=None if consent is None else consent.version,
            consent_hash=None if consent is None else consent.text_hash,
        )
    new = target if move else current
    return StatusChange(contact_id, contact["email"], current, new, action, move, record, refused)


def _check_call(target: str, source: str, force: bool, consent: Consent | None) -> None:
    if source not in SOURCES:
        raise InputError(f"unknown source {source!r} (one of {', '.join(SOURCES)})")
    if target not in _MOVERS:
        raise InputError(f"unknown status {target!r} (one of {', '.join(_MOVERS)})")
    if source not in _MOVERS[target]:
        raise InputError(f"source {source!r} never makes a contact {target}")
    if force and source != "cli":
        raise InputError("only staff (source 'cli') may force a status change")
    if (consent is not None) != (source == "signup"):
        raise InputError("a signup, and only a signup, records the consent it agreed to")


def _action(current: str, target: str, source: str) -> str:
    if target == UNSUBSCRIBED:
        return "complaint" if source == "complaint" else "unsubscribe"
    if target == BOUNCED:
        return "bounce"
    if source == "signup":
        return "subscribe"
    return "unbounce" if current == BOUNCED else "resubscribe"


def _refusal(
    conn: sqlite3.Connection,
    contact_id: int,
    current: str,
    target: str,
    source: str,
    campaign_id: int | None,
    force: bool,
) -> str:
    """Why `source` may not move the contact from `current` to `target` ('' when it may)."""
    refused = move_refusal(current, target, source)
    if refused or target != SUBSCRIBED or source == "signup":
        return refused
        return ""
    if source in WEB_SOURCES:
        if _undoable(conn, contact_id, current, campaign_id):
            return ""
        return f"{current}; only this link's own unsubscribe can be undone through it"
    if current == BOUNCED:
        if _left(q.last_leave_or_return(conn, contact_id)):
            return "bounced, and an unsubscribe or complaint is on record"
        return ""
    if _needs_force(conn, contact_id, current, target, source) and not force:
        return "unsubscribed by the person; only --force overrides that"
    return ""


def move_refusal(current: str, target: str, source: str) -> str:
    """Why the table of moves alone refuses this one ('' when it allows it).

    A move to `subscribed` also depends on the contact's events, which `change_status`
    reads; an import plans with this before it writes (it never makes that move).
    """
    if current == target or contact_may_move(current, target):
        return ""
    # unsubscribed <-> bounced: a bounce or complaint is recorded, the status stays.
    return "" if source in _ALWAYS_RECORDED else f"{current}; not changed to {target}"


def _needs_force(
    conn: sqlite3.Connection, contact_id: int, current: str, target: str, source: str
) -> bool:
    """Whether staff would override the person's own unsubscribe."""
    if (current, target, source) != (UNSUBSCRIBED, SUBSCRIBED, "cli"):
        return False
    last = q.last_leave_or_return(conn, contact_id)
    return _left(last) and last is not None and last["source"] in PERSONAL_SOURCES


def _left(event: sqlite3.Row | None) -> bool:
    return event is not None and event["action"] in ("unsubscribe", "complaint")


def _undoable(
    conn: sqlite3.Connection, contact_id: int, status: str, campaign_id: int | None
) -> bool:
    """Whether this link's unsubscribe is still the contact's last status event."""
    if status != UNSUBSCRIBED:
        return False
    last = q.last_event(conn, contact_id)
    return (
        last is not None
        and last["action"] == "unsubscribe"
        and last["source"] in WEB_SOURCES
        and last["campaign_id"] == campaign_id
    )


def _one_line(*parts: str | None) -> str | None:
    text = "; ".join(" ".join(part.split()) for part in parts if part and part.strip())
    return text[:_DETAIL_MAX] or None


def _contact(conn: sqlite3.Connection, contact_id: int) -> sqlite3.Row:
    row = q.contact_for_page(conn, contact_id)
    if row is None:
        raise NotFoundError(f"no contact with id {contact_id}")
    return row


def _check_campaign(conn: sqlite3.Connection, campaign_id: int | None) -> None:
    if campaign_id is not None and q.campaign_for_page(conn, campaign_id) is None:
        raise NotFoundError(f"no campaign with id {campaign_id}")


def record_signup(
    conn: sqlite3.Connection,
    contact_id: int,
    *,
    now: datetime,
    consent: Consent,
    detail: str,
    new_contact: bool = False,
) -> StatusChange:
    """A confirmed signup (caller's transaction): subscribed again, or its consent on record.

    An address that had left or bounced is subscribed by the person's new consent; one that
    is subscribed already (or was just created) gets the consent event alone.
    """
    change = change_status(
        conn, contact_id, SUBSCRIBED, source="signup", now=now, consent=consent, detail=detail
    )
    if not change.recorded:
        q.insert_event(
            conn,
            contact_id=contact_id,
            campaign_id=None,
            action="subscribe" if new_contact else "consent",
            source="signup",
            now=now,
            detail=_one_line(detail),
            consent_version=consent.version,
            consent_hash=consent.text_hash,
        )
    return change


def record_choice(conn: sqlite3.Connection, contact_id: int, *, now: datetime, detail: str) -> None:
    """Record a person's own change of lists on the preference page (no status change)."""
    q.insert_event(
        conn,
        contact_id=contact_id,
        campaign_id=None,
        action="consent",
        source="preferences",
        now=now,
        detail=_one_line(detail),
    )


# --- one transaction each: the web service and the CLI -------------------------------------


def unsubscribe(
    store: Store, contact_id: int, campaign_id: int | None, source: str, now: datetime
) -> ChangeReport:
    """Unsubscribe a contact (through `campaign_id`'s link, or None) and record the event."""
    with store.transaction() as conn:
        change = change_status(
            conn, contact_id, UNSUBSCRIBED, source=source, now=now, campaign_id=campaign_id
        )
    return ChangeReport(contact_id, campaign_id, "unsubscribe", change.changed, change.new)


def resubscribe(
    store: Store,
    contact_id: int,
    campaign_id: int | None,
    source: str,
    now: datetime,
    *,
    force: bool = False,
) -> ChangeReport:
    """Undo an unsubscribe; through a link (`page`) only that link's own unsubscribe.

    A bounced contact stays bounced whatever the source (`unbounce` is another move).
    """
    with store.transaction() as conn:
        change = change_status(
            conn,
            contact_id,
            SUBSCRIBED,
            source=source,
            now=now,
            campaign_id=campaign_id,
            force=force,
            only_from=UNSUBSCRIBED,
        )
    return ChangeReport(
        contact_id,
        campaign_id,
        "resubscribe",
        change.changed,
        change.new,
        refused=not change.changed and change.old != SUBSCRIBED,
        reason=change.refused,
    )


def unbounce(store: Store, contact_id: int, now: datetime, *, source: str = "cli") -> StatusChange:
    """Subscribe a bounced contact again (refused when an unsubscribe or complaint is on record)."""
    with store.transaction() as conn:
        return change_status(
            conn, contact_id, SUBSCRIBED, source=source, now=now, only_from=BOUNCED
        )


# --- reading -------------------------------------------------------------------------------


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
        detail=(row["detail"] or "") if "detail" in keys else "",
    )


def events(
    store: Store,
    campaign: str | None = None,
    since: datetime | None = None,
    actions: tuple[str, ...] = UNSUBSCRIBE_ACTIONS,
) -> list[Event]:
    """List the recorded events of these actions, oldest first; `campaign` is a name."""
    conn = store.conn
    campaign_id = None if campaign is None else campaign_id_by_name(conn, campaign)
    return [
        _event(r)
        for r in q.list_events(conn, campaign_id=campaign_id, since=since, actions=actions)
    ]


def count_for_campaign(conn: sqlite3.Connection, campaign_id: int) -> int:
    """Count the unsubscribes through this campaign's links that were not undone."""
    return q.count_for_campaign(conn, campaign_id)


def last_event(conn: sqlite3.Connection, contact_id: int) -> Event | None:
    """Return the contact's latest status event (when, how, which campaign)."""
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
        can_undo=_undoable(conn, contact_id, contact["status"], campaign_id),
    )


def parse_since(value: str, local: tzinfo | None = None) -> datetime:
    """Parse `--since`: a date (midnight in `local`, the configured zone; Helsinki when
    None) or an ISO date-time (naive: in `local`)."""
    from datetime import date, time, timezone

    if local is None:
        from zoneinfo import ZoneInfo

        local = ZoneInfo("Europe/Helsinki")
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
