"""The segment language against a plain-Python evaluator, on random contacts and expressions."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer.audience.segments import parse_segment, to_sql
from mailer.errors import SegmentError
from mailer.store import Store
from mailer.store import contacts as q
from mailer.store import segments as sq
from mailer.timeutil import now_utc

KINDS = ("cluster", "municipality", "company")
SLUGS = ("arctic-power", "kemi", "inari", "sustainable-tourism", "unused")
LANGS = ("fi", "en", "sv", "se")
STATUSES = ("subscribed", "unsubscribed", "bounced")


# --- a plain evaluator over a tree of tuples, independent of mailer.audience.segments ---


def evaluate(tree, contact) -> bool:
    op = tree[0]
    if op == "list":
        _, kind, slug = tree
        return any(k == kind and (slug == "*" or s == slug) for k, s in contact["lists"])
    if op == "lang":
        return contact["language"] == tree[1]
    if op == "all":
        return True
    if op == "not":
        return not evaluate(tree[1], contact)
    if op == "and":
        return all(evaluate(t, contact) for t in tree[1:])
    if op == "or":
        return any(evaluate(t, contact) for t in tree[1:])
    raise AssertionError(op)


_PRECEDENCE = {"or": 1, "and": 2, "not": 3}


def render(tree, draw_bool, parent: int = 0) -> str:
    """Text for `tree`: minimal parentheses for the precedence, plus random extra ones."""
    op = tree[0]
    if op == "list":
        slug = tree[2]
        if slug != "*" and draw_bool():
            slug = slug.upper()  # slugs are matched case-insensitively
        text = f"{tree[1]}:{slug}"
        mine = 4
    elif op == "lang":
        text, mine = f"lang:{tree[1]}", 4
    elif op == "all":
        text, mine = ("ALL" if draw_bool() else "all"), 4
    elif op == "not":
        text, mine = f"{'NOT' if draw_bool() else 'not'} {render(tree[1], draw_bool, 3)}", 3
    else:
        word = op.upper() if draw_bool() else op
        mine = _PRECEDENCE[op]
        gap = "  " if draw_bool() else " "
        text = f"{gap}{word}{gap}".join(render(t, draw_bool, mine + 1) for t in tree[1:])
    if mine < parent or draw_bool():
        return f"({text})" if mine >= parent else f"( {text} )"
    return text


atoms = st.one_of(
    st.tuples(st.just("list"), st.sampled_from(KINDS), st.sampled_from((*SLUGS, "*"))),
    st.tuples(st.just("lang"), st.sampled_from(LANGS)),
    st.just(("all",)),
)
trees = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.tuples(st.just("not"), inner),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: ("and", *xs)),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: ("or", *xs)),
    ),
    max_leaves=10,
)
contacts = st.lists(
    st.fixed_dictionaries(
        {
            "language": st.sampled_from(LANGS),
            "status": st.sampled_from(STATUSES),
            "lists": st.sets(
                st.tuples(st.sampled_from(KINDS), st.sampled_from(SLUGS[:-1])), max_size=4
            ),
        }
    ),
    max_size=12,
)


@dataclass
class _Db:
    store: Store


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("seg") / "mailer.db")
    yield _Db(store)
    store.close()


class _Rollback(Exception):
    pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people=contacts, tree=trees, data=st.data())
def test_sql_matches_the_plain_evaluator(db, people, tree, data):
    text = render(tree, lambda: data.draw(st.booleans()))
    now = now_utc()
    try:
        with db.store.transaction() as conn:
            lists: dict[tuple[str, str], int] = {}
            for i, person in enumerate(people):
                cid = q.insert_contact(
                    conn,
                    email=f"p{i}@example.com",
                    email_ascii=f"p{i}@example.com",
                    email_key=f"p{i}@example.com",
                    name="",
                    organization="",
                    language=person["language"],
                    attributes={},
                    consent_source="test",
                    now=now,
                    status=person["status"],
                )
                person["id"] = cid
                for kind, slug in person["lists"]:
                    if (kind, slug) not in lists:
                        lists[kind, slug] = q.ensure_list(conn, kind, slug, slug, now)
                    q.add_membership(conn, lists[kind, slug], cid)
            # The SQL's meaning, apart from the check that each list exists (test_segments).
            compiled = to_sql(parse_segment(text, KINDS))
            expected_all = {p["id"] for p in people if evaluate(tree, p)}
            got_all = {
                int(r["id"]) for r in q.select_contacts(conn, compiled.where, compiled.params)
            }
            assert got_all == expected_all, text
            expected = sum(1 for p in people if p["status"] == "subscribed" and evaluate(tree, p))
            assert sq.count_matching(conn, compiled.where, compiled.params) == expected, text
            raise _Rollback
    except _Rollback:
        pass


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(
            list("()@:*- \t") + ["and", "or", "not", "all", "lang", "fi", "cluster", "x", "ä"]
        ),
        max_size=30,
    ).map("".join)
)
def test_any_text_parses_or_raises_a_segment_error_with_a_position(text):
    try:
        parse_segment(text, KINDS, saved=lambda name: None)
    except SegmentError as exc:
        assert "position " in str(exc)
        assert "\n" not in str(exc)
