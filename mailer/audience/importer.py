"""Import contacts from a spreadsheet's CSV export, in one transaction.

The file is read by `mailer.audience.sheet`. Every non-empty row ends in exactly one of: added,
updated, unchanged, invalid, duplicate (of an earlier row in the file) or suppressed (an
unsubscribed, bounced or forgotten address, which an import never re-subscribes, or a
status the sheet asks for that is not a move: bounced never becomes unsubscribed). Every
status an import sets goes through `subscriptions.change_status` with source `import`.
"""

from __future__ import annotations

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
    has_control,
    parse_address,
    suppression_hash,
)
from mailer.audience.languages import EXACT_CELLS as EXACT_LANGUAGE_CELLS
from mailer.audience.languages import parse_language
from mailer.audience.lists import ListRef, parse_list_ref, slugify
from mailer.audience.sheet import Columns, map_columns, read_rows
from mailer.audience.staging import Row as _Row
from mailer.audience.staging import Stage
from mailer.audience.subscriptions import SUBSCRIBED, change_status, move_refusal
from mailer.audience.suppressions import suppression_secrets
from mailer.errors import AddressError, FileInputError, InputError, MailerError
from mailer.files import csv_bytes, plain_cell, write_atomic
from mailer.states import ContactStatus
from mailer.store import contacts as q
from mailer.store import signups as q_signups
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
    outcome: str  # 'invalid', 'duplicate' or 'suppressed'
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

    def duplicate_of(self, number: int, email: str, first: int) -> None:
        """Count row `number` as a duplicate of row `first`."""
        self.duplicate += 1
        self.problems.append(RowProblem(number, "duplicate", email, f"same address as row {first}"))

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
        bad = next((cell for cell in cells if has_control(cell)), None)
        if bad is not None:  # C1 controls and bidi overrides (C0 ones fail the whole file)
            raise _Invalid("", "a cell contains a control character")
    if "'" in joined:  # CSV written by the tool: drop the `'` it put before a formula
        cells = [plain_cell(cell) for cell in cells]
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
    index = fields.get("name")
    name = cells[index] if index is not None else ""
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
    )


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
) -> ImportReport:
    """Import the CSV file at `path` in one transaction and return what happened per row.

    `lists` are `KIND:SLUG` lists every imported row joins. With `strict`, any invalid row
    raises StrictImportError and nothing is written; with `dry_run`, nothing is written.
    `progress(done, total)` is called now and then while rows are checked.
    """
    was_enabled = gc.isenabled()
    # Bulk parsing makes ~10 objects per row and keeps them all; the cyclic collector
    # would rescan them over and over (about a third of the import's time) for no gain.
    gc.disable()
    try:
        return _import(store, config, Path(path), lists, strict, dry_run, now, secrets, progress)
    finally:
        if was_enabled:
            gc.enable()


def _import(
    store: Store,
    config: Config,
    path: Path,
    lists: Iterable[str],
    strict: bool,
    dry_run: bool,
    now: datetime,
    secrets: Sequence[bytes] | None,
    progress: Callable[[int, int], None] | None,
) -> ImportReport:
    kinds = config.list_kinds
    extra = [parse_list_ref(text, kinds) for text in lists]
    encoding, delimiter, records, lines = read_rows(path)
    report = ImportReport(str(path), encoding, delimiter, dry_run=dry_run)

    # The header is the first non-blank record; blank rows count as spreadsheet rows.
    numbered = enumerate(records, start=1)
    header = next(((n, r) for n, r in numbered if any(c.strip() for c in r)), None)
    if header is None:
        raise FileInputError("no header row", where=str(path))
    columns = map_columns(header[1], kinds, str(path))
    first, total = header[0] + 1, max(lines - header[0], 0)

    # Phase 1, outside any transaction: check every row, stage the first of each address
    # (a TEMP table, so memory stays flat) and count the rest as duplicates.
    conn = store.conn
    q.stage_open(conn)
    try:
        stage = Stage(conn, report.duplicate_of)
        for number, record in numbered:
            if progress is not None and (number - first) % 5000 == 0:
                progress(min(number - first, total), total)  # rows checked so far
            joined = "".join(record)
            if not joined.strip():
                continue
            report.rows += 1
            try:
                row = _parse_row(number, record, joined, columns, extra)
            except _Invalid as bad:
                report.invalid += 1
                report.problems.append(RowProblem(number, "invalid", bad.email, bad.reason))
                continue
            stage.add(row)
        stage.finish()
        if progress is not None:
            progress(total, total)
        if strict and report.invalid:
            raise StrictImportError(report)
        # Phase 2: one transaction, the staged rows planned and written a chunk at a time.
        try:
            with store.transaction() as conn:
                _plan_and_apply(conn, config, path, report, stage.batches(), secrets, now, dry_run)
        except sqlite3.Error as exc:
            raise MailerError(f"database error, nothing imported: {exc}", where=str(path)) from None
    finally:
        q.stage_close(conn)
    report.problems.sort(key=lambda p: p.row)
    return report


def _plan_and_apply(
    conn: sqlite3.Connection,
    config: Config,
    path: Path,
    report: ImportReport,
    batches: Iterable[list[_Row]],
    secrets: Sequence[bytes] | None,
    now: datetime,
    dry_run: bool,
) -> None:
    q.use_bulk_cache(conn)
    plan = _Plan(conn, config, path, report, now)
    if plan.suppressed:  # the secrets are needed only to recognise forgotten addresses
        plan.secrets = suppression_secrets(conn, config, secrets)
    any_contacts = q.has_contacts(conn)  # before the import: else every address is new
    created: dict[tuple[str, str], str] = {}
    for batch in batches:
        parsed = {row.key: row for row in batch}
        existing = q.contacts_by_key(conn, list(parsed)) if any_contacts else {}
        plan.current = q.memberships_of(conn, [int(row["id"]) for row in existing.values()])
        fresh: list[tuple[str, _Row]] = []
        for key, row in parsed.items():
            old = existing.get(key)
            if old is None:
                fresh.append((key, row))
            else:
                plan.known_contact(row, old)
        plan.new_contacts(fresh)
        created.update(plan.new_lists)
        if not dry_run:
            plan.apply(conn, now)
            plan.new_lists = {}
        plan.inserts, plan.updates, plan.moves, plan.wanted = [], [], [], []
    report.lists_created = sorted(f"{kind}:{slug}" for kind, slug in created)
    report.written = not dry_run


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
        self.new_lists: dict[tuple[str, str], str] = {}
        self.departed = q_signups.departures(conn)  # lists people left on the preference page

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
        name = row.name or old["name"]
        organization = row.organization or old["organization"]
        language = row.language or old["language"]
        old_attributes = json.loads(old["attributes"] or "{}")
        attributes = {**old_attributes, **row.attributes}
        have = {self.ref_of[i] for i in self.current.get(contact_id, ())}
        missing = [ref for ref in row.lists if ref not in have]
        if self.departed:
            missing = self._not_departed(row, contact_id, missing)
        fields = (name, organization, language, attributes)
        if fields != (old["name"], old["organization"], old["language"], old_attributes):
            self.updates.append(
                (name, organization, language, _to_json(attributes), self.stamp, contact_id)
            )
            moves = True
        self._want(missing, row, contact_id)
        if moves or missing:
            self.report.updated += 1
        else:
            self.report.unchanged += 1

    def _not_departed(
        self, row: _Row, contact_id: int, refs: list[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """Leave out the lists this person left by their own choice (reported as suppressed)."""
        kept = []
        for ref in refs:
            list_id = self.list_ids.get(ref)
            if list_id is not None and (contact_id, list_id) in self.departed:
                self.report.suppressed += 1
                reason = f"left {ref[0]}:{ref[1]} on the preference page; not re-joined"
                self.report.problems.append(RowProblem(row.number, "suppressed", row.email, reason))
            else:
                kept.append(ref)
        return kept

    def apply(self, conn: sqlite3.Connection, now: datetime) -> None:
        if self.new_lists:
            self.list_ids = q.insert_lists_many(
                conn, [(kind, slug, name) for (kind, slug), name in self.new_lists.items()], now
            )
            self.ref_of = {list_id: ref for ref, list_id in self.list_ids.items()}
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


def write_report(report: ImportReport, target: str | Path, delimiter: str = ";") -> None:
    """Write the invalid, duplicate and suppressed rows as CSV (row, outcome, email, reason).

    The cells repeat what the sheet held (`=HYPERLINK(…)` included): `csv_bytes` keeps a
    spreadsheet from running them; the file goes through a rename, readable by its owner.
    """
    rows = ((p.row, p.outcome, p.email, p.reason) for p in report.problems)
    data = csv_bytes(("row", "outcome", "email", "reason"), rows, delimiter)
    write_atomic(target, data, private=True)
