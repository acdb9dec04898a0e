"""OAuth parts for the XOAUTH2 tests: a token command, an SMTP server and a token checker.

- `TokenScript`: a real executable that `token_command` runs. It prints the token in
  `current`, logs each call, and can be told to fail, print nothing, print two lines, hang,
  or hang leaving a child in its own session that holds its stdout (`orphan`), or answer
  and exit leaving such a child behind (`daemon`).
- `OAuthHandler`: an aiosmtpd handler that offers only XOAUTH2 (or only OAUTHBEARER) and
  accepts exactly the token the script prints now. `expire_after` messages into a send it
  takes that token as expired: it refuses it from then on, and the refusal makes the script
  print a new one (as an OAuth helper refreshes a token the server no longer takes).
- `Introspection`: the HTTP endpoint a Dovecot oauth2 passdb asks about a token (RFC 7662
  style: POST token=…); only the script's current token is active.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.mail_servers import Ca, need
from tests.smtp_sink import SinkHandler, free_port

SMTP_USER = "uutiset@arcticsmartness.eu"

SCRIPT = """\
#!{python}
import pathlib, sys, time
state = pathlib.Path({state!r})
with open(state / "calls", "a") as log:
    log.write("call\\n")
calls = len((state / "calls").read_text().splitlines())
mode = (state / "mode").read_text().strip()
fail_from = int((state / "fail_from").read_text() or 0)
token = (state / "current").read_text().strip()
if mode == "fail" or (fail_from and calls >= fail_from):
    print(token)  # on stdout, and still never shown by mailer
    print("AADSTS7000215: Invalid client secret provided.", file=sys.stderr)
    sys.exit(1)
if mode == "noisy":
    print(f"refresh failed for {{token}}", file=sys.stderr)
    sys.exit(1)
if mode == "empty":
    sys.exit(0)
if mode == "hang":
    time.sleep(60)
if mode == "orphan":  # a child in its own session keeps stdout open after the group is killed
    import subprocess
    child = subprocess.Popen(["sleep", "150"], start_new_session=True)
    (state / "orphan").write_text(str(child.pid))
    time.sleep(60)
if mode == "lines":
    print("access_token:")
print(token, flush=True)
if mode == "daemon":  # answers, then leaves a background child holding its stdout and stderr
    import subprocess
    child = subprocess.Popen(["sleep", "150"], start_new_session=True)
    with open(state / "daemons", "a") as pids:
        print(child.pid, file=pids)
"""


def new_token() -> str:
    """A token that looks like one (and that no other text in a test contains by chance)."""
    return "ya29.test-" + secrets.token_urlsafe(48)


@dataclass
class TokenScript:
    """An executable token command with its state in `folder`."""

    folder: Path

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "token-command"
        self.path.write_text(SCRIPT.format(python=sys.executable, state=str(self.folder)))
        self.path.chmod(0o755)
        self.issued: list[str] = []
        self.mode = "ok"
        self.fail_from = 0
        self.rotate()

    def rotate(self) -> str:
        """Make a new token the current one (what the script prints from now on)."""
        token = new_token()
        (self.folder / "current").write_text(token)
        self.issued.append(token)
        return token

    @property
    def current(self) -> str:
        return (self.folder / "current").read_text().strip()

    @property
    def mode(self) -> str:
        return (self.folder / "mode").read_text().strip()

    @mode.setter
    def mode(self, value: str) -> None:
        (self.folder / "mode").write_text(value)

    @property
    def fail_from(self) -> int:
        return int((self.folder / "fail_from").read_text() or 0)

    @fail_from.setter
    def fail_from(self, value: int) -> None:
        """From its `value`th call on, the script exits 1 (0: never)."""
        (self.folder / "fail_from").write_text(str(value) if value else "")

    @property
    def calls(self) -> int:
        log = self.folder / "calls"
        return len(log.read_text().splitlines()) if log.exists() else 0

    def toml(self) -> str:
        """The `token_command` value for mailer.toml (a list of strings)."""
        return json.dumps([str(self.path)])


@dataclass
class OAuthHandler(SinkHandler):
    """Offers XOAUTH2 (or OAUTHBEARER with `mechanism`); accepts only the script's token."""

    script: TokenScript | None = None
    user: str = "uutiset@arcticsmartness.eu"
    expire_after: int = 0  # after this many messages the current token counts as expired
    accepted: int = 0
    refused: int = 0
    seen_tokens: list[str] = field(default_factory=list)
    expired: set[str] = field(default_factory=set)

    def _check(self, user: str, token: str) -> bool:
        assert self.script is not None
        with self.lock:
            self.seen_tokens.append(token)
            ok = user == self.user and token == self.script.current and token not in self.expired
            if ok:
                self.accepted += 1
            else:
                self.refused += 1
                if token in self.expired and token == self.script.current:
                    self.script.rotate()  # the helper fetches a new one after a refusal
            return ok

    async def _sasl(self, server, args, parse) -> AuthResult:
        if len(args) > 1:
            blob = base64.b64decode(args[1])
        else:
            blob = await server.challenge_auth("")
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=True)
        user, token = parse(blob.decode())
        if self._check(user, token):
            return AuthResult(success=True, auth_data=user)
        # Like Google and Microsoft: a JSON status as a challenge, then the refusal.
        await server.challenge_auth(json.dumps({"status": "401", "schemes": "bearer"}))
        return AuthResult(
            success=False, handled=False, message="535 5.7.3 Authentication unsuccessful"
        )

    async def auth_XOAUTH2(self, server, args):  # noqa: N802 - aiosmtpd's hook name
        return await self._sasl(server, args, _parse_xoauth2)

    async def auth_OAUTHBEARER(self, server, args):  # noqa: N802
        return await self._sasl(server, args, _parse_oauthbearer)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        answer = await super().handle_DATA(server, session, envelope)
        with self.lock:
            if self.expire_after and len(self.received) == self.expire_after:
                assert self.script is not None
                self.expired.add(self.script.current)
        return answer


def _parse_xoauth2(text: str) -> tuple[str, str]:
    fields = dict(part.split("=", 1) for part in text.split("\x01") if "=" in part)
    return fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")


def _parse_oauthbearer(text: str) -> tuple[str, str]:
    gs2, _, rest = text.partition("\x01")
    user = next((p[2:] for p in gs2.split(",") if p.startswith("a=")), "")
    fields = dict(part.split("=", 1) for part in rest.split("\x01") if "=" in part)
    return user.replace("=2C", ",").replace("=3D", "="), fields.get("auth", "")[len("Bearer ") :]


def json_server(answer: Callable[[str, dict[str, list[str]]], tuple[int, dict]]) -> JsonServer:
    """An HTTP server on loopback answering each form POST with `answer(path, form)`."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            status, reply = answer(self.path, parse_qs(self.rfile.read(length).decode()))
            body = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = JsonServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class JsonServer(ThreadingHTTPServer):
    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class Introspection:
    """A token introspection endpoint on loopback: only `script.current` is active."""

    def __init__(self, script: TokenScript, user: str) -> None:
        self.script = script
        self.user = user
        self.asked: list[str] = []
        self.refuse_all = False  # no token is active
        self.expire_once = False  # the next token asked about has just expired
        self.server: JsonServer | None = None

    def _answer(self, path: str, form: dict[str, list[str]]) -> tuple[int, dict]:
        token = (form.get("token") or [""])[0]
        self.asked.append(token)
        if self.active(token):
            return 200, {"active": "true", "username": self.user}
        return 200, {"active": "false"}

    def active(self, token: str) -> bool:
        if self.refuse_all or not token or token != self.script.current:
            return False
        if self.expire_once:
            self.expire_once = False
            self.script.rotate()  # the helper fetches a new one after the refusal
            return False
        return True

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"{self.server.base}/introspect"

    def __enter__(self) -> Introspection:
        self.server = json_server(self._answer)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.close()


def make_ca(folder: Path) -> Ca:
    """A throwaway CA (and a localhost certificate) for STARTTLS with verification."""
    need("openssl")
    folder.mkdir()
    return Ca(folder).make()


class OAuthServer:
    """aiosmtpd on loopback: STARTTLS required, AUTH required, only the one mechanism."""

    def __init__(self, ca: Ca, script: TokenScript, mechanism: str = "XOAUTH2") -> None:
        self.ca = ca
        self.handler = OAuthHandler(script=script, user=SMTP_USER)
        self.port = free_port()
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(ca.server_cert, ca.server_key)
        others = {"PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"} - {mechanism}
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=tls,
            require_starttls=True,
            auth_required=True,
            auth_exclude_mechanism=sorted(others),
        )

    def __enter__(self) -> OAuthServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def point_xoauth2(workspace, server: OAuthServer, script: TokenScript, **smtp: object) -> dict:
    """Point [smtp] at the server with auth = "xoauth2"; the env that trusts its CA."""
    text = workspace.config_path.read_text(encoding="utf-8")
    workspace.config_path.write_text(
        text.replace('password_env = "MAILER_SMTP_PASSWORD"\n', ""), encoding="utf-8"
    )
    keys = {
        "host": '"127.0.0.1"',
        "port": server.port,
        "security": '"starttls"',
        "username": f'"{SMTP_USER}"',
        "auth": '"xoauth2"',
        "token_command": script.toml(),
        **smtp,
    }
    for key, value in keys.items():
        workspace.set_config("smtp", key, str(value))
    return {"SSL_CERT_FILE": str(server.ca.cert)}
