"""SpamAssassin still gives 0.0 to a newsletter with a picture file and "view in a browser"."""

from __future__ import annotations

import email
import email.policy

import pytest

from tests.archive_helpers import archived_campaign
from tests.test_spamassassin import SPAMASSASSIN, _score

pytestmark = [
    pytest.mark.spamassassin,
    pytest.mark.skipif(SPAMASSASSIN is None, reason="SpamAssassin (Debian `spamassassin`) missing"),
]


def test_the_archived_newsletter_with_a_photo_scores_zero(workspace, tmp_path):
    campaign = archived_campaign(workspace.path)
    out = workspace.path / "preview"
    res = workspace.cli("render", str(campaign), "--out", str(out))
    assert res.exit_code == 0, res.stderr
    for lang in ("fi", "en"):
        data = (out / f"sample.{lang}.eml").read_bytes()
        message = email.message_from_bytes(data, policy=email.policy.default)
        html = message.get_body(("html",)).get_content()
        text = message.get_body(("plain",)).get_content()
        assert "https://uutiset.arcticsmartness.eu/archive/uutiskirje-2018-11" in text
        assert 'href="https://uutiset.arcticsmartness.eu/archive/uutiskirje-2018-11' in html
        if lang == "fi":
            assert 'src="https://uutiset.arcticsmartness.eu/m/' in html
        score, report = _score(data, tmp_path)
        assert score == 0.0, report[report.find("Content analysis") :]
