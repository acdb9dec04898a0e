"""The real chain: mailer → a loopback Postfix → a next hop that refuses some recipients;
Postfix itself writes the DSNs to the return path and delivers them into a Maildir that
Dovecot serves over IMAPS (throwaway CA); `mailer bounces fetch` closes the loop.

Postfix and Dovecot run from private configurations in a temporary folder on loopback
ports; the machine's own /etc/postfix and /etc/dovecot are neither read for settings nor
changed. Skips with the reason where they are not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from tests.bounces_helpers import CAMPAIGN, create_campaign, with_bounces
from tests.mail_servers import MAIL_UID, Ca, Dovecot, Postfix, need, private_folder
from tests.sending_helpers import ScriptedSink, point_at

pytestmark = pytest.mark.slow

GONE = {"poistunut@example.org", "vanha.osoite@example.org"}
KEPT = {"aino.aikio@example.org", "niilas.somby@example.org", "maija@example.org"}
HUMAN = (
    b"From: Maija <maija@example.org>\r\nTo: bounces@arcticsmartness.eu\r\n"
    b"Subject: Kysymys uutiskirjeesta\r\nMessage-ID: <human-1@example.org>\r\n"
    b"Date: Mon, 11 Nov 2024 10:00:00 +0200\r\n\r\nHei, kuka tasta vastaa?\r\n"
)


def _wait_for(predicate, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_postfix_dsns_reach_dovecot_and_fetch_bounces_exactly_those_recipients(workspace):
    need("postfix", "dovecot", "openssl")
    folder = private_folder()
    refused = lambda address: "550 5.1.1 no such user here" if address in GONE else None  # noqa: E731
    servers: list = []
    try:
        for sub in ("ca", "imap", "postfix"):
            (folder / sub).mkdir()
        with ScriptedSink(rcpt_reply=refused) as next_hop:
            dovecot = Dovecot(folder / "imap", Ca(folder / "ca").make()).start()
            servers.append(dovecot)
            postfix = Postfix(folder / "postfix", next_hop.port, dovecot.folder / "home").start()
            servers.append(postfix)
            os.chown(dovecot.maildir, MAIL_UID, MAIL_UID)
            create_campaign(workspace, sorted(GONE | KEPT))
            with_bounces(
                workspace,
                imap_host='"127.0.0.1"',
                imap_port=str(dovecot.imaps_port),
                username=f'"{dovecot.user}"',
            )
            point_at(workspace, postfix.port)
            res = workspace.cli("send", CAMPAIGN, "--yes")
            assert res.exit_code == 0, res.stderr
            dovecot.deliver(HUMAN)  # a person wrote to the bounce address
            arrived = _wait_for(lambda: len(dovecot.folder_files("")) == len(GONE) + 1)
            assert arrived, postfix.log()[-3000:]
            assert {r for item in next_hop.received for r in item.rcpt_tos} == KEPT
        env = {"MAILER_IMAP_PASSWORD": dovecot.password, "SSL_CERT_FILE": str(dovecot.ca.cert)}
        res = workspace.run("bounces", "fetch", env=env)
        assert res.returncode == 0, res.stderr
        contacts = json.loads(workspace.cli("contacts", "list", "--format", "json").stdout)
        status = {c["email"]: c["status"] for c in contacts}
        assert {e for e, s in status.items() if s == "bounced"} == GONE
        assert {e for e, s in status.items() if s == "subscribed"} == KEPT
        listed = json.loads(workspace.cli("bounces", "list", "--format", "json").stdout)
        assert sorted((r["email"], r["status"], r["action"]) for r in listed) == [
            (e, "5.1.1", "bounced") for e in sorted(GONE)
        ]
        # Exactly the DSNs were moved; the person's mail waits, unread, for a person.
        assert dovecot.folder_files("") == []
        assert len(dovecot.folder_files("mailer/processed")) == len(GONE)
        left = dovecot.folder_files("mailer/unrecognised")
        assert [p.read_bytes().endswith(b"kuka tasta vastaa?\r\n") for p in left] == [True]
        assert left[0].parent.name == "new" or "S" not in left[0].name.rpartition(":2,")[2]
        # A second fetch changes nothing.
        again = workspace.run("bounces", "fetch", env=env)
        assert again.returncode == 0 and again.stdout.startswith("0 messages")
        stats = json.loads(workspace.cli("stats", CAMPAIGN, "--format", "json").stdout)
        assert (stats["sent"], stats["bounced"]) == (len(GONE | KEPT), len(GONE))
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
