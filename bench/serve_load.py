"""Load on `mailer serve`: 2,000 one-click POSTs and 5,000 clicks from 50 clients, during a send.

    python bench/serve_load.py [--requests 2000] [--clicks 5000] [--clients 50] [--writer-rate 800]
                               [--signups 1000]

Loopback only. Runs in one temporary workspace made by `mailer init`:
  1. baseline: GET /healthz (the server and framework alone, no database);
  2. one-click POSTs on an idle database;
  3. one-click POSTs while a concurrent writer process simulates `mailer send`'s database
     load (per message: claim the delivery in one transaction, read the contact's status and
     mark it sent in another, paced at --writer-rate messages/s, the rate of a fast SMTP relay).
  4. GET /l/{token} (counted links: a 302 each, the count written in batches) during a send,
     from 50 clients over the campaign's links and deliveries.
  5. signup form posts (--signups, from the 50 clients through a trusted proxy's
     X-Forwarded-For, four posts per address so the per-address limit refuses some) mixed
     with --requests one-click POSTs; then the outbox drains into a local SMTP capture.
     Every confirmation mail is accounted for: sent, or refused by the per-address limit.
Prints requests/s, p50/p99 latency, errors, unsubscribes and clicks recorded, and ratios.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

SECRET = "bench-secret-0123456789abcdefghijklmnop"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailer.store import Store  # noqa: E402
from mailer.store.contacts import insert_contact  # noqa: E402
from mailer.timeutil import now_utc, to_db  # noqa: E402
from mailer.tokens import make_form_stamp, make_link_token, make_token  # noqa: E402


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def populate(db: Path, contacts: int, deliveries: int) -> tuple[int, list[int], int]:
    """Return (campaign id, the ids of `contacts` fresh contacts, the first delivery id)."""
    store = Store(db)
    now = now_utc()
    with store.transaction() as conn:
        campaign = conn.execute(
            "INSERT INTO campaigns (name, source_path, definition, segment, status, created_at)"
            " VALUES ('bench', 'bench.toml', '{\"subject\": \"Bench\"}', 'all', 'sending', ?)",
            (to_db(now),),
        ).lastrowid
        assert campaign is not None
        ids = []
        for i in range(contacts + deliveries):
            email = f"reader{i}@example.com"
            ids.append(
                insert_contact(
                    conn,
                    email=email,
                    email_ascii=email,
                    email_key=email,
                    name=f"Reader {i}",
                    organization="",
                    language=("fi", "en", "sv", "se")[i % 4],
                    attributes={},
                    consent_source="bench",
                    now=now,
                )
            )
        # The simulated send works through its own audience (not the clicking readers).
        first = None
        for cid in ids[contacts:]:
            did = conn.execute(
                "INSERT INTO deliveries (campaign_id, contact_id, language, updated_at)"
                " VALUES (?, ?, 'fi', ?)",
                (campaign, cid, to_db(now)),
            ).lastrowid
            first = first or did
    store.close()
    return int(campaign), ids[:contacts], int(first or 0)


def populate_readers(db: Path, count: int) -> list[int]:
    """`count` more contacts who click (each gets a sent delivery in click_setup)."""
    store = Store(db)
    now = now_utc()
    with store.transaction() as conn:
        ids = [
            insert_contact(
                conn,
                email=f"clicker{i}@example.com",
                email_ascii=f"clicker{i}@example.com",
                email_key=f"clicker{i}@example.com",
                name="",
                organization="",
                language="fi",
                attributes={},
                consent_source="bench",
                now=now,
            )
            for i in range(count)
        ]
    store.close()
    return ids


def writer(db: str, first: int, rate: float, stop, done) -> None:
    """Simulate a send's database traffic until `stop` is set (runs in its own process)."""
    store = Store(db, migrate=False)
    interval = 1.0 / rate if rate > 0 else 0.0
    start = time.perf_counter()
    n = 0
    while not stop.is_set():
        did = first + n
        now = to_db(now_utc())
        with store.transaction() as conn:
            conn.execute(
                "UPDATE deliveries SET status = 'sending', attempts = attempts + 1,"
                " owner = 'bench', updated_at = ? WHERE id = ? AND status = 'pending'",
                (now, did),
            )
        with store.transaction() as conn:
            conn.execute(
                "SELECT c.status FROM contacts c JOIN deliveries d ON d.contact_id = c.id"
                " WHERE d.id = ?",
                (did,),
            ).fetchone()
            conn.execute(
                "UPDATE deliveries SET status = 'sent', sent_at = ?, updated_at = ?,"
                " message_id = ? WHERE id = ? AND status = 'sending'",
                (now, now, f"<{did}@bench.example>", did),
            )
        n += 1
        if interval:
            delay = start + n * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    done.value = n / (time.perf_counter() - start)
    store.close()


def load(
    port: int, requests: list[tuple[str, str, bytes, dict]], clients: int, expect: int = 200
) -> dict:
    """Send `requests` from `clients` threads, each on its own keep-alive connection."""
    latencies: list[float] = []
    by_kind: dict[str, list[float]] = {}
    errors: list[str] = []
    lock = threading.Lock()
    cursor = iter(range(len(requests)))

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                break
            method, path, body, headers = requests[i]
            t0 = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == expect
                status = str(resp.status)
            except (OSError, http.client.HTTPException) as exc:
                ok, status = False, type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                by_kind.setdefault(path.split("/")[1].split("?")[0], []).append(elapsed)
                if not ok:
                    errors.append(status)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    wall = time.perf_counter() - t0
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "wall_s": wall,
        "p99_by_kind_ms": {k: _p99(v) * 1000 for k, v in by_kind.items()},
    }


def _p99(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.99))]


def signup_posts(count: int, clients: int) -> list[tuple[str, str, bytes, dict]]:
    """Form posts as people send them: an aged form stamp, four posts per address."""
    from datetime import timedelta
    from urllib.parse import urlencode

    stamp = make_form_stamp(SECRET.encode(), now_utc() - timedelta(seconds=10))
    out = []
    for i in range(count):
        fields = [
            ("email", f"signup{i // 4}@example.org"),
            ("language", "fi"),
            ("list", "company:sustainable-tourism"),
            ("consent", "yes"),
            ("website", ""),
            ("stamp", stamp),
        ]
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Forwarded-For": f"198.51.100.{i % clients + 1}",
        }
        out.append(("POST", "/subscribe", urlencode(fields).encode(), headers))
    return out


def mixed(a: list, b: list) -> list:
    """Interleave two request lists evenly."""
    out, step = [], len(b) / max(len(a), 1)
    j = 0.0
    for item in a:
        nxt = j + step
        out += b[int(j) : int(nxt)]
        out.append(item)
        j = nxt
    out += b[int(j) :]
    return out


def outbox_state(db: Path) -> tuple[dict[str, int], int]:
    """(outbox rows by status, address-limit refusals)."""
    store = Store(db, migrate=False)
    rows = dict(store.conn.execute("SELECT status, count(*) FROM outbox GROUP BY status"))
    refused = store.conn.execute(
        "SELECT coalesce(sum(count), 0) FROM signup_refusals WHERE reason = 'address-limit'"
    ).fetchone()[0]
    store.close()
    return rows, int(refused)


SIGNUP_CONFIG = """
[signup]
lists = ["company:*"]
consent_version = "bench"
per_address_per_day = 3
per_client_per_hour = {per_client}
"""


def one_clicks(campaign: int, ids: list[int]) -> list[tuple[str, str, bytes, dict]]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    body = b"List-Unsubscribe=One-Click"
    return [
        ("POST", f"/u/{make_token(SECRET.encode(), campaign, cid)}", body, headers) for cid in ids
    ]


def recorded(db: Path, ids: list[int]) -> tuple[int, int]:
    """Return (contacts now unsubscribed, one-click events) among `ids`."""
    store = Store(db, migrate=False)
    lo, hi = min(ids), max(ids)
    unsub = store.conn.execute(
        "SELECT count(*) FROM contacts WHERE id BETWEEN ? AND ? AND status = 'unsubscribed'",
        (lo, hi),
    ).fetchone()[0]
    events = store.conn.execute(
        "SELECT count(*) FROM unsubscribe_events WHERE contact_id BETWEEN ? AND ?"
        " AND action = 'unsubscribe' AND source = 'one-click'",
        (lo, hi),
    ).fetchone()[0]
    store.close()
    return int(unsub), int(events)


def click_setup(db: Path, campaign: int, readers: list[int], links: int) -> list[str]:
    """Counted links for the campaign and one sent delivery per reader; their /l/ paths."""
    store = Store(db)
    sent = to_db(now_utc() - timedelta(hours=1))  # past the scanner window, within keep_days
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO click_campaigns (campaign_id, hash_key, tracked_at) VALUES (?, ?, ?)",
            (campaign, os.urandom(32), sent),
        )
        link_ids = [
            conn.execute(
                "INSERT INTO campaign_links (campaign_id, position, url) VALUES (?, ?, ?)",
                (campaign, n, f"https://www.lapinliitto.fi/uutinen-{n}/"),
            ).lastrowid
            for n in range(links)
        ]
        deliveries = [
            conn.execute(
                "INSERT INTO deliveries (campaign_id, contact_id, language, status, updated_at,"
                " sent_at) VALUES (?, ?, 'fi', 'sent', ?, ?)",
                (campaign, cid, sent, sent),
            ).lastrowid
            for cid in readers
        ]
    store.close()
    secret = SECRET.encode()
    # Each reader follows two different links: 2 clicks and 2 unique (link, reader) pairs.
    pairs = [(link_ids[i % links], deliveries[i // 2]) for i in range(2 * len(deliveries))]
    return [f"/l/{make_link_token(secret, campaign, lid, did)}" for lid, did in pairs]


def clicks_counted(db: Path, campaign: int, expected: int, timeout: float = 30) -> tuple[int, int]:
    """(clicks, unique clicks) once all `expected` are written (or the timeout passed)."""
    store = Store(db, migrate=False)
    deadline = time.monotonic() + timeout
    while True:
        clicks, unique = store.conn.execute(
            "SELECT coalesce(sum(clicks), 0), coalesce(sum(unique_clicks), 0)"
            " FROM campaign_links WHERE campaign_id = ?",
            (campaign,),
        ).fetchone()
        if clicks >= expected or time.monotonic() > deadline:
            store.close()
            return int(clicks), int(unique)
        time.sleep(0.2)


def show(name: str, r: dict, extra: str = "") -> None:
    kinds = f" {r['error_kinds']}" if r["errors"] else ""
    print(
        f"{name:<34} {r['requests']:>5} req  {r['rps']:7.0f} req/s  p50 {r['p50_ms']:6.1f} ms"
        f"  p99 {r['p99_ms']:6.1f} ms  errors {r['errors']}{kinds}"
        f"{extra}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clicks", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--writer-rate", type=float, default=800.0, help="messages/s; 0 = flat out")
    parser.add_argument("--signups", type=int, default=1000, help="signup form posts (phase 4)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="serve-load-"))
    env = dict(os.environ, MAILER_SECRET=SECRET, MAILER_CONFIG=str(tmp / "ws" / "mailer.toml"))
    subprocess.run(
        [sys.executable, "-m", "mailer", "init", str(tmp / "ws")],
        env=env,
        check=True,
        capture_output=True,
    )
    db = tmp / "ws" / "mailer.db"
    campaign, ids, first_delivery = populate(db, 3 * args.requests, 200_000)
    idle_ids, busy_ids = ids[: args.requests], ids[args.requests : 2 * args.requests]
    mixed_ids = ids[2 * args.requests :]

    from mailer.capture import CaptureServer

    capture = CaptureServer(tmp / "maildir").start()
    config_path = tmp / "ws" / "mailer.toml"
    text = config_path.read_text(encoding="utf-8")
    text = text.replace(
        'host = "localhost"\nport = 587', f'host = "127.0.0.1"\nport = {capture.port}'
    )
    text = text.replace('security = "starttls"', 'security = "none"')
    per_client = -(-args.signups // args.clients)  # every client's posts fit in its hour
    config_path.write_text(text + SIGNUP_CONFIG.format(per_client=per_client), encoding="utf-8")
    with Store(db) as store:
        store.conn.execute(
            "INSERT INTO lists (kind, slug, name, created_at)"
            " VALUES ('company', 'sustainable-tourism', 'Kestävä matkailu', ?)",
            (to_db(now_utc()),),
        )
    click_readers = populate_readers(db, args.clicks // 2)
    click_paths = click_setup(db, campaign, click_readers, links=6)

    port = free_port()
    log = (tmp / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "mailer", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp / "ws",
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("mailer serve did not start") from None
                time.sleep(0.1)

        print(
            f"mailer serve on 127.0.0.1:{port}; {args.requests} requests, {args.clients} clients,"
            f" {os.cpu_count()} CPUs"
        )
        health = load(port, [("GET", "/healthz", b"", {})] * args.requests, args.clients)
        show("baseline GET /healthz", health)

        idle = load(port, one_clicks(campaign, idle_ids), args.clients)
        unsub, events = recorded(db, idle_ids)
        show("one-click POST, idle database", idle, f"  recorded {events}/{len(idle_ids)}")

        stop, rate = multiprocessing.Event(), multiprocessing.Value("d", 0.0)
        proc = multiprocessing.Process(
            target=writer, args=(str(db), first_delivery, args.writer_rate, stop, rate)
        )
        proc.start()
        time.sleep(1.0)  # the send is under way
        busy = load(port, one_clicks(campaign, busy_ids), args.clients)
        stop.set()
        proc.join(timeout=30)
        unsub_b, events_b = recorded(db, busy_ids)
        show("one-click POST, during a send", busy, f"  recorded {events_b}/{len(busy_ids)}")
        print(f"simulated send wrote {rate.value:.0f} messages/s (2 transactions each) meanwhile")
        print(
            f"ratio during-send / idle: {busy['rps'] / idle['rps']:.2f} (req/s), "
            f"p99 {busy['p99_ms'] / idle['p99_ms']:.2f}x"
        )
        print(f"ratio one-click / healthz: {idle['rps'] / health['rps']:.2f} (req/s)")

        stop, rate = multiprocessing.Event(), multiprocessing.Value("d", 0.0)
        proc = multiprocessing.Process(
            target=writer, args=(str(db), first_delivery + 100_000, args.writer_rate, stop, rate)
        )
        proc.start()
        time.sleep(1.0)
        clicks = load(port, [("GET", p, b"", {}) for p in click_paths], args.clients, expect=302)
        stop.set()
        proc.join(timeout=30)
        counted, unique = clicks_counted(db, campaign, len(click_paths))
        show(
            "GET /l/ click, during a send",
            clicks,
            f"  counted {counted}/{len(click_paths)}, unique per link {unique}/{len(click_paths)}",
        )
        print(f"simulated send wrote {rate.value:.0f} messages/s meanwhile")
        print(
            f"p99 click / p99 one-click (both during a send): "
            f"{clicks['p99_ms'] / busy['p99_ms']:.2f}x; req/s {clicks['rps'] / busy['rps']:.2f}x"
        )
        ok = (
            idle["errors"] == busy["errors"] == clicks["errors"] == 0
            and unsub == events == len(idle_ids)
            and unsub_b == events_b == len(busy_ids)
            and counted == len(click_paths)
            and unique == len(click_paths)  # per link: each reader follows two links
        )
        print(
            "goal (0 errors, every unsubscribe recorded, every click counted):",
            "met" if ok else "NOT met",
        )
        signup_ok = phase_signups(args, port, db, campaign, mixed_ids, capture, idle)
        return 0 if ok and signup_ok else 1
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        capture.stop()


def phase_signups(args, port, db, campaign, ids, capture, baseline) -> bool:
    """Signup posts mixed with one-clicks; then wait for the outbox to drain."""
    import mailbox

    if not args.signups:
        return True
    requests = mixed(signup_posts(args.signups, args.clients), one_clicks(campaign, ids))
    both = load(port, requests, args.clients)
    unsub, events = recorded(db, ids)
    show(f"{args.signups} signups + one-clicks mixed", both, f"  recorded {events}/{len(ids)}")
    kinds = both["p99_by_kind_ms"]
    print(
        f"p99 one-click {kinds.get('u', 0):.1f} ms (one-clicks alone, idle database:"
        f" {baseline['p99_ms']:.1f} ms, {kinds.get('u', 0) / baseline['p99_ms']:.2f}x)"
        f"  p99 signup post {kinds.get('subscribe', 0):.1f} ms"
    )
    started = time.monotonic()
    while True:
        rows, refused = outbox_state(db)
        open_ = rows.get("pending", 0) + rows.get("sending", 0) + rows.get("deferred", 0)
        if not open_ or time.monotonic() - started > 180:
            break
        time.sleep(0.2)
    drained = time.monotonic() - started
    captured = len(mailbox.Maildir(str(capture.handler.maildir), create=False))
    accounted = rows.get("sent", 0) + refused
    print(
        f"confirmation mails: {rows.get('sent', 0)} sent ({captured} captured), {refused} refused"
        f" by the per-address limit, {rows.get('failed', 0)} failed, {open_} still queued;"
        f" accounted {accounted}/{args.signups}; outbox drained {drained:.1f} s after the load"
    )
    ok = (
        both["errors"] == 0
        and unsub == events == len(ids)
        and accounted == args.signups
        and captured == rows.get("sent", 0)
    )
    print("goal (0 errors, every mail accounted for):", "met" if ok else "NOT met")
    return ok


if __name__ == "__main__":
    sys.exit(main())
