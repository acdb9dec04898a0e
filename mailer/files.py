"""Files the tool reads from staff and writes for them: size caps, atomic writes, CSV.

Safe by default (PRODUCT.md): an output path is written through a temporary file and a
rename, so a symlink placed at the path is replaced, never followed; personal data (exports,
reports, backups) is created readable by its owner only; a source file over its cap is
refused before it is parsed; CSV opens in Excel without a wizard (UTF-8 with BOM, the
configured delimiter) and no cell of it can start a formula.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from mailer.errors import FileInputError, InputError

MAX_SOURCE_BYTES = 2 * 1024 * 1024  # news items and campaign files
BOM = "\ufeff"

# A spreadsheet takes a cell that starts with one of these as a formula (OWASP "CSV
# injection"); tab and CR start one in some programs after they strip the cell.
_FORMULA_START = frozenset("=+-@\t\r")


def read_limited(
    path: Path, what: str, error: type[InputError] = FileInputError, limit: int = MAX_SOURCE_BYTES
) -> bytes:
    """Read `path`, refusing (exit 2) a file over `limit` bytes before reading all of it."""
    where = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except IsADirectoryError:
        raise error(f"the {what} is a folder, not a file", where=where) from None
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror}", where=where) from None
    if len(data) > limit:
        raise error(
            f"the {what} is over {limit // (1024 * 1024)} MB; refusing to read it", where=where
        )
    return data


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike[str], data: bytes, *, private: bool = False) -> None:
    """Write `data` to `path` through a temporary file and a rename (never through a symlink).

    `private` files (personal data) are readable by their owner only; others get the
    permissions the umask gives a new file.
    """
    target = Path(path)
    where = str(target)
    if target.is_dir():
        raise FileInputError("is a folder, not a file", where=where)
    folder = target.absolute().parent
    if not folder.is_dir():
        raise FileInputError(f"folder {folder} does not exist", where=where)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise FileInputError(f"cannot write: {exc.strerror}", where=where) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if not private:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)  # replaces a symlink at `target` itself, not what it points to
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise FileInputError(f"cannot write: {exc.strerror}", where=where) from None


def private_temp(target: Path) -> Path:
    """A new empty file beside `target`, readable by its owner only (to rename onto it)."""
    where = str(target)
    try:
        fd, tmp = tempfile.mkstemp(
            dir=target.absolute().parent, prefix=f".{target.name}.", suffix=".tmp"
        )
    except OSError as exc:
        raise FileInputError(f"cannot write: {exc.strerror}", where=where) from None
    os.close(fd)
    return Path(tmp)


# --- CSV --------------------------------------------------------------------------------


def safe_cell(value: Any) -> Any:
    """`value` with a leading `'` when a spreadsheet would read it as a formula.

    A value that already starts with quotes before such a character gets one more, so that
    `plain_cell` gives back exactly what was written.
    """
    if isinstance(value, str) and value.lstrip("'")[:1] in _FORMULA_START:
        return "'" + value
    return value


def plain_cell(text: str) -> str:
    """Undo `safe_cell`: drop the one `'` written before a formula character."""
    if text[:1] == "'" and text.lstrip("'")[:1] in _FORMULA_START:
        return text[1:]
    return text


def write_csv(
    out: IO[str],
    header: Sequence[Any],
    rows: Iterable[Sequence[Any]],
    delimiter: str = ";",
    *,
    lineterminator: str = "\r\n",
) -> None:
    """Write a BOM, then `header` and `rows` as CSV whose cells cannot start a formula."""
    out.write(BOM)
    writer = csv.writer(out, delimiter=delimiter, lineterminator=lineterminator)
    writer.writerow([safe_cell(cell) for cell in header])
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])


def csv_bytes(header: Sequence[Any], rows: Iterable[Sequence[Any]], delimiter: str = ";") -> bytes:
    """The bytes of `write_csv` (UTF-8 with BOM), for `write_atomic`."""
    buffer = io.StringIO(newline="")
    write_csv(buffer, header, rows, delimiter)
    return buffer.getvalue().encode("utf-8")
