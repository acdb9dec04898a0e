"""Render a campaign once per language: Jinja2 -> premailer -> a prepared template.

The expensive work (Jinja2, Markdown, CSS inlining with premailer) happens once per campaign
and language. Its result, a `Variant`, holds the finished HTML and text in which only the
per-recipient fields are left as placeholders of the form `%%MAILER_NAME_<marker>%%`: a form
premailer keeps as it is, even inside `href` (it would URL-encode `{{ x }}` there). The
marker is random per render, so no news item can contain a placeholder by accident.
Per message, `Variant.pieces()` gives the text split around the placeholders once, and the
message builder fills in the recipient's values (HTML-escaped in the HTML part).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailer.errors import TemplateError
from mailer.i18n import format_date, text
from mailer.newsletter.variant import Variant
from mailer.newsletter.variant import placeholder as _placeholder

if TYPE_CHECKING:
    import jinja2

    from mailer.config import Config
    from mailer.newsletter.spec import CampaignSpec

# --- templates ---------------------------------------------------------------------------


def template_dirs(config: Config) -> list[Path]:
    """Where templates are looked up: the workspace's first, then the bundled ones."""
    from mailer.resources import data_dir

    dirs = []
    if config.templates_dir.is_dir():
        dirs.append(config.templates_dir)
    with contextlib.suppress(FileNotFoundError):  # a broken installation
        dirs.append(data_dir("templates"))
    return dirs


def _environment(config: Config) -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in template_dirs(config)]),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "htm", "xml"), default_for_string=True, default=False
        ),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["wrap"] = _wrap_filter
    return env


def _wrap_filter(value: Any, width: int = 76, indent: str = "") -> str:
    from mailer.newsletter.news import wrap

    lines = []
    for paragraph in str(value).split("\n"):
        words = " ".join(paragraph.split())
        wrapped = wrap(words, width - len(indent)) if words else ""
        lines.append("\n".join(indent + ln if ln else "" for ln in wrapped.split("\n")))
    return "\n".join(lines)


def load_templates(config: Config, name: str) -> tuple[jinja2.Template, jinja2.Template]:
    """Load and compile `name.html` and `name.txt`; errors name file:line (exit 2)."""
    env = _environment(config)
    return _get(env, f"{name}.html", config), _get(env, f"{name}.txt", config)


def _get(env: jinja2.Environment, filename: str, config: Config) -> jinja2.Template:
    import jinja2

    try:
        return env.get_template(filename)
    except jinja2.TemplateNotFound as exc:
        where = ", ".join(str(d) for d in template_dirs(config))
        missing = exc.name if exc.name != filename else filename
        raise TemplateError(f"template {missing} not found in {where}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template syntax: {exc.message}", where=f"{exc.filename or exc.name}:{exc.lineno}"
        ) from None


def _render(template: jinja2.Template, context: dict[str, Any]) -> str:
    import jinja2

    try:
        return template.render(context)
    except jinja2.TemplateSyntaxError as exc:  # an included partial
        raise TemplateError(
            f"template syntax: {exc.message}", where=f"{exc.filename or exc.name}:{exc.lineno}"
        ) from None
    except Exception as exc:
        # Jinja2 rewrites the traceback so template frames carry the template's file and line.
        where = template.filename or template.name or "template"
        tb = exc.__traceback__
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            if filename.endswith((".html", ".txt", ".htm")):
                where = f"{filename}:{tb.tb_lineno}"
            tb = tb.tb_next
        message = getattr(exc, "message", None) or str(exc)
        raise TemplateError(f"template failed: {message}", where=where) from None


# --- rendering ---------------------------------------------------------------------------


def render_campaign(config: Config, spec: CampaignSpec) -> dict[str, Variant]:
    """Render and CSS-inline the campaign once per language that has items."""
    html_template, text_template = load_templates(config, spec.template)
    variants: dict[str, Variant] = {}
    for lang in spec.languages:
        variants[lang] = render_variant(config, spec, lang, html_template, text_template)
    return variants


def render_variant(
    config: Config,
    spec: CampaignSpec,
    lang: str,
    html_template: jinja2.Template | None = None,
    text_template: jinja2.Template | None = None,
    *,
    marker: str | None = None,
) -> Variant:
    """Render one language of the campaign (Jinja2 + premailer) into a Variant."""
    if html_template is None or text_template is None:
        html_template, text_template = load_templates(config, spec.template)
    marker = marker or secrets.token_hex(6)
    context = build_context(config, spec, lang, marker)
    html = inline_css(_render(html_template, context))
    text_body = _render(text_template, context)
    return Variant(
        language=lang,
        campaign=spec.name,
        subject=spec.subject[lang],
        preheader=spec.preheader.get(lang, ""),
        html=html.replace("\r\n", "\n"),
        text=_clean_text(text_body),
        marker=marker,
    )


def build_context(config: Config, spec: CampaignSpec, lang: str, marker: str) -> dict[str, Any]:
    """The template context; recipient fields are placeholders filled in per message."""
    from markupsafe import Markup

    from mailer.newsletter.news import render_markdown

    intro_html, intro_text = render_markdown(spec.intro.get(lang, "")) if spec.intro else ("", "")
    items = [
        {
            "title": item.title,
            "date": format_date(item.date, lang),
            "date_iso": item.date.isoformat(),
            "summary": item.summary,
            "image": item.image,
            "image_alt": item.image_alt,
            "link": item.link,
            "author": item.author,
            "body_html": Markup(item.body_html),
            "body_text": item.body_text.rstrip("\n"),
        }
        for item in spec.items_for(lang)
    ]

    def t(key: str, **values: Any) -> str:
        return text(lang, key, **values)

    return {
        "lang": lang,
        "campaign": spec.name,
        "subject": spec.subject[lang],
        "preheader": spec.preheader.get(lang, ""),
        "intro_html": Markup(intro_html),
        "intro_text": intro_text.rstrip("\n"),
        "items": items,
        "sender": {
            "name": config.sender.name,
            "address": config.sender.address,
            "reply_to": config.sender.reply_to,
            "postal_address": config.sender.postal_address,
        },
        "t": t,
        "greeting": _placeholder("greeting", marker),
        "recipient": {
            "name": _placeholder("name", marker),
            "email": _placeholder("email", marker),
        },
        "unsubscribe_url": _placeholder("unsubscribe_url", marker),
    }


def inline_css(html: str) -> str:
    """Inline the <style> rules with premailer, keeping @media rules and !important in them."""
    from premailer import Premailer

    logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)
    out = Premailer(
        html,
        base_url=None,
        keep_style_tags=False,  # rules that cannot be inlined (@media) stay in a <style>
        strip_important=False,
        remove_classes=False,
        allow_network=False,
        cssutils_logging_level=logging.CRITICAL,
        disable_validation=True,
    ).transform()
    if not out.lstrip().lower().startswith("<!doctype"):
        out = "<!DOCTYPE html>\n" + out
    return out


def _clean_text(body: str) -> str:
    lines = [line.rstrip() for line in body.replace("\r\n", "\n").split("\n")]
    out: list[str] = []
    for line in lines:  # at most one empty line in a row
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip("\n") + "\n"


# --- previews (`mailer render`) ----------------------------------------------------------

# A made-up reader per language for the sample message when the database has none.
SAMPLE_READERS = {
    "fi": ("Maija Meikäläinen", "maija.meikalainen@example.fi"),
    "en": ("Alex Example", "alex@example.com"),
    "sv": ("Anna Exempel", "anna.exempel@example.se"),
    "se": ("Máret Ovdamearka", "maret@example.no"),
}


def store_sample_finder(conn: Any) -> Any:
    """Return a `find_sample(lang)` for write_previews that picks a real subscribed contact."""
    from mailer.store.samples import sample_contact

    def find_sample(lang: str) -> tuple[int, str, str, str] | None:
        row = sample_contact(conn, lang)
        if row is None:
            return None
        return row["id"], row["email"], row["email_ascii"], row["name"]

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
    from mailer.errors import InputError

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
    find_sample: Callable[[str], tuple[int, str, str, str] | None] | None = None,
) -> PreviewReport:
    """Write index.LANG.html, index.LANG.txt and sample.LANG.eml per language into out_dir.

    `find_sample(lang)` returns (contact_id, email, wire_email, name) or None; without one
    (or when it finds nobody) a made-up reader is used. The unsubscribe link carries a real
    token for campaign id 0.
    """
    from mailer.newsletter.messages import MessageBuilder, Recipient
    from mailer.tokens import make_token, unsubscribe_url

    make_out_dir(out_dir)
    variants = render_campaign(config, spec)
    secret = config.secret()
    files: list[Path] = []
    samples: dict[str, str] = {}
    warnings: list[str] = []
    for lang, variant in variants.items():
        found = find_sample(lang) if find_sample else None
        if found:
            contact_id, email, wire, name = found
        else:
            name, email = SAMPLE_READERS[lang]
            contact_id, wire = 0, email
        url = unsubscribe_url(config.web.base_url, make_token(secret, 0, contact_id))
        html_path = out_dir / f"index.{lang}.html"
        text_path = out_dir / f"index.{lang}.txt"
        eml_path = out_dir / f"sample.{lang}.eml"
        html = variant.fill("html", name, email, url)
        if len(html.encode("utf-8")) > GMAIL_CLIP_BYTES:
            size = len(html.encode("utf-8")) // 1024
            warnings.append(
                f"{lang}: the HTML is {size} KB; Gmail clips messages over 102 KB,"
                " hiding the footer and its unsubscribe link"
            )
        html_path.write_text(html, encoding="utf-8")
        text_path.write_text(variant.fill("text", name, email, url), encoding="utf-8")
        message = MessageBuilder(config, variant).build(Recipient(email, name, wire), url, now=now)
        eml_path.write_bytes(message.data)
        files += [html_path, text_path, eml_path]
        samples[lang] = email
    return PreviewReport(files, samples, warnings)
