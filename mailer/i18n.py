"""Texts that recipients see, in fi, en, sv and se (Northern Sami), from one catalogue.

The catalogue is the union of `mailer/locales/*.toml`; each file has one table per language
(`[fi]`, `[en]`, `[sv]`, `[se]`) with the same keys. A test checks that every key exists in
every language.
"""

from __future__ import annotations

import sys
from datetime import date
from functools import cache
from importlib import resources

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LANGUAGES = ("fi", "en", "sv", "se")
_BABEL_LOCALES = {"fi": "fi_FI", "en": "en_GB", "sv": "sv_SE", "se": "se_NO"}


@cache
def catalogue() -> dict[str, dict[str, str]]:
    """Return {language: {key: text}} merged from every locale file."""
    merged: dict[str, dict[str, str]] = {lang: {} for lang in LANGUAGES}
    folder = resources.files("mailer") / "locales"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        data = tomllib.loads(entry.read_text(encoding="utf-8"))
        for lang, table in data.items():
            if lang not in merged:
                raise ValueError(f"{entry.name}: unknown language [{lang}]")
            for key, text in table.items():
                if key in merged[lang]:
                    raise ValueError(f"{entry.name}: key {lang}.{key} defined twice")
                merged[lang][key] = text
    return merged


def text(lang: str, key: str, **values: object) -> str:
    """Return the text `key` in `lang` (English where the language is unknown)."""
    table = catalogue().get(lang) or catalogue()["en"]
    template = table[key]
    return template.format(**values) if values else template


def format_date(day: date, lang: str) -> str:
    """Format a date the way readers of `lang` write it (e.g. 6.11.2018, 6 November 2018)."""
    from babel.dates import format_date as babel_format_date

    return babel_format_date(day, format="long", locale=_BABEL_LOCALES.get(lang, "en_GB"))
