"""`mailer demo` shows returned mail: a few recipients bounce or complain, and it says who."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from tests.conftest import SECRET

pytestmark = pytest.mark.slow


def test_the_demo_imports_returned_mail_and_says_who_was_stopped_and_why(tmp_path):
    folder = tmp_path / "demo"
    env = {"MAILER_SECRET": SECRET}
    res = CliRunner().invoke(app, ["demo", str(folder)], env=env, catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    returned = next(line for line in lines if line.startswith("Returned"))
    assert "5 messages): 2 hard, 1 soft, 1 complaint, 1 auto-reply" in returned
    stopped = [line for line in lines if line.startswith("Stopped")]
    assert len(stopped) == 3
    assert sum(": bounced: 5.1." in line for line in stopped) == 2
    assert sum(": unsubscribed: complained" in line for line in stopped) == 1
    # The lines come in the order the messages were found: pick a hard bounce's.
    email = next(line for line in stopped if ": bounced: 5.1.1" in line).split()[1].rstrip(":")
    shown = CliRunner().invoke(
        app,
        ["--config", str(folder / "mailer.toml"), "contacts", "show", email, "--format", "json"],
        env=env,
    )
    data = json.loads(shown.stdout)
    assert data["status"] == "bounced" and data["last_bounce"]["status"] == "5.1.1"
    again = CliRunner().invoke(app, ["demo", str(folder)], env=env, catch_exceptions=False)
    assert again.exit_code == 0
    assert "4 already applied" in again.stdout and "Stopped" not in again.stdout
