"""Throwaway DKIM keys made by openssl, and the DNS records that publish them.

Shared by tests/test_dkim.py and bench/send.py --dkim (dkimpy verifies against `records`).
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

SELECTOR, ED25519_SELECTOR, DOMAIN = "mailer", "mailered", "arcticsmartness.eu"


def openssl(*args: str) -> bytes:
    return subprocess.run(["openssl", *args], check=True, capture_output=True).stdout


def make_keys(folder: Path) -> tuple[Path, Path, dict[bytes, bytes]]:
    """(rsa.pem, ed25519.pem, DNS TXT records by name) for the two selectors."""
    rsa, ed = folder / "rsa.pem", folder / "ed25519.pem"
    openssl("genrsa", "-out", str(rsa), "2048")
    openssl("genpkey", "-algorithm", "ed25519", "-out", str(ed))
    rsa_public = openssl("rsa", "-in", str(rsa), "-pubout", "-outform", "DER")
    ed_public = openssl("pkey", "-in", str(ed), "-pubout", "-outform", "DER")[-32:]
    records = {
        f"{SELECTOR}._domainkey.{DOMAIN}.".encode(): b"v=DKIM1; k=rsa; p="
        + base64.b64encode(rsa_public),
        f"{ED25519_SELECTOR}._domainkey.{DOMAIN}.".encode(): b"v=DKIM1; k=ed25519; p="
        + base64.b64encode(ed_public),
    }
    return rsa, ed, records
