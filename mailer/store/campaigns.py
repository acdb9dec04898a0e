"""Named queries on campaigns, their frozen variants, leases and the relay quota counters.

A campaign row leaves this module as a typed `Campaign`; every status change is a
compare-and-set whose allowed sources come from mailer.states.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailer.errors import NotFoundError
from mailer.states import CampaignStatus, campaign_sources
from mailer.timeutil import to_db


@dataclass(frozen=True)
class Campaign:
    """One row of `campaigns`."""

    id: int
    name: str
    source_path: str
    definition: str  # JSON of the checked campaign file
    segment: str
    status: CampaignStatus
    send_at: str | None
    created_at: str
    frozen_at: str | None
    finished_at: str | None
    lease_owner: str | None
    lease_until: str | None
    status_reason: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Campaign:
        return cls(
            id=row["id"],
            name=row["name"],
            source_path=row["source_path"],
            definition=row["definition"],
            segment=row["segment"],
            status=CampaignStatus(row["status"]),
            send_at=row["send_at"],
            created_at=row["created_at"],
            frozen_at=row["frozen_at"],
            finished_at=row["finished_at"],
            lease_owner=row["lease_owner"],
            lease_until=row["lease_until"],
            status_reason=row["status_reason"],
        )


def _campaign(row: sqlite3.Row | None) -> Campaign | None:
    return None if row is None else Campaign.from_row(row)


def insert_campaign(
    conn: sqlite3.Connection,
    *,
    name: str,
    source_path: str,
    definition: str,
    segment: str,
    status: CampaignStatus,
    send_at: datetime | None,
    now: datetime,
) -> int:
    cursor = conn.execute(
        "INSERT INTO campaigns (name, source_path, definition, segment, status, send_at,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            name,
            source_path,
            definition,
            segment,
            CampaignStatus(status).value,
            to_db(send_at) if send_at else None,
            to_db(now),
        ),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def update_definition(
    conn: sqlite3.Connection,
    campaign_id: int,
    *,
    source_path: str,
    definition: str,
    segment: str,
    status: CampaignStatus,
    send_at: datetime | None,
) -> bool:
    """Replace the definition of a campaign that has not started; False if it has."""
    expected = campaign_sources(status)
    marks = ", ".join("?" for _ in expected)
    cursor = conn.execute(
        "UPDATE campaigns SET source_path = ?, definition = ?, segment = ?, status = ?,"
        " send_at = ?, status_reason = NULL"
        f" WHERE id = ? AND frozen_at IS NULL AND status IN ({marks})",
        (
            source_path,
            definition,
            segment,
            status.value,
            to_db(send_at) if send_at else None,
            campaign_id,
            *expected,
        ),
    )
    return cursor.rowcount == 1


def get_campaign(conn: sqlite3.Connection, campaign_id: int) -> Campaign | None:
    return _campaign(
        conn.execute("SELECT * FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
    )


def get_campaign_by_name(conn: sqlite3.Connection, name: str) -> Campaign | None:
    return _campaign(conn.execute("SELECT * FROM campaigns WHERE name = ?", (name,)).fetchone())


def list_campaigns(conn: sqlite3.Connection) -> list[Campaign]:
    rows = conn.execute("SELECT * FROM campaigns ORDER BY created_at, id").fetchall()
    return [Campaign.from_row(row) for row in rows]


def set_status(
    conn: sqlite3.Connection,
    campaign_id: int,
    status: CampaignStatus,
    now: datetime,
    *,
    reason: str | None = None,
) -> bool:
    """Move a campaign to `status` from a status mailer.states allows; False if it was in none."""
    expected = campaign_sources(status)
    marks = ", ".join("?" for _ in expected)
    done = status in (CampaignStatus.SENT, CampaignStatus.CANCELLED)
    cursor = conn.execute(
        f"UPDATE campaigns SET status = ?, status_reason = ?,"
        f" finished_at = coalesce(?, finished_at) WHERE id = ? AND status IN ({marks})",
        (status.value, reason, to_db(now) if done else None, campaign_id, *expected),
    )
    return cursor.rowcount == 1


def mark_frozen(conn: sqlite3.Connection, campaign_id: int, now: datetime) -> bool:
    cursor = conn.execute(
        "UPDATE campaigns SET frozen_at = ? WHERE id = ? AND frozen_at IS NULL",
        (to_db(now), campaign_id),
    )
    return cursor.rowcount == 1


def save_render(conn: sqlite3.Connection, campaign_id: int, rendered: str) -> None:
    """Keep the render `campaign create` checked (see newsletter/reuse.py)."""
    conn.execute("UPDATE campaigns SET rendered = ? WHERE id = ?", (rendered, campaign_id))


def stored_render(conn: sqlite3.Connection, campaign_id: int) -> str | None:
    row = conn.execute("SELECT rendered FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
    return None if row is None else row[0]


def insert_variant(conn: sqlite3.Connection, campaign_id: int, language: str, content: str) -> None:
    conn.execute(
        "INSERT INTO campaign_variants (campaign_id, language, content) VALUES (?, ?, ?)",
        (campaign_id, language, content),
    )


def variants(conn: sqlite3.Connection, campaign_id: int) -> dict[str, str]:
    rows = conn.execute(
        "SELECT language, content FROM campaign_variants WHERE campaign_id = ? ORDER BY language",
        (campaign_id,),
    )
    return {row[0]: row[1] for row in rows}


def due_campaigns(conn: sqlite3.Connection, now: datetime) -> list[Campaign]:
    """Scheduled campaigns whose send_at has passed, and campaigns left in `sending`."""
    rows = conn.execute(
        "SELECT * FROM campaigns WHERE (status = ? AND send_at <= ?)"
        " OR status = ? ORDER BY coalesce(send_at, created_at), id",
        (CampaignStatus.SCHEDULED.value, to_db(now), CampaignStatus.SENDING.value),
    ).fetchall()
    return [Campaign.from_row(row) for row in rows]


def paused_campaigns(conn: sqlite3.Connection) -> list[Campaign]:
    """Campaigns a server failure paused; only an explicit `send` continues them."""
    rows = conn.execute(
        "SELECT * FROM campaigns WHERE status = ? ORDER BY coalesce(send_at, created_at), id",
        (CampaignStatus.PAUSED.value,),
    ).fetchall()
    return [Campaign.from_row(row) for row in rows]


# Leases: one run at a time per campaign.


def acquire_lease(
    conn: sqlite3.Connection,
    campaign_id: int,
    owner: str,
    until: datetime,
    now: datetime,
    *,
    dead_owners: Sequence[str] = (),
) -> bool:
    """Take the campaign's lease when it is free, expired, ours, or held by a dead run."""
    marks = ", ".join("?" for _ in dead_owners) or "NULL"
    cursor = conn.execute(
        "UPDATE campaigns SET lease_owner = ?, lease_until = ? WHERE id = ? AND"
        " (lease_owner IS NULL OR lease_until < ? OR lease_owner = ?"
        f" OR lease_owner IN ({marks}))",
        (owner, to_db(until), campaign_id, to_db(now), owner, *dead_owners),
    )
    return cursor.rowcount == 1


def renew_lease(conn: sqlite3.Connection, campaign_id: int, owner: str, until: datetime) -> bool:
    cursor = conn.execute(
        "UPDATE campaigns SET lease_until = ? WHERE id = ? AND lease_owner = ?",
        (to_db(until), campaign_id, owner),
    )
    return cursor.rowcount == 1


def release_lease(conn: sqlite3.Connection, campaign_id: int, owner: str) -> bool:
    cursor = conn.execute(
        "UPDATE campaigns SET lease_owner = NULL, lease_until = NULL"
        " WHERE id = ? AND lease_owner = ?",
        (campaign_id, owner),
    )
    return cursor.rowcount == 1


# Relay quotas, counted over all campaigns and runs.


def _second(moment: datetime) -> str:
    return to_db(moment)[:19]


def _minute(moment: datetime) -> str:
    return to_db(moment)[:16]


def quota_used(conn: sqlite3.Connection, now: datetime) -> tuple[int, int]:
    """Return messages handed to the relay in the last 60 seconds and the last 24 hours."""
    minute = conn.execute(
        "SELECT coalesce(sum(used), 0) FROM smtp_usage_second WHERE second > ?",
        (_second(now - timedelta(seconds=60)),),
    ).fetchone()[0]
    day = conn.execute(
        "SELECT coalesce(sum(used), 0) FROM smtp_usage_minute WHERE minute > ?",
        (_minute(now - timedelta(days=1)),),
    ).fetchone()[0]
    return int(minute), int(day)


def oldest_in_minute(conn: sqlite3.Connection, now: datetime) -> str | None:
    """The oldest second still counted in the per-minute window."""
    row = conn.execute(
        "SELECT min(second) FROM smtp_usage_second WHERE second > ?",
        (_second(now - timedelta(seconds=60)),),
    ).fetchone()
    return row[0] if row else None


def add_usage(conn: sqlite3.Connection, now: datetime, count: int = 1) -> None:
    conn.execute(
        "INSERT INTO smtp_usage_second (second, used) VALUES (?, ?)"
        " ON CONFLICT (second) DO UPDATE SET used = used + excluded.used",
        (_second(now), count),
    )
    conn.execute(
        "INSERT INTO smtp_usage_minute (minute, used) VALUES (?, ?)"
        " ON CONFLICT (minute) DO UPDATE SET used = used + excluded.used",
        (_minute(now), count),
    )


def prune_usage(conn: sqlite3.Connection, now: datetime) -> None:
    conn.execute(
        "DELETE FROM smtp_usage_second WHERE second <= ?",
        (_second(now - timedelta(seconds=120)),),
    )
    conn.execute(
        "DELETE FROM smtp_usage_minute WHERE minute <= ?",
        (_minute(now - timedelta(days=2)),),
    )


def count_quota_stop(conn: sqlite3.Connection, campaign_id: int, *, sent_any: bool) -> int:
    """Count one run stopped by the relay's limit (after a run that sent anything: the first);
    return the runs in a row so far."""
    conn.execute(
        "UPDATE campaigns SET quota_stops = CASE WHEN ? THEN 1 ELSE quota_stops + 1 END"
        " WHERE id = ?",
        (int(sent_any), campaign_id),
    )
    row = conn.execute("SELECT quota_stops FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
    return int(row[0])


def clear_quota_stops(conn: sqlite3.Connection, campaign_id: int) -> None:
    conn.execute(
        "UPDATE campaigns SET quota_stops = 0 WHERE id = ? AND quota_stops != 0", (campaign_id,)
    )


def campaign_id_by_name(conn: sqlite3.Connection, name: str) -> int:
    """The id of the campaign named `name`; NotFoundError (exit 2) when there is none."""
    row = conn.execute("SELECT id FROM campaigns WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFoundError(f"no campaign named {name!r} (see `mailer campaign list`)")
    return int(row[0])
