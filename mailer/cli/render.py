"""Top-level command: render (preview a campaign as files)."""

from __future__ import annotations

from pathlib import Path

import typer

from mailer.cli._common import changed_line, err, get_config, open_store

app = typer.Typer()


@app.command()
def render(
    ctx: typer.Context,
    campaign_file: Path = typer.Argument(
        ...,
        metavar="CAMPAIGN.toml|NAME",
        help="A campaign file (as it is now), or a created campaign's name (what it will send).",
    ),
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Folder for the files."),
    open_: bool = typer.Option(
        False, "--open", help="Open the HTML of the first language in the default browser."
    ),
) -> None:
    """Render a campaign into DIR: index.LANG.html, index.LANG.txt, sample.LANG.eml.

    Given a file, it shows the file as it is now; given the name of a created campaign, it
    shows what `send` will send: the copy stored by `campaign create` (and names the files
    edited since).

    Example: mailer render campaigns/2018-11.toml --out preview/

    Example: mailer render uutiskirje-2018-11 --out preview/
    """
    from mailer.newsletter.preview import store_sample_finder, write_previews
    from mailer.newsletter.spec import load_campaign
    from mailer.timeutil import now_utc

    config = get_config(ctx)
    stored_name = None if campaign_file.is_file() else str(campaign_file)
    spec = None if stored_name else load_campaign(campaign_file, config)
    with open_store(config) as store:
        if stored_name is not None:
            from mailer.sending.campaigns import stored_spec

            spec, changed = stored_spec(store, stored_name)
            if changed:
                err(changed_line(stored_name, changed))
        assert spec is not None
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
