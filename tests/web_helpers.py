"""Helpers for the unsubscribe-service tests: test data, a real `mailer serve`, raw HTTP."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mailer.capture import free_port
from mailer.store import Store
from mailer.timeutil import now_utc, to_db
from tests.store_helpers import add_contacts


def insert_campaign_for_tests(store: Store, name: str, subject: object = None) -> int:
    """Insert a bare campaign row (tests only; the real one comes from `campaign create`)."""
    definition = json.dumps({"name": name, "subject": subject or f"Uutiset {name}"})
    with store.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO campaigns (name, source_path, definition, segment, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (name, f"{name}.toml", definition, "all", to_db(now_utc())),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid


def add_contact(store: Store, email: str, language: str = "fi", status: str = "subscribed") -> int:
    (contact_id,) = add_contacts(store, [email], language=language, status=status)
    return contact_id


def contact_status(store: Store, contact_id: int) -> str | None:
    row = store.conn.execute("SELECT status FROM contacts WHERE id = ?", (contact_id,)).fetchone()
    return None if row is None else row[0]


def contact_events(store: Store, contact_id: int) -> list[tuple]:
    rows = store.conn.execute(
        "SELECT action, source, campaign_id FROM unsubscribe_events WHERE contact_id = ?"
        " ORDER BY id",
        (contact_id,),
    )
    return [tuple(r) for r in rows]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str
    raw_headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Client:
    """Raw HTTP to a server on a loopback port."""

    port: int

    def request(
        self,
        method: str,
        path: str,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict | None = None,
        timeout: float = 10,
    ) -> Reply:
        """Send one request; an iterable body goes out chunked (no Content-Length)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read().decode("utf-8")
            raw = resp.getheaders()
            return Reply(resp.status, {k.lower(): v for k, v in raw}, data, raw)
        finally:
            conn.close()

    def one_click(self, token: str) -> Reply:
        return self.request(
            "POST",
            f"/u/{token}",
            b"List-Unsubscribe=One-Click",
            {"Content-Type": "application/x-www-form-urlencoded"},
        )

    def form_post(self, path: str, fields: dict[str, str]) -> Reply:
        from urllib.parse import urlencode

        return self.request(
            "POST",
            path,
            urlencode(fields).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )


@dataclass
class Server(Client):
    """`python -m mailer serve` as a real subprocess on a free loopback port."""

    process: subprocess.Popen
    log_path: Path

    @classmethod
    def start(cls, workspace_path: Path, env: dict[str, str], timeout: float = 20) -> Server:
        port = free_port()
        log_path = workspace_path / f"serve-{port}.log"
        full_env = dict(os.environ)
        full_env.update(env)
        log = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "mailer", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=workspace_path,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        server = cls(port=port, process=process, log_path=log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"mailer serve exited: {log_path.read_text()}")
            try:
                if server.request("GET", "/healthz").status == 200:
                    return server
            except OSError:
                time.sleep(0.05)
        server.stop()
        raise RuntimeError("mailer serve did not answer /healthz")

    def log_with(self, line: str, timeout: float = 10) -> str:
        """Return the server's stderr so far, once it holds `line` (the log trails the reply)."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log_path.read_text(encoding="utf-8")
            if line in log or time.monotonic() > deadline:
                return log
            time.sleep(0.02)

    def stop(self) -> tuple[int, str]:
        """SIGTERM the server; return its exit code and its stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode, self.log_path.read_text(encoding="utf-8")
