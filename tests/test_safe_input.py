"""Hostile input: addresses parsed strictly, no escape sequences on a terminal."""

from __future__ import annotations

import json

import pytest

from tests.contacts_helpers import assert_one_line_error, rows_of, write_csv
from tests.newsletter_helpers import copy_campaign
from tests.sending_helpers import ScriptedSink, point_at

NOT_ONE_ADDRESS = [
    "old@example.org <new@example.org>",
    "user@example.com extra words <z@example.com>",
    "Aino <aino@example.org> trailing text",
    "aino@example.org (Aino)",
    "a@example.org, b@example.org",
    "a@example.org b@example.org",
    "me@example.org\r\nRCPT TO:<evil@example.net>",
    "me@example.org\nBcc: evil@example.net",
    "Aino <a b@example.org>",
]


def _emails(workspace) -> list[str]:
    res = workspace.cli("contacts", "list", "--format", "json")
    return [c["email"] for c in json.loads(res.stdout)]


@pytest.mark.parametrize("raw", NOT_ONE_ADDRESS)
def test_add_refuses_anything_but_one_address(workspace, raw):
    res = workspace.cli("contacts", "add", raw)
    assert res.exit_code == 2
    assert_one_line_error(res.stderr)
    assert "\r" not in res.stderr.rstrip("\n") and "\n" not in res.stderr.rstrip("\n")
    assert _emails(workspace) == []


def test_the_two_forms_that_are_one_address_are_accepted(workspace):
    for raw, email, name in (
        ("Aino Äikiö <aino@example.org>", "aino@example.org", "Aino Äikiö"),
        ('"Aikio, Aino" <aikio@example.org>', "aikio@example.org", "Aikio, Aino"),
        ("  pekka@Example.ORG  ", "pekka@example.org", ""),
    ):
        res = workspace.cli("contacts", "add", raw)
        assert res.exit_code == 0, res.stderr
        shown = json.loads(workspace.cli("contacts", "show", email, "--format", "json").stdout)
        assert (shown["email"], shown["name"]) == (email, name)


def test_import_reports_such_cells_as_invalid_and_never_shortens_them(workspace, tmp_path):
    rows = [["email", "name"]] + [[raw, "X"] for raw in NOT_ONE_ADDRESS]
    rows.append(["ok@example.org", "Ok"])
    path = write_csv(tmp_path / "in.csv", rows)
    res = workspace.cli("contacts", "import", str(path))
    assert res.exit_code == 0, res.stderr
    assert f"{len(NOT_ONE_ADDRESS)} invalid" in res.stdout
    assert _emails(workspace) == ["ok@example.org"]


def test_test_to_with_a_smuggled_recipient_sends_nothing(workspace):
    workspace.ensure_lists("cluster:arctic-power")
    workspace.cli("contacts", "add", "aino@example.org", "--list", "cluster:arctic-power")
    res = workspace.cli("campaign", "create", str(copy_campaign(workspace.path)))
    assert res.exit_code == 0, res.stderr
    name = res.stdout.strip()
    with ScriptedSink() as sink:
        point_at(workspace, sink.port)
        for raw in (
            "me@example.org\r\nRCPT TO:<evil@example.net>",
            "me@example.org <evil@example.net>",
        ):
            res = workspace.cli("send", name, "--test-to", raw)
            assert res.exit_code == 2, res.stderr
            assert_one_line_error(res.stderr)
        assert sink.received == []
        res = workspace.cli("send", name, "--test-to", "me@example.org")
        assert res.exit_code == 0, res.stderr
        assert set(sink.recipients()) == {"me@example.org"}


ESCAPES = [
    "\x1b[31mPunainen\x1b[0m",
    "Aino\x1b]0;pwned\x07",
    "Bell\x07",
    "Back\x08space",
    "\u202eevil",
]


@pytest.mark.parametrize("value", ESCAPES)
@pytest.mark.parametrize("option", ["--name", "--org"])
def test_add_refuses_control_characters_like_import_does(workspace, tmp_path, option, value):
    res = workspace.cli("contacts", "add", "aino@example.org", option, value)
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "control character")
    assert "\x1b" not in res.stderr and "\x07" not in res.stderr
    assert _emails(workspace) == []
    # an existing contact is not changed by it either
    assert workspace.cli("contacts", "add", "aino@example.org", "--name", "Aino").exit_code == 0
    res = workspace.cli("contacts", "add", "aino@example.org", option, value)
    assert res.exit_code == 2
    assert rows_of(workspace.path / "mailer.db", "SELECT name, organization FROM contacts") == [
        ("Aino", "")
    ]
    # import refuses the same bytes
    path = write_csv(tmp_path / "in.csv", [["email", "name"], ["b@example.org", value]])
    res = workspace.cli("contacts", "import", str(path))
    assert res.exit_code == 2 or "1 invalid" in res.stdout, res.stdout
    assert _emails(workspace) == ["aino@example.org"]


def test_a_line_break_in_a_name_is_still_folded_not_refused(workspace):
    res = workspace.cli("contacts", "add", "aino@example.org", "--name", "Aino\nAikio")
    assert res.exit_code == 0, res.stderr
    assert rows_of(workspace.path / "mailer.db", "SELECT name FROM contacts") == [("Aino Aikio",)]


def test_a_subject_with_an_escape_sequence_is_refused(workspace):
    path = copy_campaign(workspace.path)
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        'fi = "Arctic Smartness -uutiskirje:', 'fi = "\\u001b]0;pwned\\u0007 -uutiskirje:'
    )
    path.write_text(text, encoding="utf-8")
    res = workspace.cli("campaign", "create", str(path))
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "subject.fi", "control characters")
    assert "\x1b" not in res.stderr
