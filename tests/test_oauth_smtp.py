"""`mailer send` with `[smtp] auth = "xoauth2"`: an aiosmtpd over STARTTLS (private CA) that
offers only XOAUTH2 (or only OAUTHBEARER) and accepts exactly the token the test's token
command prints now; the token expires mid-send and is never written anywhere."""

from __future__ import annotations

import contextlib
import json
import os
import signal

import pytest

from tests.bounces_helpers import CAMPAIGN, create_campaign
from tests.oauth_helpers import OAuthServer, TokenScript, make_ca, point_xoauth2


@pytest.fixture
def ca(tmp_path):
    return make_ca(tmp_path / "ca")


@pytest.fixture
def script(tmp_path):
    return TokenScript(tmp_path / "token")


PEOPLE = [f"lukija{i}@example.org" for i in range(6)]


def _stats(workspace) -> dict:
    res = workspace.cli("stats", CAMPAIGN, "--format", "json")
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def _no_token(script: TokenScript, *texts: str | bytes) -> None:
    for token in script.issued:
        for text in texts:
            if isinstance(text, bytes):
                assert token.encode() not in text
            else:
                assert token not in text


def _written(workspace) -> list[bytes]:
    """Every file the workspace holds: database (and its WAL), reports, messages."""
    return [p.read_bytes() for p in workspace.path.rglob("*") if p.is_file()]


def test_a_campaign_goes_out_over_xoauth2_and_an_expired_token_is_refreshed_once(
    workspace, ca, script
):
    create_campaign(workspace, PEOPLE)
    with OAuthServer(ca, script) as server:
        server.handler.expire_after = 3  # the token expires after the third message
        # pause_after = 1: a refusal that counted as a failure would pause the campaign.
        env = point_xoauth2(
            workspace, server, script, connections=1, messages_per_connection=2, pause_after=1
        )
        res = workspace.run("send", CAMPAIGN, "--yes", env=env)
        handler = server.handler
    assert res.returncode == 0, res.stderr
    assert sorted(r for item in handler.received for r in item.rcpt_tos) == PEOPLE
    # Three connections, one token each; the third's token had expired: one refusal, one
    # fresh token, and the run never saw a failure.
    assert handler.refused == 1 and handler.accepted == 3
    assert script.calls == 4 and len(script.issued) == 2
    assert handler.seen_tokens == [script.issued[0]] * 3 + [script.issued[1]]
    stats = _stats(workspace)
    assert (stats["status"], stats["sent"], stats["failed"], stats["deferred"]) == (
        "sent",
        6,
        0,
        0,
    )
    report = workspace.cli("report", CAMPAIGN, "--out", str(workspace.path / "report.html"))
    assert report.exit_code == 0, report.stderr
    _no_token(script, res.stdout, res.stderr, *[item.data for item in handler.received])
    _no_token(script, *_written(workspace))


def test_a_server_that_offers_only_oauthbearer_gets_oauthbearer(workspace, ca, script):
    create_campaign(workspace, PEOPLE[:2])
    with OAuthServer(ca, script, mechanism="OAUTHBEARER") as server:
        env = point_xoauth2(workspace, server, script)
        res = workspace.run("send", CAMPAIGN, "--yes", env=env)
        handler = server.handler
    assert res.returncode == 0, res.stderr
    assert len(handler.received) == 2 and handler.refused == 0
    assert set(handler.seen_tokens) == {script.current}
    _no_token(script, res.stdout, res.stderr, *_written(workspace))


def test_a_token_command_that_leaves_a_child_holding_its_output_still_answers(
    workspace, ca, script
):
    create_campaign(workspace, PEOPLE[:2])
    script.mode = "daemon"  # a helper that starts a token cache in the background, say
    with OAuthServer(ca, script) as server:
        env = point_xoauth2(workspace, server, script, timeout=20)
        try:
            res = workspace.run("send", CAMPAIGN, "--yes", env=env, timeout=60)
        finally:
            daemons = script.folder / "daemons"
            for pid in daemons.read_text().split() if daemons.exists() else []:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        handler = server.handler
    assert res.returncode == 0, res.stderr
    assert len(handler.received) == 2 and set(handler.seen_tokens) == {script.current}


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("fail", "exited with status 1: AADSTS7000215: Invalid client secret provided."),
        ("noisy", "exited with status 1: refresh failed for […]"),  # never its token
        ("empty", "printed no token"),
        ("lines", "must print the access token alone, on one line"),
        ("hang", "did not answer within 1 s"),
        ("orphan", "did not answer within 1 s"),  # not stuck on the pipe its child holds
        ("missing", "not found"),
    ],
)
def test_a_failing_token_command_is_one_line_exit_1_and_nothing_is_marked(
    workspace, ca, script, mode, said
):
    create_campaign(workspace, PEOPLE[:2])
    with OAuthServer(ca, script) as server:
        env = point_xoauth2(workspace, server, script, timeout=1)
        if mode == "missing":
            workspace.set_config("smtp", "token_command", '["/nonexistent/m365-token"]')
        else:
            script.mode = mode
        try:
            res = workspace.run("send", CAMPAIGN, "--yes", env=env, timeout=60)
        finally:
            orphan = script.folder / "orphan"
            if orphan.exists():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(orphan.read_text()), signal.SIGKILL)
        handler = server.handler
    assert res.returncode == 1, res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    program = "/nonexistent/m365-token" if mode == "missing" else str(script.path)
    assert lines[0] == f"Error: smtp.token_command: token command {program} {said}"
    _no_token(script, res.stdout, res.stderr, *_written(workspace))
    assert handler.seen_tokens == [] and handler.received == []
    stats = _stats(workspace)
    assert (stats["sent"], stats["failed"], stats["deferred"], stats["unknown"]) == (0, 0, 0, 0)


def test_a_token_command_that_fails_mid_send_stops_the_run_and_marks_nobody(workspace, ca, script):
    create_campaign(workspace, PEOPLE)
    with OAuthServer(ca, script) as server:
        env = point_xoauth2(workspace, server, script, connections=1, messages_per_connection=2)
        script.fail_from = 3  # two connections' worth, then the helper breaks
        res = workspace.run("send", CAMPAIGN, "--yes", env=env)
        assert res.returncode == 1, res.stdout
        errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
        assert errors == [
            f"Error: smtp.token_command: token command {script.path} exited with status 1:"
            " AADSTS7000215: Invalid client secret provided."
        ]
        stats = _stats(workspace)
        assert (stats["sent"], stats["pending"], stats["failed"], stats["deferred"]) == (
            4,
            2,
            0,
            0,
        )
        script.fail_from = 0  # mended: the next run sends the rest
        again = workspace.run("send", CAMPAIGN, "--yes", env=env)
        handler = server.handler
    assert again.returncode == 0, again.stderr
    assert sorted(r for item in handler.received for r in item.rcpt_tos) == PEOPLE
    assert _stats(workspace)["status"] == "sent"
    _no_token(script, res.stderr, again.stderr, *_written(workspace))
