"""Times in the database: UTC, fixed-width ISO 8601, so string order is time order."""

from __future__ import annotations

from datetime import datetime, timezone

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now_utc() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def to_db(moment: datetime) -> str:
    """Format an aware datetime for storage."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(timezone.utc).strftime(_FORMAT)


def from_db(text: str) -> datetime:
    """Parse a stored time back into an aware UTC datetime."""
    return datetime.strptime(text, _FORMAT).replace(tzinfo=timezone.utc)
