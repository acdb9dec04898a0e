"""What every command shares: the config and store it opens, and how it prints."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from mailer.config import Config
    from mailer.store import Store

FORMATS = ("table", "csv", "json")

# The database the running command opened, so that the CLI root can name it in an error.
opened_database: ContextVar[Path | None] = ContextVar("opened_database", default=None)
# defaults.csv_delimiter of the loaded config, for every `--format csv` (`;` before one loads).
csv_delimiter: ContextVar[str] = ContextVar("csv_delimiter", default=";")


@dataclass
class State:
    """The global options, kept on the Typer context."""

    config_path: str | None = None
    debug: bool = False
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def get_config(ctx: typer.Context) -> Config:
    """Find and load the configuration named by --config, $MAILER_CONFIG or ./mailer.toml."""
    from mailer.config import find_config_path, load_config

    st = state(ctx)
    config = load_config(find_config_path(st.config_path, st.environ), st.environ)
    csv_delimiter.set(config.defaults.csv_delimiter)
    return config


def open_store(config: Config) -> Store:
    """Open (and migrate) the database the configuration names; never start a new one.

    Only `init` and `demo` create a database: a lost or mistyped path must not silently
    begin an empty one that forgets who unsubscribed.
    """
    from mailer.errors import ConfigError, InputError
    from mailer.store import Store

    path = config.database_path
    if not path.parent.is_dir():
        raise ConfigError(f"folder of database.path does not exist: {path.parent}")
    if not path.exists():
        raise InputError(
            "no database here (check database.path; only `mailer init` creates one)",
            where=str(path),
        )
    if path.is_file() and path.stat().st_size == 0:
        raise InputError("the database file is empty (restore it from a backup)", where=str(path))
    opened_database.set(path)
    return Store(path)


def is_terminal(stream: IO[str] | None = None) -> bool:
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        from mailer.errors import InputError

        raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return fmt


def print_rows(
    rows: Iterable[dict[str, Any]],
    columns: Sequence[str],
    fmt: str = "table",
    out: IO[str] | None = None,
) -> None:
    """Print rows as an aligned table, CSV or a JSON array (data goes to stdout)."""
    out = out or sys.stdout
    if fmt == "json":
        out.write(json.dumps(list(rows), ensure_ascii=False, indent=2) + "\n")
        return
    if fmt == "csv":
        # UTF-8 with BOM and the configured delimiter: `> file.csv` opens in Excel as it is.
        from mailer.files import write_csv

        cells = ([_cell(row.get(c)) for c in columns] for row in rows)
        write_csv(out, columns, cells, csv_delimiter.get(), lineterminator="\n")
        return
    table = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in table)]) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for r in table:
        out.write("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")


def print_json(value: Any, out: IO[str] | None = None) -> None:
    (out or sys.stdout).write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def err(message: str) -> None:
    """Print a progress or status line to stderr."""
    typer.echo(message, err=True)


def problem_line(path: str | os.PathLike[str], problem: Any) -> str:
    """One import problem as `<file> row N: outcome: email: reason` (for stderr)."""
    email = f" {problem.email}" if getattr(problem, "email", "") else ""
    name = os.path.basename(os.fspath(path))
    return f"{name} row {problem.row}: {problem.outcome}:{email}: {problem.reason}"


def check_writable(path: str | os.PathLike[str], what: str = "file") -> None:
    """Raise FileInputError now if `path` cannot be written later (the target is not touched:
    it is written through a temporary file and a rename, see `mailer.files.write_atomic`)."""
    from mailer.errors import FileInputError

    target = os.fspath(path)
    if os.path.isdir(target):
        raise FileInputError(f"the {what} is a folder, not a file", where=target)
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise FileInputError(f"folder of the {what} does not exist: {folder}", where=target)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FileInputError(f"cannot write the {what}: permission denied", where=target)


def confirm_or_refuse(question: str, yes: bool, what: str) -> bool:
    """Ask before something that cannot be undone; `--yes` answers for scripts.

    Without a terminal and without --yes: InputError (exit 2), never a silent yes.
    Returns False when the person answers no.
    """
    if yes:
        return True
    if not (is_terminal(sys.stdin) and is_terminal(sys.stderr)):
        from mailer.errors import InputError

        raise InputError(f"refusing to {what} without a terminal to confirm; pass --yes")
    return bool(typer.confirm(question, default=False, err=True))


YES_HELP = "Do not ask (needed without a terminal, e.g. in scripts)."


def changed_line(name: str, files: list[str]) -> str:
    """One line saying which files changed since `campaign create` (and what to do)."""
    return (
        f"Note: changed since `mailer campaign create`: {', '.join(files)}; campaign {name}"
        " still holds the version stored then (run `mailer campaign create` again to use"
        " the edits)"
    )
