"""The demo contacts in contacts/: they import, report their invalid rows, and round-trip."""

from __future__ import annotations

from mailer.resources import data_dir
from tests.contacts_helpers import tool_csv


def test_demo_files_import_with_their_invalid_rows_reported(workspace, tmp_path):
    folder = data_dir("contacts")
    report = tmp_path / "report.csv"
    res = workspace.cli(
        "contacts", "import", str(folder / "arctic-smartness.csv"), "--report", str(report)
    )
    assert res.exit_code == 0, res.stderr
    problems = tool_csv(report.read_text(encoding="utf-8"))
    assert [(p["row"], p["outcome"]) for p in problems] == [
        ("42", "invalid"),
        ("79", "invalid"),
        ("97", "invalid"),
        ("132", "duplicate"),
        ("202", "invalid"),
    ]
    assert "292 added" in res.stdout
    res = workspace.cli("contacts", "import", str(folder / "partners-en.csv"))
    assert "45 added" in res.stdout and "1 invalid" in res.stdout
    lists = workspace.cli("lists", "list", "--format", "csv").stdout
    assert sum(1 for line in lists.splitlines() if line.startswith("municipality:")) == 21
    assert sum(1 for line in lists.splitlines() if line.startswith("company:")) == 4
    count = workspace.cli(
        "segments",
        "count",
        "cluster:arctic-power and (municipality:rovaniemi or municipality:kemi) and not company:*",
    )
    assert int(count.stdout) > 0
    assert int(workspace.cli("segments", "count", "lang:se").stdout) > 10
    # Export, then import: nothing changes.
    out = tmp_path / "export.csv"
    workspace.cli("contacts", "export", "-o", str(out))
    res = workspace.cli("contacts", "import", str(out))
    assert "337 rows: 0 added, 0 updated, 337 unchanged" in res.stdout
