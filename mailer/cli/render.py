"""Top-level command: render (preview a campaign as files)."""

from __future__ import annotations

from pathlib import Path

import typer

from mailer.cli._common import err, get_config, open_store

app = typer.Typer()


@app.command()
def render(
    ctx: typer.Context,
    campaign_file: Path = typer.Argument(..., metavar="CAMPAIGN.toml", help="Campaign file."),
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Folder for the files."),
    open_: bool = typer.Option(
        False, "--open", help="Open the HTML of the first language in the default browser."
    ),
) -> None:
    """Render a campaign into DIR: index.LANG.html, index.LANG.txt, sample.LANG.eml.

    Example: mailer render campaigns/2018-11.toml --out preview/
    """
    from mailer.newsletter.preview import store_sample_finder, write_previews
    from mailer.newsletter.spec import load_campaign
    from mailer.timeutil import now_utc

    config = get_config(ctx)
    spec = load_campaign(campaign_file, config)
    with open_store(config) as store:
        report = write_previews(
            config, spec, out, now=now_utc(), find_sample=store_sample_finder(store.conn)
        )
    for path in report.files:
        typer.echo(str(path))
    for lang, email in report.samples.items():
        err(f"{lang}: sample message for {email}")
    for warning in report.warnings:
        err(f"Warning: {warning}")
    if open_ and report.files:
        import webbrowser

        webbrowser.open(report.files[0].absolute().as_uri())
