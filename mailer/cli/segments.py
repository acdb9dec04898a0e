"""`mailer segments …`."""

from __future__ import annotations

import typer

from mailer.cli._common import check_format, get_config, open_store, print_json, print_rows

app = typer.Typer(help="Count and save segment expressions.", no_args_is_help=True)


@app.command("count")
def count(
    ctx: typer.Context,
    expression: str = typer.Argument(..., metavar="EXPR", help="Segment expression or @name."),
) -> None:
    """Print how many subscribed contacts match a segment.

    Atoms: KIND:SLUG, KIND:*, lang:fi, all, @name; operators not, and, or; parentheses.

    Example: mailer segments count "cluster:arctic-power and not company:*"
    """
    from mailer.audience.segments import count_segment

    config = get_config(ctx)
    with open_store(config) as store:
        typer.echo(str(count_segment(store, expression, config.list_kinds)))


@app.command("save")
def save(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name to use as @name."),
    expression: str = typer.Argument(..., metavar="EXPR", help="Segment expression."),
) -> None:
    """Save a segment expression under a name (replacing one of that name).

    Example: mailer segments save lappi-fi "municipality:* and lang:fi"
    """
    from mailer.audience.segments import save_segment
    from mailer.timeutil import now_utc

    config = get_config(ctx)
    with open_store(config) as store:
        saved, new = save_segment(store, name, expression, config.list_kinds, now_utc())
    verb = "Saved" if new else "Updated"
    typer.echo(f"{verb} @{saved.name}: {saved.expression} ({saved.subscribed} subscribed)")


@app.command("list")
def list_(
    ctx: typer.Context,
    fmt: str = typer.Option(
        "table", "--format", "-f", metavar="FORMAT", help="table, csv or json."
    ),
) -> None:
    """Show saved segments with their current count of subscribed contacts.

    Example: mailer segments list
    """
    from mailer.audience.segments import list_segments

    check_format(fmt)
    config = get_config(ctx)
    with open_store(config) as store:
        rows = [s.to_json() for s in list_segments(store, config.list_kinds)]
    if fmt == "json":
        print_json(rows)
    else:
        print_rows(rows, ("name", "expression", "subscribed", "problem"), fmt)


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The saved segment's name."),
) -> None:
    """Delete a saved segment.

    Example: mailer segments delete lappi-fi
    """
    from mailer.audience.segments import delete_segment

    config = get_config(ctx)
    with open_store(config) as store:
        delete_segment(store, name)
    typer.echo(f"Deleted @{name.removeprefix('@')}")
