"""How well `newsletter import` finds articles' dated events and their links, beside gold lists made by hand.

    python bench/import_eval.py [--set tests/data/import_eval/final] [--seed PATH] [--verbose]

Two kinds of material, each with a reference written by reading the articles, before the
importer ran on them:

- `--set DIR`: an evaluation set (tests/data/import_eval/: `dev/`, `held_out/` and `fresh/`
  are what the importer was tuned on, in that order, each after it had been measured once;
  `final/` what it never saw), each article beside its `NAME.gold.yaml` (its
  address, publication date and dated events with their links). An article whose gold list
  gives no publication date must be refused with a line asking for --published; it is
  counted apart, and its events are not scored.
- without `--set`: the seed article (../shared/seeds/), against tests/data/seed_events.yaml.

Each article is imported into a temporary copy of the content without its timeline (the
shipped timeline already holds the seed's events, and an import rightly skips known ones). A
drafted event is a true positive for dates when its date string (so also its precision)
equals a listed event's, each listed event matched once; for sources, when its (date, url)
pair is listed (an event the article cites only itself for is listed with the article's own
address). Targets on the evaluation set: precision and recall >= 0.9 for both.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml

from newsletter.errors import NewsletterError
from newsletter.intake import drafts
from newsletter.intake.importer import import_article

REPO = Path(__file__).resolve().parent.parent
SEED = REPO.parent / "shared" / "seeds" / "000_270cdd7c17ee760f.txt"
EVENTS = REPO / "tests" / "data" / "seed_events.yaml"
TODAY = date(2026, 12, 1)  # a fixed "today": nothing in the sets is dated after it
ARTICLE_SUFFIXES = (".html", ".htm", ".txt", ".md")


@dataclass
class Score:
    """Counts over any number of articles."""

    drafts: int = 0
    listed: int = 0
    date_hits: int = 0
    pairs_found: int = 0
    pairs_listed: int = 0
    pair_hits: int = 0
    refused_as_asked: int = 0
    wrongly_refused: list[str] = field(default_factory=list)
    wrongly_dated: list[str] = field(default_factory=list)  # articles without a date that were not refused
    misses: list[str] = field(default_factory=list)
    false: list[str] = field(default_factory=list)

    def add(self, name: str, listed: list[tuple[str, str, set[str]]], found: list[tuple[str, set[str]]]) -> None:
        unmatched = list(range(len(listed)))
        for day, urls in found:
            same_day = [i for i in unmatched if listed[i][0] == day]
            if same_day:  # of two listed events on one day, the one whose links this draft shares
                unmatched.remove(max(same_day, key=lambda i: len(listed[i][2] & urls)))
                self.date_hits += 1
            else:
                self.false.append(f"{name}: {day} {sorted(urls)}")
        self.misses += [f"{name}: {listed[i][0]} {listed[i][1]}" for i in unmatched]
        wanted = {(d, u) for d, _, urls in listed for u in urls}
        got = {(d, u) for d, urls in found for u in urls}
        self.drafts += len(found)
        self.listed += len(listed)
        self.pairs_found += len(got)
        self.pairs_listed += len(wanted)
        self.pair_hits += len(wanted & got)

    def figures(self) -> list[float]:
        return [
            self.date_hits / self.drafts if self.drafts else 0.0, self.date_hits / self.listed if self.listed else 0.0,
            self.pair_hits / self.pairs_found if self.pairs_found else 0.0,
            self.pair_hits / self.pairs_listed if self.pairs_listed else 0.0,
        ]


def ratio(part: int, whole: int) -> str:
    return f"{part / whole:.2f} ({part}/{whole})" if whole else "n/a (0/0)"


def imported(article: Path, timeline: bool = False) -> tuple[list[tuple[str, set[str]]], str | None]:
    """Import into a copy of content/ (without its timeline, unless `timeline`): each drafted
    event as (date, normalized source urls), or the one line the import refused with."""
    with tempfile.TemporaryDirectory() as folder:
        content = Path(folder) / "content"
        shutil.copytree(REPO / "content", content)
        if not timeline:
            for path in (content / "timeline").glob("*.y*ml"):
                path.unlink()
        shutil.copy(article, Path(folder) / article.name)
        try:
            result = import_article(article.name, content, Path(folder), TODAY)
        except NewsletterError as exc:
            return [], str(exc)
        found = []
        for path in result.entries:
            draft = drafts.read_draft(path, content)
            found.append((draft.date, set(draft.urls)))
        return found, None


def gold_of(path: Path) -> tuple[str | None, object, list[tuple[str, str, set[str]]]]:
    gold = yaml.safe_load(path.read_text(encoding="utf-8"))
    source = gold.get("source")
    listed = []
    for event in gold.get("events") or []:
        urls = {drafts.normalize_url(u) for u in event.get("urls") or []} or (
            {drafts.normalize_url(source)} if source else set())
        listed.append((str(event["date"]), str(event.get("what", "")), urls))
    return source, gold.get("published"), listed


def evaluate_set(folder: Path, verbose: bool) -> Score:
    score = Score()
    articles = sorted(p for p in folder.iterdir() if p.suffix in ARTICLE_SUFFIXES and p.with_suffix(".gold.yaml").exists())
    for article in articles:
        _, published, listed = gold_of(article.with_suffix(".gold.yaml"))
        found, refused = imported(article)
        if published is None:
            if refused and "--published" in refused:
                score.refused_as_asked += 1
            else:
                score.wrongly_dated.append(f"{article.name}: {refused or f'{len(found)} drafts, no refusal'}")
            continue
        if refused:
            score.wrongly_refused.append(f"{article.name}: {refused}")
        score.add(article.name, listed, found)
    print(f"set: {folder.relative_to(REPO) if folder.is_relative_to(REPO) else folder} ({len(articles)} articles)")
    report(score, verbose)
    print(f"articles without a date refused with --published asked: {score.refused_as_asked}; "
          f"not refused: {len(score.wrongly_dated)}; articles with a date refused: {len(score.wrongly_refused)}")
    for line in score.wrongly_dated + score.wrongly_refused:
        print(f"  {line}")
    return score


def report(score: Score, verbose: bool, target: str = ">= 0.90") -> None:
    print(f"{'':8}{'precision':>16}{'recall':>16}{'target':>10}")
    print(f"{'dates':8}{ratio(score.date_hits, score.drafts):>16}{ratio(score.date_hits, score.listed):>16}{target:>10}")
    print(f"{'sources':8}{ratio(score.pair_hits, score.pairs_found):>16}{ratio(score.pair_hits, score.pairs_listed):>16}"
          f"{target:>10}")
    if verbose:
        for title, lines in (("missed", score.misses), ("false", score.false)):
            print(f"{title}: {'none' if not lines else ''}")
            for line in lines:
                print(f"  {line}")


def evaluate_seed(seed: Path, events: Path, verbose: bool) -> Score:
    listed_raw = yaml.safe_load(events.read_text(encoding="utf-8"))
    listed = [(str(e["date"]), str(e["what"]), {drafts.normalize_url(u) for u in e.get("url") or []}) for e in listed_raw]
    found, refused = imported(seed)
    if refused:
        sys.exit(f"the seed was refused: {refused}")
    score = Score()
    score.add(seed.name, listed, found)
    print(f"seed: {seed}")
    report(score, verbose, ">= 0.80")
    shipped, _ = imported(seed, timeline=True)
    print(f"into the shipped content as it is: {len(shipped)} drafts written (the rest are known already)")
    return score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="folder", type=Path, help="an evaluation set folder (articles and gold lists)")
    parser.add_argument("--seed", type=Path, default=SEED)
    parser.add_argument("--events", type=Path, default=EVENTS)
    parser.add_argument("--verbose", action="store_true", help="list every missed and false event")
    options = parser.parse_args()
    if options.folder is not None:
        score = evaluate_set(options.folder.resolve(), options.verbose)
        return 0 if min(score.figures()) >= 0.9 and not score.wrongly_dated else 1
    if not options.seed.is_file():
        print(f"no seed article at {options.seed}", file=sys.stderr)
        return 2
    return 0 if min(evaluate_seed(options.seed, options.events, options.verbose).figures()) >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
