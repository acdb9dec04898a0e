"""`mailer campaign …`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mailer.cli._common import (
    YES_HELP,
    check_format,
    get_config,
    open_store,
    print_json,
    print_rows,
)

if TYPE_CHECKING:
    from mailer.config import Config

app = typer.Typer(
    help="Create, list, show and cancel campaigns (newsletter issues).", no_args_is_help=True
)

LIST_COLUMNS = ("name", "status", "send_at", "segment", "recipients", "sent", "pending", "reason")


@app.command("create")
def create(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="The campaign file (TOML)."),
) -> None:
    """Check a campaign file (segment, items, template) and store it; print its name.

    The file, its news items and templates are stored as they are now: previews
    (`render NAME`), test sends and the send use that copy. After editing any of them,
    run `campaign create` again (allowed until sending starts).

    Example: mailer campaign create campaigns/2018-11.toml
    """
    from mailer.cli._common import err
    from mailer.sending.campaigns import create_campaign

    config = get_config(ctx)
    with open_store(config) as store:
        report = create_campaign(store, config, path)
    typer.echo(report.name)
    verb = "updated" if report.updated else "created"
    err(f"Campaign {report.name} {verb} ({report.status}; {report.audience} recipient(s) now).")
    if report.audience == 0:
        err(
            f"Warning: the segment of {report.name} matches no subscribed contact now;"
            " it cannot be sent until it does."
        )


@app.command("list")
def list_(
    ctx: typer.Context,
    fmt: str = typer.Option("table", "--format", help="Output format: table, csv or json."),
) -> None:
    """List campaigns with their status and counts.

    Example: mailer campaign list --format json
    """
    from mailer.sending.campaigns import list_campaigns

    check_format(fmt)
    config = get_config(ctx)
    with open_store(config) as store:
        rows = [info.to_dict() for info in list_campaigns(store, config)]
    for row in rows:
        row["send_at"] = local_time(config, row["send_at"], fmt)
    print_rows(rows, LIST_COLUMNS, fmt)


def local_time(config: Config, stored: str | None, fmt: str) -> str | None:
    """A stored UTC time in defaults.timezone: `2026-11-28 08:06` in a table, else ISO 8601
    with the offset."""
    if not stored:
        return stored
    from mailer.timeutil import for_people

    return for_people(stored, config.defaults.zone(), machine=fmt != "table")


@app.command("show")
def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The campaign's name."),
    fmt: str = typer.Option("table", "--format", help="Output format: table or json."),
) -> None:
    """Show one campaign: status, schedule, segment and delivery counts.

    Example: mailer campaign show 2018-11
    """
    from mailer.cli._common import changed_line, err
    from mailer.sending.campaigns import show_campaign

    check_format(fmt)
    config = get_config(ctx)
    with open_store(config) as store:
        shown = show_campaign(store, name, config)
    info = shown.to_dict()
    for key in ("send_at", "created_at", "frozen_at", "finished_at"):
        info[key] = local_time(config, info[key], fmt)
    if fmt == "json":
        print_json(info)
    else:
        del info["changed_files"]
        print_rows([{"field": k, "value": v} for k, v in info.items()], ("field", "value"), fmt)
    if shown.changed_files:
        err(changed_line(name, shown.changed_files))


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The campaign's name."),
    yes: bool = typer.Option(False, "--yes", "-y", help=YES_HELP),
) -> None:
    """Cancel a campaign that is not sent; a run sending it stops within seconds.

    It cannot be undone, so it asks first on a terminal; --yes for scripts.

    Example: mailer campaign cancel 2018-11 --yes
    """
    from mailer.cli._common import confirm_or_refuse, err
    from mailer.sending.campaigns import cancel_campaign, find_campaign

    config = get_config(ctx)
    with open_store(config) as store:
        find_campaign(store.conn, name)  # a typo'd name is an error before any question
        if not confirm_or_refuse(f"Cancel campaign {name} for good?", yes, "cancel a campaign"):
            err("Nothing changed.")
            return
        info = cancel_campaign(store, name)
    err(f"Campaign {info.name} cancelled; {info.counts['pending']} recipients were not sent.")
