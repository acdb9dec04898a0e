"""`mailer lists …`."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Lists of clusters, municipalities and companies (KIND:SLUG).", no_args_is_help=True
)
