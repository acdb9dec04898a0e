"""The README's first quick-start command, run literally on a copy of the project.

It installs the package non-editable into a fresh virtual environment (so the wheel must
carry templates/ and contacts/) and runs `mailer demo` twice.
"""

from __future__ import annotations

import mailbox
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, flags=re.S)


def _copy_project(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def test_readme_has_exactly_two_quick_start_commands():
    commands = _quickstart_commands()
    assert len(commands) == 2
    assert "mailer demo" in commands[0]
    assert "pytest" in commands[1]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to list the project files")
def test_first_quick_start_command_runs_the_demo_in_a_fresh_venv(tmp_path):
    project = tmp_path / "project"
    _copy_project(project)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = dict(os.environ)
    env.pop("MAILER_CONFIG", None)
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    env["VIRTUAL_ENV"] = str(venv)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    command = _quickstart_commands()[0]
    first = subprocess.run(
        ["bash", "-c", command],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    # Installed as a wheel, not from the source tree.
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import mailer; print(mailer.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert str(venv) in where

    demo = project / "mailer-demo"
    box = mailbox.Maildir(str(demo / "maildir"), create=False)
    delivered = len(box)
    assert delivered > 0
    count = subprocess.run(
        [
            "mailer",
            "--config",
            str(demo / "mailer.toml"),
            "segments",
            "count",
            "municipality:* or company:*",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Returned mail (the demo's bounces and complaint) stopped a few since the send.
    stopped = sum(line.startswith("Stopped") for line in first.stdout.splitlines())
    assert stopped == 3
    assert delivered == int(count) + stopped
    assert list(demo.glob("preview/index.fi.html"))
    assert "maildir" in first.stdout.lower() or "maildir" in first.stderr.lower()
    # The demo's invalid rows are problems: on stderr, named by file and row.
    assert "arctic-smartness.csv row 42: invalid" in first.stderr

    second = subprocess.run(
        ["mailer", "demo"], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stderr
    assert len(mailbox.Maildir(str(demo / "maildir"), create=False)) == delivered
    assert "already" in (second.stdout + second.stderr).lower()
