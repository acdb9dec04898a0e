"""Forgotten addresses: the secrets that recognise them, and the check `add` makes."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailer.addresses import secret_id, suppression_hash
from mailer.errors import ConfigError
from mailer.store import contacts as q

if TYPE_CHECKING:
    from mailer.config import Config


def suppression_secrets(
    conn: sqlite3.Connection, config: Config, secrets: Sequence[bytes] | None = None
) -> list[bytes]:
    """The secrets that recognise forgotten addresses; refuse when one of them is gone.

    A forgotten address is kept as an HMAC keyed with the web secret. Were that secret
    dropped from the configuration, the person could be imported again unnoticed, so a
    stored fingerprint without its secret is a configuration error.
    """
    secrets = list(secrets) if secrets is not None else config.secrets()
    missing = q.suppression_key_ids(conn) - {secret_id(s) for s in secrets}
    if missing:
        raise ConfigError(
            "forgotten addresses were hashed with a secret that is no longer configured;"
            " put the old secret back into web.previous_secrets",
            where=str(config.path),
        )
    return secrets


def is_forgotten(conn: sqlite3.Connection, config: Config, key: str) -> bool:
    """Whether the address with this email_key was forgotten."""
    secrets = suppression_secrets(conn, config)
    return q.is_suppressed(conn, [suppression_hash(s, key) for s in secrets])
