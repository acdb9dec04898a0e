"""Reading a spreadsheet's CSV export: encoding, delimiter, what each column holds, and
each data row checked into a staging Row (`parse_row`).

UTF-8 (with or without BOM), UTF-16 with BOM, or cp1252; `,` `;` or tab delimited (or
Excel's `sep=` line); headers in Finnish, Swedish or English.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailer.addresses import (
    InvalidAddress,
    ascii_form,
    clean_line,
    has_control,
    parse_address,
)
from mailer.audience.languages import EXACT_CELLS as EXACT_LANGUAGE_CELLS
from mailer.audience.languages import parse_language
from mailer.audience.lists import ListRef, slugify
from mailer.audience.staging import Row
from mailer.errors import AddressError, FileInputError, InputError
from mailer.files import plain_cell
from mailer.states import ContactStatus

_STATUSES = tuple(status.value for status in ContactStatus)

FIELDS = ("email", "name", "first_name", "last_name", "organization", "language", "status")

# Header aliases, compared case-insensitively with spaces, '-', '_' and '.' removed.
_FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "email": (
        "sähköposti",
        "sahkoposti",
        "sähköpostiosoite",
        "sposti",
        "epost",
        "epostadress",
        "email",
        "mail",
        "emailaddress",
    ),
    "name": ("nimi", "namn", "name", "fullname", "kokonimi"),
    # A first and a last name column make the name; the first name is kept for the greeting.
    "first_name": ("etunimi", "förnamn", "fornamn", "firstname", "givenname"),
    "last_name": ("sukunimi", "efternamn", "lastname", "surname", "familyname"),
    "organization": ("organisaatio", "organisation", "organization", "org"),
    "language": ("kieli", "språk", "sprak", "language", "lang"),
    "status": ("tila", "status"),
}
_KIND_ALIASES: dict[str, tuple[str, ...]] = {
    "cluster": ("klusteri", "klusterit", "kluster", "klustrar", "cluster", "clusters"),
    "municipality": ("kunta", "kunnat", "kommun", "kommuner", "municipality", "municipalities"),
    "company": ("yritys", "yritykset", "företag", "company", "companies"),
}
_SEP_LINE = re.compile(r'"?sep=([,;\t|])"?[,;\t]*\r?\n')
_BINARY = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_HEADER_NOISE = re.compile(r"[\s\-_.]+")


def decode(data: bytes, where: str) -> tuple[str, str]:
    """Return (text, encoding): UTF-8 with or without BOM, UTF-16 with BOM, else cp1252."""
    if data.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    else:
        candidates = ["utf-8", "cp1252"]
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        break
    else:
        raise FileInputError("not a text file in UTF-8 or cp1252", where=where)
    text = text.rstrip("\x1a")  # a DOS end-of-file mark
    bad = _BINARY.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        raise FileInputError(
            f"binary data (character {ord(bad.group()):#04x}), not a CSV file",
            where=f"{where}:{line}",
        )
    return text, encoding


def sniff_delimiter(text: str) -> str:
    """Pick `;`, tab or `,` by counting them in the header line, outside quotes."""
    counts = {";": 0, "\t": 0, ",": 0}
    quoted = False
    started = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted:
            if ch in "\r\n":
                if started:
                    break
                continue
            if ch in counts:
                counts[ch] += 1
            if not ch.isspace():
                started = True
    best = max(counts.values())
    if best == 0:
        return ","
    for delimiter in (";", "\t", ","):  # Finnish Excel's `;` wins a tie
        if counts[delimiter] == best:
            return delimiter
    return ","  # pragma: no cover


def _norm_header(text: str) -> str:
    return _HEADER_NOISE.sub("", text.casefold())


@dataclass(frozen=True)
class Columns:
    fields: dict[str, int]  # field name -> column index
    kinds: dict[int, str]  # column index -> list kind
    attributes: dict[int, str]  # column index -> attribute key (the header as written)
    width: int

    def notes(self) -> list[str]:
        """What a person should know about the header: columns kept as attributes, and a
        missing name or list column (a renamed header is easy to miss)."""
        out = []
        if self.attributes:
            out.append("kept as attributes: " + ", ".join(self.attributes.values()))
        if not {"name", "first_name", "last_name"} & set(self.fields):
            out.append(
                "no name column (nimi, namn, name, or etunimi and sukunimi): names stay as they are"
            )
        if not self.kinds:
            out.append(
                "no list column (klusterit, kunta, yritys, …): rows join only the --list lists"
            )
        return out


def map_columns(header: Sequence[str], kinds: Sequence[str], where: str) -> Columns:
    """Recognise the header's columns; the rest become attributes."""
    aliases: dict[str, tuple[str, str]] = {}
    for name, words in _FIELD_ALIASES.items():
        for word in words:
            aliases[_norm_header(word)] = ("field", name)
    for kind in kinds:
        for word in (*_KIND_ALIASES.get(kind, ()), kind, kind + "s"):
            aliases.setdefault(_norm_header(word), ("kind", kind))
    fields: dict[str, int] = {}
    kind_columns: dict[int, str] = {}
    seen_kinds: dict[str, int] = {}
    attributes: dict[int, str] = {}
    seen_attributes: dict[str, int] = {}
    for index, raw in enumerate(header):
        title = plain_cell(clean_line(raw))
        if not title:
            continue  # an unnamed column (Excel's trailing ones) is ignored
        what = aliases.get(_norm_header(title))
        if what and what[0] == "field":
            if what[1] in fields:
                raise FileInputError(
                    f"columns {fields[what[1]] + 1} and {index + 1} are both {what[1]}",
                    where=f"{where}:1",
                )
            fields[what[1]] = index
        elif what:
            if what[1] in seen_kinds:
                raise FileInputError(
                    f"columns {seen_kinds[what[1]] + 1} and {index + 1} are both {what[1]}",
                    where=f"{where}:1",
                )
            seen_kinds[what[1]] = index
            kind_columns[index] = what[1]
        else:
            if title in seen_attributes:
                raise FileInputError(f"column {title!r} appears twice", where=f"{where}:1")
            seen_attributes[title] = index
            attributes[index] = title
    if "email" not in fields:
        shown = ", ".join(repr(clean_line(h)) for h in header[:8])
        raise FileInputError(
            "no e-mail column (a header sähköposti, e-post or email); the header is " + shown,
            where=f"{where}:1",
        )
    return Columns(fields, kind_columns, attributes, len(header))


def read_rows(path: Path) -> tuple[str, str, Iterator[list[str]], int]:
    """Read `path` as CSV: (encoding, delimiter, records, about how many records).

    The records (blank ones included) are read one at a time, so that an import of a million
    rows never holds them all; a broken record raises FileInputError when it is reached.
    """
    where = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileInputError("no such file", where=where) from None
    except IsADirectoryError:
        raise FileInputError("is a folder, not a CSV file", where=where) from None
    except OSError as exc:
        raise FileInputError(f"cannot read: {exc.strerror}", where=where) from None
    if not data.strip():
        raise FileInputError("empty file; expected a header row", where=where)
    text, encoding = decode(data, where)
    del data
    hint = _SEP_LINE.match(text)
    if hint:
        # Excel's `sep=;` first line names the delimiter; Excel does not show it as a row.
        delimiter = hint.group(1)
        text = text[hint.end() :]
    else:
        delimiter = sniff_delimiter(text)
    lines = text.count("\n") + (not text.endswith("\n"))  # quoted line breaks overcount
    return encoding, delimiter, _records(text, delimiter, where), lines


def _lines(text: str) -> Iterator[str]:
    """The text's lines with their ends, one at a time.

    io.StringIO would copy the text into 4 bytes a character (400 MB for a 100 MB file).
    """
    if "\n" not in text:  # old Mac line ends (CR only), or one line: rare
        yield from io.StringIO(text, newline="")
        return
    start = 0
    while (end := text.find("\n", start)) >= 0:
        yield text[start : end + 1]
        start = end + 1
    if start < len(text):
        yield text[start:]


def _records(text: str, delimiter: str, where: str) -> Iterator[list[str]]:
    reader = csv.reader(_lines(text), delimiter=delimiter, strict=False)
    try:
        yield from reader
    except csv.Error as exc:
        raise FileInputError(f"broken CSV: {exc}", where=f"{where}:{reader.line_num}") from None


# --- one row ------------------------------------------------------------------------------


class InvalidRow(Exception):
    """A data row that cannot be imported: its e-mail cell as written, and why."""

    def __init__(self, email: str, reason: str) -> None:
        self.email = email
        self.reason = reason


def parse_row(
    number: int,
    record: list[str],
    joined: str,
    columns: Columns,
    extra_lists: Sequence[ListRef],
) -> Row:
    """A data row checked: its cells cleaned, address parsed, lists and fields read."""
    width = columns.width
    if joined.isprintable() and "  " not in joined:
        cells = [cell.strip() for cell in record]  # no line break or double space anywhere
    else:
        cells = [clean_line(cell) if cell else "" for cell in record]
        bad = next((cell for cell in cells if has_control(cell)), None)
        if bad is not None:  # C1 controls and bidi overrides (C0 ones fail the whole file)
            raise InvalidRow("", "a cell contains a control character")
    if "'" in joined:  # CSV written by the tool: drop the `'` it put before a formula
        cells = [plain_cell(cell) for cell in cells]
    if len(cells) < width:
        cells.extend([""] * (width - len(cells)))
    fields = columns.fields
    raw_email = cells[fields["email"]]
    if len(cells) > width and any(cells[width:]):
        raise InvalidRow(raw_email, f"{len(cells)} cells but the header has {width}")
    if not raw_email:
        raise InvalidRow("", "no e-mail address")
    try:
        address = parse_address(raw_email)
    except AddressError as exc:
        raise InvalidRow(
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
    return Row(
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
        raise InvalidRow(email, str(exc)) from None


def _status_cell(cell: str, email: str) -> str | None:
    status = cell.lower()
    if not status:
        return None
    if status not in _STATUSES:
        raise InvalidRow(email, f"status {status!r} is not one of {', '.join(_STATUSES)}")
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
                raise InvalidRow(email, f"list name {display!r} has no letters or digits")
            lists.setdefault((kind, slug), display)
    return lists


# An address whose letters a wrong encoding replaced: `elle.n?kkalaj?rvi@…` (cp1252 → ASCII)
# or U+FFFD (UTF-8 read as something else). Both are valid addresses, so only a warning.
DAMAGED = "looks damaged by a wrong encoding ('?' where a letter was); check it in the sheet"


def looks_damaged(email: str) -> bool:
    local, _, domain = email.rpartition("@")
    return "\ufffd" in email or ("?" in local and any(ch.isalpha() for ch in local))


def sync_kinds(sync_lists: Iterable[str], kinds: Sequence[str], columns: Columns) -> set[str]:
    """The kinds `--sync-lists` names, each configured and with a column in the sheet."""
    out = set()
    for text in sync_lists:
        kind = text.strip().lower().removesuffix(":*")
        if kind not in kinds:
            raise InputError(f"--sync-lists {text!r}: not a list kind (kinds: {', '.join(kinds)})")
        if kind not in columns.kinds.values():
            raise InputError(
                f"--sync-lists {kind}: the sheet has no {kind} column, so it cannot say which"
                f" {kind} lists its contacts belong to; nothing written"
            )
        out.add(kind)
    return out
