"""`mailer bounces fetch` against a real Dovecot over IMAPS and STARTTLS with a private CA."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from mailer.bounces.mailbox import Mailbox
from mailer.bounces.runs import fetch
from tests.bounces_helpers import fill, send_campaign, with_bounces
from tests.mail_servers import Ca, Dovecot, need, private_folder

pytestmark = pytest.mark.slow

PEOPLE = {
    "postfix-hard": "gone@example.org",
    "complaint-redacted": "angry@example.org",
    "vacation-fi": "away@example.org",
    "human-reply": "person@example.org",
}


@pytest.fixture
def dovecot():
    need("dovecot", "openssl")
    folder = private_folder()
    try:
        (folder / "ca").mkdir()
        (folder / "imap").mkdir()
        server = Dovecot(folder / "imap", Ca(folder / "ca").make()).start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _point(workspace, server: Dovecot, *, security="tls") -> dict[str, str]:
    port = server.imaps_port if security == "tls" else server.imap_port
    with_bounces(
        workspace,
        imap_host='"127.0.0.1"',
        imap_port=str(port),
        security=f'"{security}"',
        username=f'"{server.user}"',
    )
    return {"MAILER_IMAP_PASSWORD": server.password, "SSL_CERT_FILE": str(server.ca.cert)}


def _status(workspace, email):
    conn = sqlite3.connect(workspace.path / "mailer.db")
    try:
        return conn.execute("SELECT status FROM contacts WHERE email = ?", (email,)).fetchone()[0]
    finally:
        conn.close()


def _unread(path) -> bool:
    return path.parent.name == "new" or "S" not in path.name.rpartition(":2,")[2]


def _deliver_all(workspace, server):
    sent = send_campaign(workspace, list(PEOPLE.values()))
    for name, email in PEOPLE.items():
        server.deliver(fill(name, sent[email]))


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_fetch_applies_bounces_and_moves_mail_and_a_second_fetch_changes_nothing(
    workspace, dovecot, security
):
    env = _point(workspace, dovecot, security=security)
    _deliver_all(workspace, dovecot)
    res = workspace.run("bounces", "fetch", env=env)
    assert res.returncode == 0, res.stderr
    assert "1 hard" in res.stdout and "1 complaints" in res.stdout
    assert "bounced: gone@example.org" in res.stdout
    assert "unsubscribed: angry@example.org" in res.stdout
    assert _status(workspace, "gone@example.org") == "bounced"
    assert _status(workspace, "angry@example.org") == "unsubscribed"
    assert _status(workspace, "away@example.org") == "subscribed"
    assert _status(workspace, "person@example.org") == "subscribed"
    # Handled mail is in processed, the rest unread in unrecognised; nothing deleted.
    assert dovecot.folder_files("") == []
    processed = dovecot.folder_files("mailer/processed")
    left = dovecot.folder_files("mailer/unrecognised")
    assert len(processed) == 2 and len(left) == 2
    assert all(_unread(p) for p in left)
    texts = [p.read_bytes() for p in left]
    assert any(b"kiitos uutiskirjeest" in t for t in texts)  # the person's mail, for a person
    again = workspace.run("bounces", "fetch", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("0 messages")
    listed = json.loads(workspace.cli("bounces", "list", "--format", "json").stdout)
    assert sorted((r["email"], r["kind"]) for r in listed) == [
        ("angry@example.org", "complaint"),
        ("gone@example.org", "hard"),
    ]


def test_an_untrusted_certificate_or_a_refused_login_is_exit_1_and_nothing_moves(
    workspace, dovecot
):
    env = _point(workspace, dovecot)
    _deliver_all(workspace, dovecot)
    untrusted = {k: v for k, v in env.items() if k != "SSL_CERT_FILE"}
    res = workspace.run("bounces", "fetch", env=untrusted)
    assert res.returncode == 1 and "TLS" in res.stderr and "Traceback" not in res.stderr
    wrong = dict(env, MAILER_IMAP_PASSWORD="not-the-password")
    res = workspace.run("bounces", "fetch", env=wrong)
    assert res.returncode == 1 and "login refused" in res.stderr
    assert "not-the-password" not in res.stderr
    assert len(dovecot.folder_files("")) == len(PEOPLE)
    assert _status(workspace, "gone@example.org") == "subscribed"
    workspace.set_config("bounces", "imap_port", "1")
    res = workspace.run("bounces", "fetch", env=env)
    assert res.returncode == 1 and "127.0.0.1:1" in res.stderr
    assert len(dovecot.folder_files("")) == len(PEOPLE)


class _Crash(Exception):
    pass


def test_a_crash_between_the_commit_and_the_move_never_counts_a_bounce_twice(workspace, dovecot):
    env = _point(workspace, dovecot)
    _deliver_all(workspace, dovecot)
    config = workspace.config()
    config = type(config)(**{**config.__dict__, "environ": {**config.environ, **env}})
    context = dovecot.ca.context()

    class CrashingBox(Mailbox):
        def move(self, uid, target, *, seen=False):
            raise _Crash("killed after the commit, before the move")

    store = workspace.store()
    with pytest.raises(_Crash):
        fetch(
            store,
            config,
            mailbox=lambda: CrashingBox(
                config.bounces, config.imap_password(), ssl_context=context
            ),
        )
    assert len(dovecot.folder_files("")) == len(PEOPLE)  # nothing moved
    report = fetch(
        store,
        config,
        mailbox=lambda: Mailbox(config.bounces, config.imap_password(), ssl_context=context),
    )
    assert report.duplicates == 1 and report.hard == 0  # the first message counted before
    assert dovecot.folder_files("") == []
    listed = json.loads(workspace.cli("bounces", "list", "--format", "json").stdout)
    assert len(listed) == 2
