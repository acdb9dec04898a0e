"""The rules: what a bounce or complaint does to the contact, recorded once.

- hard (5.x.x about the mailbox, mailer.bounces.codes) → `bounced` at once;
- about the message (5.7.x policy, 5.3.4 size, 5.6.x, …) → recorded, the contact stays;
- soft (4.x.x, `Action: delayed`, 5.2.2) → counted; `soft_limit` soft bounces on different
  days within `soft_days` → `bounced`;
- complaint → unsubscribed with source `complaint`.

Every status change goes through `mailer.audience.subscriptions.change_status`, which checks
the move and records the event (a bounce of an unsubscribed address is recorded and leaves
the status). Each returned message is handled in one transaction, keyed by its identity, so
the same bounce seen twice (a crash before the IMAP move, a second import) counts once.
The record keeps the status code, one diagnostic line (addresses masked) and the time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo

from mailer.audience.subscriptions import change_status
from mailer.bounces.codes import Verdict, enhanced_code
from mailer.bounces.parse import BOUNCE, COMPLAINT, Failure, Returned, mask, parse
from mailer.config import BouncesConfig, Config
from mailer.states import ContactStatus
from mailer.store import Store
from mailer.store import bounces as q
from mailer.store.campaigns import campaign_id_by_name
from mailer.timeutil import for_people, from_db, now_utc
from mailer.tokens import verify_return_path_token, verify_token

SUBSCRIBED, UNSUBSCRIBED, BOUNCED = (s.value for s in ContactStatus)
KINDS = q.KINDS


@dataclass(frozen=True)
class Effect:
    """What one bounce or complaint did to one contact."""

    email: str | None  # None once forgotten
    campaign: str | None
    kind: str  # hard | soft | complaint
    status: str | None
    diagnostic: str
    action: str  # bounced | counted | unsubscribed | none


@dataclass(frozen=True)
class Handled:
    """One returned message: what it was and where it goes (processed or unrecognised)."""

    name: str  # where it came from: a file, or an IMAP UID
    kind: str  # bounce | complaint | autoreply | unrecognised
    effects: tuple[Effect, ...] = ()
    duplicate: bool = False  # seen before: nothing counted again
    reason: str = ""

    @property
    def processed(self) -> bool:
        """Handled mail goes to processed_folder; the rest is left for a person."""
        return self.duplicate or bool(self.effects)


@dataclass
class BounceReport:
    """What a `bounces fetch` or `bounces import` did."""

    messages: int = 0
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    duplicates: int = 0
    autoreplies: int = 0
    unrecognised: int = 0
    stopped: list[Effect] = field(default_factory=list)  # contacts bounced or unsubscribed
    left: list[Handled] = field(default_factory=list)  # not bounces: for a person

    def add(self, handled: Handled) -> None:
        self.messages += 1
        if handled.duplicate:
            self.duplicates += 1
        elif not handled.effects:
            if handled.kind == "autoreply":
                self.autoreplies += 1
            else:
                self.unrecognised += 1
            self.left.append(handled)
        for effect in handled.effects:
            self.hard += effect.kind == "hard"
            self.soft += effect.kind == "soft"
            self.complaints += effect.kind == "complaint"
            if effect.action in ("bounced", "unsubscribed"):
                self.stopped.append(effect)

    def to_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "hard": self.hard,
            "soft": self.soft,
            "complaints": self.complaints,
            "duplicates": self.duplicates,
            "autoreplies": self.autoreplies,
            "unrecognised": self.unrecognised,
            "stopped": [
                {"email": e.email, "action": e.action, "status": e.status, "why": e.diagnostic}
                for e in self.stopped
            ],
        }


@dataclass(frozen=True)
class BounceRecord:
    """One row of `bounces list` (the JSON shape in PRODUCT.md)."""

    email: str | None
    campaign: str | None
    kind: str
    status: str | None
    diagnostic: str
    received_at: datetime
    action: str

    def to_dict(self, zone: tzinfo = timezone.utc, *, machine: bool = True) -> dict[str, object]:
        """The JSON shape; times in `zone` (ISO 8601 with offset, or for people)."""
        return {
            "email": self.email,
            "campaign": self.campaign,
            "kind": self.kind,
            "status": self.status,
            "diagnostic": self.diagnostic,
            "received_at": for_people(self.received_at, zone, machine=machine),
            "action": self.action,
        }


# --- one returned message ------------------------------------------------------------------


def handle(
    conn: sqlite3.Connection, config: Config, returned: Returned, name: str, now: datetime
) -> Handled:
    """Apply one read message in the caller's transaction; never counts it twice."""
    if not returned.handled:
        return Handled(name, returned.kind, reason=returned.reason)
    if q.seen(conn, returned.key):
        return Handled(name, returned.kind, duplicate=True)
    row = _delivery(conn, config.secrets(), returned)
    if row is None:
        return Handled(name, returned.kind, reason=f"{returned.kind} of no known delivery")
    failure = _failure_for(conn, row, returned.failures)
    at = now if returned.date is None else min(returned.date, now)
    effect = _apply(conn, config, row, returned, failure, at)
    return Handled(name, returned.kind, effects=(effect,))


def _delivery(
    conn: sqlite3.Connection, secrets: Sequence[bytes], returned: Returned
) -> sqlite3.Row | None:
    """The delivery: the return-path token, else our headers in the returned part."""
    for token in returned.tokens:
        delivery_id = verify_return_path_token(secrets, token)
        row = None if delivery_id is None else q.delivery(conn, delivery_id)
        if row is not None:
            return row
    for token in returned.unsubscribe_tokens:
        subject = verify_token(secrets, token)
        if subject is None or subject.is_test:
            continue
        row = q.delivery_of(conn, subject.campaign_id, subject.contact_id)
        if row is not None:
            return row
    for message_id in returned.message_ids:
        row = q.delivery_by_message_id(conn, message_id)
        if row is not None:
            return row
    return None


def _failure_for(
    conn: sqlite3.Connection, row: sqlite3.Row, failures: Sequence[Failure]
) -> Failure:
    """The failure about this delivery's address, else the first one reported."""
    email = q.contact_email(conn, row["contact_id"]) if row["contact_id"] is not None else None
    for failure in failures:
        if email is not None and failure.recipient == email.lower():
            return failure
    return failures[0]


def _apply(
    conn: sqlite3.Connection,
    config: Config,
    row: sqlite3.Row,
    returned: Returned,
    failure: Failure,
    at: datetime,
) -> Effect:
    contact_id, campaign_id = row["contact_id"], row["campaign_id"]
    if returned.kind == COMPLAINT:
        kind = "complaint"
    elif failure.verdict is Verdict.SOFT:
        kind = "soft"
    else:
        kind = "hard"
    bounce_id = q.insert(
        conn,
        message_key=returned.key,
        delivery_id=row["id"],
        campaign_id=campaign_id,
        contact_id=contact_id,
        kind=kind,
        status=failure.status,
        diagnostic=failure.diagnostic,
        action="counted" if kind == "soft" else "none",
        origin="mail",
        at=at,
    )
    why = " ".join(p for p in (failure.status, failure.diagnostic) if p) or kind
    action = "counted" if kind == "soft" else "none"
    if contact_id is not None and kind == "complaint":
        action = _move(conn, contact_id, UNSUBSCRIBED, "complaint", at, campaign_id, why)
    elif contact_id is not None and failure.verdict is Verdict.MAILBOX:
        action = _move(conn, contact_id, BOUNCED, "bounce", at, campaign_id, why)
    elif contact_id is not None and kind == "soft":
        action = _soft(conn, config, contact_id, campaign_id, at, why)
    if bounce_id is not None:
        q.set_action(conn, bounce_id, action)
    email = None if contact_id is None else q.contact_email(conn, contact_id)
    campaign = None if campaign_id is None else q.campaign_name(conn, campaign_id)
    return Effect(email, campaign, kind, failure.status, failure.diagnostic, action)


def _soft(
    conn: sqlite3.Connection,
    config: Config,
    contact_id: int,
    campaign_id: int | None,
    at: datetime,
    why: str,
) -> str:
    """A soft bounce is counted; `soft_limit` of them on different days within `soft_days`
    make a subscribed contact bounced (this one's record is already written)."""
    limit, days = (3, 30) if config.bounces is None else _soft_rule(config.bounces)
    counted = q.soft_days(conn, contact_id, at - timedelta(days=days), at)
    if counted < limit or q.contact_status(conn, contact_id) != SUBSCRIBED:
        return "counted"
    detail = f"{counted} soft bounces on different days within {days} days; last: {why}"
    return _move(conn, contact_id, BOUNCED, "bounce", at, campaign_id, detail, "counted")


def _soft_rule(bounces: BouncesConfig) -> tuple[int, int]:
    return bounces.soft_limit, bounces.soft_days


def _move(
    conn: sqlite3.Connection,
    contact_id: int,
    target: str,
    source: str,
    at: datetime,
    campaign_id: int | None,
    detail: str,
    otherwise: str = "none",
) -> str:
    change = change_status(
        conn, contact_id, target, source=source, now=at, campaign_id=campaign_id, detail=detail
    )
    if not change.changed:
        return otherwise
    return "unsubscribed" if target == UNSUBSCRIBED else "bounced"


# --- at send time -------------------------------------------------------------------------


def record_at_send(
    conn: sqlite3.Connection,
    *,
    delivery_id: int,
    campaign_id: int,
    contact_id: int,
    detail: str,
    hard: bool,
    now: datetime,
) -> str:
    """Record a 5xx answer at send time (caller's transaction); a hard one bounces the contact."""
    diagnostic = mask(" ".join(detail.split()))[:200]
    action = "none"
    if hard:
        action = _move(conn, contact_id, BOUNCED, "bounce", now, campaign_id, diagnostic)
    q.insert(
        conn,
        message_key=None,
        delivery_id=delivery_id,
        campaign_id=campaign_id,
        contact_id=contact_id,
        kind="hard",
        status=enhanced_code(detail),
        diagnostic=diagnostic,
        action=action,
        origin="send",
        at=now,
    )
    return action


# --- many messages ---------------------------------------------------------------------------

Progress = Callable[[int, Handled], None]


def process(
    store: Store,
    config: Config,
    messages: Iterable[tuple[str, bytes]],
    *,
    clock: Callable[[], datetime] = now_utc,
    after_each: Callable[[Handled], None] | None = None,
    progress: Progress | None = None,
) -> BounceReport:
    """Read and apply each (name, bytes), one transaction each; `after_each` runs after
    its commit (the IMAP move), so that a crash in between never counts a bounce twice."""
    report = BounceReport()
    for done, (name, raw) in enumerate(messages, 1):
        returned = parse(raw)
        with store.transaction() as conn:
            handled = handle(conn, config, returned, name, clock())
        if after_each is not None:
            after_each(handled)
        report.add(handled)
        if progress is not None:
            progress(done, handled)
    return report


# --- reading ---------------------------------------------------------------------------------


def _record(row: sqlite3.Row) -> BounceRecord:
    return BounceRecord(
        email=row["email"],
        campaign=row["campaign"],
        kind=row["kind"],
        status=row["status"],
        diagnostic=row["diagnostic"],
        received_at=from_db(row["received_at"]),
        action=row["action"],
    )


def list_bounces(
    store: Store,
    *,
    campaign: str | None = None,
    since: datetime | None = None,
    kind: str | None = None,
) -> list[BounceRecord]:
    """The bounce and complaint records, oldest first."""
    conn = store.conn
    campaign_id = None if campaign is None else campaign_id_by_name(conn, campaign)
    rows = q.list_bounces(conn, campaign_id=campaign_id, since=since, kind=kind)
    return [_record(r) for r in rows]


def last_bounce(store: Store, contact_id: int) -> BounceRecord | None:
    """The contact's latest bounce or complaint record, or None."""
    row = q.last_of_contact(store.conn, contact_id)
    return None if row is None else _record(row)


def campaign_counts(conn: sqlite3.Connection, campaign_id: int) -> dict[str, int]:
    """Deliveries of a campaign with a hard bounce, a soft bounce, a complaint."""
    return q.campaign_counts(conn, campaign_id)


def campaign_reasons(conn: sqlite3.Connection, campaign_id: int) -> list[tuple[str, str, int]]:
    """Bounces and complaints of a campaign by kind and status code: (kind, code, count)."""
    return q.campaign_reasons(conn, campaign_id)


__all__ = ["BOUNCE", "COMPLAINT", "BounceRecord", "BounceReport", "Handled", "process"]
