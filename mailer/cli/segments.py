"""`mailer segments …`."""

from __future__ import annotations

import typer

app = typer.Typer(help="Count and save segment expressions.", no_args_is_help=True)
