"""Create a workspace: mailer.toml with a fresh secret, the database, starter templates."""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mailer.config import load_config
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


# The mailer.toml that `mailer init` writes (PRODUCT.md: Configuration).
CONFIG_TEMPLATE = """\
# mailer configuration. Secrets come from the environment: see secret_env and password_env.

[sender]
name = "Arctic Smartness"
address = "uutiset@arcticsmartness.eu"
reply_to = "arcticsmartness@lapinliitto.fi"
postal_address = "Lapin liitto, Hallituskatu 20 B, 96100 Rovaniemi"
list_id = "arcticsmartness.eu"

[smtp]
host = "localhost"
port = 587
security = "starttls"           # starttls | tls | none (none: only to localhost)
username = ""
password_env = "MAILER_SMTP_PASSWORD"
auth = "password"               # password | xoauth2 (Microsoft 365, Google; see docs/deploy.md)
# token_command = ["/usr/local/bin/m365-token"]   # with xoauth2, in place of password_env:
#                                 # run without a shell per connection; prints an access token
timeout = 30                    # seconds, for each connection and for the token command
connections = 4
rate = 0                        # messages per second over all connections; 0 = no limit
per_minute = 0                  # relay quotas, counted in the database; 0 = none
per_day = 0
max_attempts = 8
pause_after = 25

[web]
base_url = "https://uutiset.arcticsmartness.eu"
secret_env = "MAILER_SECRET"    # the environment variable wins over `secret`
secret = "{secret}"
previous_secrets = []
host = "127.0.0.1"
port = 8080
trusted_proxies = ["127.0.0.1", "::1"]   # whose X-Forwarded-For is believed (signup limits)

[database]
path = "mailer.db"

[defaults]
language = "fi"
timezone = "Europe/Helsinki"    # every time shown to a person
max_late_hours = 24
csv_delimiter = ";"             # CSV the tool writes (Finnish and Swedish Excel expect ;)

[archive]
default = false                 # a campaign is public only with `archive = true` (or this)

[tracking]
clicks = false                  # count clicks per link through {base_url}/l/... (no open pixel)
keep_days = 90                  # after this only the per-link counts remain
ignore_first_seconds = 30       # clicks this soon after sending are mail scanners

# The signup form (/subscribe) and the preference page (/p): remove the # signs to turn
# them on. The consent texts people agree to are in consent.toml; when you change a text,
# change consent_version too (`mailer serve` refuses to start otherwise).
# [signup]
# lists = ["company:*"]           # what a visitor may choose: KIND:* or KIND:SLUG
# consent_version = "2026-12"     # recorded with each confirmation
# confirm_hours = 72              # a confirmation link expires after this
# per_address_per_day = 3         # confirmation and preference mails to one address
# per_client_per_hour = 20        # form posts from one client address
# record_client_address = false   # keep the client address with a signup's consent
"""
