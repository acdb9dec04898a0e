"""Benchmark: where `mailer send` spends the time before its first message.

Run:  python bench/startup.py [--recipients 3000] [--rounds 5]

Each round runs `mailer send NAME --yes` in a fresh process whose phases are stamped (wall
and CPU milliseconds since the process started): imports, argument parsing and config, the
render (when the freeze renders), the rest of the freeze, the first message handed to the
SMTP connection. The baseline, in the same run: a bare process that imports smtplib and
sends one pre-built message to the same sink. Medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from send import PY, SENDER, Sink, make_workspace, sample_message  # noqa: E402

# Runs inside the measured process: stamps phases by wrapping a few functions.
PROBE = r"""
import json, os, sys, time
T0, C0 = time.perf_counter(), time.process_time()
marks = {}
def mark(label):
    marks.setdefault(label, ((time.perf_counter() - T0) * 1000, (time.process_time() - C0) * 1000))
import mailer.cli
from mailer.sending import content, engine, pool, smtp
mark("imports")
def wrap(owner, name, before, after=None):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        mark(before)
        try:
            return original(*args, **kwargs)
        finally:
            if after:
                mark(after)
    setattr(owner, name, wrapper)
wrap(engine, "send_campaign", "arguments and config")
wrap(content.NewsletterContent, "render", "render start", "render end")
wrap(engine, "freeze_campaign", "freeze start", "freeze end")
wrap(smtp.Connection, "send", "first message")
sys.argv = ["mailer", "send", sys.argv[1], "--yes"]
sys.stderr = open(os.devnull, "w")
try:
    mailer.cli.main()
except SystemExit:
    pass
print(json.dumps(marks))
"""

BASELINE = r"""
import sys, time
T0, C0 = time.perf_counter(), time.process_time()
import smtplib
with smtplib.SMTP("127.0.0.1", int(sys.argv[1])) as s:
    s.sendmail(sys.argv[2], ["first@example.org"], open(sys.argv[3], "rb").read())
print((time.perf_counter() - T0) * 1000, (time.process_time() - C0) * 1000)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sink = Sink("minimal")
    root = Path(tempfile.mkdtemp(prefix="mailer-bench-startup-"))
    try:
        ws = make_workspace(root, args.recipients, sink.port, campaigns=args.rounds + 1)
        eml = root / "first.eml"
        eml.write_bytes(sample_message(ws))  # a dry run of bench-0; the rounds send 1..N
        env = {**os.environ, "MAILER_CONFIG": str(ws / "mailer.toml")}
        runs: list[dict[str, list[float]]] = []
        bases: list[tuple[float, float]] = []
        for index in range(args.rounds):
            out = subprocess.run(
                [PY, "-c", PROBE, f"bench-{index + 1}"],
                cwd=ws,
                env=env,
                capture_output=True,
                text=True,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            base = subprocess.run(
                [PY, "-c", BASELINE, str(sink.port), SENDER, str(eml)],
                capture_output=True,
                text=True,
                check=True,
            )
            wall, cpu = (float(x) for x in base.stdout.split())
            bases.append((wall, cpu))
    finally:
        sink.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"mailer send, {args.recipients} recipients, {args.rounds} rounds (medians);"
        f" load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'phase (ms since process start)':34}{'wall':>9}{'CPU':>9}")
    for label in runs[0]:
        wall = statistics.median(r[label][0] for r in runs if label in r)
        cpu = statistics.median(r[label][1] for r in runs if label in r)
        print(f"{label:34}{wall:9.0f}{cpu:9.0f}")
    base_wall = statistics.median(w for w, _ in bases)
    base_cpu = statistics.median(c for _, c in bases)
    first = [r["first message"] for r in runs if "first message" in r]
    print(f"{'baseline: smtplib, one message':34}{base_wall:9.0f}{base_cpu:9.0f}")
    print(
        f"first message / baseline: {statistics.median(f[0] for f in first) / base_wall:.1f}x"
        f" wall, {statistics.median(f[1] for f in first) / base_cpu:.1f}x CPU"
    )


if __name__ == "__main__":
    main()
