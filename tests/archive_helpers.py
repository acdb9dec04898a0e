"""Helpers for the archive and picture tests: real photos, an archived campaign, its send."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from tests.newsletter_helpers import copy_campaign

# Where the test photo was "taken": a phone writes this into EXIF; nothing published may.
GPS = {1: "N", 2: (66.0, 30.0, 0.0), 3: "E", 4: (25.0, 43.0, 0.0)}


def phone_photo(width: int = 4000, height: int = 3000, orientation: int = 6) -> bytes:
    """A JPEG as a phone writes it: stored sideways with an EXIF orientation, and GPS data.

    Its stored top-left quarter is blue, the rest red with noise; turned upright (orientation
    6: rotate 90° clockwise) the blue quarter is at the top right.
    """
    noise = Image.effect_noise((width, height), 30).convert("RGB")
    red = Image.new("RGB", (width, height), (190, 40, 40))
    picture = Image.blend(red, noise, 0.25)
    picture.paste((20, 40, 210), (0, 0, width // 2, height // 2))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = GPS
    out = io.BytesIO()
    picture.save(out, "JPEG", exif=exif.tobytes(), quality=90)
    return out.getvalue()


def archived_campaign(workspace_path: Path, *, photo: bytes | None = None) -> Path:
    """The fixture campaign with `archive = true` and a photo file beside its first item."""
    campaign = copy_campaign(workspace_path)
    (campaign.parent / "news" / "kuva.jpg").write_bytes(photo or phone_photo())
    item = campaign.parent / "news" / "strategia.fi.md"
    text = item.read_text(encoding="utf-8")
    old = 'image = "https://uutiset.arcticsmartness.eu/kuvat/klusterit-2018.jpg"'
    assert old in text
    item.write_text(text.replace(old, 'image = "kuva.jpg"'), encoding="utf-8")
    campaign.write_text(campaign.read_text(encoding="utf-8") + "archive = true\n", "utf-8")
    return campaign
