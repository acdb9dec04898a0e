"""Benchmark: classifying returned mail vs the bare `email` parser, and `bounces import`.

    python bench/bounces.py [--messages N] [--rounds R]

Writes N returned messages (the corpus of tests/data/bounces, each filled in for its own
delivery of a campaign in a fresh workspace) into a Maildir, then measures in the same run
  A) the bare `email` parser reading every file (email.message_from_bytes),
  B) mailer.bounces.parse.parse reading the same files (what `bounces` does per message),
and prints messages per second and the ratio B/A (goal >= 0.5), then
  C) the end-to-end `bounces import` of the Maildir: one transaction per message, the
     delivery found, the rules applied through change_status, the records written.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import mailbox
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailer.bounces.parse import parse  # noqa: E402
from mailer.bounces.runs import import_paths  # noqa: E402
from mailer.config import load_config  # noqa: E402
from mailer.store import Store  # noqa: E402
from mailer.tokens import make_return_path_token, return_path_address  # noqa: E402
from mailer.workspace import init_workspace  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "bounces"
POLICY = email.policy.compat32
SECRET = "bench-secret-0123456789abcdef0123456789"


def _workspace(folder: Path, n: int):
    env = {"MAILER_SECRET": SECRET}
    init_workspace(folder, environ=env)
    path = folder / "mailer.toml"
    path.write_text(
        path.read_text(encoding="utf-8") + '\n[bounces]\naddress = "bounces@arcticsmartness.eu"\n',
        encoding="utf-8",
    )
    config = load_config(path, env)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with Store(config.database_path) as store, store.transaction() as conn:
        # Bench data straight into the tables: contacts, one sent campaign, its deliveries.
        conn.execute(
            "INSERT INTO campaigns (id, name, source_path, definition, segment, status,"
            " created_at) VALUES (1, 'bench', 'bench.toml', '{}', 'all', 'sent', ?)",
            (now,),
        )
        conn.executemany(
            "INSERT INTO contacts (id, email, email_ascii, email_key, language, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, 'fi', ?, ?)",
            [(i, _email(i), _email(i), _email(i), now, now) for i in range(1, n + 1)],
        )
        conn.executemany(
            "INSERT INTO deliveries (id, campaign_id, contact_id, language, status, message_id,"
            " updated_at, sent_at) VALUES (?, 1, ?, 'fi', 'sent', ?, ?, ?)",
            [(i, i, _message_id(i), now, now) for i in range(1, n + 1)],
        )
    return config


def _email(i: int) -> str:
    return f"lukija{i}@example.org"


def _message_id(i: int) -> str:
    return f"<bench.{i}@arcticsmartness.eu>"


def _maildir(folder: Path, n: int) -> Path:
    templates = [(p.stem, p.read_bytes()) for p in sorted(CORPUS.glob("*.eml"))]
    box = mailbox.Maildir(folder, create=True)
    date = format_datetime(datetime.now(timezone.utc))
    for i in range(1, n + 1):
        name, raw = templates[i % len(templates)]
        token = make_return_path_token(SECRET.encode(), i)
        headers = (
            f"From: Arctic Smartness <uutiset@arcticsmartness.eu>\nTo: {_email(i)}\n"
            f"Message-ID: {_message_id(i)}\nSubject: Uutiskirje\nFeedback-ID: bench:n:x"
        )
        values = {
            "%%EMAIL%%": _email(i),
            "%%LOCAL%%": f"lukija{i}",
            "%%RETURN_PATH%%": return_path_address("bounces@arcticsmartness.eu", token),
            "%%FORGED_RETURN_PATH%%": "bounces+aaaaaaaaaaaaaaaaaaaaaaaa@arcticsmartness.eu",
            "%%HEADERS%%": headers,
            "%%MESSAGE%%": headers + "\n\nHei!\n",
            "%%REDACTED_MESSAGE%%": headers.replace(_email(i), "redacted@redacted") + "\n\nHei!\n",
            "%%MESSAGE_ID%%": _message_id(i),
            "%%DATE%%": date,
        }
        for key, value in values.items():
            raw = raw.replace(key.encode(), value.encode())
        # Each returned message is its own: a fresh Message-ID per copy of a template.
        raw = re.sub(rb"(?im)^(Message-I[dD]:\s*<)", rf"\g<1>{name}.{i}.".encode(), raw, count=1)
        box.add(raw)
    return folder


def _files(maildir: Path) -> list[Path]:
    return sorted(p for sub in ("new", "cur") for p in (maildir / sub).iterdir())


def _seconds(files: list[Path], work) -> float:
    start = time.perf_counter()
    for path in files:
        work(path.read_bytes())
    return time.perf_counter() - start


def _compare(files: list[Path], rounds: int) -> tuple[float, float]:
    """Best of `rounds` for A and B, measured alternately (the machine is shared)."""
    bare, ours = [], []
    for _ in range(rounds):
        bare.append(_seconds(files, lambda raw: email.message_from_bytes(raw, policy=POLICY)))
        ours.append(_seconds(files, parse))
    return min(bare), min(ours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mailer-bench-bounces-"))
    try:
        config = _workspace(folder / "ws", args.messages)
        maildir = _maildir(folder / "Maildir", args.messages)
        files = _files(maildir)
        print(f"{len(files)} returned messages from {len(list(CORPUS.glob('*.eml')))} shapes")
        bare, ours = _compare(files, args.rounds)
        for label, seconds in (
            ("A) email.message_from_bytes (baseline)", bare),
            ("B) mailer.bounces.parse.parse", ours),
        ):
            print(f"{label:40} {len(files) / seconds:8.0f} msg/s  (best of {args.rounds})")
        print(f"ratio B/A: {bare / ours:.2f} (goal >= 0.5)")
        with Store(config.database_path) as store:
            start = time.perf_counter()
            report = import_paths(store, config, [maildir])
            seconds = time.perf_counter() - start
        print(
            f"C) bounces import, end to end: {seconds:.2f} s for {report.messages} messages"
            f" ({report.messages / seconds:.0f} msg/s): {report.hard} hard, {report.soft} soft,"
            f" {report.complaints} complaints, {report.autoreplies} auto-replies,"
            f" {report.unrecognised} unrecognised, {len(report.stopped)} contacts stopped"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
