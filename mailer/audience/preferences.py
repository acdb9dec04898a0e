"""The preference page's core: join or leave the offered lists, language, leave all, erase.

A list left here is written down (`list_departures`), so that an import never puts the
person back on it; only the person does, here or by a confirmed signup that chooses it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from mailer.audience import subscriptions
from mailer.audience.signups import offered_lists
from mailer.audience.subscriptions import ChangeReport, mask_address
from mailer.errors import NotFoundError
from mailer.i18n import LANGUAGES
from mailer.store import contacts as q_contacts
from mailer.store import signups as q

if TYPE_CHECKING:
    from mailer.audience.contacts import ForgetReport
    from mailer.config import Config
    from mailer.store import Store


@dataclass(frozen=True)
class ListChoice:
    ref: str
    name: str
    member: bool


@dataclass(frozen=True)
class PreferencesView:
    contact_id: int
    masked_address: str
    language: str
    status: str
    lists: list[ListChoice]


def view(store: Store, config: Config, contact_id: int) -> PreferencesView | None:
    """What the page shows for a contact; None when there is no such contact (any more)."""
    conn = store.conn
    row = q_contacts.get_contact(conn, contact_id)
    if row is None:
        return None
    member = q.member_list_ids(conn, contact_id)
    language = row["language"] if row["language"] in LANGUAGES else config.defaults.language
    return PreferencesView(
        contact_id=contact_id,
        masked_address=mask_address(row["email"]),
        language=language,
        status=row["status"],
        lists=[
            ListChoice(item.ref, item.name, item.id in member)
            for item in offered_lists(conn, config)
        ],
    )


@dataclass(frozen=True)
class SaveReport:
    joined: list[str]
    left: list[str]
    language_changed: bool

    @property
    def changed(self) -> bool:
        return bool(self.joined or self.left or self.language_changed)


def save(
    store: Store,
    config: Config,
    contact_id: int,
    chosen: Collection[str],
    language: str,
    *,
    now: datetime,
) -> SaveReport:
    """Make the contact a member of exactly the `chosen` offered lists; set the language."""
    with store.transaction() as conn:
        if q_contacts.get_contact(conn, contact_id) is None:
            raise NotFoundError(f"no contact with id {contact_id}")
        member = q.member_list_ids(conn, contact_id)
        joined, left = [], []
        for item in offered_lists(conn, config):
            if item.ref in chosen and item.id not in member:
                q_contacts.add_membership(conn, item.id, contact_id)
                q.remove_departure(conn, contact_id, item.id)
                joined.append(item.ref)
            elif item.ref not in chosen and item.id in member:
                q.remove_membership(conn, item.id, contact_id)
                q.add_departure(conn, contact_id, item.id, now)
                left.append(item.ref)
        changed_language = language in LANGUAGES and q.update_language(
            conn, contact_id, language, now
        )
        report = SaveReport(joined, left, changed_language)
        if report.changed:
            parts = [f"joined {', '.join(joined)}" if joined else ""]
            parts.append(f"left {', '.join(left)}" if left else "")
            parts.append(f"language {language}" if changed_language else "")
            detail = "; ".join(p for p in parts if p)
            subscriptions.record_choice(conn, contact_id, now=now, detail=detail)
    return report


def leave_all(store: Store, contact_id: int, source: str, *, now: datetime) -> ChangeReport:
    """Unsubscribe from everything (the page's button, or a one-click POST to the link)."""
    return subscriptions.unsubscribe(store, contact_id, None, source, now)


def erase(store: Store, config: Config, contact_id: int, *, now: datetime) -> ForgetReport:
    """ "Erase my data": the same erasure as `mailer contacts forget`."""
    from mailer.audience.contacts import forget

    row = q_contacts.get_contact(store.conn, contact_id)
    if row is None:
        raise NotFoundError(f"no contact with id {contact_id}")
    return forget(store, config, row["email"], now=now)
