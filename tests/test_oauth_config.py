"""`auth = "xoauth2"` and `token_command` in [smtp] and [bounces]: what the config accepts."""

from __future__ import annotations

import pytest

from tests.contacts_helpers import assert_one_line_error

USER = '"uutiset@arcticsmartness.eu"'


def _without_password_env(workspace) -> None:
    text = workspace.config_path.read_text(encoding="utf-8")
    workspace.config_path.write_text(
        text.replace('password_env = "MAILER_SMTP_PASSWORD"\n', ""), encoding="utf-8"
    )


def test_the_command_is_a_list_or_a_string_split_like_a_shell_without_a_shell(workspace):
    _without_password_env(workspace)
    workspace.set_config("smtp", "auth", '"xoauth2"')
    workspace.set_config("smtp", "username", USER)
    workspace.set_config(
        "smtp",
        "token_command",
        "\"az account get-access-token --resource 'https://outlook.office365.com'"
        ' --query accessToken -o tsv"',
    )
    smtp = workspace.config().smtp
    assert smtp.auth == "xoauth2"
    assert smtp.token_command == (
        "az", "account", "get-access-token", "--resource", "https://outlook.office365.com",
        "--query", "accessToken", "-o", "tsv",
    )  # fmt: skip
    workspace.set_config("smtp", "token_command", '["/usr/local/bin/m365-token", "$HOME; ls"]')
    assert workspace.config().smtp.token_command == ("/usr/local/bin/m365-token", "$HOME; ls")


@pytest.mark.parametrize(
    ("section", "keys", "needles"),
    [
        # password_env is written by `mailer init`: with a token command it is one too many.
        (
            "smtp",
            {"auth": '"xoauth2"', "username": USER, "token_command": '["m365-token"]'},
            ["smtp.token_command and smtp.password_env are both set"],
        ),
        ("smtp", {"auth": '"oauth"'}, ['smtp.auth must be "password" or "xoauth2"']),
        ("smtp", {"token_command": '["m365-token"]'}, ["smtp.token_command", "password_env"]),
        ("smtp", {"auth": '"xoauth2"', "token_command": "3"}, ["smtp.token_command must be"]),
        ("smtp", {"auth": '"xoauth2"', "token_command": '"a \\"b"'}, ["not a command line"]),
        ("smtp", {"auth": '"xoauth2"', "token_command": '["a", ""]'}, ["smtp.token_command"]),
        # smtplib sends the user name as ASCII: a traceback at log-in time, so refused here.
        ("smtp", {"username": '"uutiset@ärrä.fi"'}, ["smtp.username", "ASCII"]),
        ("bounces", {"username": '"palautukset@ärrä.fi"'}, ["bounces.username", "ASCII"]),
    ],
)
def test_bad_smtp_auth_settings_are_exit_2_naming_the_key(workspace, section, keys, needles):
    if section == "bounces":
        workspace.set_config("bounces", "address", '"bounces@arcticsmartness.eu"')
    for key, value in keys.items():
        workspace.set_config(section, key, value)
    res = workspace.cli("contacts", "list")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, *needles)


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"auth": '"xoauth2"', "username": USER}, "smtp.token_command is required with"),
        ({"auth": '"xoauth2"', "token_command": '"m365-token"'}, "smtp.username is required"),
        ({"token_command": '"m365-token"'}, 'smtp.token_command is used only with smtp.auth = "'),
    ],
)
def test_xoauth2_needs_a_command_and_a_user_and_nothing_else(workspace, keys, needle):
    _without_password_env(workspace)
    for key, value in keys.items():
        workspace.set_config("smtp", key, value)
    res = workspace.cli("send-due")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, needle)


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"auth": '"xoauth2"', "username": USER}, "bounces.token_command is required"),
        (
            {"auth": '"xoauth2"', "username": USER, "token_command": '"t"', "password_env": '"P"'},
            "bounces.token_command and bounces.password_env are both set",
        ),
        ({"auth": '"kerberos"'}, 'bounces.auth must be "password" or "xoauth2"'),
    ],
)
def test_bad_bounce_mailbox_auth_settings_are_exit_2_naming_the_key(workspace, keys, needle):
    workspace.set_config("bounces", "address", '"bounces@arcticsmartness.eu"')
    for key, value in keys.items():
        workspace.set_config("bounces", key, value)
    res = workspace.cli("bounces", "list")
    assert res.exit_code == 2
    assert_one_line_error(res.stderr, needle)
