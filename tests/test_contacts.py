"""`mailer contacts add/list/show/unsubscribe/resubscribe/forget` and the core behind them."""

from __future__ import annotations

import json

import pytest

from tests.contacts_helpers import assert_one_line_error, rows_of, snapshot, tool_csv


def lists_add(workspace, *refs: str) -> None:
    """Create lists first: `contacts add --list` refuses a list that does not exist."""
    for ref in refs:
        assert workspace.cli("lists", "add", ref).exit_code == 0


def db(workspace):
    return workspace.path / "mailer.db"


def show(workspace, email):
    res = workspace.cli("contacts", "show", email, "--format", "json")
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def test_add_then_show_in_json(workspace):
    lists_add(workspace, "municipality:Inari", "cluster:arctic-power")
    res = workspace.cli(
        "contacts",
        "add",
        "  Aino.Aikio@EXAMPLE.org ",
        "--name",
        "Aino Aikio",
        "--org",
        "Inarin kunta",
        "--lang",
        "se",
        "--list",
        "municipality:Inari",
        "--list",
        "cluster:arctic-power",
    )
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == "Added Aino.Aikio@example.org"
    assert show(workspace, "aino.aikio@example.ORG") == {
        "email": "Aino.Aikio@example.org",
        "name": "Aino Aikio",
        "first_name": "",
        "organization": "Inarin kunta",
        "language": "se",
        "status": "subscribed",
        "lists": ["cluster:arctic-power", "municipality:inari"],
        "attributes": {},
        "consent": [],  # signups and preference changes; staff adds record none
        "last_bounce": None,
    }


def test_add_uses_the_name_of_a_name_address_form_and_the_default_language(workspace):
    assert workspace.cli("contacts", "add", "Niilas Somby <niilas@example.net>").exit_code == 0
    niilas = show(workspace, "niilas@example.net")
    assert (niilas["name"], niilas["language"]) == ("Niilas Somby", "fi")


def test_a_line_break_in_a_name_is_stored_as_a_space_with_a_note(workspace):
    res = workspace.cli("contacts", "add", "a@example.com", "--name", "Evil\r\nBcc: x@example.org")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == "Added a@example.com"
    assert res.stderr.strip() == "Note: the line break in --name was replaced by a space"
    assert show(workspace, "a@example.com")["name"] == "Evil Bcc: x@example.org"
    plain = workspace.cli("contacts", "add", "b@example.com", "--name", "Plain Name")
    assert plain.exit_code == 0 and plain.stderr == ""


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["not-an-address"], "@-sign"),
        (["a@example.com", "--lang", "de"], "language 'de'"),
        (["a@example.com", "--list", "club:x"], "unknown list kind"),
        (["a@example.com", "--list", "cluster"], "KIND:SLUG"),
        (["a@exa mple.com"], "a@exa mple.com"),
    ],
)
def test_bad_add_exits_2_with_one_line_and_changes_nothing(workspace, args, fragment):
    before = snapshot(db(workspace))
    res = workspace.cli("contacts", "add", *args)
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, fragment)
    assert snapshot(db(workspace)) == before


def test_adding_an_existing_contact_adds_lists_and_fields(workspace):
    lists_add(workspace, "municipality:kemi")
    workspace.cli("contacts", "add", "a@example.com")
    res = workspace.cli(
        "contacts", "add", "A@example.com", "--name", "A", "--list", "municipality:kemi"
    )
    assert res.stdout.strip() == "Updated a@example.com"
    res = workspace.cli("contacts", "add", "a@example.com", "--list", "municipality:kemi")
    assert res.stdout.strip() == "Unchanged a@example.com"
    assert show(workspace, "a@example.com")["lists"] == ["municipality:kemi"]


# The columns of `contacts list` (its JSON adds "attributes").
LIST_COLUMNS = ["email", "name", "first_name", "organization", "language", "status", "lists"]


def test_list_formats_and_segment(workspace):
    lists_add(workspace, "municipality:kemi")
    workspace.cli(
        "contacts", "add", "b@example.com", "--name", "Bo, Jr.", "--list", "municipality:kemi"
    )
    workspace.cli("contacts", "add", "a@example.com", "--lang", "sv")
    res = workspace.cli("contacts", "list")
    lines = res.stdout.splitlines()
    assert lines[0].split() == LIST_COLUMNS
    assert [line.split()[0] for line in lines[1:]] == ["a@example.com", "b@example.com"]
    rows = tool_csv(workspace.cli("contacts", "list", "-f", "csv").stdout)
    assert rows[1]["name"] == "Bo, Jr." and rows[1]["lists"] == "municipality:kemi"
    data = json.loads(
        workspace.cli("contacts", "list", "--format", "json", "--segment", "lang:sv").stdout
    )
    assert [c["email"] for c in data] == ["a@example.com"]
    assert set(data[0]) == {*LIST_COLUMNS, "attributes"}
    res = workspace.cli("contacts", "list", "--format", "xml")
    assert res.exit_code == 2
    res = workspace.cli("contacts", "list", "--segment", "municipality:kemi and")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "position")


def test_show_unknown_contact_is_exit_2(workspace):
    res = workspace.cli("contacts", "show", "nobody@example.com")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "no contact nobody@example.com")


def test_unsubscribe_and_resubscribe_record_events_and_change_the_count(workspace):
    lists_add(workspace, "municipality:kemi", "cluster:x")
    workspace.cli("contacts", "add", "a@example.com", "--list", "municipality:kemi")
    assert workspace.cli("segments", "count", "municipality:kemi").stdout.strip() == "1"
    res = workspace.cli("contacts", "unsubscribe", "A@example.com")
    assert res.exit_code == 0 and "Unsubscribed a@example.com" in res.stdout
    assert workspace.cli("segments", "count", "municipality:kemi").stdout.strip() == "0"
    again = workspace.cli("contacts", "unsubscribe", "a@example.com").stdout
    assert "Nothing changed: a@example.com is unsubscribed" in again
    assert show(workspace, "a@example.com")["status"] == "unsubscribed"
    assert workspace.cli("contacts", "resubscribe", "a@example.com").exit_code == 0
    assert workspace.cli("segments", "count", "municipality:kemi").stdout.strip() == "1"
    events = rows_of(
        db(workspace), "SELECT action, source, campaign_id FROM unsubscribe_events ORDER BY id"
    )
    assert events == [("unsubscribe", "cli", None), ("resubscribe", "cli", None)]
    # A contact that unsubscribed is not re-subscribed by `contacts add`.
    workspace.cli("contacts", "unsubscribe", "a@example.com")
    res = workspace.cli("contacts", "add", "a@example.com", "--list", "cluster:x")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "unsubscribed")


def test_forget_erases_the_person_and_refuses_them_again_in_any_form(workspace, tmp_path):
    lists_add(workspace, "municipality:salla")
    workspace.cli(
        "contacts",
        "add",
        "Äimä.Kärki@example.com",
        "--name",
        "Äimä Kärki",
        "--list",
        "municipality:salla",
    )
    workspace.cli("contacts", "unsubscribe", "Äimä.Kärki@example.com")
    res = workspace.cli("contacts", "forget", "äimä.kärki@EXAMPLE.com", "--yes")
    assert res.exit_code == 0, res.stderr
    assert "Forgot" in res.stdout
    # No trace of the address or the name anywhere in the database file's tables.
    dump = json.dumps(snapshot(db(workspace)), ensure_ascii=False, default=str).casefold()
    assert "kärki" not in dump and "karki" not in dump
    assert rows_of(db(workspace), "SELECT count(*) FROM memberships") == [(0,)]
    (hash_,) = rows_of(db(workspace), "SELECT hash FROM suppressions")[0]
    assert len(hash_) == 64
    # Decomposed Unicode (A + combining diaeresis) and another case are the same person.
    decomposed = "A\u0308ima\u0308.KA\u0308RKI@example.com"
    res = workspace.cli("contacts", "add", decomposed)
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "forgotten")
    csv_path = tmp_path / "again.csv"
    csv_path.write_text(f"email\n{decomposed}\n", encoding="utf-8")
    res = workspace.cli("contacts", "import", str(csv_path))
    assert "1 suppressed" in res.stdout
    assert workspace.cli("contacts", "list", "-f", "json").stdout.strip() == "[]"


def test_forget_survives_a_secret_rotation(workspace):
    workspace.cli("contacts", "add", "a@example.com")
    workspace.cli("contacts", "forget", "a@example.com", "--yes")
    workspace.set_config("web", "previous_secrets", '["test-secret-not-for-production-use-only"]')
    res = workspace.cli(
        "contacts",
        "add",
        "a@example.com",
        env={"MAILER_SECRET": "a-new-secret-0123456789abcdefghijkl"},
    )
    assert res.exit_code == 2


def test_library_add_and_list_without_the_cli(workspace):
    from mailer.audience.contacts import add_contact, list_contacts
    from mailer.timeutil import now_utc

    config = workspace.config()
    lists_add(workspace, "company:kiertotalous")
    with workspace.store() as store:
        report = add_contact(
            store, config, "x@example.org", lists=["company:kiertotalous"], now=now_utc()
        )
        assert report.outcome == "added"
        views = list_contacts(store, config, "company:*")
    assert [v.email for v in views] == ["x@example.org"]


def test_a_bounced_contact_is_not_resubscribed(workspace):
    workspace.cli("contacts", "add", "b@example.com")
    with workspace.store() as store:
        store.conn.execute("UPDATE contacts SET status = 'bounced'")
    assert "Nothing changed" in workspace.cli("contacts", "unsubscribe", "b@example.com").stdout
    res = workspace.cli("contacts", "resubscribe", "b@example.com")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "bounced")
    assert rows_of(db(workspace), "SELECT count(*) FROM unsubscribe_events") == [(0,)]


def test_the_id_of_a_forgotten_contact_is_never_given_again(workspace, tmp_path):
    workspace.cli("contacts", "add", "a@example.com")
    workspace.cli("contacts", "add", "last@example.com")
    (old_id,) = rows_of(db(workspace), "SELECT max(id) FROM contacts")[0]
    workspace.cli("contacts", "forget", "last@example.com", "--yes")
    workspace.cli("contacts", "add", "new@example.com")
    (new_id,) = rows_of(db(workspace), "SELECT id FROM contacts WHERE email = 'new@example.com'")[0]
    assert new_id > old_id
    workspace.cli("contacts", "forget", "new@example.com", "--yes")
    path = tmp_path / "in.csv"
    path.write_text("email\nnewer@example.com\n", encoding="utf-8")
    workspace.cli("contacts", "import", str(path))
    (newer_id,) = rows_of(db(workspace), "SELECT id FROM contacts WHERE email LIKE 'newer%'")[0]
    assert newer_id > new_id


def test_a_forgotten_address_stays_forgotten_after_init_force(workspace, tmp_path):
    csv_file = tmp_path / "back.csv"
    csv_file.write_text("email;name\nunohda@example.org;Unohda Minut\n", encoding="utf-8")
    env = {"MAILER_SECRET": ""}  # the secret that `init` wrote into mailer.toml is used
    assert workspace.cli("contacts", "import", str(csv_file), env=env).exit_code == 0
    assert (
        workspace.cli("contacts", "forget", "unohda@example.org", "--yes", env=env).exit_code == 0
    )
    assert workspace.cli("init", str(workspace.path), "--force").exit_code == 0
    res = workspace.cli("contacts", "import", str(csv_file), env=env)
    assert res.exit_code == 0, res.stderr
    assert "1 suppressed" in res.stdout + res.stderr
    assert workspace.cli("contacts", "show", "unohda@example.org").exit_code == 2


def test_a_dropped_secret_is_refused_instead_of_unforgetting(workspace):
    assert workspace.cli("contacts", "add", "poistettu@example.org").exit_code == 0
    assert workspace.cli("contacts", "forget", "poistettu@example.org", "--yes").exit_code == 0
    rotated = {"MAILER_SECRET": "a-new-secret-without-the-old-one-0123456789"}
    res = workspace.cli("contacts", "add", "poistettu@example.org", env=rotated)
    assert res.exit_code == 2
    assert "previous_secrets" in res.stderr and res.stderr.count("\n") == 1
    assert workspace.cli("contacts", "show", "poistettu@example.org").exit_code == 2
    # With the old secret kept as a previous one, the address is recognised and refused.
    workspace.set_config("web", "previous_secrets", '["test-secret-not-for-production-use-only"]')
    res = workspace.cli("contacts", "add", "poistettu@example.org", env=rotated)
    assert res.exit_code == 2 and "forgotten" in res.stderr.lower()


def test_staff_override_a_persons_own_unsubscribe_only_with_force(workspace):
    from mailer.audience.subscriptions import unsubscribe
    from mailer.timeutil import now_utc
    from tests.web_helpers import insert_campaign_for_tests

    workspace.cli("contacts", "add", "p@example.com")
    with workspace.store() as store:
        campaign = insert_campaign_for_tests(store, "2026-11")
        (contact,) = store.conn.execute("SELECT id FROM contacts").fetchone()
        unsubscribe(store, contact, campaign, "one-click", now_utc())
    res = workspace.cli("contacts", "resubscribe", "p@example.com")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "--force")
    assert show(workspace, "p@example.com")["status"] == "unsubscribed"
    res = workspace.cli("contacts", "resubscribe", "p@example.com", "--force")
    assert res.exit_code == 0 and "Resubscribed p@example.com" in res.stdout
    events = rows_of(db(workspace), "SELECT action, source, detail FROM unsubscribe_events")
    assert events == [
        ("unsubscribe", "one-click", None),
        ("resubscribe", "cli", "forced by staff over the person's own unsubscribe"),
    ]
    assert "resubscribed: " in workspace.cli("contacts", "show", "p@example.com").stdout


def test_unbounce_subscribes_a_bounced_contact_unless_it_unsubscribed(workspace):
    workspace.cli("contacts", "add", "b@example.com")
    workspace.cli("contacts", "add", "u@example.com")
    workspace.cli("contacts", "unsubscribe", "u@example.com")
    with workspace.store() as store:
        store.conn.execute("UPDATE contacts SET status = 'bounced'")
    res = workspace.cli("contacts", "resubscribe", "b@example.com")
    assert res.exit_code == 2 and "contacts unbounce" in res.stderr
    res = workspace.cli("contacts", "unbounce", "b@example.com")
    assert res.exit_code == 0 and "Unbounced b@example.com" in res.stdout
    assert show(workspace, "b@example.com")["status"] == "subscribed"
    res = workspace.cli("contacts", "unbounce", "u@example.com")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "an unsubscribe or complaint is on record")
    assert show(workspace, "u@example.com")["status"] == "bounced"
    events = rows_of(db(workspace), "SELECT action, source FROM unsubscribe_events ORDER BY id")
    assert events == [("unsubscribe", "cli"), ("unbounce", "cli")]
