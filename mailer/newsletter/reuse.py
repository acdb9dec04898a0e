"""A render kept from `campaign create` for the freeze, while nothing it read has changed.

`campaign create` renders every language (Jinja2, Markdown, premailer) to check the campaign;
the freeze would do the same work again, and it is most of `mailer send`'s start-up (the
imports alone are ~0.2 s). So the checked render is stored beside the definition with a
fingerprint of its inputs: the definition (items, subject, template name), every file in the
template folders, the locale texts, the settings the templates show and mailer's version.
The freeze uses the stored render only when the fingerprint is the same then; an edited
template or a changed postal address makes it render again.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import mailer
from mailer.newsletter.templates import template_dirs

if TYPE_CHECKING:
    from mailer.config import Config


def render_key(config: Config, definition: str) -> str:
    """A fingerprint of everything a render of `definition` reads."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    add("version", mailer.__version__.encode())
    add("definition", definition.encode())
    sender = config.sender
    settings = [sender.name, sender.address, sender.reply_to, sender.postal_address]
    add("settings", json.dumps([*settings, sender.list_id, config.web.base_url]).encode())
    for folder in template_dirs(config):
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            add(f"template:{path.relative_to(folder)}", path.read_bytes())
    locales = resources.files("mailer") / "locales"
    for entry in sorted(locales.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            add(f"locale:{entry.name}", entry.read_bytes())
    return digest.hexdigest()


def pack(config: Config, definition: str, variants: dict[str, str]) -> str:
    """The stored form: the fingerprint and the variants (language -> variant JSON)."""
    return json.dumps({"key": render_key(config, definition), "variants": variants})


def unpack(config: Config, definition: str, stored: str | None) -> dict[str, str] | None:
    """The stored variants when their fingerprint still matches, else None."""
    if not stored:
        return None
    try:
        data = json.loads(stored)
        key, variants = data["key"], data["variants"]
    except (ValueError, KeyError, TypeError):
        return None
    if key != render_key(config, definition) or not isinstance(variants, dict):
        return None
    return variants
