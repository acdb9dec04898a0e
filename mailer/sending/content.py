"""What sending needs from the other areas: render, build and select, behind one protocol.

The engine sends whatever a `Content` renders and builds; `NewsletterContent` is the real
one (mailer.newsletter for the messages, mailer.audience for the segments). Tests may pass
a smaller one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from mailer.config import Config

Clock = Callable[[], datetime]


class Built(Protocol):
    """A finished message: its Message-ID (with angle brackets) and its exact CRLF bytes."""

    @property
    def message_id(self) -> str: ...

    @property
    def data(self) -> bytes: ...

    @property
    def dot_free(self) -> bool:
        """True when no line starts with "." (the builder looked); False when unknown."""


class Builder(Protocol):
    def build(
        self,
        recipient: Any,
        unsubscribe_url: str,
        *,
        now: datetime,
        test: bool = False,
        links: Sequence[str] = (),
        preferences_url: str = "",
    ) -> Built:
        """Return the message for one recipient (`links`: its click URLs, when counted)."""


class Content(Protocol):
    """Renders, builds and selects for the engine (newsletter and audience areas)."""

    def render(self, config: Config, definition: str) -> dict[str, str]:
        """Render the stored campaign definition: language → frozen variant (JSON text)."""

    def builder(self, config: Config, frozen: str) -> Builder:
        """A message builder prepared once for one frozen variant."""

    def recipient(self, email: str, name: str, wire_email: str, first_name: str = "") -> Any:
        """The recipient object the builder takes."""

    def audience(
        self, conn: sqlite3.Connection, config: Config, segment: str
    ) -> tuple[str, Sequence[object]]:
        """The segment as SQL over alias `c` and its parameters."""

    def fallback_language(self, config: Config, definition: str, languages: Sequence[str]) -> str:
        """The variant for contacts whose language the campaign lacks."""


class NewsletterContent:
    """The real content: the newsletter spec, render and messages; the audience segments.

    Rendering pulls in Jinja2 and premailer, so those modules load only when a campaign is
    rendered (listing campaigns stays quick).
    """

    def render(self, config: Config, definition: str) -> dict[str, str]:
        from mailer.newsletter.render import render_campaign
        from mailer.newsletter.spec import CampaignSpec

        spec = CampaignSpec.from_json(definition)
        return {lang: variant.to_json() for lang, variant in render_campaign(config, spec).items()}

    def builder(self, config: Config, frozen: str) -> Builder:
        from mailer.newsletter.messages import MessageBuilder
        from mailer.newsletter.variant import Variant

        return MessageBuilder(config, Variant.from_json(frozen))

    def recipient(self, email: str, name: str, wire_email: str, first_name: str = "") -> Any:
        from mailer.newsletter.messages import Recipient

        return Recipient(email=email, name=name, wire_email=wire_email, first_name=first_name)

    def audience(
        self, conn: sqlite3.Connection, config: Config, segment: str
    ) -> tuple[str, Sequence[object]]:
        from mailer.audience.segments import compile_segment

        compiled = compile_segment(conn, segment, config.list_kinds)
        return compiled.where, list(compiled.params)

    def fallback_language(self, config: Config, definition: str, languages: Sequence[str]) -> str:
        from mailer.newsletter.spec import CampaignSpec, fallback_language

        spec = CampaignSpec.from_json(definition)
        return fallback_language(languages, spec.default_language)


def envelope_sender(config: Config) -> str:
    """The envelope sender (MAIL FROM) in its wire (IDNA) form: `bounces.address` with
    [bounces] (a campaign's deliveries add their token to it), else the sender address."""
    from mailer.addresses import parse_address

    if config.bounces is not None:
        return parse_address(config.bounces.address).wire
    return parse_address(config.sender.address).wire
