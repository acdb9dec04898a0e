"""Lists of one kind (`KIND:SLUG`): slugs, references, and the `lists` commands' core."""

from __future__ import annotations

import sqlite3
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from mailer.errors import ConflictError, InputError, NotFoundError

if TYPE_CHECKING:
    from mailer.store import Store

# Letters a decomposition does not reduce to ASCII (Northern Sami and neighbours).
_FOLD = str.maketrans(
    {"ä": "a", "ö": "o", "å": "a", "đ": "d", "ŋ": "n", "ŧ": "t", "ß": "ss", "æ": "ae", "ø": "o"}
)


@lru_cache(maxsize=4096)
def slugify(name: str) -> str:
    """Make a list slug: lower case, ä→a ö→o å→a, other non-alphanumeric runs → '-'.

    "Arctic Power" → "arctic-power"; "Sodankylä" → "sodankyla"; "Anár" → "anar".
    """
    text = name.lower().translate(_FOLD)
    # Strip the accents a decomposition separates (á→a, č→c, š→s, ž→z).
    text = "".join(
        ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)
    )
    out: list[str] = []
    dash = False
    for ch in text:
        if ch.isalnum():
            if dash and out:
                out.append("-")
            out.append(ch)
            dash = False
        else:
            dash = True
    return "".join(out)


@dataclass(frozen=True)
class ListRef:
    kind: str
    slug: str
    name: str  # display name: as written, or the slug

    def __str__(self) -> str:
        return f"{self.kind}:{self.slug}"


def parse_list_ref(text: str, kinds: Sequence[str]) -> ListRef:
    """Parse `KIND:NAME` (NAME is slugified, its text kept as the display name)."""
    kind, sep, name = text.strip().partition(":")
    kind = kind.strip().lower()
    if not sep or not kind:
        raise InputError(f"{text!r} is not KIND:SLUG (e.g. cluster:arctic-power)")
    if kind not in kinds:
        raise InputError(f"unknown list kind {kind!r} in {text!r} (kinds: {', '.join(kinds)})")
    name = " ".join(name.split())
    slug = slugify(name)
    if not slug:
        raise InputError(f"{text!r} has no list name (letters or digits after the colon)")
    return ListRef(kind, slug, name)


def suggestion(ref: str, existing: Sequence[str], *, create: bool = True) -> str:
    """The tail of a "no list X" message: `; did you mean Y?` for a near miss, and (with
    `create`) how to make the list when it is really new."""
    import difflib

    close = difflib.get_close_matches(ref, existing, n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]}?" if close else ""
    if create:
        hint += f" (a new list: create it first with `mailer lists add {ref}`)"
    return hint


def require_lists(conn: Any, refs: Sequence[ListRef]) -> dict[tuple[str, str], int]:
    """The ids of `refs`; NotFoundError naming the first that does not exist, with a
    suggestion (a typo'd `--list` must never quietly create a list)."""
    from mailer.store import contacts as q

    ids = q.all_list_ids(conn)
    for ref in refs:
        if (ref.kind, ref.slug) not in ids:
            names = [f"{k}:{s}" for k, s in sorted(ids)]
            raise NotFoundError(f"no list {ref}" + suggestion(str(ref), names))
    return {(ref.kind, ref.slug): ids[(ref.kind, ref.slug)] for ref in refs}


@dataclass(frozen=True)
class ListInfo:
    kind: str
    slug: str
    name: str
    members: int  # all contacts in the list
    subscribed: int  # of them, subscribed

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.slug}"

    def to_json(self) -> dict[str, object]:
        return {
            "list": self.ref,
            "kind": self.kind,
            "slug": self.slug,
            "name": self.name,
            "members": self.members,
            "subscribed": self.subscribed,
        }


def all_lists(store: Store, kinds: Sequence[str] | None = None) -> list[ListInfo]:
    """Return every list with its member counts, by kind then slug."""
    from mailer.store import contacts as q

    return [
        ListInfo(r["kind"], r["slug"], r["name"], r["members"], r["subscribed"])
        for r in q.list_lists(store.conn)
    ]


@dataclass(frozen=True)
class ListChange:
    ref: str
    name: str
    created: bool
    renamed: bool = False


def add_list(
    store: Store, kinds: Sequence[str], text: str, name: str | None, now: datetime
) -> ListChange:
    """Create list KIND:SLUG (or rename it when it exists and a new name is given)."""
    from mailer.store import contacts as q

    ref = parse_list_ref(text, kinds)
    display = " ".join((name or "").split()) or ref.name
    with store.transaction() as conn:
        row = q.get_list(conn, ref.kind, ref.slug)
        if row is None:
            q.ensure_list(conn, ref.kind, ref.slug, display, now)
            return ListChange(str(ref), display, created=True)
        if name and display != row["name"]:
            q.rename_list(conn, int(row["id"]), display)
            return ListChange(str(ref), display, created=False, renamed=True)
        return ListChange(str(ref), row["name"], created=False)


def find_list(store: Store, kinds: Sequence[str], text: str) -> ListInfo:
    """List KIND:SLUG with its member counts; NotFoundError when there is none."""
    from mailer.store import contacts as q

    ref = parse_list_ref(text, kinds)
    row = q.get_list(store.conn, ref.kind, ref.slug)
    if row is None:
        raise NotFoundError(f"no list {ref}")
    members, subscribed = q.list_member_counts(store.conn, int(row["id"]))
    return ListInfo(ref.kind, ref.slug, row["name"], members, subscribed)


def remove_list(
    store: Store,
    kinds: Sequence[str],
    text: str,
    users: Callable[[sqlite3.Connection, str, str, Sequence[str]], list[str]] | None = None,
) -> ListInfo:
    """Delete list KIND:SLUG and its memberships (the contacts stay).

    `users(conn, kind, slug, kinds)` names what still needs the list (saved segments,
    unsent campaigns: mailer.audience.segments.list_users); the list is then kept.
    """
    from mailer.store import contacts as q

    ref = parse_list_ref(text, kinds)
    with store.transaction() as conn:
        row = q.get_list(conn, ref.kind, ref.slug)
        if row is None:
            raise NotFoundError(f"no list {ref}")
        needed_by = users(conn, ref.kind, ref.slug, kinds) if users else []
        if needed_by:
            raise ConflictError(
                f"list {ref} is named by {', '.join(needed_by)}: change or delete those first"
            )
        members, subscribed = q.list_member_counts(conn, int(row["id"]))
        if not q.delete_list(conn, int(row["id"])):
            raise ConflictError(f"list {ref} changed while removing it")
        return ListInfo(ref.kind, ref.slug, row["name"], members, subscribed)
