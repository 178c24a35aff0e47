"""`newsletter check` and `newsletter build` of a large timeline: time and peak memory.

    python bench/content.py [--entries 10000,100000] [--rounds 1]

A copy of the shipped project gets a generated timeline of N entries (each like the shipped
ones: a date at day, month or year precision, a title, a two-sentence summary, actors, tags
and one or two sources; about 400 bytes of YAML an entry, so 100,000 entries is about 40 MB),
split over one file per year as a team that keeps a timeline for years would. Each command
runs in a process of its own; its wall time (from the command's start: Python's own start and
the imports are not counted) and peak RSS are printed beside the targets:
check + build of 10,000 entries under 2 s, of 100,000 under 20 s and 300 MB peak.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUN = """
import resource, sys, time
from newsletter.faces.cli import cli
start = time.perf_counter()
try:
    cli.main(sys.argv[1:], prog_name="newsletter")
except SystemExit as exc:
    if exc.code:
        raise
print(f"{time.perf_counter() - start} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", file=sys.stderr)
"""
WORDS = ("Iranian", "Turkish", "Israeli", "network", "plot", "officials", "intelligence", "detained", "Istanbul",
         "Ankara", "consulate", "drone", "pipeline", "warning", "tourists", "cell", "agents", "court", "border")
ACTORS = ("Turkey", "Israel", "Iran", "IRGC", "MIT", "Mossad", "Quds Force")
TAGS = ("turkey", "israel", "iran", "plots", "espionage", "diplomacy", "energy", "drones", "cyber")


def entry(n: int, rng: random.Random) -> str:
    year = 2000 + n % 23
    month, day = 1 + rng.randrange(12), 1 + rng.randrange(28)
    date = rng.choice((f"{year}-{month:02d}-{day:02d}",) * 3 + (f"{year}-{month:02d}", f"{year}"))
    title = " ".join(rng.choice(WORDS) for _ in range(7)).capitalize()
    summary = " ".join(rng.choice(WORDS) for _ in range(16)).capitalize() + "."
    return (
        f'- date: "{date}"\n  title: {title} {n}\n  summary: >-\n    {summary}\n'
        f"  actors: [{', '.join(rng.sample(ACTORS, 2))}]\n  tags: [{', '.join(rng.sample(TAGS, 3))}]\n"
        f"  sources:\n    - title: Report {n}\n      publisher: Outlet {n % 40}\n"
        f"      url: https://outlet{n % 40}.example/{year}/{n}\n"
    )


def project(folder: Path, entries: int) -> int:
    """A copy of the shipped project with `entries` more timeline entries; returns their bytes."""
    for name in ("content", "templates"):
        shutil.copytree(REPO / name, folder / name)
    shutil.copy(REPO / "config.yaml", folder / "config.yaml")
    rng = random.Random(17)
    by_year: dict[int, list[str]] = {}
    for n in range(entries):
        by_year.setdefault(2000 + n % 23, []).append(entry(n, rng))
    size = 0
    for year, items in by_year.items():
        path = folder / "content" / "timeline" / f"generated-{year}.yaml"
        path.write_text("".join(items), encoding="utf-8")
        size += path.stat().st_size
    return size


def timed(folder: Path, *args: str) -> tuple[float, float]:
    """Wall seconds and peak RSS in MB of one `newsletter` command in a process of its own."""
    done = subprocess.run([sys.executable, "-c", RUN, *args], cwd=folder, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"newsletter {' '.join(args)} failed: {done.stderr.strip().splitlines()[-1:]}")
    seconds, rss = done.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(rss) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", default="10000,100000")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    for count in (int(n) for n in args.entries.split(",")):
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            size = project(folder, count)
            results = []
            for _ in range(args.rounds):
                check = timed(folder, "check")
                build = timed(folder, "build", "--as-of", "2022-07-30", "--out", "preview")
                results.append((check, build))
            check, build = min(results, key=lambda r: r[0][0] + r[1][0])
            total = check[0] + build[0]
            limit = 2.0 if count <= 10_000 else 20.0
            print(f"{count:7d} entries ({size / 1e6:.1f} MB of YAML): check {check[0]:6.2f} s {check[1]:6.0f} MB, "
                  f"build {build[0]:6.2f} s {build[1]:6.0f} MB; check + build {total:6.2f} s (target < {limit:g} s)"
                  + (f", peak {max(check[1], build[1]):.0f} MB (target < 300 MB)" if count > 10_000 else ""))


if __name__ == "__main__":
    main()
