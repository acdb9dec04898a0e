"""`mailer bounces`: fetch the bounce mailbox, import returned mail from files, list bounces."""

from __future__ import annotations

import sys
import time
from typing import Any

import typer

from mailer.cli._common import check_format, err, get_config, is_terminal, open_store, print_rows

app = typer.Typer(
    help="Bounces and complaints: read the bounce mailbox (IMAP) or files, list what came back.",
    no_args_is_help=True,
)

LIST_COLUMNS = ("email", "campaign", "kind", "status", "diagnostic", "received_at", "action")
KINDS = ("hard", "soft", "complaint")
LOG_EVERY = 5.0


class _Progress:
    """A counter on a terminal; a log line every few seconds under cron."""

    def __init__(self, terminal: bool) -> None:
        self.terminal = terminal
        self.last = time.monotonic()
        self.drawn = False

    def __call__(self, done: int, handled: Any) -> None:
        if self.terminal:
            sys.stderr.write(f"\rbounces: {done} messages read\x1b[K")
            sys.stderr.flush()
            self.drawn = True
        elif time.monotonic() - self.last >= LOG_EVERY:
            self.last = time.monotonic()
            err(f"bounces: {done} messages read")

    def end(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _summary(report: Any) -> None:
    typer.echo(
        f"{report.messages} messages: {report.hard} hard, {report.soft} soft,"
        f" {report.complaints} complaints, {report.autoreplies} auto-replies,"
        f" {report.unrecognised} unrecognised, {report.duplicates} seen before"
    )
    for effect in report.stopped:
        why = " ".join(p for p in (effect.status, effect.diagnostic) if p)
        via = f" ({effect.campaign})" if effect.campaign else ""
        typer.echo(f"  {effect.action}: {effect.email or '(forgotten)'}{via}: {why}")
    for handled in report.left:
        typer.echo(f"  left for a person: {handled.name}: {handled.reason}")


@app.command("fetch")
def fetch_command(ctx: typer.Context) -> None:
    """Read the bounce mailbox over IMAP once: apply bounces and complaints, move the mail.

    Handled mail moves to bounces.processed_folder; anything else (auto-replies, people)
    moves unread to bounces.unrecognised_folder. Nothing is deleted. IMAP unreachable or
    login refused: exit 1, nothing moved. For cron, every 15 minutes.

    Example: mailer bounces fetch
    """
    from mailer.bounces.runs import fetch

    config = get_config(ctx)
    progress = _Progress(is_terminal())
    with open_store(config) as store:
        try:
            report = fetch(store, config, progress=progress)
        finally:
            progress.end()
    _summary(report)


@app.command("import")
def import_command(
    ctx: typer.Context,
    paths: list[str] = typer.Argument(
        ..., metavar="PATH...", help="Returned mail: .eml files, Maildir folders or mbox files."
    ),
) -> None:
    """Apply returned mail from files, as `bounces fetch` does for the mailbox.

    The files are left as they are; a message already handled counts once.

    Example: mailer bounces import ~/Maildir/.Bounces returned.eml
    """
    from mailer.bounces.runs import import_paths

    config = get_config(ctx)
    progress = _Progress(is_terminal())
    with open_store(config) as store:
        try:
            report = import_paths(store, config, paths, progress=progress)
        finally:
            progress.end()
    _summary(report)


@app.command("list")
def list_command(
    ctx: typer.Context,
    campaign: str = typer.Option(
        None, "--campaign", metavar="NAME", help="Only bounces of this campaign's messages."
    ),
    since: str = typer.Option(
        None,
        "--since",
        metavar="DATE",
        help="Only bounces at or after DATE (YYYY-MM-DD in defaults.timezone, or ISO date-time).",
    ),
    kind: str = typer.Option(None, "--kind", help="Only this kind: hard, soft or complaint."),
    fmt: str = typer.Option("table", "--format", help="Output format: table, csv or json."),
) -> None:
    """List bounces and complaints: address, campaign, kind, status code, what it did.

    Example: mailer bounces list --kind hard --since 2026-11-01 --format json
    """
    from mailer.audience.subscriptions import parse_since
    from mailer.bounces.apply import list_bounces
    from mailer.errors import InputError

    check_format(fmt)
    if kind is not None and kind not in KINDS:
        raise InputError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    config = get_config(ctx)
    moment = parse_since(since, config.defaults.zone()) if since else None
    with open_store(config) as store:
        found = list_bounces(store, campaign=campaign, since=moment, kind=kind)
    zone, machine = config.defaults.zone(), fmt != "table"  # people read the configured zone
    rows = [r.to_dict(zone, machine=machine) for r in found]
    print_rows(rows, LIST_COLUMNS, fmt)
