"""Workspace commands: init, demo, capture, backup."""

from __future__ import annotations

from pathlib import Path

import typer

from mailer.cli._common import state

app = typer.Typer()


@app.command()
def init(
    ctx: typer.Context,
    directory: Path = typer.Argument(
        Path("."), help="Folder for mailer.toml, the database and templates."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing mailer.toml."),
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
    port: int = typer.Option(1025, "--port", "-p", help="Port to listen on (loopback)."),
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
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with CaptureServer(maildir, host=host, port=port) as server:
        err(f"Capturing SMTP on {host}:{server.port} into {maildir} (Ctrl-C stops)")
        stop.wait()
    err(f"Stopped; {server.received} message(s) captured in {maildir}")
