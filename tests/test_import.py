"""`mailer contacts import`: encodings, delimiters, headers, row outcomes, one transaction."""

from __future__ import annotations

import json

import pytest

from tests.contacts_helpers import assert_one_line_error, rows_of, snapshot, tool_csv, write_csv

FI_HEADER = ["Sähköposti", "Nimi", "Organisaatio", "Kieli", "Klusterit", "Kunta", "Puhelin"]


def db(workspace):
    return workspace.path / "mailer.db"


def contacts_json(workspace, *args):
    res = workspace.cli("contacts", "list", "--format", "json", *args)
    assert res.exit_code == 0, res.stderr
    return {c["email"]: c for c in json.loads(res.stdout)}


def test_finnish_excel_file_in_cp1252_with_semicolons(workspace, tmp_path):
    path = write_csv(
        tmp_path / "jasenet.csv",
        [
            FI_HEADER,
            [
                "aino.aikio@example.org",
                "Aino Äikiö",
                "Lapin liitto",
                "fi",
                "Arctic Power",
                "Inari",
                "",
            ],
            [
                "Pekka.Mäki@Example.COM",
                "Pekka Mäki",
                "",
                "",
                "Arctic Design|Arctic Power",
                "",
                "040",
            ],
        ],
        encoding="cp1252",
    )
    res = workspace.cli("contacts", "import", str(path))
    assert res.exit_code == 0, res.stderr
    assert "2 added" in res.stdout
    found = contacts_json(workspace)
    assert set(found) == {"aino.aikio@example.org", "Pekka.Mäki@example.com"}
    pekka = found["Pekka.Mäki@example.com"]
    assert pekka["name"] == "Pekka Mäki"
    assert pekka["language"] == "fi"  # defaults.language
    assert pekka["lists"] == ["cluster:arctic-design", "cluster:arctic-power"]
    assert pekka["attributes"] == {"Puhelin": "040"}
    assert found["aino.aikio@example.org"]["lists"] == [
        "cluster:arctic-power",
        "municipality:inari",
    ]
    names = dict(rows_of(db(workspace), "SELECT slug, name FROM lists"))
    assert names["arctic-design"] == "Arctic Design"


@pytest.mark.parametrize(
    ("delimiter", "encoding", "header"),
    [
        ("\t", "utf-8-sig", ["E-post", "Namn", "Organisation", "Språk", "Kluster", "Kommun"]),
        (",", "utf-8", ["EMAIL", "name", "organization", "language", "clusters", "municipality"]),
        (";", "utf-8-sig", ["sähkö posti", "NIMI", "organisaatio", "kieli", "klusteri", "kunta"]),
        ("\t", "utf-16", ["e-mail", "Name", "Organisation", "Language", "Cluster", "Kommun"]),
    ],
)
def test_headers_delimiters_and_encodings_are_recognised(
    workspace, tmp_path, delimiter, encoding, header
):
    path = write_csv(
        tmp_path / "in.csv",
        [header, ["elsa@example.net", "Elsa Öberg", "Företag Ab", "sv", "Arctic Safety", "Tornio"]],
        delimiter=delimiter,
        encoding=encoding,
    )
    res = workspace.cli("contacts", "import", str(path))
    assert res.exit_code == 0, res.stderr
    elsa = contacts_json(workspace)["elsa@example.net"]
    assert (elsa["name"], elsa["organization"], elsa["language"]) == (
        "Elsa Öberg",
        "Företag Ab",
        "sv",
    )
    assert elsa["lists"] == ["cluster:arctic-safety", "municipality:tornio"]
    assert elsa["attributes"] == {}


def test_row_outcomes_with_spreadsheet_row_numbers_and_a_report(workspace, tmp_path):
    path = write_csv(
        tmp_path / "in.csv",
        [
            FI_HEADER,  # row 1
            ["a@example.com", "A", "", "", "Arctic Power", "", ""],  # 2 added
            ["", "", "", "", "", "", ""],  # 3 empty: skipped silently
            ["not-an-address", "B", "", "", "", "", ""],  # 4 invalid
            ["c@example.com", "Line\nbreak", "", "", "", "", ""],  # 5 added (2 physical lines)
            ["A@EXAMPLE.COM", "", "", "", "Arctic Design", "Kemi", ""],  # 6 duplicate of 2
            ["d@example.com", "D", "", "de", "", "", ""],  # 7 invalid language
            ["", "E", "", "", "", "", ""],  # 8 invalid: no address
        ],
    )
    report = tmp_path / "report.csv"
    res = workspace.cli("contacts", "import", str(path), "--report", str(report))
    assert res.exit_code == 0, res.stderr
    assert "6 rows: 2 added, 0 updated, 0 unchanged, 3 invalid, 1 duplicate, 0 suppressed" in (
        res.stdout
    )
    problems = [(r["row"], r["outcome"]) for r in tool_csv(report.read_text(encoding="utf-8"))]
    assert problems == [("4", "invalid"), ("6", "duplicate"), ("7", "invalid"), ("8", "invalid")]
    assert "in.csv row 7: invalid: d@example.com: language 'de'" in res.stderr
    assert "row 7" not in res.stdout  # problems go to stderr, data to stdout
    found = contacts_json(workspace)
    # The duplicate merged its lists into the first row's contact.
    assert found["a@example.com"]["lists"] == [
        "cluster:arctic-design",
        "cluster:arctic-power",
        "municipality:kemi",
    ]
    assert found["c@example.com"]["name"] == "Line break"  # a CR/LF becomes a space


def test_name_and_address_cell_and_unicode_domain(workspace, tmp_path):
    path = write_csv(
        tmp_path / "in.csv",
        [
            ["email", "name"],
            ["Máret Sara <maret@sápmi.example>", ""],
            ["Ole <ole@example.org>", "Ole N"],
        ],
        delimiter=",",
    )
    assert workspace.cli("contacts", "import", str(path)).exit_code == 0
    found = contacts_json(workspace)
    assert found["maret@sápmi.example"]["name"] == "Máret Sara"
    assert found["ole@example.org"]["name"] == "Ole N"  # the name column wins
    wire = rows_of(db(workspace), "SELECT email_ascii FROM contacts WHERE email LIKE 'maret%'")
    assert wire == [("maret@xn--spmi-5na.example",)]


def test_strict_writes_nothing_when_a_row_is_invalid(workspace, tmp_path):
    path = write_csv(
        tmp_path / "in.csv",
        [
            FI_HEADER,
            ["ok@example.com", "", "", "", "Arctic Power", "", ""],
            ["bad@", "", "", "", "", "", ""],
        ],
    )
    before = snapshot(db(workspace))
    res = workspace.cli("contacts", "import", str(path), "--strict")
    assert res.exit_code == 2
    assert "in.csv row 3: invalid: bad@" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert "nothing written" in res.stderr
    assert snapshot(db(workspace)) == before


@pytest.mark.parametrize("target", ["missing-folder/report.csv", "."])
def test_unwritable_report_target_is_refused_before_importing(workspace, tmp_path, target):
    path = write_csv(tmp_path / "in.csv", [FI_HEADER, ["ok@example.com", "", "", "", "X", "", ""]])
    before = snapshot(db(workspace))
    res = workspace.cli("contacts", "import", str(path), "--report", str(tmp_path / target))
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "report")
    assert snapshot(db(workspace)) == before
    assert not (tmp_path / "missing-folder").exists()


def test_dry_run_reports_and_writes_nothing(workspace, tmp_path):
    path = write_csv(tmp_path / "in.csv", [FI_HEADER, ["ok@example.com", "", "", "", "X", "", ""]])
    before = snapshot(db(workspace))
    res = workspace.cli("contacts", "import", str(path), "--dry-run")
    assert res.exit_code == 0
    assert "Dry run" in res.stdout and "1 added" in res.stdout
    assert snapshot(db(workspace)) == before


def test_list_option_adds_every_row_and_unknown_kind_is_usage_error(workspace, tmp_path):
    path = write_csv(tmp_path / "in.csv", [["email"], ["a@example.com"], ["b@example.com"]])
    assert workspace.cli("lists", "add", "cluster:Arctic Power").exit_code == 0
    assert workspace.cli("lists", "add", "company:Kiertotalous Oy").exit_code == 0
    res = workspace.cli(
        "contacts",
        "import",
        str(path),
        "--list",
        "cluster:arctic-power",
        "--list",
        "company:Kiertotalous Oy",
    )
    assert res.exit_code == 0, res.stderr
    assert {tuple(c["lists"]) for c in contacts_json(workspace).values()} == {
        ("cluster:arctic-power", "company:kiertotalous-oy")
    }
    before = snapshot(db(workspace))
    res = workspace.cli("contacts", "import", str(path), "--list", "club:x")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "unknown list kind 'club'")
    assert snapshot(db(workspace)) == before


def test_reimport_counts_unchanged_and_updated(workspace, tmp_path):
    rows = [FI_HEADER, ["a@example.com", "Anna", "", "fi", "Arctic Power", "", ""]]
    path = write_csv(tmp_path / "in.csv", rows)
    workspace.cli("contacts", "import", str(path))
    res = workspace.cli("contacts", "import", str(path))
    assert "1 unchanged" in res.stdout
    rows[1][1] = "Anna Aikio"
    write_csv(path, rows)
    res = workspace.cli("contacts", "import", str(path))
    assert "1 updated" in res.stdout
    assert contacts_json(workspace)["a@example.com"]["name"] == "Anna Aikio"


def test_reimport_never_resubscribes_unsubscribed_bounced_or_forgotten(workspace, tmp_path):
    rows = [["email", "name"]] + [[f"{n}@example.com", n] for n in ("un", "bo", "fo", "ok")]
    path = write_csv(tmp_path / "in.csv", rows, delimiter=",")
    workspace.cli("contacts", "import", str(path))
    assert workspace.cli("contacts", "unsubscribe", "un@example.com").exit_code == 0
    with workspace.store() as store:
        store.conn.execute("UPDATE contacts SET status = 'bounced' WHERE email = 'bo@example.com'")
    assert workspace.cli("contacts", "forget", "fo@example.com", "--yes").exit_code == 0
    write_csv(
        path,
        [["email", "name"]] + [[f"{n.upper()}@Example.com", n] for n in ("un", "bo", "fo", "ok")],
    )
    res = workspace.cli("contacts", "import", str(path))
    assert res.exit_code == 0
    assert (
        "4 rows: 0 added, 0 updated, 1 unchanged, 0 invalid, 0 duplicate, 3 suppressed"
        in res.stdout
    )
    assert "in.csv row 4: suppressed" in res.stderr and "forgotten address" in res.stderr
    statuses = {c["email"]: c["status"] for c in contacts_json(workspace).values()}
    assert statuses == {
        "un@example.com": "unsubscribed",
        "bo@example.com": "bounced",
        "ok@example.com": "subscribed",
    }


def test_a_status_column_can_unsubscribe_but_never_resubscribe(workspace, tmp_path):
    path = write_csv(
        tmp_path / "in.csv", [["email", "status"], ["a@example.com", ""]], delimiter=","
    )
    workspace.cli("contacts", "import", str(path))
    write_csv(path, [["email", "tila"], ["a@example.com", "unsubscribed"]], delimiter=",")
    assert "1 updated" in workspace.cli("contacts", "import", str(path)).stdout
    events = rows_of(db(workspace), "SELECT action, source FROM unsubscribe_events")
    assert events == [("unsubscribe", "import")]
    write_csv(path, [["email", "status"], ["a@example.com", "subscribed"]], delimiter=",")
    assert "1 suppressed" in workspace.cli("contacts", "import", str(path)).stdout
    assert contacts_json(workspace)["a@example.com"]["status"] == "unsubscribed"


def test_export_then_import_changes_nothing(workspace, tmp_path):
    path = write_csv(
        tmp_path / "in.csv",
        [
            ["Sähköposti", "Nimi", "Kieli", "Klusterit", "Kunta", "Yritys", "Titteli", "Puhelin"],
            [
                "a@example.com",
                "Áile Sara",
                "se",
                "Arctic Power|Arctic Design",
                "Utsjoki",
                "",
                "CEO",
                "",
            ],
            ["b@bücher.example", "Bo", "sv", "", "Kemi", "Sustainable Tourism", "", "040; 1"],
            ["q@example.org", 'Quote "Q" Person', "en", "", "", "", "", ""],
            ["c@example.com", "", "", "", "", "", "", ""],
        ],
    )
    workspace.cli("contacts", "import", str(path))
    workspace.cli("lists", "add", "cluster:arctic-power", "--name", "Arctic Power | Energy")
    workspace.cli("lists", "add", "company:renamed")
    workspace.cli("contacts", "add", "d@example.net", "--list", "company:renamed")
    workspace.cli("lists", "add", "company:renamed", "--name", "A Different Name")
    workspace.cli("contacts", "unsubscribe", "c@example.com")
    out = tmp_path / "export.csv"
    res = workspace.cli("contacts", "export", "-o", str(out))
    assert res.exit_code == 0, res.stderr
    before = snapshot(db(workspace))
    res = workspace.cli("contacts", "import", str(out))
    assert res.exit_code == 0, res.stderr
    assert (
        "5 rows: 0 added, 0 updated, 5 unchanged, 0 invalid, 0 duplicate, 0 suppressed"
        in res.stdout
    )
    assert snapshot(db(workspace)) == before
    # Into a fresh workspace, the same file recreates the same contacts and lists.
    stdout_export = workspace.cli("contacts", "export").stdout
    assert stdout_export.splitlines()[0].startswith("\ufeffemail;name;organization;language;status")


def test_export_segment_limits_rows(workspace, tmp_path):
    workspace.cli("lists", "add", "municipality:kemi")
    workspace.cli("lists", "add", "municipality:tornio")
    workspace.cli("contacts", "add", "a@example.com", "--list", "municipality:kemi")
    workspace.cli("contacts", "add", "b@example.com", "--list", "municipality:tornio")
    res = workspace.cli("contacts", "export", "--segment", "municipality:kemi")
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("a@example.com;")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "no such file"),
        (b"\x00\x01\x02\xff\xfe binary \x00" * 50, "binary"),
        (b"\x81\x8d\x8f\x90\x9d" * 20, "not a text file"),
        (b"Nimi;Puhelin\nAino;040\n", "no e-mail column"),
        (b"   \n\n", "empty file"),
    ],
)
def test_bad_files_exit_2_with_one_line_and_change_nothing(workspace, tmp_path, content, fragment):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_bytes(content)
    before = snapshot(db(workspace))
    res = workspace.cli("contacts", "import", str(path))
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, fragment, str(path))
    assert snapshot(db(workspace)) == before


def test_a_folder_and_an_unreadable_file_are_usage_errors(workspace, tmp_path):
    res = workspace.cli("contacts", "import", str(tmp_path))
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "folder")
    locked = write_csv(tmp_path / "locked.csv", [["email"], ["a@example.com"]])
    locked.chmod(0)
    try:
        if locked.open("rb"):  # running as root: the file stays readable
            pytest.skip("root can read any file")
    except PermissionError:
        res = workspace.cli("contacts", "import", str(locked))
        assert res.exit_code == 2
        assert_one_line_error(res.stderr, "cannot read")
    finally:
        locked.chmod(0o600)


def test_binary_garbage_through_a_real_process_has_no_traceback(workspace, tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_bytes(bytes(range(256)) * 40)
    proc = workspace.run("contacts", "import", str(path))
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr)
    assert proc.stdout == ""


def test_a_database_failure_midway_writes_nothing(workspace, tmp_path):
    rows = [["email", "klusterit"]] + [[f"p{i}@example.com", "Arctic Power"] for i in range(50)]
    path = write_csv(tmp_path / "in.csv", rows)
    with workspace.store() as store:
        # A real SQLite failure after some rows are in: the whole import must roll back.
        store.conn.execute(
            "CREATE TRIGGER fail_late BEFORE INSERT ON memberships"
            " WHEN (SELECT count(*) FROM memberships) >= 20"
            " BEGIN SELECT RAISE(ABORT, 'disk is full'); END"
        )
    before = snapshot(db(workspace))
    res = workspace.cli("contacts", "import", str(path))
    assert res.exit_code == 1
    assert_one_line_error(res.stderr, "nothing imported", "disk is full")
    assert snapshot(db(workspace)) == before


def test_too_many_cells_and_a_bad_list_name_are_invalid_rows(workspace, tmp_path):
    path = write_csv(
        tmp_path / "in.csv",
        [
            ["email", "kunta"],
            ["a@example.com", "Kemi", "extra"],
            ["b@example.com", "!!!"],
            ["c@example.com", "Ii", ""],
        ],
    )
    res = workspace.cli("contacts", "import", str(path))
    assert "in.csv row 2: invalid" in res.stderr and "in.csv row 3: invalid" in res.stderr
    assert "1 added" in res.stdout


def test_excel_sep_line_names_the_delimiter_and_is_not_a_row(workspace, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(
        "sep=,\r\nSähköposti,Kieli\r\na@example.com,fi\r\nbad@,fi\r\n".encode("cp1252")
    )
    res = workspace.cli("contacts", "import", str(path))
    assert res.exit_code == 0, res.stderr
    assert "excel.csv row 3: invalid: bad@" in res.stderr
    assert "1 added" in res.stdout


def test_library_import_reports_progress(workspace, tmp_path):
    from mailer.audience.importer import import_contacts
    from mailer.timeutil import now_utc

    rows = [["email"]] + [[f"p{i}@example.com"] for i in range(12_000)]
    path = write_csv(tmp_path / "big.csv", rows)
    seen = []
    with workspace.store() as store:
        report = import_contacts(
            store,
            workspace.config(),
            path,
            now=now_utc(),
            progress=lambda d, t: seen.append((d, t)),
        )
    assert report.added == 12_000
    assert seen[-1] == (12_000, 12_000)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) >= 3


def test_import_needs_no_secret_until_an_address_was_forgotten(workspace, tmp_path):
    workspace.set_config("web", "secret", '""')
    path = write_csv(tmp_path / "in.csv", [["email"], ["a@example.com"]])
    res = workspace.cli("contacts", "import", str(path), env={"MAILER_SECRET": ""})
    assert res.exit_code == 0 and "1 added" in res.stdout


def test_a_status_column_never_turns_a_bounced_contact_into_unsubscribed(workspace, tmp_path):
    path = write_csv(
        tmp_path / "in.csv",
        [["email", "name"], ["bo@example.com", "Bo"], ["un@example.com", "Un"]],
        delimiter=",",
    )
    workspace.cli("contacts", "import", str(path))
    with workspace.store() as store:
        store.conn.execute("UPDATE contacts SET status = 'bounced' WHERE email = 'bo@example.com'")
    assert workspace.cli("contacts", "unsubscribe", "un@example.com").exit_code == 0
    before = snapshot(db(workspace))
    write_csv(
        path,
        [["email", "name", "status"], ["bo@example.com", "Bo B", "unsubscribed"]]
        + [["un@example.com", "Un U", "bounced"]],
        delimiter=",",
    )
    res = workspace.cli("contacts", "import", str(path))
    assert res.exit_code == 0, res.stderr
    assert "2 rows: 0 added, 0 updated, 0 unchanged, 0 invalid, 0 duplicate, 2 suppressed" in (
        res.stdout
    )
    assert "in.csv row 2: suppressed" in res.stderr
    assert "bounced; not changed to unsubscribed" in res.stderr
    assert "unsubscribed; not changed to bounced" in res.stderr
    assert snapshot(db(workspace)) == before  # nothing changed: no status, name or event


def test_every_status_an_import_sets_is_recorded_with_source_import(workspace, tmp_path):
    path = write_csv(tmp_path / "in.csv", [["email"], ["old@example.com"]], delimiter=",")
    workspace.cli("contacts", "import", str(path))
    write_csv(
        path,
        [["email", "status"], ["old@example.com", "bounced"], ["new@example.com", "unsubscribed"]],
        delimiter=",",
    )
    res = workspace.cli("contacts", "import", str(path), "--dry-run")
    assert "1 added, 1 updated" in res.stdout
    assert rows_of(db(workspace), "SELECT count(*) FROM unsubscribe_events") == [(0,)]
    res = workspace.cli("contacts", "import", str(path))
    assert res.exit_code == 0, res.stderr
    assert "1 added, 1 updated" in res.stdout
    statuses = {c["email"]: c["status"] for c in contacts_json(workspace).values()}
    assert statuses == {"old@example.com": "bounced", "new@example.com": "unsubscribed"}
    events = rows_of(
        db(workspace),
        "SELECT c.email, e.action, e.source, e.campaign_id, e.detail FROM unsubscribe_events e"
        " JOIN contacts c ON c.id = e.contact_id ORDER BY e.id",
    )
    assert events == [
        ("old@example.com", "bounce", "import", None, "in.csv row 2"),
        ("new@example.com", "unsubscribe", "import", None, "in.csv row 3"),
    ]
    shown = workspace.cli("contacts", "show", "old@example.com").stdout
    assert "bounced:" in shown and "(import)" in shown
