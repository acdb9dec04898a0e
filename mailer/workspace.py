"""Create a workspace: mailer.toml with a fresh secret, the database, starter templates."""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from mailer.config import CONFIG_TEMPLATE, load_config
from mailer.errors import InputError
from mailer.resources import data_dir
from mailer.store import Store


@dataclass
class InitReport:
    config_path: Path
    database_path: Path
    templates_copied: list[Path] = field(default_factory=list)


def init_workspace(
    directory: Path, *, force: bool = False, environ: dict[str, str] | None = None
) -> InitReport:
    """Write DIR/mailer.toml, create the database and copy the starter templates."""
    directory = directory.absolute()
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory} exists and is not a folder")
    config_path = directory / "mailer.toml"
    if config_path.exists() and not force:
        raise InputError(f"{config_path} already exists (use --force to overwrite it)")
    directory.mkdir(parents=True, exist_ok=True)
    text = CONFIG_TEMPLATE.replace("{secret}", secrets.token_urlsafe(32))
    tmp = config_path.with_suffix(".toml.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o600)  # it holds the secret
    tmp.replace(config_path)
    config = load_config(config_path, environ or {})
    with Store(config.database_path):
        pass
    report = InitReport(config_path, config.database_path)
    target = config.templates_dir
    for source in sorted(data_dir("templates").rglob("*")):
        if source.is_dir() or source.name.startswith("."):
            continue
        dest = target / source.relative_to(data_dir("templates"))
        if dest.exists() and not force:
            continue  # staff may have edited it
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        report.templates_copied.append(dest)
    return report
