"""`campaign list` shows send_at as Helsinki time (the database keeps UTC)."""

from __future__ import annotations

import json
import re
import sqlite3

from tests.contacts_helpers import tool_csv
from tests.newsletter_helpers import copy_campaign


def _create(workspace, send_at: str) -> str:
    path = copy_campaign(workspace.path)
    text = path.read_text(encoding="utf-8")
    path.write_text(re.sub(r"(?m)^send_at = .*$", f"send_at = {send_at}", text), encoding="utf-8")
    assert workspace.cli("lists", "add", "cluster:arctic-power").exit_code == 0
    res = workspace.cli("campaign", "create", str(path))
    assert res.exit_code == 0, res.stderr
    return res.stdout.strip()


def test_campaign_list_shows_send_at_in_helsinki_time(workspace):
    name = _create(workspace, "2030-11-28T06:06:02Z")
    table = workspace.cli("campaign", "list").stdout.splitlines()
    row = next(line for line in table if line.startswith(name))
    assert "2030-11-28 08:06" in row and "06:06" not in row and "T" not in row.split()[2]
    listed = json.loads(workspace.cli("campaign", "list", "--format", "json").stdout)
    assert [c["send_at"] for c in listed] == ["2030-11-28T08:06:02+02:00"]
    rows = tool_csv(workspace.cli("campaign", "list", "--format", "csv").stdout)
    assert [r["send_at"] for r in rows] == ["2030-11-28T08:06:02+02:00"]
    # Only the display changed: the database still holds UTC.
    with sqlite3.connect(workspace.path / "mailer.db") as conn:
        stored = conn.execute("SELECT send_at FROM campaigns").fetchall()
    assert stored == [("2030-11-28T06:06:02.000000Z",)]


def test_summer_send_at_has_the_summer_offset(workspace):
    _create(workspace, "2030-07-01T06:06:02Z")
    listed = json.loads(workspace.cli("campaign", "list", "--format", "json").stdout)
    assert [c["send_at"] for c in listed] == ["2030-07-01T09:06:02+03:00"]


def test_campaign_show_gives_its_times_in_helsinki_time_too(workspace):
    name = _create(workspace, "2030-11-28T06:06:02Z")
    shown = json.loads(workspace.cli("campaign", "show", name, "--format", "json").stdout)
    assert shown["send_at"] == "2030-11-28T08:06:02+02:00"
    assert shown["created_at"].endswith(("+02:00", "+03:00"))
    table = workspace.cli("campaign", "show", name).stdout
    assert "2030-11-28 08:06" in table and "000000Z" not in table
