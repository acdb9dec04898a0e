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
        for old, new in (DEMO_SMTP, DEMO_BASE_URL):
            text = text.replace(old, new)
        config_path.write_text(text + DEMO_BOUNCES, encoding="utf-8")
    config = load_config(config_path, environ)
    report = DemoReport(directory, created)

    news = directory / "news"
    news.mkdir(exist_ok=True)
    for source in sorted(DEMO_CONTENT.iterdir()):
        if source.suffix in (".md", ".toml"):
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
        break
    return report


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
