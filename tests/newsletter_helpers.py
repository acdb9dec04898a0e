"""Helpers for the newsletter tests: the fixture campaign copied into a workspace."""

from __future__ import annotations

import shutil
from pathlib import Path

DATA = Path(__file__).parent / "data" / "newsletter"
UNSUB = "https://uutiset.arcticsmartness.eu/u/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def copy_campaign(workspace_path: Path) -> Path:
    """Copy tests/data/newsletter into the workspace; return the campaign file's path."""
    target = workspace_path / "campaigns"
    shutil.copytree(DATA, target)
    return target / "campaign.toml"


def write_item(folder: Path, name: str, front: str, body: str = "Body text.\n") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"+++\n{front.strip()}\n+++\n{body}", encoding="utf-8")
    return path


def write_campaign(folder: Path, text: str, name: str = "c.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path
