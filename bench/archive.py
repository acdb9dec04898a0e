"""The archive's costs: processing a phone photo, and serving a published issue under load.

    python bench/archive.py [--pictures 5] [--requests 4000] [--clients 50]

1. A 4000×3000 JPEG with EXIF orientation and GPS data (what a phone writes) goes through
   `mailer.newsletter.images.process_image` (check, turn upright, scale to 1200 px, strip,
   re-encode); the baseline in the same run is Pillow decoding the same file at full size
   and nothing else.
2. In a workspace made by `mailer init`, an archived campaign with that photo is created and
   frozen (sending started), and `mailer serve` runs on loopback. 50 clients on keep-alive
   connections then GET `/healthz` (the baseline: server and framework alone), then
   `/archive/{name}` (the public copy, rendered once and cached per campaign and language;
   each request still asks the database whether the issue is public), `/archive/` and the
   picture under `/m/`. Prints requests/s, p50/p99 and ratios against /healthz.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serve_load import SECRET, free_port, load, show  # noqa: E402

from tests.archive_helpers import archived_campaign, phone_photo  # noqa: E402

NAME = "uutiskirje-2018-11"


def pictures(count: int) -> tuple[float, float, int]:
    """Median seconds per picture: full processing, and a bare full-size decode."""
    from PIL import Image

    from mailer.newsletter.images import process_image

    raw = phone_photo(4000, 3000)
    process, decode = [], []
    size = 0
    for _ in range(count):
        t0 = time.perf_counter()
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
        decode.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        stored = process_image(raw)
        process.append(time.perf_counter() - t0)
        size = len(stored.data)
    print(
        f"photo 4000x3000 JPEG, {len(raw) / 1e6:.1f} MB -> 1200x1600, {size / 1e3:.0f} kB"
        f" ({count} runs, medians)"
    )
    return statistics.median(process), statistics.median(decode), size


def published_workspace(tmp: Path, env: dict[str, str]) -> Path:
    """A workspace with the archived campaign created and frozen (its sending started)."""
    ws = tmp / "ws"
    subprocess.run(
        [sys.executable, "-m", "mailer", "init", str(ws)], env=env, check=True, capture_output=True
    )
    for args in (
        ["contacts", "add", "lukija@example.org", "--list", "cluster:arctic-power"],
        ["campaign", "create", str(archived_campaign(ws))],
    ):
        subprocess.run(
            [sys.executable, "-m", "mailer", *args],
            env=env,
            check=True,
            cwd=ws,
            capture_output=True,
        )
    from mailer.config import load_config
    from mailer.sending.content import NewsletterContent
    from mailer.sending.freeze import freeze_campaign
    from mailer.store import Store

    config = load_config(ws / "mailer.toml", env)
    with Store(config.database_path) as store:
        freeze_campaign(store, config, NAME, content=NewsletterContent())
    return ws


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, resp.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=5)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()

    process, decode, _ = pictures(args.pictures)
    print(f"process_image: {process * 1000:7.0f} ms per picture")
    print(f"baseline decode at full size: {decode * 1000:7.0f} ms per picture")
    print(f"ratio process / decode: {process / decode:.2f}")

    tmp = Path(tempfile.mkdtemp(prefix="archive-bench-"))
    env = dict(os.environ, MAILER_SECRET=SECRET, MAILER_CONFIG=str(tmp / "ws" / "mailer.toml"))
    ws = published_workspace(tmp, env)
    port = free_port()
    log = (tmp / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "mailer", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=ws,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(port, "/healthz")[0] == 200:
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("mailer serve did not start") from None
                time.sleep(0.1)
        status, page = get(port, f"/archive/{NAME}")  # the first request renders
        assert status == 200, status
        picture = page.split(b'src="/m/', 1)[1].split(b'"', 1)[0].decode()
        assert get(port, "/archive/")[0] == 200
        print(
            f"mailer serve on 127.0.0.1:{port}; {args.requests} requests per run,"
            f" {args.clients} clients, {os.cpu_count()} CPUs"
        )
        n = args.requests
        health = load(port, [("GET", "/healthz", b"", {})] * n, args.clients)
        show("baseline GET /healthz", health)
        issue = load(port, [("GET", f"/archive/{NAME}", b"", {})] * n, args.clients)
        show(f"GET /archive/{NAME}", issue, f"  {len(page) / 1e3:.1f} kB")
        index = load(port, [("GET", "/archive/", b"", {})] * n, args.clients)
        show("GET /archive/", index)
        image = load(port, [("GET", f"/m/{picture}", b"", {})] * n, args.clients)
        show("GET /m/{picture}", image)
        print(f"ratio /archive/{{name}} / healthz: {issue['rps'] / health['rps']:.2f} (req/s)")
        print(f"ratio /archive/ / healthz: {index['rps'] / health['rps']:.2f} (req/s)")
        print(f"ratio /m/ / healthz: {image['rps'] / health['rps']:.2f} (req/s)")
        errors = health["errors"] + issue["errors"] + index["errors"] + image["errors"]
        return 0 if errors == 0 else 1
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
