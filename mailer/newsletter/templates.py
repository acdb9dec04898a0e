"""Newsletter templates: the workspace's own first, then the bundled ones; Jinja2 set up once.

Templates are HTML and text pairs (`NAME.html`, `NAME.txt`). Errors name the template's
file and line (TemplateError, exit 2).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailer.errors import TemplateError
from mailer.newsletter.news import wrap
from mailer.resources import data_dir

if TYPE_CHECKING:
    import jinja2

    from mailer.config import Config


def template_dirs(config: Config) -> list[Path]:
    """Where templates are looked up: the workspace's first, then the bundled ones."""
    dirs = []
    if config.templates_dir.is_dir():
        dirs.append(config.templates_dir)
    with contextlib.suppress(FileNotFoundError):  # a broken installation
        dirs.append(data_dir("templates"))
    return dirs


def _environment(config: Config) -> jinja2.Environment:
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    # Staff edit these files: the sandbox keeps a template away from Python objects, the
    # environment and files (`{{ cycler.__init__.__globals__ }}` is a template error).
    env = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader([str(d) for d in template_dirs(config)]),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "htm", "xml"), default_for_string=True, default=False
        ),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["wrap"] = _wrap_filter
    return env


def _wrap_filter(value: Any, width: int = 76, indent: str = "") -> str:
    lines = []
    for paragraph in str(value).split("\n"):
        words = " ".join(paragraph.split())
        wrapped = wrap(words, width - len(indent)) if words else ""
        lines.append("\n".join(indent + ln if ln else "" for ln in wrapped.split("\n")))
    return "\n".join(lines)


def load_templates(config: Config, name: str) -> tuple[jinja2.Template, jinja2.Template]:
    """Load and compile `name.html` and `name.txt`; errors name file:line (exit 2)."""
    env = _environment(config)
    return _get(env, f"{name}.html", config), _get(env, f"{name}.txt", config)


def _get(env: jinja2.Environment, filename: str, config: Config) -> jinja2.Template:
    import jinja2

    try:
        return env.get_template(filename)
    except jinja2.TemplateNotFound as exc:
        where = ", ".join(str(d) for d in template_dirs(config))
        missing = exc.name if exc.name != filename else filename
        raise TemplateError(f"template {missing} not found in {where}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template syntax: {exc.message}", where=f"{exc.filename or exc.name}:{exc.lineno}"
        ) from None
