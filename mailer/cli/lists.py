"""`mailer lists …`."""

from __future__ import annotations

import typer

from mailer.cli._common import (
    YES_HELP,
    check_format,
    confirm_or_refuse,
    err,
    get_config,
    open_store,
    print_json,
    print_rows,
)

app = typer.Typer(
    help="Lists of clusters, municipalities and companies (KIND:SLUG).", no_args_is_help=True
)


@app.command("list")
def list_(
    ctx: typer.Context,
    fmt: str = typer.Option(
        "table", "--format", "-f", metavar="FORMAT", help="table, csv or json."
    ),
) -> None:
    """Show every list with its members and subscribed members.

    Example: mailer lists list --format csv
    """
    from mailer.audience.lists import all_lists

    check_format(fmt)
    config = get_config(ctx)
    with open_store(config) as store:
        rows = [info.to_json() for info in all_lists(store)]
    if fmt == "json":
        print_json(rows)
    else:
        print_rows(rows, ("list", "name", "members", "subscribed"), fmt)


@app.command("add")
def add(
    ctx: typer.Context,
    ref: str = typer.Argument(
        ..., metavar="KIND:SLUG", help="The list, e.g. cluster:arctic-power."
    ),
    name: str = typer.Option(None, "--name", help="Display name (default: as written)."),
) -> None:
    """Create a list (or rename an existing one with --name).

    Example: mailer lists add cluster:arctic-power --name "Arctic Power"
    """
    from mailer.audience.lists import add_list
    from mailer.timeutil import now_utc

    config = get_config(ctx)
    with open_store(config) as store:
        change = add_list(store, config.list_kinds, ref, name, now_utc())
    if change.created:
        typer.echo(f"Added list {change.ref} ({change.name})")
    elif change.renamed:
        typer.echo(f"Renamed list {change.ref} to {change.name}")
    else:
        typer.echo(f"List {change.ref} exists ({change.name})")


@app.command("remove")
def remove(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="KIND:SLUG", help="The list to delete."),
    yes: bool = typer.Option(False, "--yes", "-y", help=YES_HELP),
) -> None:
    """Delete a list and its memberships; the contacts stay. Asks first on a terminal.

    A list that a saved segment or an unsent campaign names is kept (exit 2, naming them).

    Example: mailer lists remove company:new-emerging-fields --yes
    """
    from mailer.audience.lists import find_list, remove_list
    from mailer.audience.segments import list_users
    from mailer.errors import ConflictError

    config = get_config(ctx)
    with open_store(config) as store:
        found = find_list(store, config.list_kinds, ref)
        if needed_by := list_users(store.conn, found.kind, found.slug, config.list_kinds):
            # Said before the question; remove_list checks again inside its transaction.
            raise ConflictError(
                f"list {found.ref} is named by {', '.join(needed_by)}: change or delete those first"
            )
        if not confirm_or_refuse(
            f"Remove list {found.ref} ({found.members} members; they stay as contacts)?",
            yes,
            "remove a list",
        ):
            err("Nothing changed.")
            return
        info = remove_list(store, config.list_kinds, ref, list_users)
    typer.echo(f"Removed list {info.ref} ({info.members} members)")
