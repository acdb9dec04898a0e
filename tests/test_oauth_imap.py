"""`bounces fetch` with `auth = "xoauth2"` against a real Dovecot whose oauth2 passdb asks a
token introspection endpoint of the test (only the token command's current token is active)."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from tests.bounces_helpers import fill, send_campaign, with_bounces
from tests.mail_servers import Ca, Dovecot, need, private_folder
from tests.oauth_helpers import Introspection, TokenScript

pytestmark = pytest.mark.slow

USER = "bounces@arcticsmartness.eu"
PEOPLE = {"postfix-hard": "gone@example.org", "human-reply": "person@example.org"}


@pytest.fixture
def oauth_imap(tmp_path, request):
    need("dovecot", "openssl")
    mechanisms = getattr(request, "param", "xoauth2 oauthbearer")
    script = TokenScript(tmp_path / "token")
    folder = private_folder()
    try:
        (folder / "ca").mkdir()
        (folder / "imap").mkdir()
        with Introspection(script, USER) as introspection:
            server = Dovecot(
                folder / "imap",
                Ca(folder / "ca").make(),
                user=USER,
                oauth2_url=introspection.url,
                oauth2_mechanisms=mechanisms,
            ).start()
            try:
                yield server, script, introspection
            finally:
                server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _point(workspace, server: Dovecot, script: TokenScript, security: str) -> dict[str, str]:
    with_bounces(
        workspace,
        imap_host='"127.0.0.1"',
        imap_port=str(server.imaps_port if security == "tls" else server.imap_port),
        security=f'"{security}"',
        username=f'"{USER}"',
        auth='"xoauth2"',
        token_command=script.toml(),
    )
    return {"SSL_CERT_FILE": str(server.ca.cert)}


def _status(workspace, email: str) -> str:
    conn = sqlite3.connect(workspace.path / "mailer.db")
    try:
        return conn.execute("SELECT status FROM contacts WHERE email = ?", (email,)).fetchone()[0]
    finally:
        conn.close()


def _deliver(workspace, server: Dovecot) -> None:
    sent = send_campaign(workspace, list(PEOPLE.values()))
    for name, email in PEOPLE.items():
        server.deliver(fill(name, sent[email]))


def _no_token(script: TokenScript, *texts: str) -> None:
    for token in script.issued:
        for text in texts:
            assert token not in text


@pytest.mark.parametrize(
    ("security", "oauth_imap", "mechanism"),
    [("tls", "xoauth2 oauthbearer", "XOAUTH2"), ("starttls", "oauthbearer", "OAUTHBEARER")],
    indirect=["oauth_imap"],
)
def test_fetch_logs_in_with_xoauth2_and_handles_the_mailbox_as_with_a_password(
    workspace, oauth_imap, security, mechanism
):
    """XOAUTH2 where offered, else OAUTHBEARER (RFC 7628)."""
    server, script, introspection = oauth_imap
    env = _point(workspace, server, script, security)
    _deliver(workspace, server)
    res = workspace.run("bounces", "fetch", env=env)
    assert res.returncode == 0, res.stderr
    assert "1 hard" in res.stdout and "bounced: gone@example.org" in res.stdout
    assert _status(workspace, "gone@example.org") == "bounced"
    assert server.folder_files("") == []
    assert len(server.folder_files("mailer/processed")) == 1
    assert len(server.folder_files("mailer/unrecognised")) == 1
    assert introspection.asked == [script.current]  # one login, with the token it printed
    assert f"method={mechanism}," in server.log()
    _no_token(script, res.stdout, res.stderr, server.log())


def test_a_stale_token_is_replaced_once_and_a_refused_one_is_exit_1_with_nothing_moved(
    workspace, oauth_imap
):
    server, script, introspection = oauth_imap
    env = _point(workspace, server, script, "tls")
    _deliver(workspace, server)

    # The server takes no token at all: two tries (one fresh token), then exit 1.
    stale = script.current
    introspection.refuse_all = True
    res = workspace.run("bounces", "fetch", env=env)
    assert res.returncode == 1, res.stdout
    assert "login refused" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert script.calls == 2 and introspection.asked == [stale, stale]
    assert len(server.folder_files("")) == len(PEOPLE)  # nothing moved
    assert _status(workspace, "gone@example.org") == "subscribed"
    _no_token(script, res.stdout, res.stderr)

    # The first token printed has expired; the helper's next one works.
    introspection.refuse_all = False
    introspection.expire_once = True
    res = workspace.run("bounces", "fetch", env=env)
    assert res.returncode == 0, res.stderr
    assert script.calls == 4 and len(introspection.asked) == 4
    assert introspection.asked[2] == stale and introspection.asked[3] == script.current != stale
    assert server.folder_files("") == []
    assert _status(workspace, "gone@example.org") == "bounced"
    _no_token(script, res.stdout, res.stderr, server.log())


def test_a_failing_token_command_is_one_line_exit_1_and_nothing_moves(workspace, oauth_imap):
    server, script, _ = oauth_imap
    env = _point(workspace, server, script, "tls")
    _deliver(workspace, server)
    script.mode = "fail"
    res = workspace.run("bounces", "fetch", env=env)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "bounces.token_command" in lines[0]
    assert str(script.path) in lines[0] and "exited with status 1" in lines[0]
    _no_token(script, res.stdout, res.stderr)
    assert len(server.folder_files("")) == len(PEOPLE)
