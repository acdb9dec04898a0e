"""Benchmark: importing 100k contacts in 30 lists, segment counts, `mailer --help`.

Run:  python bench/import_contacts.py [--contacts N] [--repeat R]

Baselines measured in the same run:
- import: a bare email-validator loop over the same addresses (the least any import must do).
  The import is timed twice: end to end as `mailer contacts import` in a subprocess (into a
  fresh workspace; interpreter start-up included) and as the core function
  `mailer.audience.importer.import_contacts` in this process (into another fresh workspace).
- `segments count`: the core `count_segment` in this process (median), and the CLI wall time.
- `mailer --help`: wall time of a subprocess (median), against `python -c pass`.
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

CLUSTERS = [
    "Arctic Industry and Circular Economy",
    "Arctic Design",
    "Arctic Safety",
    "Arctic Development Environments",
    "Arctic Power",
    "Arctic Smart Rural Community",
]
MUNICIPALITIES = [
    "Enontekiö", "Inari", "Kemi", "Kemijärvi", "Keminmaa", "Kittilä", "Kolari", "Muonio",
    "Pelkosenniemi", "Pello", "Posio", "Ranua", "Rovaniemi", "Salla", "Savukoski", "Simo",
    "Sodankylä", "Tervola", "Tornio", "Utsjoki",
]  # fmt: skip
AREAS = [
    "Circular Economy",
    "Sustainable Tourism",
    "Refining of Natural Resources",
    "New Emerging Fields",
]
FIRST = ["Aino", "Eero", "Helmi", "Máret", "Niillas", "Karin", "Björn", "Sunná", "Pekka", "Outi"]
LAST = ["Aikio", "Mäkelä", "Öberg", "Somby", "Heikkilä", "Näkkäläjärvi", "Lindqvist", "Rautio"]
SECRET = "bench-secret-0123456789abcdefghijklmnop"
LAST_CPU = 0.0  # CPU seconds (user + system) of the last `mailer` subprocess


def generate(path: Path, count: int, seed: int = 2018) -> list[str]:
    """Write `count` contacts in 30 lists (6 clusters, 20 municipalities, 4 areas)."""
    rnd = random.Random(seed)
    emails = []
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, delimiter=";", lineterminator="\r\n")
        writer.writerow(["Sähköposti", "Nimi", "Kieli", "Klusterit", "Kunta", "Yritys", "Titteli"])
        for i in range(count):
            first, last = rnd.choice(FIRST), rnd.choice(LAST)
            email = f"person{i}.{rnd.randrange(10**6)}@org{i % 997}.example.com"
            emails.append(email)
            writer.writerow(
                [
                    email,
                    f"{first} {last}",
                    rnd.choice(["fi", "fi", "fi", "sv", "se", "en"]),
                    "|".join(rnd.sample(CLUSTERS, rnd.choice([0, 1, 1, 2]))),
                    rnd.choice(MUNICIPALITIES),
                    rnd.choice(["", "", *AREAS]),
                    rnd.choice(["toimitusjohtaja", "tutkija", "asiantuntija"]),
                ]
            )
    return emails


def env_for(folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"MAILER_CONFIG": str(folder / "mailer.toml"), "MAILER_SECRET": SECRET})
    return env


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def mailer(folder: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `python -m mailer ARGS`; return (wall seconds, process). See LAST_CPU for CPU."""
    global LAST_CPU
    cpu = children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mailer", *args],
        env=env_for(folder),
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    LAST_CPU = children_cpu() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"mailer {' '.join(args)} failed: {proc.stderr.strip()}")
    return elapsed, proc


def fresh_workspace(root: Path, name: str) -> Path:
    folder = root / name
    mailer(folder, "init", str(folder))
    return folder


def bare_validation(emails: list[str]) -> tuple[float, float]:
    """The baseline: email-validator over every address; (wall, CPU) seconds."""
    from email_validator import validate_email

    cpu = time.process_time()
    start = time.perf_counter()
    for email in emails:
        validate_email(email, check_deliverability=False)
    return time.perf_counter() - start, time.process_time() - cpu


def core_import(folder: Path, csv_path: Path) -> tuple[float, float, str]:
    from mailer.audience.importer import import_contacts
    from mailer.config import load_config
    from mailer.store import Store
    from mailer.timeutil import now_utc

    config = load_config(folder / "mailer.toml", {"MAILER_SECRET": SECRET})
    with Store(config.database_path) as store:
        cpu = time.process_time()
        start = time.perf_counter()
        report = import_contacts(store, config, csv_path, now=now_utc())
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
    return elapsed, cpu, report.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each timing (median)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="contacts-bench-") as tmp:
        root = Path(tmp)
        csv_path = root / "contacts.csv"
        emails = generate(csv_path, args.contacts)
        size_mb = csv_path.stat().st_size / 1e6
        print(
            f"{args.contacts} contacts in 30 lists, {size_mb:.1f} MB CSV"
            f" (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs,"
            f" load average {os.getloadavg()[0]:.1f} at start)"
        )

        # Alternate the baseline and the two import forms; each import into a fresh workspace.
        # The machine may be shared: CPU seconds are reported beside wall seconds.
        runs: dict[str, list[tuple[float, float]]] = {"base": [], "cli": [], "core": []}
        summary = ""
        for run in range(args.repeat):
            runs["base"].append(bare_validation(emails))
            cli_folder = fresh_workspace(root, f"cli{run}")
            elapsed, proc = mailer(cli_folder, "contacts", "import", str(csv_path))
            runs["cli"].append((elapsed, LAST_CPU))
            summary = proc.stdout.strip().splitlines()[-1]
            core_folder = fresh_workspace(root, f"core{run}")
            wall_s, cpu_s, _ = core_import(core_folder, csv_path)
            runs["core"].append((wall_s, cpu_s))
        med = {
            key: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
            for key, v in runs.items()
        }
        (base, base_cpu), (cli, cli_cpu), (core, core_cpu) = med["base"], med["cli"], med["core"]
        per = base / len(emails) * 1e6
        print(f"  import summary: {summary}")
        print(f"{'':36}{'wall':>9} {'ratio':>7} {'CPU':>9} {'ratio':>7}")
        print(
            f"{'bare email-validator loop':36}{base:8.2f}s {'':7} {base_cpu:8.2f}s"
            f"   ({per:.1f} µs/address)"
        )
        print(
            f"{'mailer contacts import (subprocess)':36}{cli:8.2f}s {cli / base:6.2f}x"
            f" {cli_cpu:8.2f}s {cli_cpu / base_cpu:6.2f}x  (goal <= 1.5x)"
        )
        print(
            f"{'import_contacts() (core, in process)':36}{core:8.2f}s {core / base:6.2f}x"
            f" {core_cpu:8.2f}s {core_cpu / base_cpu:6.2f}x"
        )

        # Re-import of the same file: every row unchanged.
        elapsed, proc = mailer(cli_folder, "contacts", "import", str(csv_path))
        print(
            f"{'re-import, all unchanged (subproc.)':36}{elapsed:8.2f}s {elapsed / base:6.2f}x"
            f" {LAST_CPU:8.2f}s {LAST_CPU / base_cpu:6.2f}x"
        )

        # segments count of a three-list expression, over the imported contacts.
        expression = (
            "cluster:arctic-power and (municipality:rovaniemi or municipality:kemi)"
            " and not company:*"
        )
        from mailer.audience.segments import count_segment
        from mailer.config import load_config
        from mailer.store import Store

        config = load_config(cli_folder / "mailer.toml", {"MAILER_SECRET": SECRET})
        with Store(config.database_path) as store:
            times, cpus, result = [], [], 0
            for _ in range(max(9, args.repeat)):
                cpu = time.process_time()
                start = time.perf_counter()
                result = count_segment(store, expression, config.list_kinds)
                times.append(time.perf_counter() - start)
                cpus.append(time.process_time() - cpu)
        query, query_cpu = statistics.median(times), statistics.median(cpus)
        cli_count = statistics.median(
            mailer(cli_folder, "segments", "count", expression)[0] for _ in range(args.repeat)
        )
        print(f"segments count '{expression}' = {result}")
        print(
            f"  core count_segment()            {query * 1000:7.1f} ms wall,"
            f" {query_cpu * 1000:.1f} ms CPU  (goal <= 50 ms)"
        )
        print(f"  mailer segments count (process) {cli_count * 1000:7.1f} ms")

        # mailer --help against a bare interpreter.
        def wall(argv: list[str]) -> float:
            runs = []
            for _ in range(max(5, args.repeat)):
                start = time.perf_counter()
                subprocess.run(argv, capture_output=True, check=True)
                runs.append(time.perf_counter() - start)
            return statistics.median(runs)

        help_time = wall([sys.executable, "-m", "mailer", "--help"])
        bare = wall([sys.executable, "-c", "pass"])
        print(f"mailer --help                     {help_time * 1000:7.1f} ms  (goal <= 250 ms)")
        print(
            f"  python -c pass                  {bare * 1000:7.1f} ms"
            f"  ratio {help_time / bare:.1f}x"
        )
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
