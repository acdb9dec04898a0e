"""Real mail servers for the bounce tests: Dovecot (IMAP) and Postfix, private to one test.

Each runs from its own configuration in a temporary folder, on loopback ports, with a
throwaway CA made by openssl; nothing under /etc is read or changed, and the processes
are the test's own (stopped by their pid). A test skips with the reason when the machine
lacks them (`.ci/run` installs `dovecot-imapd` and `postfix`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.smtp_sink import free_port

MAIL_UID = 65534  # nobody: Dovecot refuses mail access as root


def need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (.ci/run installs postfix and dovecot-imapd)")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@dataclass
class Ca:
    """A throwaway CA and a server certificate for localhost / 127.0.0.1 signed by it."""

    folder: Path

    @property
    def cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.folder / "server.key"

    def make(self) -> Ca:
        need("openssl")
        f = self.folder
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=mailer throwaway test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", str(f / "ca.key"), "-out", str(self.cert),
        )  # fmt: skip
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", str(self.server_key), "-out", str(f / "server.csr"),
        )  # fmt: skip
        (f / "ext.cnf").write_text(
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
        )
        _openssl(
            "x509", "-req", "-in", str(f / "server.csr"), "-CA", str(self.cert),
            "-CAkey", str(f / "ca.key"), "-CAcreateserial", "-days", "2",
            "-extfile", str(f / "ext.cnf"), "-out", str(self.server_cert),
        )  # fmt: skip
        return self

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"{what} exited: {text[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port}")


@dataclass
class Dovecot:
    """A private Dovecot: IMAPS on one port, IMAP with STARTTLS on another, one user."""

    folder: Path
    ca: Ca
    user: str = "bounces@arcticsmartness.eu"
    password: str = "imap-test-password"
    imaps_port: int = field(default_factory=free_port)
    imap_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    oauth2_url: str = ""  # with it, XOAUTH2/OAUTHBEARER checked by this introspection URL
    oauth2_mechanisms: str = "xoauth2 oauthbearer"

    def __post_init__(self) -> None:
        while self.imap_port == self.imaps_port:  # each port was free alone, maybe the same one
            self.imap_port = free_port()

    @property
    def maildir(self) -> Path:
        return self.folder / "home" / "Maildir"

    def start(self) -> Dovecot:
        need("dovecot")
        f = self.folder
        (f / "run").mkdir()
        self.maildir.mkdir(parents=True)
        for sub in ("cur", "new", "tmp"):
            (self.maildir / sub).mkdir()
        (f / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        mechanisms, oauth2 = "plain login", ""
        if self.oauth2_url:
            # Dovecot 2.3 syntax (2.4 moved these into an oauth2 { } filter): the token is
            # POSTed to the introspection URL, which names the user and says it is active.
            (f / "oauth2.conf.ext").write_text(
                f"introspection_mode = post\nintrospection_url = {self.oauth2_url}\n"
                "username_attribute = username\nactive_attribute = active\n"
                "active_value = true\n"
            )
            mechanisms += f" {self.oauth2_mechanisms}"
            oauth2 = (
                f"passdb {{\n  driver = oauth2\n  mechanisms = {self.oauth2_mechanisms}\n"
                f"  args = {f}/oauth2.conf.ext\n}}\n"
            )
        (f / "dovecot.conf").write_text(
            f"""
base_dir = {f}/run
state_dir = {f}/run/state
log_path = {f}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{self.ca.server_cert}
ssl_key = <{self.ca.server_key}
disable_plaintext_auth = yes
auth_mechanisms = {mechanisms}
auth_failure_delay = 0
first_valid_uid = 1
mail_location = maildir:{self.maildir}
mail_plugins =
namespace inbox {{
  inbox = yes
  separator = /
}}
{oauth2}passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {f}/passwd
}}
userdb {{
  driver = static
  args = uid={MAIL_UID} gid={MAIL_UID} home={f}/home
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
        )
        for path in (f, f / "home"):
            path.chmod(0o755)
        subprocess.run(["chown", "-R", f"{MAIL_UID}:{MAIL_UID}", str(f / "home")], check=True)
        self.proc = subprocess.Popen(
            ["dovecot", "-F", "-c", str(f / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=open(f / "stderr.log", "wb"),  # noqa: SIM115 - closed with the process
        )
        _wait_port(self.imaps_port, self.proc, f / "dovecot.log", "dovecot")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def deliver(self, raw: bytes, folder: str = "") -> None:
        """Put a message into the mailbox (new/, unread), as a delivery agent would."""
        target = self.maildir / (f".{folder}" if folder else "") / "new"
        name = f"{time.time_ns()}.{os.getpid()}.test"
        (target / name).write_bytes(raw)
        os.chown(target / name, MAIL_UID, MAIL_UID)

    def folder_files(self, folder: str) -> list[Path]:
        """Messages (new and cur) of a folder; '' is INBOX. Dovecot's Maildir++ names."""
        base = self.maildir if not folder else self.maildir / ("." + folder.replace("/", "."))
        return sorted(p for sub in ("new", "cur") for p in (base / sub).glob("*") if p.is_file())


def private_folder() -> Path:
    """A folder in /tmp that the servers' unprivileged processes may enter."""
    path = Path(tempfile.mkdtemp(prefix="mailer-bounces-"))
    path.chmod(0o755)
    return path


_MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


@dataclass
class Postfix:
    """A private Postfix on loopback: it relays to `next_hop` and delivers mail for the
    bounce domain into `maildir_base`/Maildir/ (where a Dovecot serves it)."""

    folder: Path
    next_hop: int  # the port of the next hop (an aiosmtpd of the test)
    maildir_base: Path  # holds Maildir/
    bounce_domain: str = "arcticsmartness.eu"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["postfix", "-c", str(self.folder / "etc"), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self) -> Postfix:
        need("postfix")
        f = self.folder
        etc = f / "etc"
        etc.mkdir()
        (f / "data").mkdir()
        (f / "vmailbox").write_text(f"@{self.bounce_domain} Maildir/\n")
        (etc / "main.cf").write_text(
            f"""
compatibility_level = 3.6
queue_directory = {f}/queue
data_directory = {f}/data
maillog_file = {f}/maillog
maillog_file_prefixes = {f}
myhostname = mail.{self.bounce_domain}
mydomain = {self.bounce_domain}
myorigin = $myhostname
mydestination =
local_transport = error:no local delivery
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:{self.next_hop}
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtputf8_enable = no
recipient_delimiter = +
virtual_mailbox_domains = {self.bounce_domain}
virtual_mailbox_base = {self.maildir_base}
virtual_mailbox_maps = texthash:{f}/vmailbox
virtual_uid_maps = static:{MAIL_UID}
virtual_gid_maps = static:{MAIL_UID}
virtual_minimum_uid = 1
bounce_queue_lifetime = 0
maximal_queue_lifetime = 1h
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""
        )
        (etc / "master.cf").write_text(_MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        (f / "queue").mkdir(mode=0o755)
        self._postfix("set-permissions")
        check = self._postfix("check")
        if check.returncode != 0:
            raise RuntimeError(f"postfix check: {check.stderr}")
        self.proc = subprocess.Popen(
            ["postfix", "-c", str(etc), "start-fg"],
            stdout=subprocess.DEVNULL,
            stderr=open(f / "stderr.log", "wb"),  # noqa: SIM115 - closed with the process
        )
        _wait_port(self.port, self.proc, f / "maillog", "postfix")
        return self

    def stop(self) -> None:
        self._postfix("stop")
        if self.proc is not None:
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log(self) -> str:
        path = self.folder / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""
