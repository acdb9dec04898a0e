"""What an attacker or a bad moment throws at the tool ends in one line, never a traceback."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import pytest

from mailer.tokens import make_token
from tests.conftest import SECRET
from tests.contacts_helpers import assert_one_line_error
from tests.newsletter_helpers import copy_campaign
from tests.web_helpers import Server, add_contact, contact_events, insert_campaign_for_tests


def test_a_segment_of_1000_terms_is_a_usage_error(workspace):
    workspace.ensure_lists("cluster:arctic-power")
    workspace.cli("contacts", "add", "a@example.org", "--list", "cluster:arctic-power")
    huge = " or ".join(["cluster:arctic-power"] * 1000)
    for args in (
        ("segments", "count", huge),
        ("contacts", "list", "--segment", huge),
        ("segments", "save", "huge", huge),
    ):
        res = workspace.cli(*args)
        assert res.exit_code == 2, res.stderr
        assert_one_line_error(res.stderr, "1000 terms", "at most 500")
    res = workspace.cli("segments", "save", "big", " and ".join(["not lang:fi"] * 300))
    assert res.exit_code == 0, res.stderr
    res = workspace.cli("segments", "count", "@big or " + " or ".join(["lang:en"] * 300))
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "600 terms")
    assert workspace.cli("segments", "count", " or ".join(["lang:fi"] * 500)).stdout == "1\n"


def test_an_argument_that_is_not_utf8_is_one_line(workspace):
    bad = b"\xff\xfe@example.org".decode("utf-8", "surrogateescape")
    for args in (("contacts", "add", bad), ("contacts", "list", "--segment", bad)):
        res = workspace.run(*args)
        assert res.returncode == 2, res.stderr
        assert_one_line_error(res.stderr, "not UTF-8")
    assert json.loads(workspace.cli("contacts", "list", "--format", "json").stdout) == []


@pytest.mark.slow
def test_writes_under_a_lock_held_past_the_busy_timeout_are_one_line_exit_1(workspace):
    """Waits out the real 10-second busy timeout once, with the commands side by side."""
    workspace.ensure_lists("cluster:arctic-power")
    workspace.cli("contacts", "add", "a@example.org", "--list", "cluster:arctic-power")
    workspace.cli("contacts", "add", "b@example.org", "--list", "cluster:arctic-power")
    path = copy_campaign(workspace.path)
    text = path.read_text(encoding="utf-8").replace("send_at = 2018-11-07T09:00:00\n", "")
    path.write_text(text, encoding="utf-8")
    assert workspace.cli("campaign", "create", str(path)).exit_code == 0
    other = path.with_name("other.toml")
    other.write_text(text.replace("uutiskirje-2018-11", "toinen-2018-11"), encoding="utf-8")
    db = workspace.path / "mailer.db"
    commands = [
        ("contacts", "add", "c@example.org"),
        ("contacts", "unsubscribe", "a@example.org"),
        ("contacts", "forget", "b@example.org", "--yes"),
        ("campaign", "create", str(other)),
        ("send", "uutiskirje-2018-11", "--yes"),
    ]
    holder = sqlite3.connect(str(db), isolation_level=None, timeout=0)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        env = dict(workspace.env(), PATH="/usr/bin:/bin")
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "mailer", *args],
                cwd=workspace.path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for args in commands
        ]
        results = [
            (args, *p.communicate(timeout=120), p.returncode)
            for args, p in zip(commands, procs, strict=True)
        ]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    for args, _out, err, code in results:
        if "No such option: --yes" in err:  # `forget --yes` comes with the officer's branch
            continue
        assert code == 1, (args, err)
        assert_one_line_error(err, str(db), "locked")


def test_a_spool_left_by_a_stopped_service_is_recorded_at_the_next_start(workspace):
    """The service was stopped while the database was locked: the next start records it."""
    with workspace.store() as store:
        campaign = insert_campaign_for_tests(store, "2026-11")
        person = add_contact(store, "spooled@example.org")
    spool = workspace.path / "mailer.db.spool"
    spool.write_text(
        json.dumps({"campaign": campaign, "contact": person, "at": "2026-11-30T10:00:00.000000Z"})
        + "\n"
        + '{"campaign": 1, "cont',  # a line cut short by a crash was never answered 200
        encoding="ascii",
    )
    server = Server.start(workspace.path, workspace.env())
    try:
        deadline = time.monotonic() + 20
        replaying = workspace.path / "mailer.db.spool.replaying"
        while (spool.exists() or replaying.exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not spool.exists() and not replaying.exists()
        with workspace.store() as store:
            assert contact_events(store, person) == [("unsubscribe", "one-click", campaign)]
        # the same link once more changes nothing
        token = make_token(SECRET.encode(), campaign, person)
        assert server.one_click(token).status == 200
    finally:
        server.stop()
    with workspace.store() as store:
        assert contact_events(store, person) == [("unsubscribe", "one-click", campaign)]
