"""Top-level command: report (one self-contained HTML file about a campaign)."""

from __future__ import annotations

from pathlib import Path

import typer

from mailer.cli._common import err, get_config, open_store

app = typer.Typer()


@app.command()
def report(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The campaign's name."),
    out: Path = typer.Option(
        None, "--out", "-o", metavar="FILE", help="The HTML file to write (default: NAME.html)."
    ),
    open_: bool = typer.Option(False, "--open", help="Open the report in the default browser."),
    lang: str = typer.Option(
        None, "--lang", metavar="L", help="fi or en (default: defaults.language, else en)."
    ),
) -> None:
    """Write a campaign's report: audience, deliveries, sending over time, bounces,
    unsubscribes, clicks per link and a comparison with earlier campaigns, as charts.

    One HTML file with everything inside (no script, nothing fetched from anywhere): mail
    it, print it or open it on a phone. Prints the file's path.

    Example: mailer report uutiskirje-2018-11 --out raportti.html --open
    """
    from mailer.engagement.report import report_language, write_report
    from mailer.timeutil import now_utc

    config = get_config(ctx)
    language = report_language(lang, config.defaults.language)
    target = out if out is not None else Path(f"{name}.html")
    with open_store(config) as store:
        written = write_report(store, name, target, language=language, now=now_utc())
    typer.echo(str(target.absolute()))
    if written.stats.clicks is None:
        err("Clicks were not counted for this campaign (tracking.clicks was off when it was sent).")
    if open_:
        import webbrowser

        webbrowser.open(target.absolute().as_uri())
