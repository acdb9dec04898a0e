"""Help is part of the product: every command has help with an example, every option help."""

from __future__ import annotations

import typer

from mailer.cli import app


def _walk(group, path=()):
    for name, command in group.commands.items():
        yield (*path, name), command
        if hasattr(command, "commands"):
            yield from _walk(command, (*path, name))


def test_every_command_has_help_and_every_option_a_help_text():
    root = typer.main.get_command(app)
    missing = []
    for path, command in _walk(root):
        if not (command.help or "").strip():
            missing.append(" ".join(path) + ": no help")
        if not hasattr(command, "commands") and "mailer " not in (command.help or ""):
            missing.append(" ".join(path) + ": no example")
        for param in command.params:
            if param.param_type_name == "option" and not getattr(param, "help", None):
                missing.append(f"{' '.join(path)} {param.opts[0]}: no help")
    assert not missing, missing


def test_help_runs_for_every_command(workspace):
    root = typer.main.get_command(app)
    for path, _command in _walk(root):
        res = workspace.cli(*path, "--help")
        assert res.exit_code == 0, (path, res.stderr)
        assert "Usage:" in res.stdout
