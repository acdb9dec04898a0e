"""The `mailer` command line: one Typer app composed of one module per command group.

Command modules import only typer and the standard library at the top; the core is
imported inside each command, so `mailer --help` stays fast.
"""

from __future__ import annotations

import sqlite3
import sys
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from mailer.cli import (
    archive,
    bounces,
    campaign,
    contacts,
    lists,
    render,
    report,
    segments,
    send,
    serve,
    signups,
    workspace,
)
from mailer.cli._common import State, csv_delimiter, get_config, opened_database, state

if TYPE_CHECKING:
    from mailer.errors import MailerError


class _MailerGroup(TyperGroup):
    """Translate our errors once: `Error: …` on one line to stderr, the error's exit code."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        return super().parse_args(ctx, globals_first(args))

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        from mailer.errors import MailerError

        opened = opened_database.set(None)
        delimiter = csv_delimiter.set(";")
        try:
            return super().invoke(ctx)
        except MailerError as exc:
            if state(ctx).debug:
                raise
            typer.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except sqlite3.DatabaseError as exc:
            # Locked, damaged, I/O error, disk full: the work failed (exit 1), one line.
            # IntegrityError and ProgrammingError are our bugs: they keep their traceback.
            if state(ctx).debug or isinstance(
                exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError)
            ):
                raise
            error = _database_error(exc, ctx)
            typer.echo(f"Error: {error}", err=True)
            ctx.exit(error.exit_code)
        finally:
            opened_database.reset(opened)
            csv_delimiter.reset(delimiter)


def globals_first(args: list[str]) -> list[str]:
    """Move the global options written after the command name to the front, so that
    `mailer stats X --config FILE` means `mailer --config FILE stats X`."""
    front: list[str] = []
    rest: list[str] = []
    seen_command = False
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest += args[index:]
            break
        if seen_command and arg in ("--config", "-c") and index + 1 < len(args):
            front += args[index : index + 2]
            index += 2
            continue
        if seen_command and (arg.startswith("--config=") or arg == "--debug"):
            front.append(arg)
        else:
            seen_command = seen_command or not arg.startswith("-")
            rest.append(arg)
        index += 1
    return front + rest


def _database_error(exc: sqlite3.Error, ctx: typer.Context) -> MailerError:
    """The error as one line naming the database the command opened (else the configured one)."""
    from mailer.errors import MailerError
    from mailer.store import database_error

    path = opened_database.get()
    if path is None:
        try:
            path = get_config(ctx).database_path
        except MailerError:
            return database_error(exc, "the database")
    return database_error(exc, path)


app = typer.Typer(
    cls=_MailerGroup,
    name="mailer",
    help="Newsletters and contact mailing for the Arctic Smartness network.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # tracebacks with locals could show secrets
    add_completion=True,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    ctx: typer.Context,
    config: str = typer.Option(
        None,
        "--config",
        "-c",
        metavar="PATH",
        help="Configuration file (default: $MAILER_CONFIG, else ./mailer.toml).",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
) -> None:
    """Import contacts, keep lists, write news items and send them as newsletters."""
    st = state(ctx)
    if not isinstance(ctx.obj, State):
        ctx.obj = st
    st.config_path = config
    st.debug = debug


for module in (workspace, render, send, report, serve):
    app.registered_commands.extend(module.app.registered_commands)
app.add_typer(contacts.app, name="contacts")
app.add_typer(lists.app, name="lists")
app.add_typer(segments.app, name="segments")
app.add_typer(campaign.app, name="campaign")
app.add_typer(archive.app, name="archive")
app.add_typer(signups.app, name="signups")
app.add_typer(signups.form_app, name="signup")
app.add_typer(bounces.app, name="bounces")


def main(argv: list[str] | None = None) -> None:
    """Run the command line (the `mailer` console script)."""
    args = argv if argv is not None else sys.argv[1:]
    for number, arg in enumerate(args, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            # Bytes that are not UTF-8 arrive as lone surrogates, which no part can store.
            shown = arg.encode("utf-8", "backslashreplace").decode("ascii", "replace")
            sys.stderr.write(f"Error: argument {number} is not UTF-8 text: {shown}\n")
            raise SystemExit(2) from None
    app(args=args, prog_name="mailer")
