"""Top-level sending commands: send, send-due, stats."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from mailer.cli._common import (
    changed_line,
    check_format,
    err,
    get_config,
    is_terminal,
    open_store,
    print_json,
    print_rows,
)

app = typer.Typer()

LOG_EVERY = 5.0  # seconds between progress lines when there is no terminal


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class _Progress:
    """A progress bar on a terminal; a log line every few seconds otherwise."""

    def __init__(self, terminal: bool) -> None:
        self.terminal = terminal
        self.last = 0.0
        self.drawn = False

    def __call__(self, p: Any) -> None:
        counts = (
            f"sent {p.sent}  failed {p.failed}  deferred {p.deferred}"
            f"  unknown {p.unknown}  skipped {p.skipped}"
        )
        tail = f"{p.rate:.0f} msg/s  left {_duration(p.eta)}"
        if self.terminal:
            total = max(p.total, 1)
            filled = int(30 * min(p.done, total) / total)
            bar = "#" * filled + "-" * (30 - filled)
            sys.stderr.write(f"\r{p.campaign} [{bar}] {p.done}/{p.total}  {counts}  {tail}\x1b[K")
            sys.stderr.flush()
            self.drawn = True
            return
        now = time.monotonic()
        if now - self.last >= LOG_EVERY:
            self.last = now
            err(f"{p.campaign}: {p.done}/{p.total}  {counts}  {tail}")

    def end(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _summary(report: Any) -> None:
    name = report.campaign
    if report.became_unknown:
        shown = ", ".join(report.became_unknown[:10])
        more = (
            f" and {len(report.became_unknown) - 10} more"
            if len(report.became_unknown) > 10
            else ""
        )
        err(
            f"{name}: {len(report.became_unknown)} recipient(s) were in flight when an earlier "
            f"run stopped; they are `unknown` and are not resent: {shown}{more}. "
            f"`mailer send {name} --resend-unknown` sends them again."
        )
    if report.nothing_to_do:
        err(f"{name}: {report.stopped_reason}; nothing sent (status {report.status}).")
        return
    counts = report.counts or {}
    waiting = counts.get("deferred", report.deferred)
    left = f"{report.remaining} left"
    if report.remaining:
        pending = counts.get("pending", 0) + counts.get("sending", 0)
        left += f" ({pending} pending, {waiting} deferred)"
    err(
        f"{name}: sent {report.sent}, failed {report.failed}, deferred {report.deferred},"
        f" unknown {report.unknown}, skipped {report.skipped} in {report.elapsed:.1f}s"
        f" ({report.rate:.0f} msg/s); campaign {report.status}, {left}."
    )
    if report.refused:
        err(f"{name}: {report.refused} address(es) need SMTPUTF8, which the server does not offer.")
    if report.unknown_now:
        err(
            f"{name}: the connection was lost after the whole message was sent to "
            f"{', '.join(report.unknown_now[:10])}: the server may hold it, so it is `unknown` "
            "and not resent."
        )
    if report.quota_exhausted:
        err(
            f"{name}: {report.stopped_reason}; {report.remaining} left pending. "
            "`mailer send-due` goes on when the quota allows."
        )
    elif waiting and report.status == "sending":
        err(
            f"{name}: deferred recipients are retried later by `mailer send-due`"
            f" or now by `mailer send {name}`."
        )
    if report.stopped_reason and not report.quota_exhausted:
        err(f"{name}: stopped: {report.stopped_reason}.")


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """Treat SIGTERM (cron's timeout, systemd) like Ctrl-C: finish the messages in flight."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(name: str | None) -> Exception:
    from mailer.errors import MailerError

    again = f"`mailer send {name}`" if name else "`mailer send-due`"
    return MailerError(
        f"stopped; the messages in flight were finished and recorded; {again} continues"
    )


def _paused_error(report: Any) -> Exception:
    from mailer.errors import MailerError

    return MailerError(
        f"campaign {report.campaign} paused after {report.pause_reason}; when the server works "
        f"again, `mailer send {report.campaign}` continues it"
    )


@app.command()
def send(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The campaign's name."),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Send without asking (needed without a terminal)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Write the real messages of a sample as .eml files; send nothing."
    ),
    out: Path = typer.Option(
        None, "--out", help="Folder for --dry-run files (default ./dry-run/NAME/)."
    ),
    test_to: str = typer.Option(
        None,
        "--test-to",
        metavar="EMAIL",
        help="Send one message per language, marked as a test and filled in for a made-up"
        " reader, to EMAIL alone.",
    ),
    lang: str = typer.Option(
        None, "--lang", metavar="L", help="With --test-to: only the variant of this language."
    ),
    connections: int = typer.Option(
        None, "--connections", min=1, help="Parallel SMTP connections (default smtp.connections)."
    ),
    rate: float = typer.Option(
        None, "--rate", min=0, help="Messages per second over all connections (default smtp.rate)."
    ),
    resend_unknown: bool = typer.Option(
        False, "--resend-unknown", help="Send again to recipients whose delivery is `unknown`."
    ),
) -> None:
    """Send a campaign, or continue one that stopped; retries deferred recipients now.

    Example: mailer send 2018-11 --yes
    """
    from mailer.errors import InputError
    from mailer.sending import engine, previews
    from mailer.sending.campaigns import changed_since_create, find_campaign
    from mailer.sending.options import SendOptions

    config = get_config(ctx)
    with open_store(config) as store:
        if dry_run or test_to:
            changed = changed_since_create(find_campaign(store.conn, name))
            if changed:
                err(changed_line(name, changed))
        if dry_run:
            target = out or Path("dry-run") / name
            report = previews.dry_run(store, config, name, target)
            for path in report.files:
                typer.echo(str(path))
            err(f"{name}: wrote {len(report.files)} sample message(s) to {target}; nothing sent.")
            return
        if out is not None:
            raise InputError("--out goes with --dry-run")
        if lang is not None and not test_to:
            raise InputError("--lang goes with --test-to")
        if test_to:
            sent = previews.send_test(store, config, name, test_to, lang=lang)
            err(
                f"{name}: test message(s) in {', '.join(sent.languages)} sent to {test_to}"
                " (filled in for a made-up reader); no delivery recorded."
            )
            return
        check = previews.preflight(store, config, name, resend_unknown=resend_unknown)
        if check.already_sent:
            err(f"{name}: the campaign was already sent; nothing to do.")
            return
        if check.changed_files:
            err(changed_line(name, check.changed_files))
        terminal = is_terminal(sys.stderr) and is_terminal(sys.stdin)
        if not yes:
            if not terminal:
                raise InputError(
                    "refusing to send without a terminal to confirm; pass --yes "
                    "(or use `mailer send-due` from cron)"
                )
            what = "the stored version of campaign" if check.changed_files else "campaign"
            question = f"Send {what} {name} to {check.audience} recipient(s)?"
            if not typer.confirm(question):
                err("Nothing sent.")
                return
        progress = _Progress(is_terminal(sys.stderr))
        options = SendOptions(connections=connections, rate=rate, resend_unknown=resend_unknown)
        try:
            with _stop_on_sigterm():
                report = engine.send_campaign(
                    store, config, name, options=options, progress=progress
                )
        except KeyboardInterrupt:
            raise _interrupted(name) from None
        finally:
            progress.end()
    _summary(report)
    if report.paused:
        raise _paused_error(report)


@app.command("send-due")
def send_due(ctx: typer.Context) -> None:
    """Send every campaign whose send_at has passed and continue unfinished ones (for cron).

    A campaign more than defaults.max_late_hours late is paused with the reason "late", and
    one another run holds is skipped; both are reported (exit 0). A campaign that cannot
    start (empty audience, a list gone) is paused with the reason and reported once (exit 1).
    Never prompts.

    It also deletes the click hashes of campaigns older than tracking.keep_days (as
    `mailer serve` does hourly), so that only counts remain even when the service is down.

    In crontab: */5 * * * * cd /srv/uutiset && mailer send-due

    Example: mailer send-due
    """
    from mailer.engagement.clicks import purge_expired
    from mailer.sending.due import send_due as run_due
    from mailer.timeutil import now_utc

    config = get_config(ctx)
    progress = _Progress(is_terminal(sys.stderr))
    with open_store(config) as store:
        try:
            with _stop_on_sigterm():
                report = run_due(store, config, progress=progress)
        except KeyboardInterrupt:
            raise _interrupted(None) from None
        finally:
            progress.end()
        purged = purge_expired(store, config, now=now_utc())
    if purged:
        err(
            f"Click hashes of {len(purged)} campaign(s) older than {config.tracking.keep_days}"
            " days deleted; their click counts remain."
        )
    if not report.items:
        err("Nothing due.")
    paused = None
    for item in report.items:
        if item.changed_files:
            err(changed_line(item.campaign, item.changed_files))
        if item.report is not None:
            _summary(item.report)
            if item.report.paused:
                paused = item.report
        elif item.action == "late":
            err(f"{item.campaign}: not sent, {item.detail}.")
        elif item.action == "cannot-start":
            err(
                f"{item.campaign}: cannot start, paused: {item.detail}; fix it and run"
                f" `mailer campaign create` again, or `mailer send {item.campaign}`."
            )
        elif item.action == "held":
            err(f"{item.campaign}: skipped: {item.detail}.")
        elif item.action == "paused":
            err(
                f"{item.campaign}: paused ({item.detail}); "
                f"run `mailer send {item.campaign}` to continue."
            )
        else:
            err(f"{item.campaign}: {item.detail}.")
    if paused is not None:
        raise _paused_error(paused)
    if report.failed_to_start:
        from mailer.errors import MailerError

        names = ", ".join(item.campaign for item in report.failed_to_start)
        raise MailerError(f"{names}: could not start; paused (see above)")


STATS_FIELDS = (
    "campaign",
    "status",
    "recipients",
    "sent",
    "failed",
    "deferred",
    "pending",
    "unknown",
    "skipped",
    "unsubscribed",
    "bounced",
    "soft_bounced",
    "complaints",
    "clicks",
    "unique_clicks",
)


@app.command()
def stats(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The campaign's name."),
    fmt: str = typer.Option("table", "--format", help="Output format: table or json."),
) -> None:
    """Show how a campaign's deliveries stand and how many unsubscribed through it.

    Example: mailer stats 2018-11 --format json
    """
    from mailer.errors import InputError
    from mailer.sending.campaigns import campaign_stats

    if check_format(fmt) == "csv":
        raise InputError("--format must be table or json")
    config = get_config(ctx)
    with open_store(config) as store:
        data = campaign_stats(store, name).to_dict()
    if fmt == "json":
        print_json({**{key: data[key] for key in STATS_FIELDS}, "links": data["links"]})
    else:
        rows = [{"field": k, "value": "-" if data[k] is None else data[k]} for k in STATS_FIELDS]
        print_rows(rows, ("field", "value"))
        if data["links"]:
            print()
            print_rows(data["links"], ("clicks", "unique_clicks", "url"))
