"""The segment language: parsed (never pasted) into parameterised SQL over alias `c`.

    expr   := term ('or' term)*
    term   := factor ('and' factor)*
    factor := 'not' factor | '(' expr ')' | atom
    atom   := KIND:SLUG | KIND:* | lang:XX | all | @name

`not` binds tighter than `and`, which binds tighter than `or`. Keywords are case-insensitive.
Positions in errors count characters from 1.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mailer.config import LANGUAGES
from mailer.errors import ConflictError, NotFoundError, SegmentError

if TYPE_CHECKING:
    from mailer.store import Store

_TOKEN = re.compile(r"\s*(?:(?P<paren>[()])|(?P<word>[^\s()]+))")
_SEGMENT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_MAX_DEPTH = 200  # nesting deeper than this is refused (and stays far from Python's limit)
_MAX_TERMS = 500  # atoms in one expression: SQLite's expression tree stays far below 1000


# --- the syntax tree ----------------------------------------------------------------------


@dataclass(frozen=True)
class ListAtom:
    kind: str
    slug: str  # '*' for any list of the kind


@dataclass(frozen=True)
class LangAtom:
    language: str


@dataclass(frozen=True)
class AllAtom:
    pass


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]


Node = ListAtom | LangAtom | AllAtom | Not | And | Or


@dataclass(frozen=True)
class Compiled:
    """An SQL boolean expression over alias `c` (contacts) and its bound parameters."""

    where: str
    params: tuple[Any, ...] = field(default=())


# --- parsing ------------------------------------------------------------------------------


@dataclass
class _Token:
    kind: str  # 'paren', 'word', 'end'
    text: str
    pos: int  # 1-based character position


def _tokens(expression: str) -> list[_Token]:
    out: list[_Token] = []
    index = 0
    while True:
        match = _TOKEN.match(expression, index)
        if match is None or match.lastgroup is None:
            break
        group = match.lastgroup
        out.append(_Token(group, match.group(group), match.start(group) + 1))
        index = match.end()
    out.append(_Token("end", "", len(expression.rstrip()) + 1))
    return out


@dataclass(frozen=True)
class KnownLists:
    """The lists that exist, so that a parse can refuse a typo'd one where it is written."""

    refs: frozenset[tuple[str, str]]

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(kind for kind, _ in self.refs)

    def problem(self, kind: str, slug: str) -> str | None:
        """Why KIND:SLUG (or KIND:*) cannot be used, or None when it can."""
        from mailer.audience.lists import suggestion

        if slug == "*":
            if kind in self.kinds:
                return None
            return (
                f"there are no {kind} lists, so {kind}:* matches nobody (see `mailer lists list`)"
            )
        if (kind, slug) in self.refs:
            return None
        names = [f"{k}:{s}" for k, s in sorted(self.refs)]
        return f"no list {kind}:{slug}" + suggestion(f"{kind}:{slug}", names, create=False)


def known_lists(conn: sqlite3.Connection) -> KnownLists:
    """The lists in the database, for `parse_segment(known=…)`."""
    from mailer.store import contacts as q_contacts

    return KnownLists(frozenset(q_contacts.all_list_ids(conn)))


class _Parser:
    def __init__(
        self,
        expression: str,
        kinds: Sequence[str],
        resolve: Any,
        context: str,
        depth: int,
        known: KnownLists | None = None,
    ) -> None:
        self.expression = expression
        self.kinds = tuple(kinds)
        self.known = known  # the existing lists; None: any list is accepted (form only)
        self.resolve = resolve  # name -> Node (for @name), or None
        self.context = context  # prefix for errors inside a saved segment
        self.depth = depth
        self.tokens = _tokens(expression)
        self.index = 0
        self.nesting = 0

    def error(self, token: _Token, message: str) -> SegmentError:
        where = f"{self.context}position {token.pos}"
        shown = self.expression.strip()
        return SegmentError(f"bad segment at {where}: {message} (in {shown!r})")

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def keyword(self) -> str | None:
        token = self.peek()
        if token.kind == "word" and token.text.lower() in ("and", "or", "not"):
            return token.text.lower()
        return None

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.error(self.peek(), "empty expression")
        node = self.expr()
        token = self.peek()
        if token.kind != "end":
            if token.text == ")":
                raise self.error(token, "')' without a matching '('")
            raise self.error(token, f"expected 'and', 'or' or the end, found {token.text!r}")
        return node

    def expr(self) -> Node:
        operands = [self.term()]
        while self.keyword() == "or":
            self.index += 1
            operands.append(self.term())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def term(self) -> Node:
        operands = [self.factor()]
        while self.keyword() == "and":
            self.index += 1
            operands.append(self.factor())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def factor(self) -> Node:
        token = self.peek()
        self.nesting += 1
        if self.nesting > _MAX_DEPTH:
            raise self.error(token, "expression nested too deeply")
        try:
            if self.keyword() == "not":
                self.index += 1
                return Not(self.factor())
            if token.kind == "paren" and token.text == "(":
                self.index += 1
                node = self.expr()
                closing = self.peek()
                if closing.kind != "paren" or closing.text != ")":
                    found = "the end" if closing.kind == "end" else repr(closing.text)
                    raise self.error(closing, f"expected ')', found {found}")
                self.index += 1
                return node
            return self.atom()
        finally:
            self.nesting -= 1

    def atom(self) -> Node:
        token = self.peek()
        expected = "expected KIND:SLUG, KIND:*, lang:XX, all, @name or '('"
        if token.kind == "end":
            raise self.error(token, f"{expected}, found the end")
        if token.kind == "paren":
            raise self.error(token, f"{expected}, found {token.text!r}")
        word = token.text
        lowered = word.lower()
        if lowered in ("and", "or", "not"):
            raise self.error(token, f"{expected}, found {word!r}")
        self.index += 1
        if lowered == "all":
            return AllAtom()
        if word.startswith("@"):
            name = word[1:]
            if not _SEGMENT_NAME.match(name):
                raise self.error(token, f"{word!r} is not a segment name")
            if self.resolve is None:
                raise self.error(token, "saved segments (@name) are not available here")
            return self.resolve(name, token, self)
        kind, sep, value = word.partition(":")
        kind = kind.lower()
        if not sep:
            raise self.error(token, f"{expected}, found {word!r}")
        if kind == "lang":
            language = value.lower()
            if language not in LANGUAGES:
                raise self.error(
                    token, f"unknown language {value!r} (languages: {', '.join(LANGUAGES)})"
                )
            return LangAtom(language)
        if kind not in self.kinds:
            raise self.error(token, f"unknown list kind {kind!r} (kinds: {', '.join(self.kinds)})")
        if value == "*":
            slug = "*"
        else:
            from mailer.audience.lists import slugify

            slug = slugify(value)
            if not slug:
                raise self.error(token, f"{word!r} has no list name after the colon")
        problem = self.known.problem(kind, slug) if self.known is not None else None
        if problem:
            raise self.error(token, problem)
        return ListAtom(kind, slug)


def parse_segment(
    expression: str,
    kinds: Sequence[str],
    saved: Any = None,
    known: KnownLists | None = None,
) -> Node:
    """Parse `expression`; `saved(name) -> str | None` looks up `@name` (None: not allowed).

    With `known`, a list that does not exist and a `KIND:*` with no lists are errors that
    say where they are written (with a suggestion for a typo).
    """
    return _parse(expression, kinds, saved, "", 0, (), known)


def _parse(
    expression: str,
    kinds: Sequence[str],
    saved: Any,
    context: str,
    depth: int,
    stack: tuple[str, ...],
    known: KnownLists | None = None,
) -> Node:
    def resolve(name: str, token: _Token, parser: _Parser) -> Node:
        if name in stack:
            chain = " -> ".join(f"@{n}" for n in (*stack, name))
            raise parser.error(token, f"saved segments refer to each other: {chain}")
        if depth >= 20:
            raise parser.error(token, "saved segments nested too deeply")
        text = saved(name)
        if text is None:
            raise parser.error(token, f"no saved segment named {name!r}")
        return _parse(text, kinds, saved, f"{context}@{name} ", depth + 1, (*stack, name), known)

    return _Parser(
        expression, kinds, resolve if saved is not None else None, context, depth, known
    ).parse()


def to_text(node: Node) -> str:
    """The expression a parsed segment stands for, saved segments written out in full."""

    def inner(n: Node) -> str:
        return f"({to_text(n)})" if isinstance(n, (And, Or)) else to_text(n)

    if isinstance(node, ListAtom):
        return f"{node.kind}:{node.slug}"
    if isinstance(node, LangAtom):
        return f"lang:{node.language}"
    if isinstance(node, AllAtom):
        return "all"
    if isinstance(node, Not):
        return f"not {inner(node.operand)}"
    if isinstance(node, And):
        return " and ".join(inner(o) for o in node.operands)
    return " or ".join(inner(o) if isinstance(o, Or) else to_text(o) for o in node.operands)


# --- compiling ----------------------------------------------------------------------------

_IN_LIST = (
    "c.id IN (SELECT m.contact_id FROM memberships m JOIN lists l ON l.id = m.list_id"
    " WHERE l.kind = ? AND l.slug = ?)"
)
_IN_KIND = (
    "c.id IN (SELECT m.contact_id FROM memberships m JOIN lists l ON l.id = m.list_id"
    " WHERE l.kind = ?)"
)


_EXISTS_LIST = (
    "EXISTS (SELECT 1 FROM memberships m JOIN lists l ON l.id = m.list_id"
    " WHERE m.contact_id = c.id AND l.kind = ? AND l.slug = ?)"
)
_EXISTS_KIND = (
    "EXISTS (SELECT 1 FROM memberships m JOIN lists l ON l.id = m.list_id"
    " WHERE m.contact_id = c.id AND l.kind = ?)"
)


def to_sql(node: Node) -> Compiled:
    """Compile a parsed segment into an SQL condition over alias `c` with parameters."""
    params: list[Any] = []

    def probe(atom: ListAtom) -> str:
        # A per-contact lookup instead of collecting the whole list first.
        if atom.slug == "*":
            params.append(atom.kind)
            return _EXISTS_KIND
        params.extend((atom.kind, atom.slug))
        return _EXISTS_LIST

    def walk_top(n: Node) -> str:
        # SQLite walks the members of a top-level `c.id IN (…)` list and looks up each
        # contact; the other conditions are then tested per contact. There, `not LIST` is
        # cheaper as a lookup than as a second collected list (31 → 16 ms over 100k).
        if isinstance(n, And) and any(isinstance(o, ListAtom) for o in n.operands):
            parts = []
            for o in n.operands:
                if isinstance(o, Not) and isinstance(o.operand, ListAtom):
                    parts.append(f"NOT ({probe(o.operand)})")
                else:
                    parts.append(f"({walk(o)})")
            return " AND ".join(parts)
        return walk(n)

    def walk(n: Node) -> str:
        if isinstance(n, ListAtom):
            if n.slug == "*":
                params.append(n.kind)
                return _IN_KIND
            params.extend((n.kind, n.slug))
            return _IN_LIST
        if isinstance(n, LangAtom):
            params.append(n.language)
            return "c.language = ?"
        if isinstance(n, AllAtom):
            return "1"
        if isinstance(n, Not):
            return f"NOT ({walk(n.operand)})"
        if isinstance(n, And):
            return " AND ".join(f"({walk(o)})" for o in n.operands)
        if isinstance(n, Or):
            return " OR ".join(f"({walk(o)})" for o in n.operands)
        raise TypeError(n)  # pragma: no cover

    return Compiled(walk_top(node), tuple(params))


def _terms(node: Node) -> int:
    if isinstance(node, (And, Or)):
        return sum(_terms(o) for o in node.operands)
    if isinstance(node, Not):
        return _terms(node.operand)
    return 1


def compile_segment(conn: sqlite3.Connection, expression: str, kinds: Sequence[str]) -> Compiled:
    """Parse `expression` (resolving @name from saved segments) into SQL over alias `c`.

    The status filter is not included. Raises SegmentError naming the position.
    """
    return to_sql(parse_with_lists(conn, expression, kinds))


def parse_with_lists(conn: sqlite3.Connection, expression: str, kinds: Sequence[str]) -> Node:
    """Parse `expression` against the database: saved segments resolved, lists checked."""
    from mailer.store import segments as q

    saved = lambda name: q.get_segment(conn, name)  # noqa: E731
    return _small(parse_segment(expression, kinds, saved, known_lists(conn)))


def _small(node: Node) -> Node:
    """`node` unless it has more terms than SQLite's expression tree holds (SegmentError)."""
    terms = _terms(node)
    if terms > _MAX_TERMS:
        # SQLite refuses an expression tree deeper than 1000 ("Expression tree is too large").
        raise SegmentError(
            f"the segment has {terms} terms (saved segments expanded); at most {_MAX_TERMS}:"
            " use `KIND:*`, or lists that gather the contacts, instead"
        )
    return node


def expand_segment(conn: sqlite3.Connection, expression: str, kinds: Sequence[str]) -> str:
    """The expression with every @name written out (what a campaign stores), checked."""
    return to_text(parse_with_lists(conn, expression, kinds))


# --- the `segments` commands' core --------------------------------------------------------


def count_segment(store: Store, expression: str, kinds: Sequence[str]) -> int:
    """Count the subscribed contacts that match `expression`."""
    from mailer.store import segments as q

    compiled = compile_segment(store.conn, expression, kinds)
    return q.count_matching(store.conn, compiled.where, compiled.params)


def _lists_in(node: Node) -> set[tuple[str, str]]:
    if isinstance(node, ListAtom):
        return {(node.kind, node.slug)}
    if isinstance(node, Not):
        return _lists_in(node.operand)
    if isinstance(node, (And, Or)):
        return set().union(*(_lists_in(n) for n in node.operands))
    return set()


def list_users(conn: sqlite3.Connection, kind: str, slug: str, kinds: Sequence[str]) -> list[str]:
    """The saved segments (`@name`) and unsent campaigns whose expression names KIND:SLUG.

    A `KIND:*` does not count: it still means something without this one list. A saved
    segment that names another (`@other`) is not followed: `@other` is listed itself.
    """
    from mailer.states import UNSENT_CAMPAIGNS
    from mailer.store import campaigns as q_campaigns
    from mailer.store import segments as q

    def names_it(expression: str) -> bool:
        try:
            node = parse_segment(expression, kinds, saved=lambda name: "all")
        except SegmentError:
            return False  # names nothing that can still be read
        return (kind, slug) in _lists_in(node)

    users = [f"@{row['name']}" for row in q.all_segments(conn) if names_it(row["expression"])]
    users += [
        f"campaign {c.name}"
        for c in q_campaigns.list_campaigns(conn)
        if c.status in UNSENT_CAMPAIGNS and names_it(c.segment)
    ]
    return users


@dataclass(frozen=True)
class SavedSegment:
    name: str
    expression: str
    subscribed: int | None = None  # matching subscribed contacts; None when it no longer parses
    problem: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "expression": self.expression,
            "subscribed": self.subscribed,
            "problem": self.problem,
        }


def save_segment(
    store: Store, name: str, expression: str, kinds: Sequence[str], now: datetime
) -> tuple[SavedSegment, bool]:
    """Check and save `expression` as @name; return it (with its count) and whether it is new."""
    from mailer.store import segments as q

    name = name.strip()
    if name.startswith("@"):
        name = name[1:]
    if not _SEGMENT_NAME.match(name):
        raise SegmentError(
            f"segment name {name!r} must be letters, digits, '_', '-' or '.' (e.g. rovaniemi-fi)"
        )
    expression = " ".join(expression.split())
    with store.transaction() as conn:
        existing = q.get_segment(conn, name)
        # Check the expression as if already saved, so a cycle through this name is caught.
        lookup = {name: expression}

        def saved(n: str) -> str | None:
            return lookup[n] if n in lookup else q.get_segment(conn, n)

        compiled = to_sql(_small(parse_segment(expression, kinds, saved, known_lists(conn))))
        count = q.count_matching(conn, compiled.where, compiled.params)
        q.save_segment(conn, name, expression, now)
        if existing is not None and existing == expression:
            return SavedSegment(name, expression, count), False
        return SavedSegment(name, expression, count), existing is None


def list_segments(store: Store, kinds: Sequence[str]) -> list[SavedSegment]:
    """Every saved segment with its current count of subscribed contacts."""
    from mailer.store import segments as q

    out = []
    for row in q.all_segments(store.conn):
        try:
            compiled = compile_segment(store.conn, row["expression"], kinds)
        except SegmentError as exc:
            out.append(SavedSegment(row["name"], row["expression"], None, str(exc)))
            continue
        count = q.count_matching(store.conn, compiled.where, compiled.params)
        out.append(SavedSegment(row["name"], row["expression"], count))
    return out


def delete_segment(store: Store, name: str) -> None:
    """Delete saved segment @name."""
    from mailer.store import segments as q

    name = name.removeprefix("@")
    with store.transaction() as conn:
        if q.get_segment(conn, name) is None:
            raise NotFoundError(f"no saved segment named {name!r}")
        if not q.delete_segment(conn, name):
            raise ConflictError(f"segment {name!r} changed while deleting it")
