"""Workspace commands: init, demo, capture, backup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mailer.cli._common import state

app = typer.Typer()


@app.command()
def init(
    ctx: typer.Context,
    directory: Path = typer.Argument(
        Path("."), help="Folder for mailer.toml, the database and templates."
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Write mailer.toml anew over an existing one; keeps its secrets and your templates.",
    ),
) -> None:
    """Create mailer.toml with a fresh secret, the database and starter templates.

    Example: mailer init ~/uutiskirje
    """
    from mailer.workspace import init_workspace

    report = init_workspace(directory, force=force, environ=state(ctx).environ)
    typer.echo(f"Wrote {report.config_path}")
    typer.echo(f"Database {report.database_path}")
    if report.templates_copied:
        typer.echo(f"Templates in {report.config_path.parent / 'templates'}")


@app.command()
def demo(
    ctx: typer.Context,
    directory: Path = typer.Argument(
        Path("mailer-demo"), help="Folder for the demo workspace (created if missing)."
    ),
) -> None:
    """Run the whole job on the embedded demo data: import, render, send to a local server.

    Creates (or reuses) a workspace, imports the Arctic Smartness demo contacts, writes the
    news of 6 November 2018 in Finnish and English, renders a preview, starts a capture
    SMTP server on loopback and sends the newsletter to `municipality:* or company:*`.
    Running it again sends nobody a second copy.

    Example: mailer demo
    """
    from mailer.cli._common import err, is_terminal, problem_line
    from mailer.demo import run_demo

    terminal = is_terminal()

    def progress(p: object) -> None:
        if terminal:
            done, total = getattr(p, "done", 0), getattr(p, "total", 0)
            err_line = f"\rSending {done}/{total}"
            typer.echo(err_line, err=True, nl=False)

    report = run_demo(directory, environ=state(ctx).environ, progress=progress)
    if terminal:
        typer.echo("", err=True)
    cfg = report.workspace / "mailer.toml"
    rel = _relative(report.workspace)
    say = typer.echo
    say(f"Workspace   {rel}/ ({'created' if report.created else 'already there, reused'})")
    for imp in report.imports:
        say(f"Contacts    {Path(imp.path).name}: {imp.summary()}")
        for problem in imp.problems:
            err(f"            {problem_line(imp.path, problem)}")
    for path in report.previews:
        say(f"Preview     {_relative(path)}")
    if report.already_sent:
        say(
            f"Campaign    {report.campaign} was already sent to {report.recipients} recipients;"
            " nobody gets a second copy"
        )
    else:
        say(
            f"Campaign    {report.campaign}: sent {report.sent_now} of {report.recipients}"
            " to the capture server"
        )
    say(f"Maildir     {_relative(report.maildir)}/ ({report.maildir_count} messages)")
    _say_returned(report)
    say(f"Stats       mailer --config {_relative(cfg)} stats {report.campaign}")
    say(f"Unsubscribe mailer --config {_relative(cfg)} serve   # then open:")
    say(f"            {report.unsubscribe_url}")
    if report.archive_url:
        say(f"Archive     {report.archive_url}   (the public copy, with the same serve)")
    say(f"Clicks      {report.clicks} followed through the web service (counted per link)")
    say(f"Report      {_relative(report.report)}")
    if report.signup_url:
        say(f"Signup      {report.signup_url}   # the form; confirmations go to `mailer capture`")
    if report.preferences_url:
        say(f"Preferences {report.preferences_url}")


def _say_returned(report: Any) -> None:
    """The returned mail the demo imported: who was stopped and why."""
    b = report.bounces
    if b is None:
        return
    typer.echo(
        f"Returned    {_relative(report.returned)}/ ({b.messages} messages): {b.hard} hard,"
        f" {b.soft} soft, {b.complaints} complaint, {b.autoreplies} auto-reply"
        + (f", {b.duplicates} already applied" if b.duplicates else "")
    )
    for e in b.stopped:
        why = (
            "complained (spam button)"
            if e.action == "unsubscribed"
            else f"{e.status} {e.diagnostic}"
        )
        typer.echo(f"Stopped     {e.email}: {e.action}: {why}")


def _relative(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@app.command()
def backup(
    ctx: typer.Context,
    target: Path = typer.Argument(..., help="File to write the copy to (must not exist)."),
) -> None:
    """Write an online copy of the database, safe while serve and send run.

    Example: mailer backup /var/backups/mailer-$(date +%F).db
    """
    from mailer.cli._common import get_config, open_store
    from mailer.errors import InputError

    if target.exists():
        raise InputError(f"{target} already exists; choose a new file")
    if not target.absolute().parent.is_dir():
        raise InputError(f"folder {target.absolute().parent} does not exist")
    config = get_config(ctx)
    with open_store(config) as store:
        store.backup(target)
    typer.echo(f"Backed up {config.database_path} to {target}")


@app.command()
def capture(
    ctx: typer.Context,
    port: int = typer.Option(
        1025, "--port", "-p", min=1, max=65535, help="Port to listen on (loopback)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    maildir: Path = typer.Option(
        None, "--maildir", help="Maildir to write into (default: ./captured next to the config)."
    ),
) -> None:
    """Run a local SMTP server that keeps every message it receives in a Maildir.

    Point [smtp] at it (host = "127.0.0.1", port = 1025, security = "none") to try
    templates with real sending; stop it with Ctrl-C.

    Example: mailer capture --port 1025
    """
    import signal
    import threading

    from mailer.capture import CaptureServer
    from mailer.cli._common import err

    if maildir is None:
        from mailer.config import find_config_path

        config_path = find_config_path(state(ctx).config_path, state(ctx).environ)
        base = config_path.absolute().parent if config_path.exists() else Path.cwd()
        maildir = base / "captured"
    stop = threading.Event()
    with CaptureServer(maildir, host=host, port=port) as server:
        # Only now: a server that failed to start must leave Ctrl-C working.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        err(f"Capturing SMTP on {host}:{server.port} into {maildir} (Ctrl-C stops)")
        stop.wait()
    err(f"Stopped; {server.received} message(s) captured in {maildir}")
