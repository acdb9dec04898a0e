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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailer.addresses import suppression_hash
from mailer.audience.lists import ListRef, parse_list_ref
from mailer.audience.sheet import (
    DAMAGED,
    Columns,
    InvalidRow,
    looks_damaged,
    map_columns,
    parse_row,
    read_rows,
    sync_kinds,
)
from mailer.audience.staging import Row as _Row
from mailer.audience.staging import Stage
from mailer.audience.subscriptions import SUBSCRIBED, change_status, move_refusal
from mailer.audience.suppressions import suppression_secrets
from mailer.errors import FileInputError, InputError, MailerError
from mailer.files import csv_bytes, write_atomic
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
    encoding, delimiter, records, lines = read_rows(path)
    report = ImportReport(str(path), encoding, delimiter, dry_run=options.dry_run)

    # The header is the first non-blank record; blank rows count as spreadsheet rows.
    numbered = enumerate(records, start=1)
    header = next(((n, r) for n, r in numbered if any(c.strip() for c in r)), None)
    if header is None:
        raise FileInputError("no header row", where=str(path))
    columns = map_columns(header[1], kinds, str(path))
    sync = sync_kinds(options.sync_lists, kinds, columns)
    report.notes = columns.notes()

    # Phase 1, outside any transaction: check every row, stage the first of each address
    # (a TEMP table, so memory stays flat) and count the rest as duplicates.
    conn = store.conn
    q.stage_open(conn)
    try:
        stage = Stage(conn, report.duplicate_of)
        _check_rows(
            numbered,
            header[0] + 1,
            max(lines - header[0], 0),
            columns,
            extra,
            options.progress,
            report,
            stage,
        )
        if options.strict and report.invalid:
            raise StrictImportError(report)
        # Phase 2: one transaction, the staged rows planned and written a chunk at a time.
        batches = stage.batches()
        try:
            with store.transaction() as conn:
                _plan_and_apply(conn, config, path, report, batches, sync, options)
        except sqlite3.Error as exc:
            raise MailerError(f"database error, nothing imported: {exc}", where=str(path)) from None
        finally:
            batches.close()  # its cursor on the staging table, else the table stays locked
    finally:
        q.stage_close(conn)
    report.problems.sort(key=lambda p: p.row)
    report.changes.sort(key=lambda change: change.row)
    return report


def _check_rows(
    numbered: Iterator[tuple[int, list[str]]],
    first: int,
    total: int,
    columns: Columns,
    extra: Sequence[ListRef],
    progress: Callable[[int, int], None] | None,
    report: ImportReport,
    stage: Stage,
) -> None:
    """Check every data row; stage the valid ones (the stage counts the duplicates)."""
    for number, record in numbered:
        if progress is not None and (number - first) % 5000 == 0:
            progress(min(number - first, total), total)  # rows checked so far
        joined = "".join(record)
        if not joined.strip():
            continue
        report.rows += 1
        try:
            row = parse_row(number, record, joined, columns, extra)
        except InvalidRow as bad:
            report.invalid += 1
            report.problems.append(RowProblem(number, "invalid", bad.email, bad.reason))
            continue
        if looks_damaged(row.email):
            report.problems.append(RowProblem(number, "warning", row.email, DAMAGED))
        stage.add(row)
    stage.finish()
    if progress is not None:
        progress(total, total)


def _plan_and_apply(
    conn: sqlite3.Connection,
    config: Config,
    path: Path,
    report: ImportReport,
    batches: Iterable[list[_Row]],
    sync: set[str],
    options: _Options,
) -> None:
    q.use_bulk_cache(conn)
    plan = _Plan(conn, config, path, report, options.now)
    plan.sync = sync
    if plan.suppressed:  # the secrets are needed only to recognise forgotten addresses
        plan.secrets = suppression_secrets(conn, config, options.secrets)
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
        if not options.dry_run:
            plan.apply(conn, options.now)
            plan.new_lists = {}
        plan.inserts, plan.updates, plan.moves, plan.wanted = [], [], [], []
        plan.unwanted = []
    report.lists_created = sorted(f"{kind}:{slug}" for kind, slug in created)
    report.written = not options.dry_run


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
        self.unwanted: list[tuple[int, int]] = []  # (list_id, contact_id), for --sync-lists
        self.sync: set[str] = set()  # kinds the sheet is authoritative for
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
        moved = False
        if row.status is not None and row.status != old_status:
            refused = move_refusal(old_status, row.status, "import")
            if refused:
                self._problem(row, refused)
                return
            self.moves.append((contact_id, row.status, row.number))
            moved = True
        changed = self._fields(row, old, contact_id)
        have = {self.ref_of[i] for i in self.current.get(contact_id, ())}
        missing = [ref for ref in row.lists if ref not in have]
        if self.departed:
            missing = self._not_departed(row, contact_id, missing)
        leaving = sorted(ref for ref in have if ref[0] in self.sync and ref not in row.lists)
        self._want(missing, row, contact_id)
        self.unwanted += [(self.list_ids[ref], contact_id) for ref in leaving]
        changed += [f"+ {kind}:{slug}" for kind, slug in missing]
        changed += [f"- {kind}:{slug}" for kind, slug in leaving]
        if moved:
            changed.append(f"status {old_status} → {row.status}")
        if changed:
            self.report.updated += 1
            self.report.changes.append(
                RowProblem(row.number, "updated", row.email, "; ".join(changed))
            )
        else:
            self.report.unchanged += 1

    def _fields(self, row: _Row, old: sqlite3.Row, contact_id: int) -> list[str]:
        """Plan the update of a known contact's fields; describe what changes."""
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
        changed = [f"{k} {before[k]!r} → {after[k]!r}" for k in before if before[k] != after[k]]
        changed += [
            f"{k} {old_attributes.get(k, '')!r} → {v!r}"
            for k, v in row.attributes.items()
            if old_attributes.get(k) != v
        ]
        if changed:
            attributes = {**old_attributes, **row.attributes}
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
        return changed

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
        q.remove_memberships_many(conn, self.unwanted)


def write_report(report: ImportReport, target: str | Path, delimiter: str = ";") -> None:
    """Write the invalid, duplicate and suppressed rows as CSV (row, outcome, email, reason).

    The cells repeat what the sheet held (`=HYPERLINK(…)` included): `csv_bytes` keeps a
    spreadsheet from running them; the file goes through a rename, readable by its owner.
    """
    rows = ((p.row, p.outcome, p.email, p.reason) for p in report.problems)
    data = csv_bytes(("row", "outcome", "email", "reason"), rows, delimiter)
    write_atomic(target, data, private=True)
