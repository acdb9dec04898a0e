"""What a hurried officer trips over with contacts, lists and segments (issue 10), through
the real CLI: typo'd lists, confirmations, `contacts edit`, `--sync-lists`, the import report,
damaged addresses, one time zone, `--config` after the command."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.contacts_helpers import assert_one_line_error, rows_of, snapshot, write_csv


def _lists(workspace, *refs: str) -> None:
    for ref in refs:
        assert workspace.cli("lists", "add", ref).exit_code == 0


def _show(workspace, email: str) -> dict:
    res = workspace.cli("contacts", "show", email, "--format", "json")
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def _db(workspace):
    return workspace.path / "mailer.db"


# --- 1. a typo'd list is an error with a suggestion, wherever it is written ----------------


@pytest.mark.parametrize(
    "command",
    [
        ("segments", "count", "cluster:arctic-powr"),
        ("segments", "save", "ap", "lang:fi and cluster:arctic-powr"),
        ("contacts", "list", "--segment", "cluster:arctic-powr"),
        ("contacts", "export", "--segment", "cluster:arctic-powr"),
    ],
)
def test_a_typo_in_a_list_name_is_a_usage_error_with_a_suggestion(workspace, command):
    _lists(workspace, "cluster:arctic-power")
    before = snapshot(_db(workspace))
    res = workspace.cli(*command)
    assert res.exit_code == 2
    assert_one_line_error(
        res.stderr, "no list cluster:arctic-powr", "did you mean cluster:arctic-power?"
    )
    assert snapshot(_db(workspace)) == before


def test_a_kind_star_with_no_lists_of_that_kind_is_an_error_an_empty_list_matches_none(workspace):
    _lists(workspace, "cluster:arctic-power")
    res = workspace.cli("segments", "count", "cluster:* or company:*")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "position 14", "no company lists")
    # An existing list with no members is no error: it matches nobody.
    res = workspace.cli("segments", "count", "cluster:arctic-power")
    assert (res.exit_code, res.stdout) == (0, "0\n")


def test_a_saved_segment_whose_list_is_gone_shows_its_problem(workspace):
    _lists(workspace, "municipality:kemi")
    assert workspace.cli("segments", "save", "kemi", "municipality:kemi").exit_code == 0
    # `lists remove` keeps a list that a saved segment names ...
    assert workspace.cli("lists", "remove", "municipality:kemi", "--yes").exit_code == 2
    # ... but one deleted by an older mailer leaves the segment with a problem to show.
    conn = sqlite3.connect(workspace.path / "mailer.db")
    with conn:
        conn.execute("DELETE FROM lists WHERE kind = 'municipality' AND slug = 'kemi'")
    conn.close()
    rows = json.loads(workspace.cli("segments", "list", "--format", "json").stdout)
    assert rows[0]["subscribed"] is None
    assert "no list municipality:kemi" in rows[0]["problem"]


def test_add_and_edit_refuse_a_list_that_does_not_exist_and_create_nothing(workspace):
    _lists(workspace, "municipality:tornio")
    before = snapshot(_db(workspace))
    res = workspace.cli("contacts", "add", "a@example.org", "--list", "municipality:tornoi")
    assert res.exit_code == 2
    assert_one_line_error(
        res.stderr,
        "no list municipality:tornoi",
        "did you mean municipality:tornio?",
        "mailer lists add municipality:tornoi",
    )
    assert snapshot(_db(workspace)) == before  # no contact, no list
    assert workspace.cli("contacts", "add", "a@example.org").exit_code == 0
    res = workspace.cli("contacts", "edit", "a@example.org", "--add-list", "municipality:tornoi")
    assert res.exit_code == 2 and "did you mean municipality:tornio?" in res.stderr
    path = write_csv(workspace.path / "in.csv", [["email"], ["b@example.org"]])
    res = workspace.cli("contacts", "import", str(path), "--list", "municipality:tornoi")
    assert res.exit_code == 2 and "did you mean municipality:tornio?" in res.stderr
    assert rows_of(_db(workspace), "SELECT kind, slug FROM lists") == [("municipality", "tornio")]


# --- 7. what cannot be undone asks first ------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("contacts", "forget", "a@example.org"),
        ("lists", "remove", "cluster:arctic-power"),
    ],
)
def test_irreversible_commands_refuse_without_a_terminal_unless_yes(workspace, command):
    _lists(workspace, "cluster:arctic-power")
    workspace.cli("contacts", "add", "a@example.org", "--list", "cluster:arctic-power")
    before = snapshot(_db(workspace))
    res = workspace.cli(*command)  # CliRunner's stdin is no terminal, as under cron
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "without a terminal", "--yes")
    assert snapshot(_db(workspace)) == before
    res = workspace.cli(*command, "--yes")
    assert res.exit_code == 0, res.stderr
    assert snapshot(_db(workspace)) != before


# --- 8. contacts edit, import --sync-lists ----------------------------------------------------


def test_contacts_edit_changes_fields_and_lists_and_says_what_changed(workspace):
    _lists(workspace, "cluster:arctic-power", "cluster:arctic-design")
    workspace.cli(
        "contacts",
        "add",
        "riikka@example.org",
        "--name",
        "Riikka Heikkilä",
        "--org",
        "Lapin liitto",
        "--list",
        "cluster:arctic-design",
    )
    workspace.cli("contacts", "unsubscribe", "riikka@example.org")
    res = workspace.cli(
        "contacts",
        "edit",
        "Riikka@example.org",
        "--first-name",
        "Riikka",
        "--org",
        "Lapin yliopisto",
        "--add-list",
        "cluster:arctic-power",
        "--remove-list",
        "cluster:arctic-design",
    )
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == (
        "Updated riikka@example.org: first name '' → 'Riikka'; organisation 'Lapin liitto'"
        " → 'Lapin yliopisto'; + cluster:arctic-power; - cluster:arctic-design"
    )
    shown = _show(workspace, "riikka@example.org")
    assert (shown["first_name"], shown["organization"], shown["lists"], shown["status"]) == (
        "Riikka",
        "Lapin yliopisto",
        ["cluster:arctic-power"],
        "unsubscribed",  # edit never changes a status
    )
    again = workspace.cli("contacts", "edit", "riikka@example.org", "--org", "Lapin yliopisto")
    assert again.stdout.strip() == "Nothing changed: riikka@example.org"
    res = workspace.cli("contacts", "edit", "nobody@example.org", "--org", "X")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "no contact nobody@example.org")


def test_sync_lists_makes_the_sheet_authoritative_for_one_kind(workspace):
    first = write_csv(
        workspace.path / "first.csv",
        [
            ["sähköposti", "klusterit", "kunta"],
            ["muuttaja@example.org", "Arctic Design", "Inari"],
            ["pysyja@example.org", "Arctic Power", "Kemi"],
            ["muualla@example.org", "Arctic Design", ""],
        ],
    )
    assert workspace.cli("contacts", "import", str(first)).exit_code == 0
    moved = write_csv(
        workspace.path / "moved.csv",
        [
            ["sähköposti", "klusterit", "kunta"],
            ["muuttaja@example.org", "Arctic Power", ""],
            ["pysyja@example.org", "Arctic Power", "Kemi"],
            ["rikki", "Arctic Power", ""],
        ],
    )
    res = workspace.cli("contacts", "import", str(moved), "--sync-lists", "cluster")
    assert res.exit_code == 0, res.stderr
    assert (
        "row 2: updated: muuttaja@example.org: + cluster:arctic-power; - cluster:arctic-design"
        in (res.stderr)
    )
    assert _show(workspace, "muuttaja@example.org")["lists"] == [
        "cluster:arctic-power",
        "municipality:inari",  # another kind: the sheet's empty cell takes nothing away
    ]
    assert _show(workspace, "muualla@example.org")["lists"] == ["cluster:arctic-design"]
    assert "1 updated, 1 unchanged, 1 invalid" in res.stdout

    no_column = write_csv(
        workspace.path / "kunnat.csv", [["email", "kunta"], ["pysyja@example.org", "Tornio"]]
    )
    before = snapshot(_db(workspace))
    res = workspace.cli("contacts", "import", str(no_column), "--sync-lists", "cluster")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "no cluster column", "nothing written")
    assert snapshot(_db(workspace)) == before


# --- 9, 11. the import report -------------------------------------------------------------


def test_the_import_report_names_kept_columns_first_names_and_what_changed(workspace):
    _lists(workspace, "cluster:arctic-power")
    sheet = write_csv(
        workspace.path / "jasenet.csv",
        [
            ["Sähköposti", "Etunimi", "Sukunimi", "Organisaatio", "Toimiala"],
            ["riikka@example.org", "Riikka", "Heikkilä", "Lapin liitto", "julkinen"],
        ],
    )
    res = workspace.cli("contacts", "import", str(sheet))
    assert res.exit_code == 0, res.stderr
    assert "jasenet.csv: kept as attributes: Toimiala" in res.stderr
    assert "jasenet.csv: no list column" in res.stderr
    shown = _show(workspace, "riikka@example.org")
    assert (shown["name"], shown["first_name"]) == ("Riikka Heikkilä", "Riikka")
    assert shown["attributes"] == {"Toimiala": "julkinen"}

    sheet = write_csv(
        workspace.path / "toinen.csv",
        [
            ["email", "first name", "last name", "organisation", "clusters"],
            ["riikka@example.org", "Riikka", "Heikkilä", "Lapin yliopisto", "Arctic Power"],
        ],
    )
    res = workspace.cli("contacts", "import", str(sheet))
    assert res.exit_code == 0, res.stderr
    assert (
        "toinen.csv row 2: updated: riikka@example.org:"
        " organisation 'Lapin liitto' → 'Lapin yliopisto'; + cluster:arctic-power"
    ) in res.stderr.splitlines()
    assert "no name column" not in res.stderr and "kept as attributes" not in res.stderr

    nameless = write_csv(workspace.path / "n.csv", [["email"], ["x@example.org"]])
    res = workspace.cli("contacts", "import", str(nameless))
    assert "no name column" in res.stderr


def test_an_address_damaged_by_a_wrong_encoding_is_imported_with_a_warning(workspace):
    sheet = write_csv(
        workspace.path / "enontekio.csv",
        [
            ["email", "nimi"],
            ["ok@example.org", "Oikea"],
            ["elle.n?kkalaj?rvi@enontekio.fi", "Elle"],
            ["v\ufffdin\ufffd@example.org", "Väinö"],
        ],
    )
    res = workspace.cli("contacts", "import", str(sheet))
    assert res.exit_code == 0, res.stderr
    assert "3 added" in res.stdout
    warnings = [line for line in res.stderr.splitlines() if "wrong encoding" in line]
    assert [line.split(":")[0] for line in warnings] == [
        "enontekio.csv row 3",
        "enontekio.csv row 4",
    ]
    assert "elle.n?kkalaj?rvi@enontekio.fi" in warnings[0]


# --- 5. one zone for people; 6. --config after the command ---------------------------------


def test_times_are_shown_in_the_configured_zone_with_the_offset_for_machines(workspace):
    workspace.cli("contacts", "add", "a@example.org")
    workspace.cli("contacts", "unsubscribe", "a@example.org")
    rows = json.loads(workspace.cli("unsubscribes", "--format", "json").stdout)
    assert rows[0]["at"].endswith(("+02:00", "+03:00"))  # Helsinki by default, never "Z"
    workspace.set_config("defaults", "timezone", '"America/New_York"')
    rows = json.loads(workspace.cli("unsubscribes", "--format", "json").stdout)
    assert rows[0]["at"].endswith(("-05:00", "-04:00"))
    csv_text = workspace.cli("unsubscribes", "--format", "csv").stdout
    assert rows[0]["at"] in csv_text
    table = workspace.cli("unsubscribes").stdout.splitlines()[1]
    assert table.startswith(rows[0]["at"][:10] + " " + rows[0]["at"][11:16])
    shown = _show(workspace, "a@example.org")
    assert shown["last_change"]["at"] == rows[0]["at"]
    workspace.set_config("defaults", "timezone", '"Lapland/Rovaniemi"')
    res = workspace.cli("unsubscribes")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "defaults.timezone", "Lapland/Rovaniemi")


def test_config_works_after_the_command_name(workspace):
    elsewhere = {"MAILER_CONFIG": str(workspace.path / "nowhere.toml")}
    config = str(workspace.config_path)
    workspace.cli("contacts", "add", "a@example.org")
    for args in (
        ("contacts", "list", "--config", config),
        ("contacts", "list", f"--config={config}", "--format", "csv"),
        ("segments", "count", "all", "-c", config),
        ("--config", config, "contacts", "list"),
    ):
        res = workspace.cli(*args, env=elsewhere)
        assert res.exit_code == 0, (args, res.stderr)
        assert res.stdout.strip() == "1" or "a@example.org" in res.stdout
    res = workspace.cli("contacts", "list", env=elsewhere)
    assert res.exit_code == 2 and "nowhere.toml" in res.stderr
