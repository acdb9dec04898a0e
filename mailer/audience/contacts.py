"""Contacts: add, list, show, export, unsubscribe, resubscribe, unbounce and forget."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from mailer.addresses import (
    ascii_form,
    check_printable,
    clean_line,
    parse_address,
    secret_id,
    suppression_hash,
)
from mailer.audience import subscriptions
from mailer.audience.languages import parse_language
from mailer.audience.subscriptions import Event, StatusChange, last_event
from mailer.audience.suppressions import is_forgotten
from mailer.errors import ConflictError, InputError, NotFoundError
from mailer.files import write_csv

if TYPE_CHECKING:
    from mailer.config import Config
    from mailer.store import Store


@dataclass(frozen=True)
class ContactView:
    """A contact as commands show it (the JSON shape of `contacts list/show`)."""

    id: int
    email: str
    name: str
    organization: str
    language: str
    status: str
    lists: list[str] = field(default_factory=list)  # sorted KIND:SLUG
    first_name: str = ""  # for the greeting; '' when unknown
    attributes: dict[str, Any] = field(default_factory=dict)
    last_change: Event | None = None  # the latest status event, for `show`
    consent: list[dict[str, Any]] = field(default_factory=list)  # consent history, for `show`

    def to_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "name": self.name,
            "first_name": self.first_name,
            "organization": self.organization,
            "language": self.language,
            "status": self.status,
            "lists": list(self.lists),
            "attributes": dict(self.attributes),
        }


def _view(row: sqlite3.Row, lists: list[str]) -> ContactView:
    return ContactView(
        id=int(row["id"]),
        email=row["email"],
        name=row["name"],
        organization=row["organization"],
        language=row["language"],
        status=row["status"],
        lists=lists,
        first_name=row["first_name"],
        attributes=json.loads(row["attributes"] or "{}"),
    )


def _check_language(language: str | None) -> str | None:
    if language is None:
        return None
    try:
        return parse_language(language)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _find(conn: sqlite3.Connection, email: str) -> sqlite3.Row:
    from mailer.store import contacts as q

    address = parse_address(email)
    row = q.get_contact_by_key(conn, address.key)
    if row is None:
        raise NotFoundError(f"no contact {address.email}")
    return row


# --- add ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddReport:
    contact: ContactView
    outcome: str  # 'added', 'updated' or 'unchanged'


def add_contact(
    store: Store,
    config: Config,
    email: str,
    *,
    name: str = "",
    organization: str = "",
    language: str | None = None,
    lists: Sequence[str] = (),
    now: datetime,
    consent_source: str = "cli",
) -> AddReport:
    """Add a contact (or add an existing subscribed one to more lists and fill in fields).

    Refuses (InputError) an invalid address or language, an unknown list kind, and an
    address that unsubscribed, bounced or was forgotten.
    """
    from mailer.audience.lists import parse_list_ref, require_lists
    from mailer.store import contacts as q

    address = parse_address(email)
    name = clean_line(check_printable(name, "the name")) or address.display_name
    organization = clean_line(check_printable(organization, "the organisation"))
    lang = _check_language(language)
    refs = [parse_list_ref(text, config.list_kinds) for text in lists]
    with store.transaction() as conn:
        list_ids = require_lists(conn, refs)
        row = q.get_contact_by_key(conn, address.key)
        if row is None:
            if is_forgotten(conn, config, address.key):
                raise ConflictError(f"{address.email} was forgotten and cannot be added again")
            contact_id = q.insert_contact(
                conn,
                email=address.email,
                email_ascii=ascii_form(address),
                email_key=address.key,
                name=name,
                organization=organization,
                language=lang or config.defaults.language,
                attributes={},
                consent_source=consent_source,
                now=now,
            )
            outcome = "added"
        else:
            contact_id = int(row["id"])
            if row["status"] != "subscribed":
                raise ConflictError(
                    f"{row['email']} is {row['status']}; only `mailer contacts resubscribe`"
                    " subscribes it again"
                )
            new = (
                name or row["name"],
                organization or row["organization"],
                lang or row["language"],
            )
            outcome = "unchanged"
            if new != (row["name"], row["organization"], row["language"]):
                q.update_contact(
                    conn,
                    contact_id,
                    name=new[0],
                    organization=new[1],
                    language=new[2],
                    attributes=json.loads(row["attributes"] or "{}"),
                    now=now,
                )
                outcome = "updated"
        for list_id in list_ids.values():
            if q.add_membership(conn, list_id, contact_id) and outcome == "unchanged":
                outcome = "updated"
        stored = q.get_contact(conn, contact_id)
        assert stored is not None
        view = _view(stored, q.contact_lists(conn, contact_id))
    return AddReport(view, outcome)


# --- edit ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EditReport:
    contact: ContactView
    changes: list[str]  # what changed, as a person reads it ("organisation 'X' → 'Y'")


def _edited_text(option: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not value.replace("\r", " ").replace("\n", " ").replace("\t", " ").isprintable():
        raise InputError(f"{option} holds control characters; write plain text")
    return clean_line(value)


def edit_contact(
    store: Store,
    config: Config,
    email: str,
    *,
    name: str | None = None,
    first_name: str | None = None,
    organization: str | None = None,
    language: str | None = None,
    add_lists: Sequence[str] = (),
    remove_lists: Sequence[str] = (),
    now: datetime,
) -> EditReport:
    """Change a contact's fields and lists (its status only changes through its own commands).

    A list to add must exist (NotFoundError with a suggestion); removing a list the contact
    is not in is no error. An empty value clears a field (the name and first name).
    """
    from mailer.audience.lists import parse_list_ref, require_lists
    from mailer.store import contacts as q

    address = parse_address(email)
    fields = {
        "name": _edited_text("--name", name),
        "first name": _edited_text("--first-name", first_name),
        "organisation": _edited_text("--org", organization),
        "language": _check_language(language),
    }
    adds = [parse_list_ref(text, config.list_kinds) for text in add_lists]
    removes = [parse_list_ref(text, config.list_kinds) for text in remove_lists]
    with store.transaction() as conn:
        row = q.get_contact_by_key(conn, address.key)
        if row is None:
            if is_forgotten(conn, config, address.key):
                raise ConflictError(f"{address.email} was forgotten; there is nothing to edit")
            raise NotFoundError(f"no contact {address.email}")
        contact_id = int(row["id"])
        add_ids = require_lists(conn, adds)
        ids = q.all_list_ids(conn)
        old = {
            "name": row["name"],
            "first name": row["first_name"],
            "organisation": row["organization"],
            "language": row["language"],
        }
        new = {key: old[key] if value is None else value for key, value in fields.items()}
        changes = [f"{key} {old[key]!r} → {new[key]!r}" for key in old if new[key] != old[key]]
        if changes:
            q.update_contact(
                conn,
                contact_id,
                name=new["name"],
                organization=new["organisation"],
                language=new["language"],
                attributes=json.loads(row["attributes"] or "{}"),
                first_name=new["first name"],
                now=now,
            )
        for (kind, slug), list_id in add_ids.items():
            if q.add_membership(conn, list_id, contact_id):
                changes.append(f"+ {kind}:{slug}")
        for gone in removes:
            found = ids.get((gone.kind, gone.slug))
            if found is not None and q.remove_membership(conn, found, contact_id):
                changes.append(f"- {gone}")
        stored = q.get_contact(conn, contact_id)
        assert stored is not None
        return EditReport(_view(stored, q.contact_lists(conn, contact_id)), changes)


# --- list, show, export -------------------------------------------------------------------


def list_contacts(store: Store, config: Config, segment: str | None = None) -> list[ContactView]:
    """Contacts (any status) matching `segment` (all when None), by address."""
    from mailer.audience.segments import compile_segment
    from mailer.store import contacts as q

    conn = store.conn
    where, params = "1", ()
    if segment is not None:
        compiled = compile_segment(conn, segment, config.list_kinds)
        where, params = compiled.where, compiled.params
    rows = q.select_contacts(conn, where, params)
    lists = q.lists_by_contact(conn, [int(r["id"]) for r in rows])
    return [_view(r, lists[int(r["id"])]) for r in rows]


def show_contact(store: Store, email: str) -> ContactView:
    """One contact by address (in any case or Unicode form)."""
    from mailer.store import contacts as q

    row = _find(store.conn, email)
    view = _view(row, q.contact_lists(store.conn, int(row["id"])))
    return replace(
        view,
        last_change=last_event(store.conn, view.id),
        consent=consent_history(store.conn, view.id),
    )


def consent_history(conn: sqlite3.Connection, contact_id: int) -> list[dict[str, Any]]:
    """The contact's consent events (signups, preference changes): source, time, version."""
    from mailer.store import signups as q_signups
    from mailer.timeutil import from_db

    return [
        {
            "at": from_db(r["at"]).isoformat(),
            "source": r["source"],
            "action": r["action"],
            "version": r["consent_version"],
            "text_hash": r["consent_hash"],
            "detail": r["detail"] or "",
        }
        for r in q_signups.consent_events(conn, [contact_id])
    ]


EXPORT_FIELDS = ("email", "name", "organization", "language", "status")


CONSENT_FIELDS = ("consent_source", "consent_at", "consent_version", "consent_confirmed_at")


def export_contacts(
    store: Store,
    config: Config,
    out: IO[str],
    segment: str | None = None,
    *,
    consent: bool = False,
) -> int:
    """Write contacts as CSV that `contacts import` reads back unchanged; return the count.

    Columns: email, name, organization, language, status, one per list kind (names joined
    by `|`), then one per attribute key; with `consent`, the consent columns last (how
    the contact came: import file, staff or signup; and the latest confirmed consent).
    UTF-8 with BOM, `defaults.csv_delimiter`, and a `'` before a cell that would start a
    formula (import removes it).
    """
    from mailer.audience.lists import slugify
    from mailer.store import contacts as q

    contacts = list_contacts(store, config, segment)
    names = q.list_names(store.conn)
    kinds = list(config.list_kinds)
    for view in contacts:  # lists of a kind no longer configured still go out
        for ref in view.lists:
            kind = ref.split(":", 1)[0]
            if kind not in kinds:
                kinds.append(kind)
    keys = sorted({key for view in contacts for key in view.attributes})

    def cell_name(kind: str, slug: str) -> str:
        # The display name when it slugifies back to the same list, else the slug itself.
        name = names.get((kind, slug), slug)
        if "|" not in name and name == clean_line(name) and slugify(name) == slug:
            return name
        return slug

    on_record = _consent_columns(store, [v.id for v in contacts]) if consent else {}

    def row(view: ContactView) -> list[str]:
        per_kind: dict[str, list[str]] = {kind: [] for kind in kinds}
        for ref in view.lists:
            kind, slug = ref.split(":", 1)
            per_kind[kind].append(cell_name(kind, slug))
        return [
            view.email,
            view.name,
            view.organization,
            view.language,
            view.status,
            *("|".join(per_kind[kind]) for kind in kinds),
            *(_attribute_cell(view.attributes.get(key)) for key in keys),
            *(on_record.get(view.id, ("", "", "", "")) if consent else ()),
        ]

    header = [*EXPORT_FIELDS, *kinds, *keys, *(CONSENT_FIELDS if consent else ())]
    write_csv(out, header, map(row, contacts), config.defaults.csv_delimiter)
    return len(contacts)


def _consent_columns(store: Store, ids: list[int]) -> dict[int, tuple[str, str, str, str]]:
    from mailer.store import signups as q_signups
    from mailer.timeutil import from_db

    latest: dict[int, tuple[str, str]] = {}
    for r in q_signups.consent_events(store.conn, ids):
        if r["consent_version"]:
            latest[int(r["contact_id"])] = (r["consent_version"], from_db(r["at"]).isoformat())
    out = {}
    for cid, source, at in q_signups.contact_consent(store.conn, ids):
        version, confirmed = latest.get(cid, ("", ""))
        out[cid] = (source, from_db(at).isoformat() if at else "", version, confirmed)
    return out


def _attribute_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# --- status changes and forgetting --------------------------------------------------------


def unsubscribe(
    store: Store,
    email: str,
    *,
    now: datetime,
    source: str = "cli",
    campaign_id: int | None = None,
) -> StatusChange:
    """Mark a contact unsubscribed and record the event (no change when it already is)."""
    row = _find(store.conn, email)
    with store.transaction() as conn:
        return subscriptions.change_status(
            conn, int(row["id"]), "unsubscribed", source=source, now=now, campaign_id=campaign_id
        )


def resubscribe(
    store: Store,
    email: str,
    *,
    now: datetime,
    source: str = "cli",
    campaign_id: int | None = None,
    force: bool = False,
) -> StatusChange:
    """Subscribe an unsubscribed contact again and record the event (a bounce stays).

    A person's own unsubscribe (a link, the preferences page, a complaint) is overridden
    only with `force`, and the event says so.
    """
    row = _find(store.conn, email)
    with store.transaction() as conn:
        change = subscriptions.change_status(
            conn,
            int(row["id"]),
            "subscribed",
            source=source,
            now=now,
            campaign_id=campaign_id,
            force=force,
            only_from="unsubscribed",
        )
    if change.refused == "bounced":
        raise ConflictError(
            f"{change.email} is bounced; it cannot be resubscribed"
            " (`mailer contacts unbounce` subscribes it again)"
        )
    if change.refused:
        raise ConflictError(f"{change.email} is {change.refused}")
    return change


def unbounce(store: Store, email: str, *, now: datetime) -> StatusChange:
    """Subscribe a bounced contact again; refused when an unsubscribe or complaint is on record."""
    row = _find(store.conn, email)
    change = subscriptions.unbounce(store, int(row["id"]), now)
    if change.refused:
        raise ConflictError(f"{change.email} is {change.refused}; it stays as it is")
    return change


@dataclass(frozen=True)
class ForgetReport:
    email: str
    lists: int  # memberships removed


def forget(store: Store, config: Config, email: str, *, now: datetime) -> ForgetReport:
    """Erase a contact and its memberships; keep only a keyed hash that refuses it later."""
    from mailer.audience.signups import erase_signups
    from mailer.store import contacts as q
    from mailer.store import engagement as q_engagement

    secret = config.secret()
    with store.transaction() as conn:
        row = _find(conn, email)
        contact_id = int(row["id"])
        lists = len(q.contact_lists(conn, contact_id))
        q_engagement.forget_contact(conn, contact_id)  # no keyed click hash points at them
        q.add_suppression(
            conn, suppression_hash(secret, row["email_key"]), "forgotten", now, secret_id(secret)
        )
        erase_signups(conn, row["email_key"], contact_id)
        if not q.delete_contact(conn, contact_id):
            raise ConflictError(f"{row['email']} changed meanwhile; try again")
        return ForgetReport(row["email"], lists)
