"""`mailer demo`: the whole job on the embedded demo data, against a local capture server."""

from __future__ import annotations

import dataclasses
import mailbox
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from mailer.audience.importer import ImportReport
from mailer.capture import CaptureServer
from mailer.config import Config, load_config
from mailer.errors import NotFoundError
from mailer.resources import data_dir
from mailer.store import Store
from mailer.timeutil import now_utc

DEMO_SMTP = (
    'host = "localhost"\nport = 587\nsecurity = "starttls"',
    'host = "127.0.0.1"\nport = 1025               # `mailer capture`\nsecurity = "none"',
)
DEMO_BASE_URL = (
    'base_url = "https://uutiset.arcticsmartness.eu"',
    'base_url = "http://127.0.0.1:8080"   # `mailer serve` on this machine',
)

DEMO_TRACKING = (
    "clicks = false                  # count clicks per link through {base_url}/l/..."
    " (no open pixel)",
    "clicks = true                   # the demo counts clicks (off by default)",
)
DEMO_SCANNER_WINDOW = (
    "ignore_first_seconds = 30       # clicks this soon after sending are mail scanners",
    "ignore_first_seconds = 0        # the demo's own clicks come right after sending",
)
# The demo turns on the signup form and the preference page (the commented [signup] block).
DEMO_SIGNUP = ("# [signup]\n# lists = ", "[signup]\nlists = ")
DEMO_CONSENT = ("\n# consent_version = ", "\nconsent_version = ")

# The demo's news items and campaign file ship inside the package.
DEMO_CONTENT = Path(__file__).resolve().parent / "demo_content"


@dataclass
class DemoReport:
    workspace: Path
    created: bool
    imports: list[ImportReport] = field(default_factory=list)
    previews: list[Path] = field(default_factory=list)
    campaign: str = ""
    sent_now: int = 0
    already_sent: bool = False
    maildir: Path | None = None
    maildir_count: int = 0
    recipients: int = 0
    unsubscribe_url: str = ""
    archive_url: str = ""  # the public copy, once `mailer serve` runs
    clicks: int = 0  # simulated through the real web service
    report: Path | None = None
    signup_url: str = ""  # with [signup] on: the form, and a recipient's preference page
    preferences_url: str = ""
    returned: Path | None = None  # returned mail the demo wrote (bounces, a complaint)
    bounces: Any = None  # what `bounces import` of it did (mailer.bounces.apply.BounceReport)


def run_demo(
    directory: Path,
    *,
    environ: dict[str, str],
    progress: Callable[[object], None] | None = None,
) -> DemoReport:
    """Create (or reuse) a demo workspace, import, render, send to a capture server."""
    from mailer.audience.importer import import_contacts
    from mailer.newsletter.preview import store_sample_finder, write_previews
    from mailer.newsletter.spec import load_campaign
    from mailer.sending.campaigns import campaign_stats, create_campaign, show_campaign
    from mailer.sending.engine import send_campaign
    from mailer.sending.options import SendOptions
    from mailer.workspace import init_workspace

    directory = directory.absolute()
    config_path = directory / "mailer.toml"
    created = not config_path.exists()
    if created:
        init_workspace(directory, environ=environ)
        text = config_path.read_text(encoding="utf-8")
        for old, new in (
            DEMO_SMTP,
            DEMO_BASE_URL,
            DEMO_TRACKING,
            DEMO_SCANNER_WINDOW,
            DEMO_SIGNUP,
            DEMO_CONSENT,
        ):
            text = text.replace(old, new)
        config_path.write_text(text + DEMO_BOUNCES, encoding="utf-8")
    config = load_config(config_path, environ)
    report = DemoReport(directory, created)

    news = directory / "news"
    news.mkdir(exist_ok=True)
    for source in sorted(DEMO_CONTENT.iterdir()):
        if source.suffix in (".md", ".toml", ".jpg"):
            shutil.copyfile(source, news / source.name)

    with Store(config.database_path) as store:
        for csv_file in sorted(data_dir("contacts").glob("*.csv")):
            report.imports.append(import_contacts(store, config, csv_file, now=now_utc()))

        spec = load_campaign(news / "campaign.toml", config)
        report.campaign = spec.name
        preview = write_previews(
            config,
            spec,
            directory / "preview",
            now=now_utc(),
            find_sample=store_sample_finder(store.conn),
        )
        report.previews = [p for p in preview.files if p.suffix == ".html"]

        try:
            show_campaign(store, spec.name)
        except NotFoundError:
            create_campaign(store, config, news / "campaign.toml")

        report.maildir = directory / "maildir"
        with CaptureServer(report.maildir) as server:
            send_config = _pointed_at(config, server.port)
            result = send_campaign(
                store, send_config, spec.name, options=SendOptions(), progress=progress
            )
        report.sent_now = result.sent
        # --- the public archive: the demo's issue says `archive = true` -------------------
        if spec.archive:
            report.archive_url = f"{config.web.base_url}/archive/{spec.name}"
        report.already_sent = result.nothing_to_do
        stats = campaign_stats(store, spec.name)
        report.recipients = stats.recipients
        report.returned, report.bounces = _returned_mail(store, config, directory, report.maildir)

    box = mailbox.Maildir(str(report.maildir), create=True)
    report.maildir_count = len(box)
    for key in box.iterkeys():
        with box.get_file(key) as handle:
            headers = BytesHeaderParser().parse(handle)  # type: ignore[arg-type]
        url = str(headers.get("List-Unsubscribe", ""))
        report.unsubscribe_url = url.split(",")[0].strip().strip("<>")
        _signup_urls(report, config, box.get_bytes(key))
        break
    report.clicks, report.report = _clicks_and_report(config, report)
    return report


def _signup_urls(report: DemoReport, config: Config, message: bytes) -> None:
    """The signup form's URL and the first recipient's preference page (its footer link)."""
    import re

    if config.signup is None:
        return
    report.signup_url = f"{config.web.base_url}/subscribe"
    found = re.search(rb"(https?://[^\s<>\"]+/p/[A-Za-z0-9_-]+)", message.replace(b"=\r\n", b""))
    report.preferences_url = found.group(1).decode("ascii") if found else ""


# --- the demo's clicks and report ------------------------------------------------------------


def _clicks_and_report(config: Config, report: DemoReport) -> tuple[int, Path]:
    """Follow a few of the sent links through the real web service, then write the report."""
    import http.client
    import re
    import threading
    import time

    import uvicorn

    from mailer.capture import free_port
    from mailer.engagement.report import report_language, write_report
    from mailer.web.app import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    clicks = 0
    try:
        box = mailbox.Maildir(str(report.maildir), create=False)
        for n, key in enumerate(sorted(box.iterkeys())[:12]):
            paths = re.findall(r'href="https?://[^/"]+(/l/[A-Za-z0-9_-]+)"', _html_part(box[key]))
            for path in paths[: 1 + n % 3]:  # some readers follow more than one link
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", path)
                clicks += conn.getresponse().status == 302
                conn.close()
    finally:
        server.should_exit = True  # its shutdown writes the counts
        thread.join(timeout=30)
    out = report.workspace / "report.html"
    language = report_language(None, config.defaults.language)
    with Store(config.database_path) as store:
        write_report(store, report.campaign, out, language=language, now=now_utc())
    return clicks, out


def _html_part(message: mailbox.MaildirMessage) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            return payload.decode("utf-8") if isinstance(payload, bytes) else ""
    return ""


# --- Returned mail: a few messages come back; `bounces import` applies them ----------------

DEMO_BOUNCES = """
[bounces]                       # the return path per delivery: bounces+TOKEN@arcticsmartness.eu
address = "bounces@arcticsmartness.eu"
"""


def _returned_mail(
    store: Store, config: Config, directory: Path, maildir: Path
) -> tuple[Path, Any]:
    """Write returned mail for a few demo recipients into a Maildir, then import it."""
    from mailer.bounces import samples
    from mailer.bounces.runs import import_paths

    returned = directory / "returned"
    if not returned.exists():  # written once: a second demo imports the same mail again
        sent = mailbox.Maildir(str(maildir), create=True)
        originals = sorted(
            (bytes(sent.get_bytes(key)) for key in sent.iterkeys()),
            key=lambda raw: raw.split(b"\r\nTo: ", 1)[-1][:80],
        )
        now = now_utc()
        made = [
            samples.delivery_report(
                originals[0], status="5.1.1", now=now,
                diagnostic="550 5.1.1 Recipient address rejected: User unknown",
            ),
            samples.delivery_report(
                originals[1], status="5.1.10", now=now,
                diagnostic="550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found",
            ),
            samples.delivery_report(
                originals[2], status="4.2.2", action="delayed", now=now,
                diagnostic="452 4.2.2 Mailbox full, try again later",
            ),
            samples.complaint(originals[3], now=now),
            samples.vacation_reply(originals[4], now=now),
        ]  # fmt: skip
        box = mailbox.Maildir(str(returned), create=True)
        for raw in made:
            box.add(raw)
    return returned, import_paths(store, config, [returned])


def _pointed_at(config: Config, port: int) -> Config:
    smtp = dataclasses.replace(
        config.smtp,
        host="127.0.0.1",
        port=port,
        security="none",
        username="",
        rate=0.0,
        per_minute=0,
        per_day=0,
    )
    return dataclasses.replace(config, smtp=smtp)
