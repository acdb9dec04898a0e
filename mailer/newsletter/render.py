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

import logging
import secrets
from typing import TYPE_CHECKING, Any

from mailer.errors import TemplateError
from mailer.i18n import format_date, text
from mailer.newsletter.images import display_size
from mailer.newsletter.templates import load_templates, template_file
from mailer.newsletter.variant import Variant, used_fields
from mailer.newsletter.variant import placeholder as _placeholder

if TYPE_CHECKING:
    import jinja2

    from mailer.config import Config
    from mailer.newsletter.news import NewsItem
    from mailer.newsletter.spec import CampaignSpec


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


def render_campaign(
    config: Config, spec: CampaignSpec, *, image_base: str | None = None
) -> dict[str, Variant]:
    """Render and CSS-inline the campaign once per language that has items.

    The templates are those the spec keeps, when it keeps them (what `campaign create`
    stored). Pictures from files are linked at `{image_base}/{file}` (default
    `{base_url}/m`, where `mailer serve` publishes them; a preview passes its local folder).
    """
    html_template, text_template = load_templates(config, spec.template, spec.templates or None)
    variants: dict[str, Variant] = {}
    for lang in spec.languages:
        variants[lang] = render_variant(
            config, spec, lang, html_template, text_template, image_base=image_base
        )
    return variants


def render_variant(
    config: Config,
    spec: CampaignSpec,
    lang: str,
    html_template: jinja2.Template | None = None,
    text_template: jinja2.Template | None = None,
    *,
    marker: str | None = None,
    image_base: str | None = None,
) -> Variant:
    """Render one language of the campaign (Jinja2 + premailer) into a Variant."""
    if html_template is None or text_template is None:
        stored = spec.templates or None
        html_template, text_template = load_templates(config, spec.template, stored)
    marker = marker or secrets.token_hex(6)
    context = build_context(config, spec, lang, marker, image_base=image_base)
    html = inline_css(_render(html_template, context)).replace("\r\n", "\n")
    text_body = _clean_text(_render(text_template, context))
    _check_footer(config, marker, (html_template, html), (text_template, text_body))
    return Variant(
        language=lang,
        campaign=spec.name,
        subject=spec.subject[lang],
        preheader=spec.preheader.get(lang, ""),
        html=html,
        text=text_body,
        marker=marker,
        fields=used_fields(marker, html, text_body),
    )


# The default template's text column: 600 px less 2 × 32 px padding. A picture's width and
# height attributes fit it (Outlook for Windows sizes pictures by the attributes alone).
IMAGE_COLUMN = 536


def _check_footer(config: Config, marker: str, *parts: tuple[jinja2.Template, str]) -> None:
    """Both parts' footers show the unsubscribe URL, and with [signup] the preference link.

    A workspace whose templates were copied before a link existed would otherwise send
    newsletters without it; the error names the template and the variable to add.
    """
    needed = [("unsubscribe_url", "every newsletter shows its unsubscribe link")]
    if config.signup is not None:
        needed.append(("preferences_url", "with [signup] the footer links the preference page"))
    for template, body in parts:
        for field, why in needed:
            if _placeholder(field, marker) not in body:
                name = template.name or "template"
                raise TemplateError(
                    f"the footer lacks {{{{ {field} }}}}: {why}; mailer's bundled"
                    f" templates/{name} shows where it goes (a campaign already created"
                    " keeps its copy: create it again after the fix)",
                    where=template_file(config, name),
                )


def issue_path(name: str, lang: str, default_language: str) -> str:
    """The public copy's path: `/archive/NAME` (its default language) or `/archive/NAME/LANG`."""
    return f"/archive/{name}" if lang == default_language else f"/archive/{name}/{lang}"


def _image_fields(item: NewsItem, image_base: str) -> dict[str, Any]:
    if not item.image_file:
        return {"image": item.image, "image_width": 0, "image_height": 0}
    width, height = display_size(item.image_width, item.image_height, IMAGE_COLUMN)
    url = f"{image_base}/{item.image_file}"
    return {"image": url, "image_width": width, "image_height": height}


def build_context(
    config: Config, spec: CampaignSpec, lang: str, marker: str, *, image_base: str | None = None
) -> dict[str, Any]:
    """The template context; recipient fields are placeholders filled in per message."""
    from markupsafe import Markup

    from mailer.newsletter.news import render_markdown

    images = f"{config.web.base_url}/m" if image_base is None else image_base
    intro_html, intro_text = render_markdown(spec.intro.get(lang, "")) if spec.intro else ("", "")
    items = [
        {
            "title": item.title,
            "date": format_date(item.date, lang),
            "date_iso": item.date.isoformat(),
            "summary": item.summary,
            **_image_fields(item, images),
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
        # "View in a browser": the issue's public copy, the same for every reader of `lang`.
        "archive_url": (
            config.web.base_url + issue_path(spec.name, lang, spec.fallback_language())
            if spec.archive
            else ""
        ),
        "public": False,  # the archive's copy (mailer.newsletter.public) sets these two
        "subscribe_url": "",
        "archive_index_url": "",
        # The footer links the preference page exactly when [signup] is on.
        "preferences_url": _placeholder("preferences_url", marker) if config.signup else "",
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
        # Keep the template's width/height attributes: premailer would overwrite them from
        # the CSS (a picture's width="536" became width="100%"), and Outlook for Windows
        # sizes pictures and tables by the attributes alone.
        disable_basic_attributes=["width", "height"],
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
