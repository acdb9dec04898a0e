"""`mailer contacts …`."""

from __future__ import annotations

import typer

app = typer.Typer(help="Import, list, show, export and unsubscribe contacts.", no_args_is_help=True)
