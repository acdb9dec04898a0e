"""`mailer campaign …`."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Create, list, show and cancel campaigns (newsletter issues).", no_args_is_help=True
)
