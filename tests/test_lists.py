"""`mailer lists list/add/remove`, list references and slugs."""

from __future__ import annotations

import json

import pytest

from mailer.audience.lists import parse_list_ref, slugify
from tests.contacts_helpers import assert_one_line_error


def test_a_list_that_a_saved_segment_or_an_unsent_campaign_names_is_kept(workspace):
    from tests.newsletter_helpers import copy_campaign

    workspace.ensure_lists("cluster:arctic-power", "municipality:kemi", "company:matkailu")
    workspace.cli("contacts", "add", "a@example.com", "--list", "cluster:arctic-power")
    res = workspace.cli("segments", "save", "kemi", "municipality:kemi or company:*")
    assert res.exit_code == 0, res.stderr
    res = workspace.cli("lists", "remove", "municipality:kemi", "--yes")
    assert res.exit_code == 2 and "@kemi" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    # company:* still means something without one company list: that list may go.
    assert workspace.cli("lists", "remove", "company:matkailu", "--yes").exit_code == 0
    # A draft campaign for cluster:arctic-power keeps that list.
    path = copy_campaign(workspace.path)
    text = path.read_text(encoding="utf-8").replace('"cluster:*"', '"cluster:arctic-power"')
    path.write_text(text, encoding="utf-8")
    assert workspace.cli("campaign", "create", str(path)).exit_code == 0
    res = workspace.cli("lists", "remove", "cluster:arctic-power", "--yes")
    assert res.exit_code == 2 and "campaign " in res.stderr
    names = [d["list"] for d in json.loads(workspace.cli("lists", "list", "-f", "json").stdout)]
    assert names == ["cluster:arctic-power", "municipality:kemi"]
    workspace.cli("segments", "delete", "kemi")
    assert workspace.cli("lists", "remove", "municipality:kemi", "--yes").exit_code == 0


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Arctic Power", "arctic-power"),
        ("Sodankylä", "sodankyla"),
        ("Enontekiö", "enontekio"),
        ("Åre  &  Öland", "are-oland"),
        ("Anár (Inari)", "anar-inari"),
        ("Soađegilli", "soadegilli"),
        ("  --Kemi--  ", "kemi"),
        ("Higher refining of natural resources", "higher-refining-of-natural-resources"),
        ("!!!", ""),
    ],
)
def test_slugify(name, slug):
    assert slugify(name) == slug


def test_parse_list_ref_keeps_the_display_name():
    ref = parse_list_ref("cluster:Arctic Power", ("cluster",))
    assert (ref.kind, ref.slug, ref.name, str(ref)) == (
        "cluster",
        "arctic-power",
        "Arctic Power",
        "cluster:arctic-power",
    )


def test_add_list_rename_and_remove(workspace):
    res = workspace.cli("lists", "add", "cluster:arctic-power", "--name", "Arctic Power")
    assert res.exit_code == 0 and "Added list cluster:arctic-power" in res.stdout
    assert "exists" in workspace.cli("lists", "add", "cluster:Arctic Power").stdout
    assert "Renamed" in workspace.cli("lists", "add", "cluster:arctic-power", "--name", "AP").stdout
    workspace.cli("lists", "add", "municipality:kemi")
    workspace.cli(
        "contacts",
        "add",
        "a@example.com",
        "--list",
        "cluster:arctic-power",
        "--list",
        "municipality:kemi",
    )
    workspace.cli("contacts", "add", "b@example.com", "--list", "cluster:arctic-power")
    workspace.cli("contacts", "unsubscribe", "b@example.com")
    data = json.loads(workspace.cli("lists", "list", "--format", "json").stdout)
    assert [(d["list"], d["name"], d["members"], d["subscribed"]) for d in data] == [
        ("cluster:arctic-power", "AP", 2, 1),
        ("municipality:kemi", "kemi", 1, 1),
    ]
    table = workspace.cli("lists", "list").stdout.splitlines()
    assert table[0].split() == ["list", "name", "members", "subscribed"]
    res = workspace.cli("lists", "remove", "cluster:arctic-power", "--yes")
    assert res.exit_code == 0 and "2 members" in res.stdout
    # A segment naming the removed list is now an error, not an empty audience.
    gone = workspace.cli("segments", "count", "cluster:arctic-power")
    assert gone.exit_code == 2 and "no list cluster:arctic-power" in gone.stderr
    assert json.loads(workspace.cli("contacts", "show", "a@example.com", "-f", "json").stdout)[
        "lists"
    ] == ["municipality:kemi"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["add", "club:x"], "unknown list kind 'club'"),
        (["add", "cluster"], "KIND:SLUG"),
        (["add", "cluster:!!"], "no list name"),
        (["remove", "cluster:nothing-here"], "no list cluster:nothing-here"),
        (["remove", "club:x"], "unknown list kind"),
    ],
)
def test_bad_list_commands_exit_2(workspace, args, fragment):
    res = workspace.cli("lists", *args)
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, fragment)


def test_configured_kinds_are_used(workspace):
    workspace.set_config("lists", "kinds", '["cluster", "partner"]')
    assert workspace.cli("lists", "add", "partner:lapin-amk").exit_code == 0
    assert workspace.cli("lists", "add", "municipality:kemi").exit_code == 2
