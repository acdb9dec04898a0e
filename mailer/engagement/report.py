"""`mailer report NAME`: one self-contained HTML file about a campaign, for staff and managers.

The charts are small inline SVG drawn by the report's own Jinja2 template (autoescaped): a
bar per row with its number beside it, and one column chart for sending over time. No
chart library: the charts are a few rectangles, and a library would bring scripts, fonts or
external references that a file mailed to a manager must not have. No script, no external
request, no font download; it reads on a phone, and prints.

What it shows: the audience by list (kind) and language; what became of every delivery;
sending over time; bounces (failed deliveries, by the server's status code) and unsubscribes
(by how they came); clicks per link (when counted); this campaign against the previous ones.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from mailer.bounces.apply import campaign_reasons
from mailer.engagement.charts import Bar, Column, bars, columns
from mailer.sending.campaigns import Stats, campaign_stats, find_campaign
from mailer.store import Store
from mailer.store import engagement as q
from mailer.timeutil import from_db

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPORT_LANGUAGES = ("fi", "en")  # staff read the report; recipients never see it
PREVIOUS = 5  # campaigns to compare with
_STATUS_CODE = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_REPLY_CODE = re.compile(r"^\s*([245]\d\d)\b")
_BUCKETS = ((10, "10s"), (60, "minute"), (300, "5min"), (900, "15min"), (3600, "hour"),
            (21600, "6h"), (86400, "day"))  # fmt: skip


@cache
def report_texts() -> dict[str, dict[str, str]]:
    """{language: {key: text}} of the report (Finnish and English)."""
    source = resources.files("mailer.engagement") / "report.toml"
    return tomllib.loads(source.read_text(encoding="utf-8"))


@dataclass
class Comparison:
    name: str
    when: str
    sent: int
    bounce_rate: float | None
    unsubscribe_rate: float | None
    click_rate: float | None
    current: bool = False


@dataclass
class CampaignReport:
    """Everything the report shows, computed; `render` turns it into HTML."""

    name: str
    subject: str
    status: str
    language: str
    frozen_at: str
    finished_at: str
    stats: Stats
    by_list: dict[str, list[Bar]] = field(default_factory=dict)
    by_language: list[Bar] = field(default_factory=list)
    outcomes: list[Bar] = field(default_factory=list)
    timeline: list[Column] = field(default_factory=list)
    timeline_note: str = ""
    bounces: list[Bar] = field(default_factory=list)
    unsubscribes: list[Bar] = field(default_factory=list)
    undone: int = 0
    links: list[Bar] = field(default_factory=list)
    early: int = 0
    purged: bool = False
    comparison: list[Comparison] = field(default_factory=list)
    compare_bars: dict[str, list[Bar]] = field(default_factory=dict)

    @property
    def bounced(self) -> int:
        return self.stats.failed

    def rate(self, part: int | None) -> str:
        if part is None or not self.stats.sent:
            return "–"
        return percent(part / self.stats.sent)

    @property
    def bounce_rate(self) -> str:
        """Failed deliveries among those tried (sent or failed)."""
        return percent(_rates(self.stats)[0])


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def _local(stored: str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    from zoneinfo import ZoneInfo

    from mailer.newsletter.spec import LOCAL_ZONE

    if not stored:
        return ""
    return from_db(stored).astimezone(ZoneInfo(LOCAL_ZONE)).strftime(fmt)


def _subject(definition: str, language: str) -> str:
    try:
        subject = json.loads(definition).get("subject")
    except (TypeError, ValueError, AttributeError):
        return ""
    if isinstance(subject, dict):
        return str(subject.get(language) or next(iter(subject.values()), ""))
    return str(subject or "")


def build_report(store: Store, name: str, *, language: str) -> CampaignReport:
    """Gather and compute the report of campaign `name` (NotFoundError when there is none)."""
    conn = store.conn
    row = find_campaign(conn, name)
    t = report_texts()[language]
    stats = campaign_stats(store, name)
    report = CampaignReport(
        name=row.name,
        subject=_subject(row.definition, language),
        status=t.get(f"status_{row.status.value}", row.status.value),
        language=language,
        frozen_at=_local(row.frozen_at),
        finished_at=_local(row.finished_at),
        stats=stats,
    )
    _audience(conn, row.id, report, t)
    report.outcomes = bars(
        [
            (t["outcome_sent"], stats.sent),
            (t["outcome_failed"], stats.failed),
            (t["outcome_deferred"], stats.deferred),
            (t["outcome_pending"], stats.pending),
            (t["outcome_unknown"], stats.unknown),
            (t["outcome_skipped"], stats.skipped),
        ],
        total=stats.recipients,
    )
    _timeline(conn, row.id, report, t)
    _bounces_and_unsubscribes(conn, row.id, report, t)
    counted = q.campaign_clicks(conn, row.id)
    if counted is not None:
        report.links = bars(
            [(link.url, link.clicks) for link in counted.links],
            notes=[f"{link.unique_clicks} {t['unique_short']}" for link in counted.links],
        )
        report.early = counted.early
        report.purged = counted.purged_at is not None
    _compare(store, row.id, report, t)
    return report


def _audience(conn: sqlite3.Connection, campaign_id: int, report: CampaignReport, t: Any) -> None:
    total = report.stats.recipients
    kinds: dict[str, list[tuple[str, int]]] = {}
    for kind, _slug, list_name, count in q.audience_by_list(conn, campaign_id):
        kinds.setdefault(kind, []).append((list_name, count))
    report.by_list = {kind: bars(rows, total=total) for kind, rows in kinds.items()}
    none = q.recipients_in_no_list(conn, campaign_id)
    if none:
        report.by_list[t["no_list"]] = bars([(t["no_list_rows"], none)], total=total)
    names = {"fi": "suomi", "en": "English", "sv": "svenska", "se": "davvisámegiella"}
    report.by_language = bars(
        [(names.get(lang, lang), n) for lang, n in q.audience_by_language(conn, campaign_id)],
        total=total,
    )


def _timeline(conn: sqlite3.Connection, campaign_id: int, report: CampaignReport, t: Any) -> None:
    found = q.sent_span(conn, campaign_id)
    if found is None:
        return
    earliest, latest, sent = from_db(found[0]), from_db(found[1]), found[2]
    span = (latest - earliest).total_seconds()
    # Buckets that give at most ~40 columns: 10 s, a minute, … an hour, 6 hours, a day.
    size, unit = next(((n, u) for n, u in _BUCKETS if span / n <= 40), _BUCKETS[-1])
    offset = int(_local_offset(earliest))  # buckets start at whole local minutes, hours, days
    first = (int(earliest.timestamp()) + offset) // size * size - offset
    start = datetime.fromtimestamp(first, timezone.utc)
    counts = q.sent_per_bucket(conn, campaign_id, first, size)
    buckets = max(counts) + 1
    label_format = "%H:%M:%S" if size < 60 else "%H:%M" if size < 86400 else "%d.%m."
    report.timeline = columns(
        [
            (_local_dt(start + timedelta(seconds=i * size), label_format), counts.get(i, 0))
            for i in range(buckets)
        ]
    )
    peak = max(counts.values())
    report.timeline_note = t["timeline_note"].format(
        first=_local_dt(earliest, "%Y-%m-%d %H:%M"),
        last=_local_dt(latest, "%Y-%m-%d %H:%M"),
        unit=t[f"unit_{unit}"],
        peak=peak,
        count=sent,
    )


def _local_offset(moment: datetime) -> float:
    from zoneinfo import ZoneInfo

    from mailer.newsletter.spec import LOCAL_ZONE

    delta = moment.astimezone(ZoneInfo(LOCAL_ZONE)).utcoffset()
    return delta.total_seconds() if delta else 0.0


def _local_dt(moment: datetime, fmt: str) -> str:
    from zoneinfo import ZoneInfo

    from mailer.newsletter.spec import LOCAL_ZONE

    return moment.astimezone(ZoneInfo(LOCAL_ZONE)).strftime(fmt)


def bounce_reason(detail: str) -> str:
    """A failed delivery's reason for grouping: its enhanced status code, else the reply code."""
    found = _STATUS_CODE.search(detail)
    if found:
        return found.group(1)
    reply = _REPLY_CODE.match(detail)
    if reply:
        return reply.group(1)
    return " ".join(detail.split())[:60] or "?"


def _bounces_and_unsubscribes(
    conn: sqlite3.Connection, campaign_id: int, report: CampaignReport, t: Any
) -> None:
    # Bounce records (a 5xx at send, a returned DSN, a complaint), then failures without one.
    reasons: Counter[str] = Counter()
    for kind, code, n in campaign_reasons(conn, campaign_id):
        label = t.get(f"kind_{kind}", kind) if kind == "complaint" or not code else code
        reasons[label if kind != "soft" else f"{label} ({t.get('kind_soft', kind)})"] += n
    reasons.update(bounce_reason(d) for d in q.failure_details(conn, campaign_id))
    described = [(f"{code} {t.get('code_' + code.split(' ')[0].replace('.', '_'), '')}".strip(), n)
                 for code, n in reasons.most_common()]  # fmt: skip
    report.bounces = bars(described, total=report.stats.sent + report.stats.failed or None)
    events = q.event_counts(conn, campaign_id)
    sources = [
        (t.get(f"source_{source}", source), n)
        for action, source, n in events
        if action == "unsubscribe"
    ]
    report.unsubscribes = bars(sources, total=report.stats.sent or None)
    done = sum(n for action, _s, n in events if action == "unsubscribe")
    report.undone = max(0, done - report.stats.unsubscribed)


def _rates(stats: Stats) -> tuple[float | None, float | None, float | None]:
    if not stats.sent:
        return None, None, None
    attempted = stats.sent + stats.failed
    bounce = stats.bounced / attempted if attempted else None  # hard: at send or returned
    clicks = None if stats.unique_clicks is None else stats.unique_clicks / stats.sent
    return bounce, stats.unsubscribed / stats.sent, clicks


def _compare(store: Store, campaign_id: int, report: CampaignReport, t: Any) -> None:
    from mailer.store import campaigns as q_campaigns

    ids = [campaign_id, *q.earlier_campaigns(store.conn, campaign_id, PREVIOUS)]
    rows: list[Comparison] = []
    for cid in ids:
        row = q_campaigns.get_campaign(store.conn, cid)
        if row is None:
            continue
        stats = report.stats if cid == campaign_id else campaign_stats(store, row.name)
        bounce, unsub, click = _rates(stats)
        rows.append(
            Comparison(
                row.name,
                _local(row.frozen_at, "%Y-%m-%d"),
                stats.sent,
                bounce,
                unsub,
                click,
                current=cid == campaign_id,
            )  # fmt: skip
        )
    rows.reverse()  # oldest first, this campaign last
    report.comparison = rows
    for key, pick in (
        ("sent", lambda c: c.sent),
        ("bounce_rate", lambda c: c.bounce_rate),
        ("unsubscribe_rate", lambda c: c.unsubscribe_rate),
        ("click_rate", lambda c: c.click_rate),
    ):
        values = [pick(c) for c in rows]
        texts = [str(v) if key == "sent" else percent(v) for v in values]
        report.compare_bars[key] = bars(
            [(c.name, v or 0) for c, v in zip(rows, values, strict=True)],
            texts=texts,
            highlight=[c.current for c in rows],
        )


def render_report(report: CampaignReport, *, generated: str) -> str:
    """The report as one HTML document (inline CSS and SVG; nothing to fetch)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mailer.engagement", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html").render(
        r=report, t=report_texts()[report.language], generated=generated, percent=percent
    )


def report_language(requested: str | None, default_language: str) -> str:
    """The report's language: the one asked for, else the default language when the report
    has it, else English."""
    from mailer.errors import InputError

    if requested is not None:
        if requested not in REPORT_LANGUAGES:
            raise InputError(f"--lang must be one of {', '.join(REPORT_LANGUAGES)}")
        return requested
    return default_language if default_language in REPORT_LANGUAGES else "en"


def write_report(
    store: Store, name: str, out: Path, *, language: str, now: datetime
) -> CampaignReport:
    """Write the report of campaign `name` to `out` (a temporary file, then a rename)."""
    from mailer.errors import InputError

    report = build_report(store, name, language=language)
    html = render_report(report, generated=_local_dt(now, "%Y-%m-%d %H:%M"))
    if out.is_dir():
        raise InputError(f"{out} is a folder; give a file name such as {out / (name + '.html')}")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"no folder {folder} for the report")
    handle, temporary = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(html)
        os.replace(temporary, out)  # replaces a link placed at `out`, never writes through it
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return report
