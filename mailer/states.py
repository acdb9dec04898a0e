"""The statuses of campaigns, deliveries and contacts, and the moves allowed between them.

The schema's CHECK constraints hold the same names (a test compares them). Code never
writes a status without asking `allowed`/`sources_of` here first, and the store still
writes every move as `UPDATE … WHERE id = ? AND status = ?` with its row count checked:
this table says what may happen, the compare-and-set says it happened once.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import TypeVar


class CampaignStatus(str, Enum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"


class DeliveryStatus(str, Enum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    DEFERRED = "deferred"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"


class ContactStatus(str, Enum):
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"


class SignupStatus(str, Enum):
    """A pending signup is confirmed by its link, or expires (and is purged 30 days later)."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    EXPIRED = "expired"


class OutboxStatus(str, Enum):
    """A confirmation or preference-link mail: pending -> sending -> sent | deferred | failed."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"


C, D, S = CampaignStatus, DeliveryStatus, ContactStatus
E = TypeVar("E", bound=Enum)

CAMPAIGN_MOVES: Mapping[CampaignStatus, frozenset[CampaignStatus]] = {
    # `campaign create` again replaces a campaign that has not started (and may (un)schedule it).
    C.DRAFT: frozenset({C.DRAFT, C.SCHEDULED, C.SENDING, C.CANCELLED}),
    C.SCHEDULED: frozenset({C.DRAFT, C.SCHEDULED, C.SENDING, C.PAUSED, C.CANCELLED}),
    # sending -> sending: a new run takes over a campaign whose run died (SIGTERM, crash).
    C.SENDING: frozenset({C.SENDING, C.PAUSED, C.SENT, C.CANCELLED}),
    # paused -> draft/scheduled: `campaign create` again, only before the freeze (a campaign
    # paused because it was late or could not start: its audience was empty).
    C.PAUSED: frozenset({C.DRAFT, C.SCHEDULED, C.SENDING, C.SENT, C.CANCELLED}),
    # sent -> sending: only `send --resend-unknown`, for deliveries left `unknown`.
    C.SENT: frozenset({C.SENDING}),
    C.CANCELLED: frozenset(),
}

DELIVERY_MOVES: Mapping[DeliveryStatus, frozenset[DeliveryStatus]] = {
    D.PENDING: frozenset({D.SENDING, D.SKIPPED}),
    # sending -> pending: the relay said our quota is spent; the recipient waits for its turn.
    D.SENDING: frozenset({D.SENT, D.FAILED, D.DEFERRED, D.UNKNOWN, D.PENDING}),
    D.DEFERRED: frozenset({D.SENDING, D.SKIPPED, D.FAILED}),
    # unknown -> pending: only `send --resend-unknown`, a person's decision (RFC 1047).
    D.UNKNOWN: frozenset({D.PENDING}),
    D.SENT: frozenset(),
    D.FAILED: frozenset(),
    D.SKIPPED: frozenset(),
}

CONTACT_MOVES: Mapping[ContactStatus, frozenset[ContactStatus]] = {
    S.SUBSCRIBED: frozenset({S.UNSUBSCRIBED, S.BOUNCED}),
    S.UNSUBSCRIBED: frozenset({S.SUBSCRIBED}),
    S.BOUNCED: frozenset({S.SUBSCRIBED}),
}

# Deliveries that may still go out (a run works on these).
OPEN_DELIVERIES = frozenset({D.PENDING, D.SENDING, D.DEFERRED})
# Campaigns that `campaign cancel` may stop and `lists remove` must respect.
UNSENT_CAMPAIGNS = frozenset({C.DRAFT, C.SCHEDULED, C.SENDING, C.PAUSED})


def campaign_sources(target: CampaignStatus) -> tuple[str, ...]:
    """Return the statuses a campaign may move to `target` from (for the UPDATE's WHERE)."""
    return _sources(CAMPAIGN_MOVES, target)


def delivery_sources(target: DeliveryStatus) -> tuple[str, ...]:
    """Return the statuses a delivery may move to `target` from."""
    return _sources(DELIVERY_MOVES, target)


def contact_may_move(current: str, target: str) -> bool:
    """Whether a contact's status may change from `current` to `target`."""
    return ContactStatus(target) in CONTACT_MOVES[ContactStatus(current)]


def _sources(moves: Mapping[E, frozenset[E]], target: E) -> tuple[str, ...]:
    return tuple(sorted(str(start.value) for start, ends in moves.items() if target in ends))
