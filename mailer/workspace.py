"""Create a workspace: mailer.toml with a fresh secret, the database, starter templates."""

from __future__ import annotations

import json
import secrets
import shutil
import sys
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
    secret, previous = _kept_secrets(config_path)
    text = CONFIG_TEMPLATE.replace('"{secret}"', json.dumps(secret or secrets.token_urlsafe(32)))
    text = text.replace("previous_secrets = []", f"previous_secrets = {json.dumps(previous)}")
    tmp = config_path.with_suffix(".toml.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o600)  # it holds the secret
    tmp.replace(config_path)
    config = load_config(config_path, environ or {})
    with Store(config.database_path):
        pass
    report = InitReport(config_path, config.database_path)
    _write_consent_texts(directory / "consent.toml")
    target = config.templates_dir
    for source in sorted(data_dir("templates").rglob("*")):
        if source.is_dir() or source.name.startswith("."):
            continue
        dest = target / source.relative_to(data_dir("templates"))
        if dest.exists():
            continue  # staff may have edited it; --force is about mailer.toml only
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        report.templates_copied.append(dest)
    return report


def _write_consent_texts(path: Path) -> None:
    """The signup form's consent texts, per language; an existing file is the staff's own."""
    from mailer.audience.signups import default_consent_file

    if not path.exists():
        path.write_text(default_consent_file(), encoding="utf-8")


def _kept_secrets(config_path: Path) -> tuple[str, list[str]]:
    """The secret and previous secrets of an existing mailer.toml, which --force keeps.

    Sent unsubscribe links and the hashes of forgotten addresses depend on them.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        web = tomllib.loads(config_path.read_text(encoding="utf-8")).get("web", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return "", []
    secret = web.get("secret") if isinstance(web, dict) else None
    previous = web.get("previous_secrets") if isinstance(web, dict) else None
    kept = [p for p in previous if isinstance(p, str) and p] if isinstance(previous, list) else []
    return (secret if isinstance(secret, str) else ""), kept
