"""Bad --host/--port values for `serve` and `capture`: exit 2, one `Error:` line, no hang."""

from __future__ import annotations

import socket

import pytest


def _error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_serve_refuses_a_port_out_of_range(workspace, port):
    res = workspace.cli("serve", "--port", port)
    assert res.exit_code == 2, res.stderr
    assert len(_error_lines(res.stderr)) == 1 and "--port" in res.stderr


def test_serve_refuses_an_unknown_host_as_bad_input(workspace):
    res = workspace.cli("serve", "--host", "no-such-host.invalid", "--port", "8080")
    assert res.exit_code == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert lines == _error_lines(res.stderr)
    assert len(lines) == 1 and "no-such-host.invalid:8080" in lines[0]


def test_serve_refuses_a_configured_port_out_of_range(workspace):
    workspace.set_config("web", "port", "99999")
    res = workspace.cli("serve", "--host", "127.0.0.1")
    assert res.exit_code == 2, res.stderr
    assert len(_error_lines(res.stderr)) == 1 and "99999" in res.stderr


@pytest.mark.parametrize("port", ["99999", "0"])
def test_capture_refuses_a_port_out_of_range_promptly(workspace, port):
    res = workspace.run("capture", "--port", port, timeout=30)
    assert res.returncode == 2, res.stderr
    assert len(_error_lines(res.stderr)) == 1 and "--port" in res.stderr


def test_capture_on_a_busy_port_says_so_in_one_line_and_exits(workspace):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = workspace.run("capture", "--port", str(port), timeout=30)
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines == _error_lines(res.stderr), res.stderr
    assert f"127.0.0.1:{port}" in lines[0]


def test_capture_refuses_an_unknown_host_in_one_line(workspace):
    res = workspace.run("capture", "--host", "no-such-host.invalid", "--port", "2525", timeout=30)
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines == _error_lines(res.stderr), res.stderr
    assert "no-such-host.invalid:2525" in lines[0]


def test_a_capture_server_that_cannot_listen_leaves_no_thread_behind(tmp_path):
    import threading

    from mailer.capture import CaptureServer
    from mailer.errors import InputError

    before = threading.active_count()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = CaptureServer(tmp_path / "box", port=busy.getsockname()[1])
        with pytest.raises(InputError, match="cannot listen for SMTP"):
            server.start()
    assert threading.active_count() == before
