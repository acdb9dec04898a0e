"""A contact's language as people write it in a sheet or on the command line."""

from __future__ import annotations

from mailer.config import LANGUAGES

_ALIASES = {
    "suomi": "fi",
    "finnish": "fi",
    "fin": "fi",
    "english": "en",
    "englanti": "en",
    "eng": "en",
    "svenska": "sv",
    "ruotsi": "sv",
    "swedish": "sv",
    "swe": "sv",
    "sámi": "se",
    "sami": "se",
    "saame": "se",
    "davvisámegiella": "se",
    "sme": "se",
}
# The cells a sheet holds most often, looked up before anything is stripped or folded.
EXACT_CELLS = {
    **{lang: lang for lang in LANGUAGES},
    **{lang.upper(): lang for lang in LANGUAGES},
}


def parse_language(text: str) -> str | None:
    """Return fi/en/sv/se for `text` ('' → None); raise ValueError when unknown."""
    value = text.strip().lower()
    if not value:
        return None
    if value in LANGUAGES:
        return value
    if value in _ALIASES:
        return _ALIASES[value]
    raise ValueError(f"language {text.strip()!r} is not one of {', '.join(LANGUAGES)}")
