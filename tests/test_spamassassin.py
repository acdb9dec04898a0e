"""SpamAssassin's offline tests give the sample message of `mailer render` 0.0 points."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.newsletter_helpers import copy_campaign

SPAMASSASSIN = shutil.which("spamassassin")

pytestmark = [
    pytest.mark.spamassassin,
    pytest.mark.skipif(SPAMASSASSIN is None, reason="SpamAssassin (Debian `spamassassin`) missing"),
]


def _score(message: bytes, home) -> tuple[float, str]:
    res = subprocess.run(
        [SPAMASSASSIN, "-L", "-t"],
        input=message,
        capture_output=True,
        timeout=120,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode in (0, 1), res.stderr.decode(errors="replace")
    out = res.stdout.decode("utf-8", errors="replace")
    match = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", out, re.MULTILINE)
    assert match, out[:2000]
    return float(match.group(1)), out


def test_the_sample_newsletter_scores_zero(workspace, tmp_path):
    campaign = copy_campaign(workspace.path)
    out = workspace.path / "preview"
    res = workspace.cli("render", str(campaign), "--out", str(out))
    assert res.exit_code == 0, res.stderr
    score, report = _score((out / "sample.fi.eml").read_bytes(), tmp_path)
    assert score == 0.0, report[report.find("Content analysis") :]

    # The canary: an HTML-only message without Date or Message-ID must score high, or
    # SpamAssassin did not really look at the messages.
    bad = (
        b"From: x@example.com\r\nTo: y@example.org\r\nSubject: hello\r\n"
        b"Content-Type: text/html\r\n\r\n"
        b'<html><body><a href="http://example.org/"><img src="http://example.org/a.png">'
        b"</a></body></html>\r\n"
    )
    assert _score(bad, tmp_path)[0] >= 5.0
