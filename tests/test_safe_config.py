"""The config refuses what would be unsafe: short secrets, SMTP in clear across a network."""

from __future__ import annotations

import pytest

from mailer.errors import SmtpError
from mailer.sending.smtp import connect
from tests.contacts_helpers import assert_one_line_error

LONG = "a-secret-that-is-long-enough-0123456789"


@pytest.mark.parametrize(
    ("key", "value", "env", "needle"),
    [
        ("secret", '"x"', {"MAILER_SECRET": ""}, "web.secret is 1 characters"),
        ("secret", '"' + "s" * 31 + '"', {"MAILER_SECRET": ""}, "web.secret is 31 characters"),
        ("secret", f'"{LONG}"', {"MAILER_SECRET": "short-from-env"}, "$MAILER_SECRET is 14"),
        ("previous_secrets", f'["{LONG}", "old"]', {}, "web.previous_secrets is 3 characters"),
    ],
)
def test_a_secret_under_32_characters_is_refused(workspace, key, value, env, needle):
    workspace.set_config("web", key, value)
    res = workspace.cli("contacts", "list", env=env)
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, needle, "at least 32")
    res = workspace.run("serve", "--port", "1", env=env)
    assert res.returncode == 2 and needle in res.stderr and "Traceback" not in res.stderr


def test_a_secret_of_32_characters_is_enough(workspace):
    workspace.set_config("web", "secret", '"' + "s" * 32 + '"')
    workspace.set_config("web", "previous_secrets", f'["{LONG}"]')
    assert workspace.cli("contacts", "list", env={"MAILER_SECRET": ""}).exit_code == 0


@pytest.mark.parametrize("host", ["relay.example.org", "192.0.2.10", "10.0.0.1", "::2"])
def test_cleartext_smtp_to_another_host_is_refused_at_config_load(workspace, host):
    workspace.set_config("smtp", "host", f'"{host}"')
    workspace.set_config("smtp", "security", '"none"')
    res = workspace.cli("send-due")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, "smtp.security", host, "loopback")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.3.4.5", "::1", "[::1]"])
def test_cleartext_smtp_to_a_loopback_host_is_allowed(workspace, host):
    workspace.set_config("smtp", "host", f'"{host}"')
    workspace.set_config("smtp", "security", '"none"')
    res = workspace.cli("send-due")
    assert res.exit_code == 0, res.stderr


def test_smtp_auth_never_goes_in_clear_to_another_host():
    """The sender's last word, behind the config check: no connection is even opened."""
    with pytest.raises(SmtpError, match="no SMTP AUTH over an unencrypted connection"):
        connect("192.0.2.1", 25, security="none", username="uutiset", password="salasana")


def test_a_config_with_a_utf8_bom_loads_like_one_without(workspace):
    text = workspace.config_path.read_bytes()
    workspace.config_path.write_bytes(b"\xef\xbb\xbf" + text)
    res = workspace.cli("contacts", "list")
    assert res.exit_code == 0, res.stderr
    assert workspace.config().sender.list_id == "arcticsmartness.eu"
