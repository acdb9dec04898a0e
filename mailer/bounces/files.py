"""Returned mail from files, for `bounces import`: `.eml` files, Maildirs and mboxes.

Every path is checked before the first message is read, so a typo is one line and exit 2
with nothing applied. Nothing is moved or changed in the files.
"""

from __future__ import annotations

import mailbox
from collections.abc import Iterator, Sequence
from pathlib import Path

from mailer.errors import FileInputError

MAX_MESSAGE = 25 * 1024 * 1024  # a returned message larger than this is not read


def _kind(path: Path) -> str:
    if path.is_dir():
        if all((path / sub).is_dir() for sub in ("cur", "new")):
            return "maildir"
        return "folder"
    try:
        with path.open("rb") as handle:
            head = handle.read(5)
    except OSError as exc:
        raise FileInputError(f"cannot read: {exc.strerror}", where=str(path)) from None
    return "mbox" if head == b"From " else "eml"


def check_paths(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """Each path with what it is (eml, mbox, maildir, folder of .eml files); raise for a bad one."""
    if not paths:
        raise FileInputError("no PATH given (an .eml file, a Maildir or an mbox)")
    out = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileInputError("no such file or folder", where=str(path))
        out.append((path, _kind(path)))
    return out


def read_messages(checked: Sequence[tuple[Path, str]]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every message, in a stable order."""
    for path, kind in checked:
        if kind == "eml":
            yield str(path), _read(path)
        elif kind == "folder":
            for item in sorted(path.glob("*.eml")):
                yield str(item), _read(item)
        elif kind == "maildir":
            box = mailbox.Maildir(path, factory=None, create=False)
            for key in sorted(box.keys()):
                with box.get_file(key) as handle:
                    yield f"{path}/{key}", handle.read(MAX_MESSAGE)
        else:
            mbox = mailbox.mbox(path, factory=None, create=False)
            for index, key in enumerate(mbox.keys(), 1):
                yield f"{path}#{index}", mbox.get_bytes(key)


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_MESSAGE)
    except OSError as exc:
        raise FileInputError(f"cannot read: {exc.strerror}", where=str(path)) from None
