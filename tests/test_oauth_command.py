"""`token_command` run for real: what mailer keeps of a helper's output, and when it stops
reading (the end-to-end cases, through `mailer send`, are in test_oauth_smtp.py)."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from mailer.oauth import TokenCommand, TokenCommandError


def _command(tmp_path: Path, body: str, timeout: float = 20) -> TokenCommand:
    script = tmp_path / "helper.py"
    script.write_text(textwrap.dedent(body), encoding="utf-8")
    return TokenCommand((sys.executable, str(script)), "smtp.token_command", timeout)


def test_a_flood_on_stdout_is_not_taken_for_a_token(tmp_path):
    command = _command(tmp_path, "import sys; sys.stdout.write('x' * 5_000_000)")
    with pytest.raises(TokenCommandError, match="must print the access token alone"):
        command.fetch()


def test_the_last_words_on_stderr_are_kept_after_a_flood(tmp_path):
    command = _command(
        tmp_path,
        """\
        import sys
        sys.stderr.write("noise\\n" * 1_000_000)
        sys.stderr.write("the tenant refused the client\\n")
        sys.exit(3)
        """,
    )
    with pytest.raises(TokenCommandError) as caught:
        command.fetch()
    assert str(caught.value).endswith("exited with status 3: the tenant refused the client")


def test_a_background_child_flooding_stderr_does_not_hold_the_answer(tmp_path):
    command = _command(
        tmp_path,
        """\
        import subprocess, sys
        child = subprocess.Popen(
            [sys.executable, "-c", "import sys\\nwhile True: sys.stderr.write('spam' * 1000)"],
            start_new_session=True,
        )
        open(sys.argv[0] + ".pid", "w").write(str(child.pid))
        print("ya29.a-token-for-the-test")
        """,
    )
    try:
        assert command.fetch() == "ya29.a-token-for-the-test"
    finally:
        os.kill(int((tmp_path / "helper.py.pid").read_text()), signal.SIGKILL)
