"""Previews for `mailer render`: the filled HTML and text and a sample message per language."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailer.errors import InputError
from mailer.files import write_atomic
from mailer.newsletter.messages import MessageBuilder, Recipient
from mailer.newsletter.render import render_campaign
from mailer.tokens import make_preferences_token, make_token, preferences_url, unsubscribe_url

if TYPE_CHECKING:
    from mailer.config import Config
    from mailer.newsletter.spec import CampaignSpec

# A made-up reader per language for the sample message when the database has none.
SAMPLE_READERS = {
    "fi": ("Maija Meikäläinen", "maija.meikalainen@example.fi"),
    "en": ("Alex Example", "alex@example.com"),
    "sv": ("Anna Exempel", "anna.exempel@example.se"),
    "se": ("Máret Ovdamearka", "maret@example.no"),
}


def test_preferences_url(config: Config) -> str:
    """A sample's preference link: it names contact 0, so its page changes nothing."""
    if config.signup is None:
        return ""
    return preferences_url(config.web.base_url, make_preferences_token(config.secret(), 0))


def store_sample_finder(conn: Any) -> Any:
    """Return a `find_sample(lang)` for write_previews that picks a real subscribed contact."""
    from mailer.store.samples import sample_contact  # the store only when asked for

    def find_sample(lang: str) -> tuple[int, str, str, str, str] | None:
        row = sample_contact(conn, lang)
        if row is None:
            return None
        return row["id"], row["email"], row["email_ascii"], row["name"], row["first_name"]

    return find_sample


# Gmail cuts messages whose HTML exceeds about 102 KB behind a "[Message clipped]" link,
# and the footer with the unsubscribe link is the part that disappears.
GMAIL_CLIP_BYTES = 102 * 1024


@dataclass(frozen=True)
class PreviewReport:
    files: list[Path]
    samples: dict[str, str]  # language -> the sample recipient's address
    warnings: list[str]


def make_out_dir(out_dir: Path) -> None:
    """Create the --out folder (and its parents); InputError when it cannot be a folder."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"--out {out_dir}: a part of the path is a file, not a folder") from None
    except OSError as exc:
        raise InputError(f"--out {out_dir}: cannot create the folder: {exc.strerror}") from None


def write_previews(
    config: Config,
    spec: CampaignSpec,
    out_dir: Path,
    *,
    now: datetime,
    find_sample: Callable[[str], tuple[int, str, str, str, str] | None] | None = None,
) -> PreviewReport:
    """Write index.LANG.html, index.LANG.txt and sample.LANG.eml per language into out_dir.

    `find_sample(lang)` returns (contact_id, email, wire_email, name, first_name) or None;
    without one
    (or when it finds nobody) a made-up reader is used. The unsubscribe link carries a test
    token (campaign 0, contact 0) that names nobody.
    """
    make_out_dir(out_dir)
    variants = render_campaign(config, spec)
    # The HTML files show the pictures from beside them (m/FILE), before anything is
    # published; the sample messages link them where `mailer serve` will publish them.
    local = render_campaign(config, spec, image_base="m") if spec.images else variants
    pictures = _write_pictures(spec, out_dir)
    files: list[Path] = []
    secret = config.secret()
    samples: dict[str, str] = {}
    warnings: list[str] = []
    for lang, variant in variants.items():
        found = find_sample(lang) if find_sample else None
        if found:
            _, email, wire, name, first_name = found
        else:
            name, email = SAMPLE_READERS[lang]
            wire, first_name = email, name.split()[0]
        # A test token (campaign 0, contact 0): its page says it is a test, it names nobody.
        url = unsubscribe_url(config.web.base_url, make_token(secret, 0, 0))
        prefs = test_preferences_url(config)
        html_path = out_dir / f"index.{lang}.html"
        text_path = out_dir / f"index.{lang}.txt"
        eml_path = out_dir / f"sample.{lang}.eml"
        html = local[lang].fill("html", name, email, url, prefs, first_name=first_name)
        if len(html.encode("utf-8")) > GMAIL_CLIP_BYTES:
            size = len(html.encode("utf-8")) // 1024
            warnings.append(
                f"{lang}: the HTML is {size} KB; Gmail clips messages over 102 KB,"
                " hiding the footer and its unsubscribe link"
            )
        # Through a rename: a symlink placed at index.fi.html is replaced, not followed.
        write_atomic(html_path, html.encode("utf-8"))
        text = variant.fill("text", name, email, url, prefs, first_name=first_name)
        write_atomic(text_path, text.encode("utf-8"))
        recipient = Recipient(email, name, wire, first_name)
        message = MessageBuilder(config, variant).build(
            recipient, url, now=now, preferences_url=prefs
        )
        write_atomic(eml_path, message.data)
        files += [html_path, text_path, eml_path]
        samples[lang] = email
    return PreviewReport(files + pictures, samples, warnings)


def _write_pictures(spec: CampaignSpec, out_dir: Path) -> list[Path]:
    """Write the campaign's processed pictures into out_dir/m/ (what will be published)."""
    written = []
    if spec.images:
        (out_dir / "m").mkdir(exist_ok=True)
    for name, picture in sorted(spec.images.items()):
        path = out_dir / "m" / name
        path.write_bytes(picture.data)
        written.append(path)
    return written
