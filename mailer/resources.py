"""Where the bundled templates and demo contacts live (wheel or source tree)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the bundled folder `name` (`templates` or `contacts`)."""
    # In a wheel, hatchling's force-include puts them under mailer/_data; in a source
    # checkout or an editable install they stand at the top of the repository.
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"bundled folder {name!r} is missing from the installation")
