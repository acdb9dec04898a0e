"""Named queries of click counting and the campaign report; no row here names a contact.

Clicks are counted per link. Unique counts use a keyed hash of the delivery (HMAC-SHA256
under a random key of the campaign's own, cut to 16 bytes): while the key exists, the same
delivery clicking twice counts once; `purge_hashes` deletes the hashes and the key after
`keep_days`, after which only the counts remain and a click counts in `clicks` alone.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailer.timeutil import from_db, to_db

_HASH_BYTES = 16
ANY_LINK = 0  # click_hashes.link_id of "followed any link of the campaign"
_SENT_LIKE = ("sent", "sending", "unknown")  # the message reached (or may have reached) them


def delivery_hash(key: bytes, delivery_id: int) -> bytes:
    """The keyed hash that stands for one delivery in the unique counts."""
    return hmac.new(key, struct.pack(">Q", delivery_id), hashlib.sha256).digest()[:_HASH_BYTES]


# --- links, at the freeze and at send time ------------------------------------------------


def register_links(
    conn: sqlite3.Connection, campaign_id: int, urls: Sequence[str], hash_key: bytes, now: datetime
) -> dict[str, int]:
    """Mark the campaign as counted and store its links in order; return url → link id."""
    conn.execute(
        "INSERT INTO click_campaigns (campaign_id, hash_key, tracked_at) VALUES (?, ?, ?)",
        (campaign_id, hash_key, to_db(now)),
    )
    ids: dict[str, int] = {}
    for position, url in enumerate(urls):
        cursor = conn.execute(
            "INSERT INTO campaign_links (campaign_id, position, url) VALUES (?, ?, ?)",
            (campaign_id, position, url),
        )
        assert cursor.lastrowid is not None
        ids[url] = cursor.lastrowid
    return ids


def link_ids(conn: sqlite3.Connection, campaign_id: int) -> dict[str, int]:
    """The campaign's counted links: url → link id (empty when it is not counted)."""
    rows = conn.execute(
        "SELECT url, id FROM campaign_links WHERE campaign_id = ? ORDER BY position",
        (campaign_id,),
    )
    return {row[0]: int(row[1]) for row in rows}


def link_target(conn: sqlite3.Connection, link_id: int) -> tuple[int, str] | None:
    """(campaign id, stored URL) of a link, or None."""
    row = conn.execute(
        "SELECT campaign_id, url FROM campaign_links WHERE id = ?", (link_id,)
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


# --- counting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Click:
    """One GET of /l/{token}: which link, in which delivery, when. Held only until written."""

    campaign_id: int
    link_id: int
    delivery_id: int
    at: datetime


@dataclass
class Tally:
    counted: int = 0
    early: int = 0  # within ignore_first_seconds of sending: a mail scanner
    ignored: int = 0  # a message not (yet) sent, or a link that is gone


def record_clicks(
    conn: sqlite3.Connection, clicks: Iterable[Click], *, ignore_seconds: float
) -> Tally:
    """Count `clicks` (call inside one transaction)."""
    tally = Tally()
    keys: dict[int, bytes | None] = {}
    for click in clicks:
        row = conn.execute(
            "SELECT status, coalesce(sent_at, updated_at) FROM deliveries"
            " WHERE id = ? AND campaign_id = ?",
            (click.delivery_id, click.campaign_id),
        ).fetchone()
        if row is None or row[0] not in _SENT_LIKE:
            tally.ignored += 1
            continue
        if click.at - from_db(row[1]) < timedelta(seconds=ignore_seconds):
            conn.execute(
                "UPDATE campaign_links SET early = early + 1 WHERE id = ?", (click.link_id,)
            )
            tally.early += 1
            continue
        updated = conn.execute(
            "UPDATE campaign_links SET clicks = clicks + 1 WHERE id = ? AND campaign_id = ?",
            (click.link_id, click.campaign_id),
        ).rowcount
        if not updated:
            tally.ignored += 1
            continue
        tally.counted += 1
        if click.campaign_id not in keys:
            keys[click.campaign_id] = _hash_key(conn, click.campaign_id)
        key = keys[click.campaign_id]
        if key is not None:
            _count_unique(conn, click, delivery_hash(key, click.delivery_id))
    return tally


def _hash_key(conn: sqlite3.Connection, campaign_id: int) -> bytes | None:
    row = conn.execute(
        "SELECT hash_key FROM click_campaigns WHERE campaign_id = ?", (campaign_id,)
    ).fetchone()
    return None if row is None or row[0] is None else bytes(row[0])


def _count_unique(conn: sqlite3.Connection, click: Click, digest: bytes) -> None:
    insert = "INSERT OR IGNORE INTO click_hashes (campaign_id, link_id, hash) VALUES (?, ?, ?)"
    if conn.execute(insert, (click.campaign_id, click.link_id, digest)).rowcount:
        conn.execute(
            "UPDATE campaign_links SET unique_clicks = unique_clicks + 1 WHERE id = ?",
            (click.link_id,),
        )
    if conn.execute(insert, (click.campaign_id, ANY_LINK, digest)).rowcount:
        conn.execute(
            "UPDATE click_campaigns SET unique_clicks = unique_clicks + 1 WHERE campaign_id = ?",
            (click.campaign_id,),
        )


def purge_hashes(conn: sqlite3.Connection, now: datetime, keep_days: int) -> list[int]:
    """Delete the hashes and keys of campaigns frozen over `keep_days` ago; their ids."""
    cutoff = to_db(now - timedelta(days=keep_days))
    due = [
        int(row[0])
        for row in conn.execute(
            "SELECT campaign_id FROM click_campaigns"
            " WHERE hash_key IS NOT NULL AND tracked_at <= ?",
            (cutoff,),
        )
    ]
    for campaign_id in due:
        conn.execute("DELETE FROM click_hashes WHERE campaign_id = ?", (campaign_id,))
        conn.execute(
            "UPDATE click_campaigns SET hash_key = NULL, purged_at = ? WHERE campaign_id = ?",
            (to_db(now), campaign_id),
        )
    return due


def forget_contact(conn: sqlite3.Connection, contact_id: int) -> int:
    """Delete the keyed hashes of a contact's deliveries (before the contact is deleted).

    The counts stay: they never named anyone. Returns the number of hashes deleted.
    """
    rows = conn.execute(
        "SELECT d.id, d.campaign_id, k.hash_key FROM deliveries d"
        " JOIN click_campaigns k ON k.campaign_id = d.campaign_id"
        " WHERE d.contact_id = ? AND k.hash_key IS NOT NULL",
        (contact_id,),
    ).fetchall()
    deleted = 0
    for delivery_id, campaign_id, key in rows:
        deleted += conn.execute(
            "DELETE FROM click_hashes WHERE campaign_id = ? AND hash = ?",
            (campaign_id, delivery_hash(bytes(key), int(delivery_id))),
        ).rowcount
    return deleted


def hash_count(conn: sqlite3.Connection, campaign_id: int) -> int:
    """How many keyed hashes the campaign still holds (0 once purged)."""
    row = conn.execute(
        "SELECT count(*) FROM click_hashes WHERE campaign_id = ?", (campaign_id,)
    ).fetchone()
    return int(row[0])


# --- reading the counts ---------------------------------------------------------------------


@dataclass(frozen=True)
class LinkCount:
    url: str
    clicks: int
    unique_clicks: int
    early: int


@dataclass(frozen=True)
class CampaignClicks:
    """A counted campaign's clicks: totals and per link in newsletter order."""

    unique_clicks: int
    links: list[LinkCount]
    purged_at: str | None

    @property
    def clicks(self) -> int:
        return sum(link.clicks for link in self.links)

    @property
    def early(self) -> int:
        return sum(link.early for link in self.links)


def campaign_clicks(conn: sqlite3.Connection, campaign_id: int) -> CampaignClicks | None:
    """The counts of a campaign frozen with click counting on, else None."""
    head = conn.execute(
        "SELECT unique_clicks, purged_at FROM click_campaigns WHERE campaign_id = ?",
        (campaign_id,),
    ).fetchone()
    if head is None:
        return None
    links = [
        LinkCount(str(r[0]), int(r[1]), int(r[2]), int(r[3]))
        for r in conn.execute(
            "SELECT url, clicks, unique_clicks, early FROM campaign_links"
            " WHERE campaign_id = ? ORDER BY position",
            (campaign_id,),
        )
    ]
    return CampaignClicks(int(head[0]), links, head[1])


# --- the report's figures -------------------------------------------------------------------


def audience_by_language(conn: sqlite3.Connection, campaign_id: int) -> list[tuple[str, int]]:
    """Deliveries per language of the message they were sent (largest first)."""
    rows = conn.execute(
        "SELECT language, count(*) FROM deliveries WHERE campaign_id = ?"
        " GROUP BY language ORDER BY count(*) DESC, language",
        (campaign_id,),
    )
    return [(str(r[0]), int(r[1])) for r in rows]


def audience_by_list(conn: sqlite3.Connection, campaign_id: int) -> list[tuple[str, str, str, int]]:
    """Recipients per list they are in today: (kind, slug, name, count); a contact in two
    lists counts in both; forgotten contacts are in none."""
    rows = conn.execute(
        "SELECT l.kind, l.slug, l.name, count(*) FROM deliveries d"
        " JOIN memberships m ON m.contact_id = d.contact_id"
        " JOIN lists l ON l.id = m.list_id"
        " WHERE d.campaign_id = ? GROUP BY l.id ORDER BY l.kind, count(*) DESC, l.slug",
        (campaign_id,),
    )
    return [(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]


def recipients_in_no_list(conn: sqlite3.Connection, campaign_id: int) -> int:
    row = conn.execute(
        "SELECT count(*) FROM deliveries d WHERE d.campaign_id = ? AND NOT EXISTS"
        " (SELECT 1 FROM memberships m WHERE m.contact_id = d.contact_id)",
        (campaign_id,),
    ).fetchone()
    return int(row[0])


def sent_span(conn: sqlite3.Connection, campaign_id: int) -> tuple[str, str, int] | None:
    """(first sent_at, last sent_at, messages sent), or None when nothing was sent."""
    row = conn.execute(
        "SELECT min(sent_at), max(sent_at), count(*) FROM deliveries"
        " WHERE campaign_id = ? AND sent_at IS NOT NULL",
        (campaign_id,),
    ).fetchone()
    return None if not row[2] else (str(row[0]), str(row[1]), int(row[2]))


def sent_per_bucket(
    conn: sqlite3.Connection, campaign_id: int, start: int, size: int
) -> dict[int, int]:
    """Messages sent per `size`-second bucket counted from the Unix time `start` (in SQL:
    a million sent rows are never read into memory)."""
    rows = conn.execute(
        # The whole seconds of the stored UTC time (strftime would round 59.9999 up).
        "SELECT (CAST(strftime('%s', substr(sent_at, 1, 19)) AS INTEGER) - ?) / ? AS bucket,"
        " count(*)"
        " FROM deliveries WHERE campaign_id = ? AND sent_at IS NOT NULL GROUP BY bucket",
        (start, size, campaign_id),
    )
    return {int(r[0]): int(r[1]) for r in rows}


def failure_details(conn: sqlite3.Connection, campaign_id: int) -> list[str]:
    """The last error of every failed delivery that has no bounce record (e.g. given up)."""
    rows = conn.execute(
        "SELECT coalesce(d.last_error, '') FROM deliveries d"
        " WHERE d.campaign_id = ? AND d.status = 'failed'"
        " AND NOT EXISTS (SELECT 1 FROM bounces b WHERE b.delivery_id = d.id)",
        (campaign_id,),
    )
    return [str(r[0]) for r in rows]


def event_counts(conn: sqlite3.Connection, campaign_id: int) -> list[tuple[str, str, int]]:
    """Status events through this campaign: (action, source, count), undone ones included."""
    rows = conn.execute(
        "SELECT action, source, count(*) FROM unsubscribe_events WHERE campaign_id = ?"
        " GROUP BY action, source ORDER BY action, count(*) DESC",
        (campaign_id,),
    )
    return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]


def earlier_campaigns(conn: sqlite3.Connection, campaign_id: int, limit: int) -> list[int]:
    """Ids of up to `limit` campaigns frozen before this one (newest first)."""
    rows = conn.execute(
        "SELECT id FROM campaigns WHERE frozen_at IS NOT NULL AND id != ?"
        " AND frozen_at <= (SELECT coalesce(frozen_at, ?) FROM campaigns WHERE id = ?)"
        " ORDER BY frozen_at DESC, id DESC LIMIT ?",
        (campaign_id, "9999", campaign_id, limit),
    )
    return [int(r[0]) for r in rows]
