"""Shared fixtures: a workspace made by `mailer init`, the CLI, a real SMTP sink."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer.cli import app
from tests.smtp_sink import SmtpSink

SECRET = "test-secret-not-for-production-use-only"


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


@dataclass
class Workspace:
    """A folder made by `mailer init`: mailer.toml, mailer.db, templates/."""

    path: Path

    @property
    def config_path(self) -> Path:
        return self.path / "mailer.toml"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {"MAILER_CONFIG": str(self.config_path), "MAILER_SECRET": SECRET}
        env.update(extra or {})
        return env

    def ensure_lists(self, *refs: str) -> None:
        """Create lists that are not there yet (`contacts add --list` needs an existing list)."""
        for ref in refs:
            res = self.cli("lists", "add", ref)
            assert res.exit_code == 0 or "already" in res.stderr, res.stderr

    def cli(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        """Run `mailer ARGS` in this process (fast) with this workspace's config."""
        runner = CliRunner()
        res = runner.invoke(app, list(args), input=input, env=self.env(env), catch_exceptions=False)
        return Result(res.exit_code, res.stdout, res.stderr)

    def run(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `python -m mailer ARGS` as a real subprocess, as cron would."""
        full_env = dict(os.environ)
        full_env.update(self.env(env))
        return subprocess.run(
            [sys.executable, "-m", "mailer", *args],
            cwd=self.path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input if input is not None else "",
        )

    def set_config(self, section: str, key: str, value: str) -> None:
        """Replace `key = …` in [section] of mailer.toml with `key = value` (TOML literal)."""
        lines = self.config_path.read_text(encoding="utf-8").splitlines()
        current, done, out = "", False, []
        for line in lines:
            stripped = line.strip()
            if stripped.startswith("[") and stripped.endswith("]"):
                if current == section and not done:
                    out.append(f"{key} = {value}")
                    done = True
                current = stripped[1:-1]
            if current == section and stripped.split("=")[0].strip() == key and not done:
                out.append(f"{key} = {value}")
                done = True
                continue
            out.append(line)
        if not done:
            if current != section:
                out.append(f"[{section}]")
            out.append(f"{key} = {value}")
        self.config_path.write_text("\n".join(out) + "\n", encoding="utf-8")

    def config(self):
        from mailer.config import load_config

        return load_config(self.config_path, self.env())

    def store(self):
        from mailer.store import Store

        return Store(self.path / "mailer.db")


@pytest.fixture
def cli_runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A fresh workspace made through the real `mailer init`."""
    path = tmp_path / "ws"
    res = CliRunner().invoke(
        app, ["init", str(path)], env={"MAILER_SECRET": SECRET}, catch_exceptions=False
    )
    assert res.exit_code == 0, res.stderr
    return Workspace(path)


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    """A real aiosmtpd server on loopback that records every message."""
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def smtp_workspace(workspace: Workspace, smtp_server: SmtpSink) -> Workspace:
    """A workspace whose [smtp] points at the test sink (no TLS on loopback)."""
    workspace.set_config("smtp", "host", '"127.0.0.1"')
    workspace.set_config("smtp", "port", str(smtp_server.port))
    workspace.set_config("smtp", "security", '"none"')
    return workspace
