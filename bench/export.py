"""Export time for a large timeline, beside the cost of reading that timeline, from the same run.

    python bench/export.py [--entries 10000] [--validate]

Writes a copy of the shipped project whose timeline has --entries entries (each with two
sources, two actors, three tags; a third of them marked TLP:GREEN), then times, as a user
runs them:

- the reference: `newsletter check`, which reads and checks the whole timeline (what any
  command that loads content pays first);
- `newsletter export stix --timeline --tlp amber` and `newsletter export misp --tlp amber`;
- with --validate, stix2-validator over the bundle (what a careful reader's platform does).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def timeline(count: int) -> list[dict[str, object]]:
    start = date(2015, 1, 1)
    entries: list[dict[str, object]] = []
    for n in range(count):
        day = start + timedelta(days=n % 2900)
        entry: dict[str, object] = {
            "date": day.isoformat() if n % 4 else f"{day.year}-{day.month:02d}",
            "title": f"Incident {n}: a cell is detained in Istanbul after a tip from abroad",
            "summary": f"Police detained the members of cell {n}, who were watching Israeli travellers; "
                       "prosecutors say the group was paid by a foreign service.",
            "actors": [f"Cell {n}", "Turkish police"],
            "tags": ["iran", "turkey", "israel"],
            "sources": [
                {"title": f"Report {n}", "publisher": "Daily Sabah", "url": f"https://news.example.org/{n}",
                 "reliability": "C", "credibility": "3"},
                {"title": f"Follow-up {n}", "publisher": "The Times of Israel", "url": f"https://other.example.org/{n}"},
            ],
        }
        if n % 3 == 0:
            entry.update(tlp="green", confidence="moderate")
        entries.append(entry)
    return entries


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10000)
    parser.add_argument("--validate", action="store_true", help="also time stix2-validator over the bundle")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch)
        for name in ("content", "templates"):
            shutil.copytree(REPO / name, project / name)
        shutil.copy(REPO / "config.yaml", project / "config.yaml")
        (project / "content" / "timeline" / "bench.yaml").write_text(
            yaml.safe_dump(timeline(args.entries), sort_keys=False, allow_unicode=True), encoding="utf-8")
        cli = [sys.executable, "-m", "newsletter"]
        check = timed([*cli, "check", "--as-of", "2022-07-30"], project)
        stix = timed([*cli, "export", "stix", "--timeline", "--tlp", "amber", "-o", "timeline.json"], project)
        misp = timed([*cli, "export", "misp", "--tlp", "amber", "-o", "misp"], project)
        bundle = json.loads((project / "timeline.json").read_text(encoding="utf-8"))
        size = (project / "timeline.json").stat().st_size
        events = len(list((project / "misp").glob("*-*.json")))
        print(f"a timeline of {args.entries} entries (+ the seed's), on this machine:")
        print(f"  reference: newsletter check (reads and checks it all)   {check:6.1f} s")
        print(f"  newsletter export stix --timeline                      {stix:6.1f} s  "
              f"({len(bundle['objects'])} objects, {size / 1e6:.1f} MB)")
        print(f"  newsletter export misp                                 {misp:6.1f} s  ({events} event files)")
        if args.validate:
            from stix2validator import ValidationOptions, validate_instance

            start = time.perf_counter()
            result = validate_instance(bundle, ValidationOptions(strict=True, disabled=["103", "302"]))
            print(f"  stix2-validator --strict over the bundle               {time.perf_counter() - start:6.1f} s  "
                  f"(valid: {result.is_valid})")


if __name__ == "__main__":
    main()
