"""Times in the database: UTC, fixed-width ISO 8601, so string order is time order."""

from __future__ import annotations

from datetime import datetime, timezone, tzinfo

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


def for_people(moment: datetime | str | None, zone: tzinfo, *, machine: bool = False) -> str:
    """A time as a person reads it, in `zone` (`defaults.timezone`): `2026-11-28 09:00`.

    With `machine` (JSON, CSV): ISO 8601 with the zone's offset, `2026-11-28T09:00:00+02:00`.
    A stored (UTC) string is accepted as it comes from the database; None gives "".
    """
    if moment is None or moment == "":
        return ""
    if isinstance(moment, str):
        moment = from_db(moment)
    local = moment.astimezone(zone)
    return local.isoformat(timespec="seconds") if machine else local.strftime("%Y-%m-%d %H:%M")
