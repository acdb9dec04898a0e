"""docs/examples/m365-token, the token command docs/deploy.md ships for Microsoft 365, against
a token endpoint of the test (the client-credentials grant), and as mailer's token_command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bounces_helpers import CAMPAIGN, create_campaign
from tests.oauth_helpers import OAuthServer, TokenScript, json_server, make_ca, point_xoauth2

SCRIPT = Path(__file__).parent.parent / "docs" / "examples" / "m365-token"
TENANT = "00000000-aaaa-bbbb-cccc-000000000001"
CLIENT = "11111111-2222-3333-4444-555555555555"
SECRET = "client-secret-from-the-environment"


class TokenEndpoint:
    """Entra ID's /{tenant}/oauth2/v2.0/token in miniature: the current token for the app."""

    def __init__(self, tokens: TokenScript) -> None:
        self.tokens = tokens
        self.forms: list[dict[str, list[str]]] = []
        self.server = json_server(self._answer)

    def _answer(self, path: str, form: dict[str, list[str]]) -> tuple[int, dict]:
        self.forms.append(form)
        good = (
            path == f"/{TENANT}/oauth2/v2.0/token"
            and form.get("grant_type") == ["client_credentials"]
            and form.get("client_id") == [CLIENT]
            and form.get("client_secret") == [SECRET]
            and form.get("scope") == ["https://outlook.office365.com/.default"]
        )
        if good:
            return 200, {
                "token_type": "Bearer",
                "expires_in": 3599,
                "access_token": self.tokens.current,
            }
        return 401, {
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided.\r\n"
            "Trace ID: 0000 Correlation ID: 0000",
        }

    @property
    def url(self) -> str:
        return self.server.base + "/{tenant}/oauth2/v2.0/token"

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def ca(tmp_path):
    return make_ca(tmp_path / "ca")


@pytest.fixture
def endpoint(tmp_path):
    tokens = TokenScript(tmp_path / "token")
    server = TokenEndpoint(tokens)
    yield server, tokens
    server.close()


def _argv(url: str) -> list[str]:
    return [
        sys.executable,
        str(SCRIPT),
        "--tenant",
        TENANT,
        "--client-id",
        CLIENT,
        "--token-url",
        url,
    ]


def _run(url: str, secret: str | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    if secret is not None:
        env["M365_CLIENT_SECRET"] = secret
    return subprocess.run(_argv(url), capture_output=True, text=True, env=env, timeout=60)


def test_it_prints_the_token_of_a_client_credentials_grant_and_nothing_else(endpoint):
    server, tokens = endpoint
    res = _run(server.url, SECRET)
    assert res.returncode == 0, res.stderr
    assert res.stdout == tokens.current + "\n" and res.stderr == ""
    assert server.forms[0]["client_secret"] == [SECRET]  # sent in the body, not the command


def test_a_refused_secret_or_a_missing_one_is_one_line_and_exit_1(endpoint):
    server, tokens = endpoint
    res = _run(server.url, "wrong-secret")
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr == "m365-token: 401 AADSTS7000215: Invalid client secret provided.\n"
    res = _run(server.url, None)
    assert res.returncode == 1 and res.stdout == "" and "M365_CLIENT_SECRET" in res.stderr
    assert len(server.forms) == 1  # nothing asked without a secret


def test_mailer_sends_with_it_as_token_command(workspace, ca, endpoint):
    server, tokens = endpoint
    create_campaign(workspace, ["lukija@example.org"])
    with OAuthServer(ca, tokens) as smtp:
        env = point_xoauth2(workspace, smtp, tokens, token_command=json.dumps(_argv(server.url)))
        res = workspace.run("send", CAMPAIGN, "--yes", env=dict(env, M365_CLIENT_SECRET=SECRET))
        received = smtp.handler.received
    assert res.returncode == 0, res.stderr
    assert [r for item in received for r in item.rcpt_tos] == ["lukija@example.org"]
    assert tokens.current not in res.stdout + res.stderr
