"""The segment language: parsing, precedence, errors with positions, saved segments."""

from __future__ import annotations

import json

import pytest

from mailer.audience.segments import (
    AllAtom,
    And,
    LangAtom,
    ListAtom,
    Not,
    Or,
    parse_segment,
    to_sql,
)
from mailer.errors import SegmentError
from tests.contacts_helpers import assert_one_line_error, tool_csv

KINDS = ("cluster", "municipality", "company")


def test_precedence_not_then_and_then_or():
    tree = parse_segment("not cluster:a and municipality:b or lang:fi", KINDS)
    assert tree == Or(
        (And((Not(ListAtom("cluster", "a")), ListAtom("municipality", "b"))), LangAtom("fi"))
    )
    assert parse_segment("NOT (all OR company:*)", KINDS) == Not(
        Or((AllAtom(), ListAtom("company", "*")))
    )


def test_values_never_reach_the_sql_text():
    compiled = to_sql(parse_segment("cluster:x';DROP--TABLE=1 and lang:fi", KINDS))
    assert "DROP" not in compiled.where and "'" not in compiled.where
    assert compiled.params == ("cluster", "x-drop-table-1", "fi")


@pytest.mark.parametrize(
    ("expression", "position", "fragment"),
    [
        ("", 1, "empty expression"),
        ("cluster:a and", 14, "found the end"),
        ("cluster:a or or", 14, "found 'or'"),
        ("(cluster:a", 11, "expected ')'"),
        ("cluster:a)", 10, "without a matching"),
        ("cluster:a municipality:b", 11, "expected 'and', 'or'"),
        ("club:a", 1, "unknown list kind 'club'"),
        ("lang:de", 1, "unknown language 'de'"),
        ("rovaniemi", 1, "found 'rovaniemi'"),
        ("all and @nope", 9, "no saved segment named 'nope'"),
        ("cluster:", 1, "no list name"),
        ("()", 2, "found ')'"),
    ],
)
def test_errors_name_the_position(workspace, expression, position, fragment):
    for ref in ("cluster:a", "municipality:b"):
        assert workspace.cli("lists", "add", ref).exit_code == 0
    res = workspace.cli("segments", "count", expression)
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, f"position {position}", fragment)


def test_deep_nesting_is_a_clean_error():
    with pytest.raises(SegmentError, match="nested too deeply"):
        parse_segment("(" * 1000 + "all" + ")" * 1000, KINDS)
    with pytest.raises(SegmentError):
        parse_segment("not " * 1000 + "all", KINDS)


def _setup(workspace):
    add = workspace.cli
    for ref in (
        "cluster:arctic-power",
        "municipality:rovaniemi",
        "municipality:kemi",
        "company:sustainable-tourism",
        "cluster:no-members-yet",
        "municipality:Sodankylä",
    ):
        assert add("lists", "add", ref).exit_code == 0
    add(
        "contacts",
        "add",
        "a@example.com",
        "--lang",
        "fi",
        "--list",
        "cluster:arctic-power",
        "--list",
        "municipality:rovaniemi",
    )
    add(
        "contacts",
        "add",
        "b@example.com",
        "--lang",
        "sv",
        "--list",
        "cluster:arctic-power",
        "--list",
        "municipality:kemi",
    )
    add(
        "contacts",
        "add",
        "c@example.com",
        "--lang",
        "fi",
        "--list",
        "municipality:kemi",
        "--list",
        "company:sustainable-tourism",
    )
    add("contacts", "add", "d@example.com", "--lang", "en")
    add("contacts", "add", "e@example.com", "--list", "cluster:arctic-power")
    add("contacts", "unsubscribe", "e@example.com")


@pytest.mark.parametrize(
    ("expression", "count"),
    [
        ("all", 4),
        ("cluster:arctic-power", 2),  # e@ unsubscribed is not counted
        ("cluster:Arctic-POWER", 2),
        (
            "cluster:arctic-power and (municipality:rovaniemi or municipality:kemi)"
            " and not company:*",
            2,
        ),
        ("municipality:kemi and not cluster:*", 1),
        ("lang:fi or lang:en", 3),
        ("not lang:fi and not lang:sv", 1),
        ("cluster:no-members-yet", 0),
        ("municipality:Sodankylä", 0),
        ("company:* or cluster:* and lang:sv", 2),
    ],
)
def test_count_prints_one_integer_of_subscribed_contacts(workspace, expression, count):
    _setup(workspace)
    res = workspace.cli("segments", "count", expression)
    assert res.exit_code == 0, res.stderr
    assert res.stdout == f"{count}\n"


def test_save_list_and_use_saved_segments(workspace):
    _setup(workspace)
    res = workspace.cli("segments", "save", "ap", "cluster:arctic-power")
    assert res.exit_code == 0 and "Saved @ap" in res.stdout
    workspace.cli("segments", "save", "ap-fi", "@ap and lang:fi")
    assert workspace.cli("segments", "count", "@ap-fi").stdout == "1\n"
    assert workspace.cli("segments", "count", "@ap or municipality:kemi").stdout == "3\n"
    data = json.loads(workspace.cli("segments", "list", "--format", "json").stdout)
    assert [(d["name"], d["expression"], d["subscribed"]) for d in data] == [
        ("ap", "cluster:arctic-power", 2),
        ("ap-fi", "@ap and lang:fi", 1),
    ]
    # `contacts list` shows every status; e@ (unsubscribed) is listed, not counted.
    listed = workspace.cli("contacts", "list", "--segment", "@ap-fi", "-f", "csv").stdout
    assert [row["email"] for row in tool_csv(listed)] == [
        "a@example.com",
        "e@example.com",
    ]
    # Redefining @ap in terms of @ap-fi would make a cycle: refused, nothing changed.
    res = workspace.cli("segments", "save", "ap", "@ap-fi or lang:en")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "refer to each other")
    assert workspace.cli("segments", "count", "@ap").stdout == "2\n"
    res = workspace.cli("segments", "save", "bad", "cluster:a and (")
    assert res.exit_code == 2
    res = workspace.cli("segments", "save", "no spaces", "all")
    assert res.exit_code == 2
    assert workspace.cli("segments", "delete", "ap-fi").exit_code == 0
    assert workspace.cli("segments", "delete", "ap-fi").exit_code == 2
    assert "ap" in workspace.cli("segments", "list").stdout


def test_compile_segment_for_other_parts(workspace):
    from mailer.audience.segments import compile_segment

    _setup(workspace)
    with workspace.store() as store:
        compiled = compile_segment(store.conn, "municipality:kemi and lang:fi", KINDS)
        rows = store.conn.execute(
            f"SELECT c.email FROM contacts c WHERE c.status = 'subscribed' AND ({compiled.where})",
            compiled.params,
        ).fetchall()
    assert [r[0] for r in rows] == ["c@example.com"]
