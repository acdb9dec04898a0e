"""`mailer archive …`: the public archive of sent issues."""

from __future__ import annotations

from pathlib import Path

import typer

from mailer.cli._common import err, get_config, open_store

app = typer.Typer(
    help="The public archive of sent issues: export it as static files, publish or withdraw.",
    no_args_is_help=True,
)


@app.command("export")
def export(
    ctx: typer.Context,
    out_dir: Path = typer.Argument(..., metavar="DIR", help="Folder for the files."),
) -> None:
    """Write the archive as static files: index per language, a page per issue, feeds, pictures.

    DIR is the web root: DIR/archive/ and DIR/m/ (see docs/deploy.md). Exporting again into
    the same folder removes the pages of withdrawn issues.

    Example: mailer archive export /var/www/uutiset
    """
    from mailer.sending.archive import export_archive

    config = get_config(ctx)
    with open_store(config) as store:
        report = export_archive(store, config, out_dir)
    typer.echo(str(report.out_dir))
    err(
        f"{report.issues} issues: {report.pages} pages, {report.feeds} feeds,"
        f" {report.images} pictures written; {report.removed} old files removed."
    )
    for name in report.missing_images:
        err(f"Warning: picture {name} is not in the database; its pages show its alt text")
    if report.missing_images:
        raise typer.Exit(1)


@app.command("add")
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The campaign's name."),
) -> None:
    """Publish one issue in the archive (its sending must have started).

    Example: mailer archive add uutiskirje-2018-11
    """
    _choose(ctx, name, True)


@app.command("remove")
def remove(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The campaign's name."),
) -> None:
    """Withdraw one issue from the archive (its pages and feed entries answer 404).

    Example: mailer archive remove uutiskirje-2018-11
    """
    _choose(ctx, name, False)


def _choose(ctx: typer.Context, name: str, public: bool) -> None:
    from mailer.sending.archive import set_public

    config = get_config(ctx)
    with open_store(config) as store:
        report = set_public(store, name, public)
    where = f"{config.web.base_url}/archive/{report.name}"
    if public:
        err(f"{report.name} is {'now' if report.changed else 'already'} public: {where}")
    else:
        err(f"{report.name} is {'withdrawn' if report.changed else 'already not public'}.")
