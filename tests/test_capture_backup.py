"""`mailer capture` keeps what it receives; `mailer backup` copies a live database."""

from __future__ import annotations

import mailbox
import smtplib
import socket
import sqlite3
import subprocess
import sys
import time

from mailer.capture import free_port


def _wait_for_port(port: int, proc: subprocess.Popen) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("capture server did not start")


def test_capture_writes_each_message_to_the_maildir_and_stops_on_sigterm(workspace):
    port = free_port()
    env = dict(workspace.env())
    import os

    env = {**os.environ, **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer", "capture", "--port", str(port)],
        cwd=workspace.path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_port(port, proc)
        raw = (
            b"From: a@example.org\r\nTo: b@example.org\r\nSubject: Hei\r\n\r\n"
            b"Terveisi\xc3\xa4 Rovaniemelt\xc3\xa4\r\n"
        )
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
            smtp.sendmail("a@example.org", ["b@example.org", "c@example.org"], raw)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
    assert "2 message(s) captured" in proc.stderr.read()
    box = mailbox.Maildir(str(workspace.path / "captured"), create=False)
    messages = [box.get_bytes(key) for key in box.iterkeys()]
    assert len(messages) == 2
    assert all(b"Rovaniemelt\xc3\xa4" in m for m in messages)


def test_backup_copies_the_database_while_another_connection_writes(workspace):
    writer = sqlite3.connect(workspace.path / "mailer.db")
    writer.execute("INSERT INTO segments VALUES ('keep', 'all', 'x')")
    writer.commit()
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO segments VALUES ('uncommitted', 'all', 'x')")
    res = workspace.cli("backup", str(workspace.path / "copy.db"))
    writer.rollback()
    assert res.exit_code == 0, res.stderr
    copy = sqlite3.connect(workspace.path / "copy.db")
    names = [r[0] for r in copy.execute("SELECT name FROM segments")]
    assert names == ["keep"]
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_backup_refuses_to_overwrite(workspace):
    target = workspace.path / "exists.db"
    target.write_bytes(b"keep me")
    res = workspace.cli("backup", str(target))
    assert res.exit_code == 2
    assert target.read_bytes() == b"keep me"
