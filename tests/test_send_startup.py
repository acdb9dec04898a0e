"""The send starts from the render `campaign create` checked, unless its inputs changed since.

Rendering (Jinja2, Markdown, premailer) was most of `mailer send`'s start-up; the render made
at create time is kept with a fingerprint of what it read and frozen as it is while that
fingerprint holds. An edited template or setting makes the send render again.
"""

from __future__ import annotations

import json
import sqlite3

from tests.contacts_helpers import write_csv
from tests.newsletter_helpers import copy_campaign
from tests.sending_helpers import ScriptedSink, point_at

NAME = "uutiskirje-2018-11"


def _prepare(workspace) -> None:
    rows = [["sähköposti", "nimi", "kieli", "klusterit"]]
    rows += [[f"henkilo{i}@example.org", f"Henkilö {i}", "fi", "Arctic Power"] for i in range(3)]
    res = workspace.cli("contacts", "import", str(write_csv(workspace.path / "c.csv", rows)))
    assert res.exit_code == 0, res.stderr
    res = workspace.cli("campaign", "create", str(copy_campaign(workspace.path)))
    assert res.exit_code == 0, res.stderr


def _variants(workspace) -> tuple[dict[str, str], dict[str, str]]:
    """(the render kept at create, the variants frozen at the send) by language."""
    conn = sqlite3.connect(workspace.path / "mailer.db")
    try:
        kept = json.loads(conn.execute("SELECT rendered FROM campaigns").fetchone()[0])
        frozen = dict(conn.execute("SELECT language, content FROM campaign_variants"))
    finally:
        conn.close()
    return kept["variants"], frozen


def _send(workspace):
    with ScriptedSink() as sink:
        point_at(workspace, sink.port)
        res = workspace.cli("send", NAME, "--yes")
    assert res.exit_code == 0, res.stderr
    return [item.message() for item in sink.received]


def test_the_send_freezes_the_render_checked_at_create(workspace):
    _prepare(workspace)
    messages = _send(workspace)
    assert len(messages) == 3
    kept, frozen = _variants(workspace)
    assert frozen == kept  # the very render create checked, placeholder marker and all


def test_a_template_edited_after_create_is_not_sent_the_stored_copy_is(workspace):
    # What staff previewed is what is sent: `campaign create` stored the templates, so an
    # edit made after it reaches the send only through another `campaign create`.
    _prepare(workspace)
    template = workspace.path / "templates" / "newsletter.txt"
    template.write_text(
        template.read_text(encoding="utf-8") + "\nMuokattu pohja jälkikäteen.\n", encoding="utf-8"
    )
    messages = _send(workspace)
    assert messages
    for msg in messages:
        assert "Muokattu pohja jälkikäteen." not in msg.get_body(("plain",)).get_content()


def test_a_setting_changed_after_create_is_rendered_again_at_the_send(workspace):
    _prepare(workspace)
    workspace.set_config("sender", "postal_address", '"Hallituskatu 20 B, 96100 Rovaniemi"')
    messages = _send(workspace)
    for msg in messages:
        assert "Hallituskatu 20 B" in msg.get_body(("plain",)).get_content()
