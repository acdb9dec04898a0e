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


def template_file(config: Config, name: str) -> str:
    """The file `name` is read from now (the workspace's, else the bundled one), for errors."""
    for folder in template_dirs(config):
        if (folder / name).is_file():
            return str(folder / name)
    return name


def _environment(config: Config, stored: dict[str, str] | None = None) -> jinja2.Environment:
    """The template environment; with `stored` (name -> source, the copy `campaign create`
    kept) it loads those instead of the files as they are now."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    loader: jinja2.BaseLoader = (
        # The name stands in for the file name, so errors still say `newsletter.html:12`.
        jinja2.FunctionLoader(
            lambda name: (stored[name], name, lambda: True) if name in stored else None
        )
        if stored is not None
        else jinja2.FileSystemLoader([str(d) for d in template_dirs(config)])
    )
    # Staff edit these files: the sandbox keeps a template away from Python objects, the
    # environment and files (`{{ cycler.__init__.__globals__ }}` is a template error).
    env = SandboxedEnvironment(
        loader=loader,
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


def load_templates(
    config: Config, name: str, stored: dict[str, str] | None = None
) -> tuple[jinja2.Template, jinja2.Template]:
    """Load and compile `name.html` and `name.txt` (from `stored` sources when given);
    errors name file:line (exit 2)."""
    env = _environment(config, stored)
    return _get(env, f"{name}.html", config), _get(env, f"{name}.txt", config)


def template_sources(config: Config, name: str) -> tuple[dict[str, str], list[Path]]:
    """The sources of `name.html`, `name.txt` and every template they include, import or
    extend (name -> source), and the files they were read from: what `campaign create`
    keeps so that the send uses the templates as they were when staff previewed them."""
    import jinja2
    from jinja2 import meta

    env = _environment(config)
    sources: dict[str, str] = {}
    files: list[Path] = []
    todo = [f"{name}.html", f"{name}.txt"]
    while todo:
        wanted = todo.pop(0)
        if wanted in sources:
            continue
        assert env.loader is not None
        try:
            source, filename, _ = env.loader.get_source(env, wanted)
            referenced = meta.find_referenced_templates(env.parse(source))
        except jinja2.TemplateNotFound:
            _get(env, wanted, config)  # the same error as a render would give
            raise
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"template syntax: {exc.message}", where=f"{filename}:{exc.lineno}"
            ) from None
        sources[wanted] = source
        if filename:
            files.append(Path(filename))
        todo += [ref for ref in referenced if ref]  # a computed name cannot be followed
    return sources, files


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
