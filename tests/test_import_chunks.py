"""An import works through its file a chunk at a time; the outcome is the same as one pass.

A million-row file is checked into a staging table and written chunk by chunk in one
transaction, so memory stays flat. These tests make the chunks tiny, so that duplicates,
re-imports and refusals fall on both sides of a chunk boundary.
"""

from __future__ import annotations

import csv
import json

import pytest

from mailer.audience import staging
from tests.contacts_helpers import rows_of, write_csv

HEADER = ["Sähköposti", "Nimi", "Klusterit", "Kunta"]


@pytest.fixture(autouse=True)
def tiny_chunks(monkeypatch):
    monkeypatch.setattr(staging, "CHUNK_ROWS", 3)


def _contacts(workspace) -> dict[str, dict]:
    res = workspace.cli("contacts", "list", "--format", "json")
    assert res.exit_code == 0, res.stderr
    return {c["email"]: c for c in json.loads(res.stdout)}


def _rows(n: int, start: int = 0) -> list[list[str]]:
    return [[f"h{i}@example.org", f"Henkilö {i}", "Arctic Power", "Inari"] for i in range(start, n)]


def test_duplicates_across_chunks_join_the_first_rows_lists_and_name_its_row(workspace, tmp_path):
    rows = [HEADER, ["dup@example.org", "Eka", "Arctic Design", ""], *_rows(7)]
    rows += [
        ["DUP@example.org", "Toka", "", "Kemi"],
        *_rows(9, 7),
        ["dup@example.org", "", "", "Salla"],
    ]
    path = write_csv(tmp_path / "c.csv", rows)
    problems = tmp_path / "problems.csv"
    res = workspace.cli("contacts", "import", str(path), "--report", str(problems))
    assert res.exit_code == 0, res.stderr
    assert "12 rows: 10 added, 0 updated, 0 unchanged, 0 invalid, 2 duplicate" in res.stdout
    assert (
        "New lists: cluster:arctic-design, cluster:arctic-power, municipality:inari,"
        " municipality:kemi, municipality:salla" in res.stdout
    )
    assert list(csv.reader(problems.open(encoding="utf-8-sig"), delimiter=";"))[1:] == [
        ["10", "duplicate", "DUP@example.org", "same address as row 2"],
        ["13", "duplicate", "dup@example.org", "same address as row 2"],
    ]
    dup = _contacts(workspace)["dup@example.org"]
    assert dup["name"] == "Eka"
    assert dup["lists"] == ["cluster:arctic-design", "municipality:kemi", "municipality:salla"]


def test_a_reimport_in_chunks_counts_each_row_once(workspace, tmp_path):
    path = write_csv(tmp_path / "c.csv", [HEADER, *_rows(10)])
    assert workspace.cli("contacts", "import", str(path)).exit_code == 0
    again = [HEADER, *_rows(10)]
    again[5][3] = "Kemi"  # one contact joins a list
    again.append(["uusi@example.org", "Uusi", "", ""])
    res = workspace.cli("contacts", "import", str(write_csv(tmp_path / "d.csv", again)))
    assert "11 rows: 1 added, 1 updated, 9 unchanged" in res.stdout
    assert _contacts(workspace)["h4@example.org"]["lists"] == [
        "cluster:arctic-power",
        "municipality:inari",
        "municipality:kemi",
    ]
    assert rows_of(workspace.path / "mailer.db", "SELECT count(*) FROM contacts") == [(11,)]


def test_strict_with_a_bad_row_in_the_last_chunk_writes_nothing(workspace, tmp_path):
    rows = [HEADER, *_rows(8), ["ei-osoite", "Rikki", "", ""]]
    res = workspace.cli("contacts", "import", str(write_csv(tmp_path / "c.csv", rows)), "--strict")
    assert res.exit_code == 2 and "1 invalid row(s)" in res.stderr
    assert rows_of(workspace.path / "mailer.db", "SELECT count(*) FROM contacts") == [(0,)]
    res = workspace.cli("contacts", "import", str(write_csv(tmp_path / "c.csv", rows)), "--dry-run")
    assert res.exit_code == 0 and "8 added" in res.stdout
    assert rows_of(workspace.path / "mailer.db", "SELECT count(*) FROM lists") == [(0,)]
