"""How well `newsletter import` finds the seed article's dated events and their links, beside a hand-made list.

    python bench/import_eval.py [--seed PATH] [--events tests/data/seed_events.yaml]

The reference is tests/data/seed_events.yaml, written by reading the article, not by the importer.
The seed is imported into a temporary copy of the project's content without its timeline: the
shipped timeline already holds this article's events, and an import rightly skips events whose
sources are known, which would leave nothing to measure. A drafted event is a true positive for
dates when its date string equals a listed event's (each listed event is matched once), and for
links when its (date, url) pair is listed. Target: precision and recall >= 0.8 for both. The
last line imports into the shipped content as it is, to show those skips.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

import yaml

from newsletter.intake import drafts
from newsletter.intake.importer import ImportResult, import_article

REPO = Path(__file__).resolve().parent.parent
SEED = REPO.parent / "shared" / "seeds" / "000_270cdd7c17ee760f.txt"
EVENTS = REPO / "tests" / "data" / "seed_events.yaml"
TARGET = 0.8


def imported(seed: Path, timeline: bool) -> tuple[ImportResult, list[tuple[str, tuple[str, ...]]]]:
    """Import into a copy of content/ (with or without its timeline): the result, and each drafted
    event as (date, normalized source urls)."""
    with tempfile.TemporaryDirectory() as folder:
        content = Path(folder) / "content"
        shutil.copytree(REPO / "content", content)
        if not timeline:
            for path in (content / "timeline").glob("*.y*ml"):
                path.unlink()
        result = import_article(str(seed), content, Path.cwd(), date.today())
        found = []
        for path in result.entries:
            draft = drafts.read_draft(path, content)
            found.append((draft.date, draft.urls))
        return result, found


def ratio(part: int, whole: int) -> str:
    return f"{part / whole:.2f} ({part}/{whole})" if whole else "n/a (0/0)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=Path, default=SEED)
    parser.add_argument("--events", type=Path, default=EVENTS)
    options = parser.parse_args()
    if not options.seed.is_file():
        print(f"no seed article at {options.seed}", file=sys.stderr)
        return 2
    listed = yaml.safe_load(options.events.read_text(encoding="utf-8"))
    expected = [(str(e["date"]), str(e["what"]), [drafts.normalize_url(u) for u in e.get("url") or []]) for e in listed]
    result, found = imported(options.seed, timeline=False)

    unmatched = list(range(len(expected)))
    date_hits, false_dates = 0, []
    for day, urls in found:
        same_day = [i for i in unmatched if expected[i][0] == day]
        if same_day:
            # Of two listed events on one day, count the one whose links this draft shares.
            unmatched.remove(max(same_day, key=lambda i: len(set(expected[i][2]) & set(urls))))
            date_hits += 1
        else:
            false_dates.append(f"{day} {list(urls)}")
    missed_dates = [f"{expected[i][0]} {expected[i][1]}" for i in unmatched]

    wanted_pairs = {(d, u) for d, _, urls in expected for u in urls}
    found_pairs = {(d, u) for d, urls in found for u in urls}
    link_hits = len(wanted_pairs & found_pairs)

    print(f"seed: {options.seed}")
    print(f"reference: {options.events.relative_to(REPO) if options.events.is_relative_to(REPO) else options.events} "
          f"({len(expected)} events, {len(wanted_pairs)} (date, url) pairs)")
    print(f"drafts written: {len(found)}, skipped: {len(result.skipped)}, key points: {result.key_points}")
    print()
    print(f"{'':8}{'precision':>16}{'recall':>16}{'target':>10}")
    print(f"{'dates':8}{ratio(date_hits, len(found)):>16}{ratio(date_hits, len(expected)):>16}{'>= 0.80':>10}")
    print(f"{'links':8}{ratio(link_hits, len(found_pairs)):>16}{ratio(link_hits, len(wanted_pairs)):>16}{'>= 0.80':>10}")
    print()
    sections = {
        "missed dates": missed_dates,
        "false positive dates": false_dates,
        "missed links": sorted(f"{d} {u}" for d, u in wanted_pairs - found_pairs),
        "false positive links": sorted(f"{d} {u}" for d, u in found_pairs - wanted_pairs),
        "found but not written (skipped)": list(result.skipped),
    }
    for title, lines in sections.items():
        print(f"{title}: {'none' if not lines else ''}")
        for line in lines:
            print(f"  {line}")
    shipped, _ = imported(options.seed, timeline=True)
    print()
    print(f"into the shipped content as it is: {len(shipped.entries)} drafts written, "
          f"{sum('already published or drafted' in s for s in shipped.skipped)} skipped as already published")

    scores = [
        date_hits / len(found) if found else 0, date_hits / len(expected) if expected else 0,
        link_hits / len(found_pairs) if found_pairs else 0, link_hits / len(wanted_pairs) if wanted_pairs else 0,
    ]
    return 0 if min(scores) >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
