"""Top-level commands of the unsubscribe service: `serve` and `unsubscribes`."""

from __future__ import annotations

import sys

import typer

from mailer.cli._common import check_format, err, get_config, open_store, print_rows

app = typer.Typer()

EVENT_COLUMNS = ("at", "action", "source", "campaign", "email")


@app.command()
def serve(
    ctx: typer.Context,
    host: str = typer.Option(None, "--host", help="Address to listen on (default: web.host)."),
    port: int = typer.Option(
        None, "--port", min=1, max=65535, help="Port to listen on (default: web.port)."
    ),
) -> None:
    """Serve the web service: unsubscribe (RFC 8058 one-click), signup, preferences, archive.

    Also the pictures (/m/), counted links (/l/) and /healthz, on uvicorn. Put it behind an
    HTTPS proxy at web.base_url. SIGTERM or Ctrl-C stops it cleanly.
    The access log on stderr shows neither tokens nor addresses.

    Example: mailer serve --host 127.0.0.1 --port 8080
    """
    import errno
    import signal
    import socket

    import uvicorn

    from mailer.errors import InputError, MailerError
    from mailer.web.app import create_app

    config = get_config(ctx)
    config.secret()  # no secret: refuse now rather than 404 every link
    host = host or config.web.host
    port = config.web.port if port is None else port
    open_store(config).close()  # the database exists and is migrated

    where = f"{host}:{port}"
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise InputError(f"cannot listen: no such address ({exc.strerror})", where=where) from None
    except (OverflowError, UnicodeError, ValueError) as exc:
        raise InputError(f"cannot listen: bad host or port ({exc})", where=where) from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OverflowError as exc:
        sock.close()
        raise InputError(f"cannot listen: bad port ({exc})", where=where) from None
    except OSError as exc:
        sock.close()
        # A busy port is the moment's trouble (exit 1); any other refusal is bad input.
        error = MailerError if exc.errno == errno.EADDRINUSE else InputError
        raise error(f"cannot listen: {exc.strerror or exc}", where=where) from None
    port = sock.getsockname()[1]

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config, access_log=log),
            access_log=False,  # ours masks the token and leaves out the client address
            log_level="warning",
            server_header=False,
            proxy_headers=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
    )
    # uvicorn handles SIGTERM/SIGINT itself (graceful shutdown) and afterwards re-raises
    # the signal to the handlers it found; make those no-ops so a stop exits 0.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    err(f"serving on http://{host}:{port} (SIGTERM or Ctrl-C stops)")
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    if not server.started:
        raise MailerError("the server did not start", where=f"{host}:{port}")
    err("stopped")


@app.command("unsubscribes")
def unsubscribes_command(
    ctx: typer.Context,
    campaign: str = typer.Option(
        None, "--campaign", metavar="NAME", help="Only events through this campaign's links."
    ),
    since: str = typer.Option(
        None,
        "--since",
        metavar="DATE",
        help="Only events at or after DATE (YYYY-MM-DD in defaults.timezone, or ISO date-time).",
    ),
    fmt: str = typer.Option("table", "--format", help="Output format: table, csv or json."),
) -> None:
    """List unsubscribe and resubscribe events (time, action, source, campaign, address).

    Times are in defaults.timezone; CSV and JSON carry ISO 8601 with the offset.

    Example: mailer unsubscribes --campaign 2026-11 --since 2026-11-01 --format csv
    """
    check_format(fmt)
    from mailer.audience.subscriptions import events, parse_since

    config = get_config(ctx)
    zone = config.defaults.zone()
    moment = parse_since(since, zone) if since else None
    with open_store(config) as store:
        found = events(store, campaign=campaign, since=moment)
    rows = [event.to_dict(zone, machine=fmt != "table") for event in found]
    print_rows(rows, EVENT_COLUMNS, fmt)
