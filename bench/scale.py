"""Benchmark: the whole tool at scale — 1,000,000 contacts in 60 lists by default.

Run:  python bench/scale.py [--contacts 1000000] [--send] [--keep DIR] [--sink-kind minimal]

In one workspace made by `mailer init`, each step as the operator runs it (a `mailer`
subprocess; wall and CPU seconds, peak RSS), with baselines measured in the same run:

  1. import: `mailer contacts import` of N contacts (60 lists: 6 clusters, 20 municipalities,
     34 company lists; ~2.3 memberships a contact) against a bare email-validator loop over
     the same addresses;
  2. `segments count` of a three-list expression (core function, median of 9; and the CLI);
  3. `campaign create` and the freeze of a campaign to every contact (`segment = "all"`):
     the core `freeze_campaign()` timed alone, and the database's size before and after;
  4. `stats` of the frozen campaign (CLI and core);
  5. with --send: `mailer send` of the whole campaign to a sink process (throughput, peak RSS),
     then `stats` again over a fully sent campaign;
  6. `mailer report` of the campaign and `mailer bounces import` of 10,000 returned messages
     (DSNs for sent deliveries: meaningful after --send).

`--keep DIR` keeps (or reuses) the workspace in DIR, so that the 1M import is paid once.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_contacts import CLUSTERS, FIRST, LAST, MUNICIPALITIES  # noqa: E402

SECRET = "bench-secret-0123456789abcdefghijklmnop"
COMPANIES = [
    "Circular Economy",
    "Sustainable Tourism",
    "Refining of Natural Resources",
    "New Emerging Fields",
    *(f"Toimiala {n:02d}" for n in range(1, 31)),
]
EXPRESSION = (
    "cluster:arctic-power and (municipality:rovaniemi or municipality:kemi) and not company:*"
)
CAMPAIGN = "scale"


# --- data ---------------------------------------------------------------------------------


def generate(path: Path, count: int, seed: int = 2026) -> list[str]:
    """Write `count` contacts in 60 lists; return their addresses."""
    rnd = random.Random(seed)
    emails = []
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, delimiter=";", lineterminator="\r\n")
        writer.writerow(["Sähköposti", "Nimi", "Kieli", "Klusterit", "Kunta", "Yritys"])
        for i in range(count):
            email = f"person{i}.{rnd.randrange(10**6)}@org{i % 997}.example.com"
            emails.append(email)
            companies = rnd.sample(COMPANIES, rnd.choice([0, 1, 1, 1, 2]))
            writer.writerow(
                [
                    email,
                    f"{rnd.choice(FIRST)} {rnd.choice(LAST)}",
                    rnd.choice(["fi", "fi", "fi", "sv", "se", "en"]),
                    "|".join(rnd.sample(CLUSTERS, rnd.choice([0, 1, 1, 2]))),
                    rnd.choice(MUNICIPALITIES),
                    "|".join(companies),
                ]
            )
    return emails


def write_campaign(ws: Path) -> Path:
    """A two-language campaign of six news items to everybody."""
    news = ws / "campaign" / "news"
    news.mkdir(parents=True, exist_ok=True)
    for n in range(6):
        for lang in ("fi", "en"):
            (news / f"item{n}.{lang}.md").write_text(
                f'+++\ntitle = "Uutinen {n} ({lang})"\ndate = 2026-11-06\nlang = "{lang}"\n'
                f'summary = "Arctic Smartness {n}"\nlink = "https://www.lapinliitto.fi/"\n+++\n'
                + "Lapin älykkään erikoistumisen painopisteet julkaistiin. " * 20
                + "\n",
                encoding="utf-8",
            )
    items = ", ".join(f'"news/item{n}.{lang}.md"' for n in range(6) for lang in ("fi", "en"))
    path = ws / "campaign" / f"{CAMPAIGN}.toml"
    path.write_text(
        f'name = "{CAMPAIGN}"\n'
        'subject = { fi = "Arctic Smartness -uutiskirje", en = "Arctic Smartness newsletter" }\n'
        'segment = "all"\n'
        f"items = [{items}]\n",
        encoding="utf-8",
    )
    return path


# --- running mailer -----------------------------------------------------------------------


def env_for(ws: Path) -> dict[str, str]:
    return {**os.environ, "MAILER_CONFIG": str(ws / "mailer.toml"), "MAILER_SECRET": SECRET}


_WRAPPER = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "t = time.perf_counter() - t\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "sys.stderr.write(p.stderr)\n"
    "sys.stdout.write(p.stdout)\n"
    "print('@@', t, u.ru_utime + u.ru_stime, u.ru_maxrss, p.returncode)\n"
)


class Run:
    """One `mailer` subprocess: wall and CPU seconds, peak RSS (MB), output."""

    def __init__(self, ws: Path, *args: str, check: bool = True) -> None:
        res = subprocess.run(
            [sys.executable, "-c", _WRAPPER, sys.executable, "-m", "mailer", *args],
            cwd=ws,
            env=env_for(ws),
            capture_output=True,
            text=True,
        )
        out, _, tail = res.stdout.rpartition("@@ ")
        wall, cpu, rss, code = tail.split()
        self.wall, self.cpu, self.rss = float(wall), float(cpu), int(rss) / 1024
        self.code, self.stdout, self.stderr = int(code), out, res.stderr
        if check and self.code != 0:
            raise SystemExit(f"mailer {' '.join(args)} failed: {self.stderr.strip()[-2000:]}")

    def __str__(self) -> str:
        return f"{self.wall:8.2f} s wall {self.cpu:8.2f} s CPU, peak RSS {self.rss:5.0f} MB"


def db_size(ws: Path) -> float:
    """Database file plus WAL, in MB."""
    return sum(p.stat().st_size for p in ws.glob("mailer.db*")) / 1e6


def bare_validation(emails: list[str]) -> tuple[float, float]:
    from email_validator import validate_email

    cpu, start = time.process_time(), time.perf_counter()
    for email in emails:
        validate_email(email, check_deliverability=False)
    return time.perf_counter() - start, time.process_time() - cpu


def in_process(ws: Path):  # type: ignore[no-untyped-def]
    from mailer.config import load_config
    from mailer.store import Store

    config = load_config(ws / "mailer.toml", {"MAILER_SECRET": SECRET})
    return config, Store(config.database_path)


def median_ms(fn, repeat: int = 9) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, result


# --- the steps ------------------------------------------------------------------------------


def step_import(ws: Path, n: int) -> None:
    csv_path = ws / "contacts.csv"
    emails = generate(csv_path, n)
    print(f"[import] {n} contacts, {csv_path.stat().st_size / 1e6:.0f} MB CSV")
    base_wall, base_cpu = bare_validation(emails)
    del emails
    run = Run(ws, "contacts", "import", str(csv_path))
    print(f"  bare email-validator loop   {base_wall:8.2f} s wall {base_cpu:8.2f} s CPU")
    print(f"  mailer contacts import      {run}")
    print(
        f"  ratio {run.wall / base_wall:.2f}x wall, {run.cpu / base_cpu:.2f}x CPU;"
        f" {run.stdout.strip().splitlines()[-1]}"
    )
    print(f"  database: {db_size(ws):.0f} MB")


def step_segments(ws: Path) -> None:
    from mailer.audience.segments import count_segment

    config, store = in_process(ws)
    with store:
        cpu = time.process_time()
        ms, count = median_ms(lambda: count_segment(store, EXPRESSION, config.list_kinds))
        cpu_ms = (time.process_time() - cpu) / 9 * 1000
    cli = Run(ws, "segments", "count", EXPRESSION)
    print(f"[segments count] '{EXPRESSION}' = {count}")
    print(
        f"  core count_segment()  {ms:7.1f} ms wall (median of 9), {cpu_ms:.1f} ms CPU (mean);"
        " goal < 250 ms"
    )
    print(f"  mailer segments count {cli.wall * 1000:7.1f} ms (process, with start-up)")


def step_freeze(ws: Path) -> None:
    from mailer.sending.content import NewsletterContent
    from mailer.sending.freeze import freeze_campaign

    created = Run(ws, "campaign", "create", str(write_campaign(ws)))
    before = db_size(ws)
    config, store = in_process(ws)
    with store:
        start, cpu = time.perf_counter(), time.process_time()
        count = freeze_campaign(store, config, CAMPAIGN, content=NewsletterContent())
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print(f"[freeze] campaign create: {created}")
    print(f"  freeze_campaign() to {count} recipients: {wall:.2f} s wall, {cpu:.2f} s CPU")
    print(f"  database {before:.0f} MB before, {db_size(ws):.0f} MB after")


def step_stats(ws: Path, label: str) -> None:
    from mailer.sending.campaigns import campaign_stats

    config, store = in_process(ws)
    with store:
        ms, _ = median_ms(lambda: campaign_stats(store, CAMPAIGN), repeat=5)
    cli = Run(ws, "stats", CAMPAIGN)
    print(
        f"[stats, {label}] core campaign_stats() {ms:.0f} ms; mailer stats {cli.wall * 1000:.0f} ms"
    )


def step_send(ws: Path, sink_kind: str) -> None:
    from send import Sink  # bench/send.py: the sink process

    sink = Sink(sink_kind)
    try:
        text = (ws / "mailer.toml").read_text(encoding="utf-8")
        text = text.replace('host = "localhost"', 'host = "127.0.0.1"')
        text = text.replace("port = 587", f"port = {sink.port}")
        text = text.replace('security = "starttls"', 'security = "none"')
        (ws / "mailer.toml").write_text(text, encoding="utf-8")
        run = Run(ws, "send", CAMPAIGN, "--yes")
    finally:
        received = sink.stop()
    summary = run.stderr.strip().splitlines()[-1]
    print(f"[send] to a {sink_kind} sink: {run}")
    print(f"  {summary}; the sink received {received}")


# --- report and returned mail -----------------------------------------------------------------


def step_report(ws: Path) -> None:
    """`mailer report NAME` over the campaign (its timeline, audience and outcomes)."""
    run = Run(ws, "report", CAMPAIGN, check=False)
    print(f"[report] exit {run.code}: {run}")


def returned_messages(folder: Path, ws: Path, count: int) -> Path:
    """`count` RFC 3464 delivery reports for sent deliveries of the campaign, one .eml each."""
    import sqlite3

    folder.mkdir(exist_ok=True)
    conn = sqlite3.connect(ws / "mailer.db")
    rows = conn.execute(
        "SELECT d.message_id, c.email FROM deliveries d JOIN contacts c ON c.id = d.contact_id"
        " WHERE d.message_id IS NOT NULL LIMIT ?",
        (count,),
    ).fetchall()
    conn.close()
    for n, (message_id, email) in enumerate(rows):
        (folder / f"{n:05d}.eml").write_text(
            "From: MAILER-DAEMON@mx.example.com\r\nTo: bounces@arcticsmartness.eu\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
            "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example.com\r\n\r\n"
            f"Final-Recipient: rfc822; {email}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n"
            "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            f"Message-ID: {message_id}\r\nTo: {email}\r\n\r\n--b--\r\n",
            encoding="utf-8",
        )
    return folder


def step_bounces(ws: Path, count: int = 10_000) -> None:
    """`mailer bounces import` of `count` returned messages (a folder of .eml files) for
    sent deliveries of the campaign: run it after --send."""
    folder = returned_messages(ws / "returned", ws, count)
    found = len(list(folder.glob("*.eml")))
    run = Run(ws, "bounces", "import", str(folder), check=False)
    print(f"[bounces import] {found} messages, exit {run.code}: {run}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--send", action="store_true", help="also send the campaign to a sink")
    parser.add_argument("--sink-kind", choices=("aiosmtpd", "minimal"), default="minimal")
    parser.add_argument("--keep", help="keep (or reuse) the workspace in this folder")
    args = parser.parse_args()

    ws = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mailer-scale-")) / "ws"
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs,"
        f" load average {os.getloadavg()[0]:.1f} at start; workspace {ws}"
    )
    if not (ws / "mailer.db").exists():
        subprocess.run([sys.executable, "-m", "mailer", "init", str(ws)], check=True)
        step_import(ws, args.contacts)
    step_segments(ws)
    if Run(ws, "campaign", "show", CAMPAIGN, check=False).code != 0:
        step_freeze(ws)
    step_stats(ws, "frozen")
    if args.send:
        step_send(ws, args.sink_kind)
        step_stats(ws, "sent")
    step_report(ws)
    step_bounces(ws)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"this script's own peak RSS {usage.ru_maxrss / 1024:.0f} MB;"
        f" load average {os.getloadavg()[0]:.1f} at the end"
    )


if __name__ == "__main__":
    main()
