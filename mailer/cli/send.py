"""Top-level commands: see the functions below."""

from __future__ import annotations

import typer

app = typer.Typer()
