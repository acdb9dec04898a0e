"""OAuth 2.0 access tokens for SMTP and IMAP: `token_command` and the SASL strings.

Microsoft 365 and Google Workspace take an access token instead of a password, over SASL
XOAUTH2 (their own mechanism) or OAUTHBEARER (RFC 7628). The token comes from the
operator's `token_command`: a command line run without a shell whose stdout is the token,
run once per connection. The token lives only in the memory of the connection that asked
for it: it is never logged, stored or put in an error; a command that fails, prints nothing
or hangs is one line naming the command and its config key (exit 1).
"""

from __future__ import annotations

import os
import re
import selectors
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from mailer.errors import MailerError

DEFAULT_TIMEOUT = 30.0
# After the command exits: what it printed is read at once; a background child it started
# (a token cache, say) may keep the pipes open, so the reading stops this long after.
_EXIT_GRACE = 0.5
# What is kept of its output: a token is a few KB at most; its last words on stderr say why.
_KEEP_OUT = 64 * 1024
_KEEP_ERR = 4 * 1024
XOAUTH2 = "XOAUTH2"
OAUTHBEARER = "OAUTHBEARER"


AUTH_KINDS = ("password", "xoauth2")


class TokenCommandError(MailerError):
    """The token command failed, printed no token or did not answer in time (exit 1)."""


@dataclass(frozen=True)
class TokenCommand:
    """`[smtp]` or `[bounces]` `token_command`: run per connection, stdout is the token."""

    argv: tuple[str, ...]
    key: str  # "smtp.token_command": where the operator looks when it fails
    timeout: float = DEFAULT_TIMEOUT

    @property
    def name(self) -> str:
        # Only the program: its arguments may carry something private (a tenant, a path).
        return self.argv[0]

    def fetch(self) -> str:
        """Run the command and return the token it printed (TokenCommandError otherwise)."""
        timeout = self.timeout or DEFAULT_TIMEOUT
        try:
            proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # so that a timeout ends its children too
            )
        except FileNotFoundError:
            raise self._error("not found") from None
        except PermissionError:
            raise self._error("is not executable") from None
        except OSError as exc:
            raise self._error(f"cannot be run: {exc.strerror or exc}") from None
        try:
            out, err = _output(proc, timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise self._error(f"did not answer within {timeout:g} s") from None
        if proc.returncode != 0:
            said = _last_line(err)
            status = (
                f"exited with status {proc.returncode}"
                if proc.returncode > 0
                else f"was killed by signal {-proc.returncode}"
            )
            raise self._error(f"{status}{': ' + said if said else ''}")
        token = out.decode("utf-8", "replace").strip()
        if not token:
            raise self._error("printed no token")
        if len(out) > _KEEP_OUT or not _one_word(token):
            # Never echoed: whatever it printed may hold the token.
            raise self._error("must print the access token alone, on one line")
        return token

    def _error(self, what: str) -> TokenCommandError:
        return TokenCommandError(f"token command {self.name} {what}", where=self.key)


def _output(proc: subprocess.Popen[bytes], timeout: float) -> tuple[bytes, bytes]:
    """stdout and stderr until they close, or until shortly after the command exits (a child
    may hold them); subprocess.TimeoutExpired when the command itself runs past `timeout`
    (the caller kills it and closes the pipes)."""
    deadline = time.monotonic() + timeout
    pipes = [p for p in (proc.stdout, proc.stderr) if p is not None]
    read: dict[int, bytearray] = {p.fileno(): bytearray() for p in pipes}
    err_fd = proc.stderr.fileno() if proc.stderr else -1
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        for pipe in pipes:
            selector.register(pipe, selectors.EVENT_READ)
        while selector.get_map():
            now = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            end = deadline if exited_at is None else min(deadline, exited_at + _EXIT_GRACE)
            if now >= end:
                break
            for key, _ in selector.select(min(end - now, 0.1)):
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                kept = read[key.fd]
                if key.fd == err_fd:  # its last words
                    kept += data
                    del kept[: max(len(kept) - _KEEP_ERR, 0)]
                elif len(kept) <= _KEEP_OUT:  # one byte past the limit says "too much"
                    kept += data[: _KEEP_OUT + 1 - len(kept)]
    proc.wait(max(deadline - time.monotonic(), 0))  # pipes closed: it is ending (or hangs)
    out = bytes(read[proc.stdout.fileno()]) if proc.stdout else b""
    err = bytes(read[err_fd]) if proc.stderr else b""
    for pipe in pipes:
        pipe.close()
    return out, err


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    # Not communicate(): a child that left the group may still hold the pipes open.
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    proc.wait()


_TOKEN_LIKE = re.compile(r"[A-Za-z0-9._~+/=-]{20,}")  # tokens, secrets, long ids


def _last_line(err: bytes) -> str:
    """The command's last words on stderr (its reason), with anything token-like masked."""
    lines = [line.strip() for line in err.decode("utf-8", "replace").splitlines() if line.strip()]
    if not lines:
        return ""
    line = "".join(ch for ch in lines[-1] if ch.isprintable())
    return _TOKEN_LIKE.sub("[…]", line)[:200]


def _one_word(token: str) -> bool:
    return token.isascii() and token.isprintable() and not any(ch.isspace() for ch in token)


def xoauth2(user: str, token: str) -> str:
    """The XOAUTH2 initial response (Google's and Microsoft's SASL mechanism)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def oauthbearer(user: str, token: str, host: str, port: int) -> str:
    """The OAUTHBEARER initial response (RFC 7628 3.1), with the GS2 header naming `user`."""
    name = user.replace("=", "=3D").replace(",", "=2C")
    return f"n,a={name},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"


class SaslResponder:
    """The `authobject` for smtplib's auth() and imaplib's authenticate().

    The first call gives the initial response; a later one answers the server's error
    challenge (a JSON status) with what ends the exchange: an empty line for XOAUTH2,
    %x01 for OAUTHBEARER (RFC 7628 3.2.3). The server then says no.
    """

    def __init__(self, mechanism: str, initial: str) -> None:
        self.mechanism = mechanism
        self._initial: str | None = initial

    def __call__(self, challenge: bytes | None = None) -> str:
        initial, self._initial = self._initial, None
        if initial is not None:
            return initial
        return "\x01" if self.mechanism == OAUTHBEARER else ""

    def __repr__(self) -> str:  # never show the token, even in a debugger's locals
        return f"SaslResponder({self.mechanism})"


def responder(offered: set[str], user: str, token: str, host: str, port: int) -> SaslResponder:
    """XOAUTH2 when the server offers it, else OAUTHBEARER; ValueError when it offers neither."""
    if XOAUTH2 in offered:
        return SaslResponder(XOAUTH2, xoauth2(user, token))
    if OAUTHBEARER in offered:
        return SaslResponder(OAUTHBEARER, oauthbearer(user, token, host, port))
    raise ValueError("the server offers neither XOAUTH2 nor OAUTHBEARER")


def check_auth(section: str, table: dict[str, Any], values: dict[str, Any]) -> tuple[str, ...]:
    """`auth` and `token_command` of [smtp] or [bounces] (`values`, defaults filled in; `table`
    as written): the command line as a tuple. ValueError(key, message) when they are wrong."""
    key = f"{section}.token_command"
    raw = values["token_command"]
    if isinstance(raw, str):
        try:
            argv = tuple(shlex.split(raw))
        except ValueError as exc:
            raise ValueError(key, f"is not a command line ({exc})") from None
    elif isinstance(raw, list) and all(isinstance(a, str) and a for a in raw):
        argv = tuple(raw)
    else:
        raise ValueError(key, "must be a command line: a string or a list of strings")
    if any(ch in arg for arg in argv for ch in "\r\n\x00"):
        raise ValueError(key, "must be one line")
    if values["auth"] not in AUTH_KINDS:
        raise ValueError(f"{section}.auth", 'must be "password" or "xoauth2"')
    if argv and "password_env" in table:
        raise ValueError(
            key, f"and {section}.password_env are both set: a token replaces the password"
        )
    if values["auth"] == "password":
        if argv:
            raise ValueError(key, f'is used only with {section}.auth = "xoauth2"')
        return ()
    if not argv:
        raise ValueError(key, f'is required with {section}.auth = "xoauth2"')
    if not values["username"]:
        raise ValueError(f"{section}.username", f'is required with {section}.auth = "xoauth2"')
    return argv
