"""Import contacts from a spreadsheet's CSV export, in one transaction.

The file is read by `mailer.audience.sheet`. Every non-empty row ends in exactly one of: added,
updated, unchanged, invalid, duplicate (of an earlier row in the file) or suppressed (an
unsubscribed, bounced or forgotten address, which an import never re-subscribes, or a
status the sheet asks for that is not a move: bounced never becomes unsubscribed). Every
status an import sets goes through `subscriptions.change_status` with source `import`.
"""

from __future__ import annotations

import csv
import gc
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailer.addresses import (
    InvalidAddress,
    ascii_form,
    clean_line,
    parse_address,
    suppression_hash,
)
from mailer.audience.languages import EXACT_CELLS as EXACT_LANGUAGE_CELLS
from mailer.audience.languages import parse_language
from mailer.audience.lists import ListRef, parse_list_ref, slugify
from mailer.audience.sheet import (
    DAMAGED,
    Columns,
    looks_damaged,
    map_columns,
    read_rows,
    sync_kinds,
)
from mailer.audience.subscriptions import SUBSCRIBED, change_status, move_refusal
from mailer.audience.suppressions import suppression_secrets
from mailer.errors import AddressError, FileInputError, InputError, MailerError
from mailer.states import ContactStatus
from mailer.store import contacts as q
from mailer.timeutil import to_db

if TYPE_CHECKING:
    from mailer.config import Config
    from mailer.store import Store

_json_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode
_json_string = json.encoder.encode_basestring  # C implementation: one string, quoted


def _to_json(attributes: dict[str, Any]) -> str:
    """JSON of an attribute dict (sorted keys, as json.dumps writes it), fast for strings."""
    if all(type(v) is str for v in attributes.values()):
        return (
            "{"
            + ", ".join(
                f"{_json_string(k)}: {_json_string(v)}" for k, v in sorted(attributes.items())
            )
            + "}"
        )
    return _json_encode(attributes)


_STATUSES = tuple(status.value for status in ContactStatus)


@dataclass(frozen=True)
class RowProblem:
    row: int  # spreadsheet row number; the header is row 1
    outcome: str  # 'invalid', 'duplicate', 'suppressed', or 'warning' (imported, but look)
    email: str
    reason: str


@dataclass
class ImportReport:
    path: str
    encoding: str
    delimiter: str
    rows: int = 0  # non-empty data rows
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: int = 0
    duplicate: int = 0
    suppressed: int = 0
    lists_created: list[str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # about the header (see Columns.notes)
    changes: list[RowProblem] = field(default_factory=list)  # outcome 'updated': what changed
    dry_run: bool = False
    written: bool = False

    def summary(self) -> str:
        parts = [
            f"{self.added} added",
            f"{self.updated} updated",
            f"{self.unchanged} unchanged",
            f"{self.invalid} invalid",
            f"{self.duplicate} duplicate",
            f"{self.suppressed} suppressed",
        ]
        prefix = "Dry run, nothing written: " if self.dry_run else ""
        return f"{prefix}{self.rows} rows: " + ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "rows": self.rows,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "invalid": self.invalid,
            "duplicate": self.duplicate,
            "suppressed": self.suppressed,
            "lists_created": self.lists_created,
            "problems": [p.__dict__ for p in self.problems],
            "notes": list(self.notes),
            "changes": [p.__dict__ for p in self.changes],
            "dry_run": self.dry_run,
        }


class StrictImportError(InputError):
    """`--strict` and some rows are invalid: nothing was written."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(
            f"{report.invalid} invalid row(s); nothing written (--strict)", where=report.path
        )
        self.report = report


# --- one row ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Row:
    number: int
    email: str
    email_ascii: str
    key: str
    name: str
    organization: str
    language: str | None
    status: str | None
    lists: dict[tuple[str, str], str]  # (kind, slug) -> display name
    attributes: dict[str, str]
    first_name: str = ""


class _Invalid(Exception):
    def __init__(self, email: str, reason: str) -> None:
        self.email = email
        self.reason = reason


def _parse_row(
    number: int,
    record: list[str],
    joined: str,
    columns: Columns,
    extra_lists: Sequence[ListRef],
) -> _Row:
    width = columns.width
    if joined.isprintable() and "  " not in joined:
        cells = [cell.strip() for cell in record]  # no line break or double space anywhere
    else:
        cells = [clean_line(cell) if cell else "" for cell in record]
    if len(cells) < width:
        cells.extend([""] * (width - len(cells)))
    fields = columns.fields
    raw_email = cells[fields["email"]]
    if len(cells) > width and any(cells[width:]):
        raise _Invalid(raw_email, f"{len(cells)} cells but the header has {width}")
    if not raw_email:
        raise _Invalid("", "no e-mail address")
    try:
        address = parse_address(raw_email)
    except AddressError as exc:
        raise _Invalid(
            raw_email, exc.reason if isinstance(exc, InvalidAddress) else exc.message
        ) from None
    index = fields.get("language")
    language = _language_cell(cells[index], address.email) if index is not None else None
    index = fields.get("status")
    status = _status_cell(cells[index], address.email) if index is not None else None
    lists = _list_cells(cells, columns.kinds, address.email)
    for ref in extra_lists:
        lists.setdefault((ref.kind, ref.slug), ref.name)
    attributes = {key: cells[i] for i, key in columns.attributes.items() if cells[i]}
    name, first_name = _names(cells, fields)
    index = fields.get("organization")
    return _Row(
        number,
        address.email,
        ascii_form(address),
        address.key,
        name or address.display_name,
        cells[index] if index is not None else "",
        language,
        status,
        lists,
        attributes,
        first_name,
    )


def _names(cells: list[str], fields: dict[str, int]) -> tuple[str, str]:
    """(name, first name): the name column, else the first and last name joined."""
    index = fields.get("name")
    name = cells[index] if index is not None else ""
    index = fields.get("first_name")
    first = cells[index] if index is not None else ""
    index = fields.get("last_name")
    last = cells[index] if index is not None else ""
    return name or " ".join(part for part in (first, last) if part), first


def _language_cell(cell: str, email: str) -> str | None:
    if not cell:
        return None
    language = EXACT_LANGUAGE_CELLS.get(cell)
    if language is not None:
        return language
    try:
        return parse_language(cell)
    except ValueError as exc:
        raise _Invalid(email, str(exc)) from None


def _status_cell(cell: str, email: str) -> str | None:
    status = cell.lower()
    if not status:
        return None
    if status not in _STATUSES:
        raise _Invalid(email, f"status {status!r} is not one of {', '.join(_STATUSES)}")
    return status


def _list_cells(cells: list[str], kinds: dict[int, str], email: str) -> dict[tuple[str, str], str]:
    """The lists a row's cells name: (kind, slug) -> display name."""
    lists: dict[tuple[str, str], str] = {}
    for index, kind in kinds.items():
        text = cells[index]
        if not text:
            continue
        for part in text.split("|"):
            display = part.strip()
            if not display:
                continue
            slug = slugify(display)
            if not slug:
                raise _Invalid(email, f"list name {display!r} has no letters or digits")
            lists.setdefault((kind, slug), display)
    return lists


# --- the import ---------------------------------------------------------------------------


def import_contacts(
    store: Store,
    config: Config,
    path: str | Path,
    *,
    lists: Iterable[str] = (),
    strict: bool = False,
    dry_run: bool = False,
    now: datetime,
    secrets: Sequence[bytes] | None = None,
    progress: Callable[[int, int], None] | None = None,
    sync_lists: Iterable[str] = (),
) -> ImportReport:
    """Import the CSV file at `path` in one transaction and return what happened per row.

    `lists` are existing `KIND:SLUG` lists every imported row joins. With `strict`, any
    invalid row raises StrictImportError and nothing is written; with `dry_run`, nothing is
    written. `sync_lists` are kinds for which the sheet is authoritative: a contact in it
    leaves the lists of that kind its row no longer names. `progress(done, total)` is
    called now and then while rows are checked.
    """
    was_enabled = gc.isenabled()
    # Bulk parsing makes ~10 objects per row and keeps them all; the cyclic collector
    # would rescan them over and over (about a third of the import's time) for no gain.
    gc.disable()
    try:
        options = _Options(lists, strict, dry_run, now, secrets, progress, sync_lists)
        return _import(store, config, Path(path), options)
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class _Options:
    lists: Iterable[str]
    strict: bool
    dry_run: bool
    now: datetime
    secrets: Sequence[bytes] | None
    progress: Callable[[int, int], None] | None
    sync_lists: Iterable[str]


def _import(store: Store, config: Config, path: Path, options: _Options) -> ImportReport:
    from mailer.audience.lists import require_lists

    kinds = config.list_kinds
    extra = [parse_list_ref(text, kinds) for text in options.lists]
    require_lists(store.conn, extra)
    strict, dry_run, now, progress = options.strict, options.dry_run, options.now, options.progress
    encoding, delimiter, records = read_rows(path)
    report = ImportReport(str(path), encoding, delimiter, dry_run=dry_run)

    # The header is the first non-blank record; blank rows count as spreadsheet rows.
    start = next((i for i, r in enumerate(records) if any(c.strip() for c in r)), None)
    if start is None:
        raise FileInputError("no header row", where=str(path))
    columns = map_columns(records[start], kinds, str(path))
    sync = sync_kinds(options.sync_lists, kinds, columns)
    report.notes = columns.notes()

    parsed: dict[str, _Row] = {}
    total = len(records) - start - 1
    for offset, record in enumerate(records[start + 1 :], start=start + 2):
        if progress is not None and (offset - start - 2) % 5000 == 0:
            progress(offset - start - 2, total)  # rows checked so far
        joined = "".join(record)
        if not joined.strip():
            continue
        report.rows += 1
        try:
            row = _parse_row(offset, record, joined, columns, extra)
        except _Invalid as bad:
            report.invalid += 1
            report.problems.append(RowProblem(offset, "invalid", bad.email, bad.reason))
            continue
        if looks_damaged(row.email):
            report.problems.append(RowProblem(offset, "warning", row.email, DAMAGED))
        first = parsed.get(row.key)
        if first is not None:
            for ref, display in row.lists.items():
                first.lists.setdefault(ref, display)
            report.duplicate += 1
            report.problems.append(
                RowProblem(offset, "duplicate", row.email, f"same address as row {first.number}")
            )
            continue
        parsed[row.key] = row

    if progress is not None:
        progress(total, total)
    if strict and report.invalid:
        raise StrictImportError(report)

    try:
        with store.transaction() as conn:
            _plan_and_apply(conn, config, path, report, parsed, options.secrets, sync, now, dry_run)
    except sqlite3.Error as exc:
        raise MailerError(f"database error, nothing imported: {exc}", where=str(path)) from None
    report.problems.sort(key=lambda p: p.row)
    return report


def _plan_and_apply(
    conn: sqlite3.Connection,
    config: Config,
    path: Path,
    report: ImportReport,
    parsed: dict[str, _Row],
    secrets: Sequence[bytes] | None,
    sync: set[str],
    now: datetime,
    dry_run: bool,
) -> None:
    q.use_bulk_cache(conn)
    plan = _Plan(conn, config, path, report, now)
    plan.sync = sync
    if plan.suppressed:  # the secrets are needed only to recognise forgotten addresses
        plan.secrets = suppression_secrets(conn, config, secrets)
    known_ids = [int(plan.existing[k]["id"]) for k in parsed if k in plan.existing]
    plan.current = q.memberships_of(conn, known_ids)
    existing = plan.existing
    fresh: list[tuple[str, _Row]] = []
    for key, row in parsed.items():
        old = existing.get(key)
        if old is None:
            fresh.append((key, row))
        else:
            plan.known_contact(row, old)
    plan.new_contacts(fresh)
    report.lists_created = sorted(f"{kind}:{slug}" for kind, slug in plan.new_lists)
    report.changes.sort(key=lambda change: change.row)
    if not dry_run:
        plan.apply(conn, now)
        report.written = True


class _Plan:
    """What an import will write, gathered row by row before anything is written."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        config: Config,
        path: Path,
        report: ImportReport,
        now: datetime,
    ) -> None:
        self.report = report
        self.path = path
        self.existing = q.all_contacts_by_key(conn)
        self.suppressed = q.suppression_hashes(conn)
        self.secrets: Sequence[bytes] = ()
        self.list_ids = q.all_list_ids(conn)
        self.ref_of = {list_id: ref for ref, list_id in self.list_ids.items()}
        self.current: dict[int, set[int]] = {}
        self.stamp = to_db(now)
        self.default_language = config.defaults.language
        self.consent = f"import:{path.name}"
        self.next_id = q.next_contact_id(conn)
        self.inserts: list[tuple[Any, ...]] = []
        self.updates: list[tuple[Any, ...]] = []
        self.moves: list[tuple[int, str, int]] = []  # (contact_id, new status, row number)
        self.wanted: list[tuple[tuple[str, str], int]] = []  # ((kind, slug), contact_id)
        self.unwanted: list[tuple[int, int]] = []  # (list_id, contact_id), for --sync-lists
        self.sync: set[str] = set()  # kinds the sheet is authoritative for
        self.new_lists: dict[tuple[str, str], str] = {}

    def _problem(self, row: _Row, reason: str) -> None:
        self.report.suppressed += 1
        self.report.problems.append(RowProblem(row.number, "suppressed", row.email, reason))

    def _want(self, refs: Iterable[tuple[str, str]], row: _Row, contact_id: int) -> None:
        for ref in refs:
            if ref not in self.list_ids:
                self.new_lists.setdefault(ref, row.lists[ref])
            self.wanted.append((ref, contact_id))

    def new_contacts(self, fresh: list[tuple[str, _Row]]) -> None:
        # The hot loop of a first import (one pass per new row): names bound locally.
        suppressed, secrets = self.suppressed, self.secrets
        stamp, consent, default_language = self.stamp, self.consent, self.default_language
        list_ids, new_lists, wanted = self.list_ids, self.new_lists, self.wanted
        inserts, moves = self.inserts, self.moves
        contact_id = self.next_id - 1
        for key, row in fresh:
            if (
                suppressed
                and secrets
                and any(suppression_hash(s, key) in suppressed for s in secrets)
            ):
                self._problem(row, "forgotten address")
                continue
            contact_id += 1
            # A new contact starts subscribed; another status in the sheet is its first move.
            inserts.append(
                (
                    contact_id,
                    row.email,
                    row.email_ascii,
                    key,
                    row.name,
                    row.organization,
                    row.language or default_language,
                    SUBSCRIBED,
                    _to_json(row.attributes) if row.attributes else "{}",
                    consent,
                    stamp,
                    stamp,
                    stamp,
                    row.first_name,
                )
            )
            if row.status is not None and row.status != SUBSCRIBED:
                moves.append((contact_id, row.status, row.number))
            for ref, display in row.lists.items():
                if ref not in list_ids:
                    new_lists.setdefault(ref, display)
                wanted.append((ref, contact_id))
        self.report.added += contact_id - self.next_id + 1
        self.next_id = contact_id + 1

    def known_contact(self, row: _Row, old: sqlite3.Row) -> None:
        contact_id = int(old["id"])
        old_status = old["status"]
        if old_status != SUBSCRIBED and row.status in (None, SUBSCRIBED):
            self._problem(row, f"{old_status}; not re-subscribed")
            return
        moves = False
        if row.status is not None and row.status != old_status:
            refused = move_refusal(old_status, row.status, "import")
            if refused:
                self._problem(row, refused)
                return
            self.moves.append((contact_id, row.status, row.number))
            moves = True
        old_attributes = json.loads(old["attributes"] or "{}")
        before = {
            "name": old["name"],
            "first name": old["first_name"],
            "organisation": old["organization"],
            "language": old["language"],
        }
        after = {
            "name": row.name or old["name"],
            "first name": row.first_name or old["first_name"],
            "organisation": row.organization or old["organization"],
            "language": row.language or old["language"],
        }
        attributes = {**old_attributes, **row.attributes}
        have = {self.ref_of[i] for i in self.current.get(contact_id, ())}
        missing = [ref for ref in row.lists if ref not in have]
        leaving = sorted(ref for ref in have if ref[0] in self.sync and ref not in row.lists)
        changed = [f"{k} {before[k]!r} → {after[k]!r}" for k in before if before[k] != after[k]]
        changed += [
            f"{k} {old_attributes.get(k, '')!r} → {v!r}"
            for k, v in row.attributes.items()
            if old_attributes.get(k) != v
        ]
        if changed:
            self.updates.append(
                (
                    after["name"],
                    after["organisation"],
                    after["language"],
                    _to_json(attributes),
                    self.stamp,
                    after["first name"],
                    contact_id,
                )
            )
        self._want(missing, row, contact_id)
        self.unwanted += [(self.list_ids[ref], contact_id) for ref in leaving]
        changed += [f"+ {kind}:{slug}" for kind, slug in missing]
        changed += [f"- {kind}:{slug}" for kind, slug in leaving]
        if row.status is not None and moves:
            changed.append(f"status {old_status} → {row.status}")
        if changed:
            self.report.updated += 1
            self.report.changes.append(
                RowProblem(row.number, "updated", row.email, "; ".join(changed))
            )
        else:
            self.report.unchanged += 1

    def apply(self, conn: sqlite3.Connection, now: datetime) -> None:
        if self.new_lists:
            self.list_ids = q.insert_lists_many(
                conn, [(kind, slug, name) for (kind, slug), name in self.new_lists.items()], now
            )
        q.insert_contacts_many(conn, self.inserts)
        q.update_contacts_many(conn, self.updates)
        for contact_id, status, number in sorted(self.moves, key=lambda move: move[2]):
            change = change_status(
                conn,
                contact_id,
                status,
                source="import",
                now=now,
                detail=f"{self.path.name} row {number}",
            )
            if not change.changed:
                raise MailerError(
                    "contacts changed during the import; nothing imported; run it again"
                )
        q.add_memberships_many(conn, [(self.list_ids[ref], cid) for ref, cid in self.wanted])
        q.remove_memberships_many(conn, self.unwanted)


def write_report(report: ImportReport, target: str | Path) -> None:
    """Write the invalid, duplicate and suppressed rows as CSV (row, outcome, email, reason)."""
    try:
        with open(target, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["row", "outcome", "email", "reason"])
            for problem in report.problems:
                writer.writerow([problem.row, problem.outcome, problem.email, problem.reason])
    except OSError as exc:
        raise FileInputError(f"cannot write report: {exc.strerror}", where=str(target)) from None
