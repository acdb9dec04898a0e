"""Returned mail for the bounce tests: a real campaign sent, and the corpus filled from it.

The corpus under tests/data/bounces/ holds returned messages in the shapes real servers
write (Postfix, Exim, qmail, Gmail, Microsoft 365, old Exchange, an ARF complaint,
auto-replies, a person, garbage). Their placeholders are filled from a message that
mailer really sent, so the tokens, Message-IDs and headers they return are real.
"""

from __future__ import annotations

import mailbox
import re
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path

import tomllib

from mailer.timeutil import now_utc
from tests.contacts_helpers import write_csv
from tests.newsletter_helpers import copy_campaign
from tests.sending_helpers import ScriptedSink, point_at

CORPUS = Path(__file__).parent / "data" / "bounces"
EXPECTED = tomllib.loads((CORPUS / "expected.toml").read_text(encoding="utf-8"))
BOUNCE_ADDRESS = "bounces@arcticsmartness.eu"
CAMPAIGN = "uutiskirje-2018-11"
FORGED = "bounces+aaaaaaaaaaaaaaaaaaaaaaaa@arcticsmartness.eu"


@dataclass(frozen=True)
class Sent:
    """One message mailer sent: to whom, its envelope sender and its bytes."""

    email: str
    return_path: str
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8").replace("\r\n", "\n")

    @property
    def headers(self) -> str:
        return self.text.split("\n\n", 1)[0]

    @property
    def message_id(self) -> str:
        match = re.search(r"(?im)^Message-ID: (<[^>]+>)", self.headers)
        assert match
        return match.group(1)


def with_bounces(workspace, **keys: str) -> None:
    """Give the workspace a [bounces] section (the return path per delivery)."""
    workspace.set_config("bounces", "address", f'"{BOUNCE_ADDRESS}"')
    for key, value in keys.items():
        workspace.set_config("bounces", key, value)


def create_campaign(workspace, emails: list[str]) -> None:
    """Import `emails` (cluster Arctic Power) and create the test campaign for them."""
    rows = [["sähköposti", "nimi", "kieli", "klusterit"]]
    rows += [[e, f"Henkilö {i}", "fi", "Arctic Power"] for i, e in enumerate(emails)]
    res = workspace.cli("contacts", "import", str(write_csv(workspace.path / "c.csv", rows)))
    assert res.exit_code == 0, res.stderr
    res = workspace.cli("campaign", "create", str(copy_campaign(workspace.path)))
    assert res.exit_code == 0, res.stderr


def send_campaign(workspace, emails: list[str], rcpt_reply=None) -> dict[str, Sent]:
    """Import `emails`, create the test campaign and send it to a sink; what each got."""
    create_campaign(workspace, emails)
    with ScriptedSink(rcpt_reply=rcpt_reply) as sink:
        point_at(workspace, sink.port, connections=2)
        res = workspace.cli("send", CAMPAIGN, "--yes")
    assert res.exit_code == 0, res.stderr
    return {
        item.rcpt_tos[0]: Sent(item.rcpt_tos[0], item.mail_from, item.data)
        for item in sink.received
    }


def fill(name: str, sent: Sent, *, when=None) -> bytes:
    """The corpus message `name` (without .eml) returning `sent`."""
    template = (CORPUS / f"{name}.eml").read_bytes()
    redacted = sent.text.replace(sent.email, "redacted@redacted")
    values = {
        "%%EMAIL%%": sent.email,
        "%%LOCAL%%": sent.email.partition("@")[0],
        "%%RETURN_PATH%%": sent.return_path,
        "%%FORGED_RETURN_PATH%%": FORGED,
        "%%HEADERS%%": sent.headers,
        "%%MESSAGE%%": sent.text,
        "%%REDACTED_MESSAGE%%": redacted,
        "%%MESSAGE_ID%%": sent.message_id,
        "%%DATE%%": format_datetime(when or now_utc()),
    }
    for key, value in values.items():
        template = template.replace(key.encode(), value.encode("utf-8"))
    return template


def corpus_names() -> list[str]:
    return sorted(EXPECTED)


def corpus_email(name: str) -> str:
    return f"{name}@example.org"


def write_maildir(folder: Path, messages: dict[str, bytes]) -> Path:
    """A Maildir holding `messages` (name → bytes) in new/."""
    box = mailbox.Maildir(folder, create=True)
    for raw in messages.values():
        box.add(raw)
    return folder
