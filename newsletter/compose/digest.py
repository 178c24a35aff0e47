"""Compose one issue of a digest for a moment: pure and deterministic (time comes in as an argument)."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from ..inputs.config import Digest
from ..inputs.content import Brief, FuzzyDate, KeyPoint, Library, Sketch, TimelineEntry
from ..inputs.marking import TLP_LEVELS, label, rank
from ..errors import ContentError, DigestError, Invalid, SourceError, UsageError


@dataclass(frozen=True)
class Issue:
    """One edition: the newest brief and the latest timeline entries as of a moment."""

    digest: Digest
    period: str  # e.g. 2022-W30
    as_of: datetime  # timezone-aware
    brief: Brief | None
    entries: tuple[TimelineEntry, ...]  # newest first
    clearance: str | None = None  # the copy for readers cleared to this TLP level; None: everything
    withheld: int = 0  # key points and entries above `clearance`, left out of this copy

    @property
    def id(self) -> str:
        return f"{self.digest.name}-{self.period}"

    def brief_level(self) -> str:
        return self.brief.tlp or self.digest.tlp_default if self.brief else "clear"

    def point_level(self, point: KeyPoint) -> str:
        assert self.brief is not None
        return self.brief.point_level(point, self.digest.tlp_default)

    def entry_level(self, entry: TimelineEntry) -> str:
        return entry.tlp or self.digest.tlp_default

    @property
    def top(self) -> str:
        """The highest TLP level this copy holds (its banner and subject say it): clear when empty."""
        levels = [self.entry_level(e) for e in self.entries]
        if self.brief is not None:
            levels += [self.brief_level(), *(self.point_level(p) for p in self.brief.key_points)]
        return max(levels, key=rank, default="clear")

    def for_clearance(self, clearance: str) -> Issue:
        """The copy a reader cleared to `clearance` may get: every item at or below it, and
        only the count of the others (TLP 2.0: nothing above a reader's level reaches them)."""
        allowed = rank(clearance)
        withheld = 0
        brief = self.brief
        if brief is not None:
            if rank(self.brief_level()) > allowed:
                withheld += len(brief.key_points)
                brief = None
            else:
                kept = tuple(p for p in brief.key_points if rank(self.point_level(p)) <= allowed)
                withheld += len(brief.key_points) - len(kept)
                brief = replace(brief, key_points=kept)
        entries = tuple(e for e in self.entries if rank(self.entry_level(e)) <= allowed)
        withheld += len(self.entries) - len(entries)
        return replace(self, brief=brief, entries=entries, clearance=clearance, withheld=withheld)

    def copies(self, clearances: tuple[str, ...] = TLP_LEVELS) -> dict[str, Issue]:
        """The distinct copies for readers of `clearances` (and always the CLEAR one, the public
        copy), keyed by the highest level each holds: readers cleared to AMBER and to RED get the
        same copy when nothing is marked above AMBER, so it is rendered once."""
        found: dict[str, Issue] = {}
        for clearance in sorted({"clear", *clearances}, key=rank):
            copy = self.for_clearance(clearance)
            found.setdefault(copy.top, copy)
        return found

    @property
    def contents(self) -> tuple[str, ...]:
        """Keys of what the issue holds, to tell a later issue with news from one without."""
        keys = [f"brief:{self.brief.slug}"] if self.brief else []
        return tuple(keys + [f"entry:{e.date.iso}|{e.title}" for e in self.entries])

    @property
    def day(self) -> date:
        """The as-of moment as a calendar day in the digest's time zone."""
        return self.as_of.astimezone(self.digest.zone).date()


def parse_as_of(raw: str) -> date | datetime:
    """A day (2022-07-26) or a moment (2022-07-26T07:00+03:00), as `--as-of` and `?as_of=` take it."""
    try:
        return date.fromisoformat(raw) if len(raw) == 10 else datetime.fromisoformat(raw)
    except ValueError:
        raise UsageError(f"'{raw}' is not a date (YYYY-MM-DD) or an ISO 8601 moment") from None


def moment(as_of: date | datetime, digest: Digest) -> datetime:
    """A day means its start in the digest's time zone; a moment without a zone is read there too.

    A moment that UTC or the digest's zone cannot represent (the first hours of year 1 in a
    zone ahead of UTC, the last of year 9999 behind it) is refused with UsageError."""
    if not isinstance(as_of, datetime):
        as_of = datetime.combine(as_of, time(0))
    aware = as_of if as_of.tzinfo else as_of.replace(tzinfo=digest.zone)
    try:
        aware.astimezone(UTC).astimezone(digest.zone)
    except (OverflowError, ValueError):
        raise UsageError(
            f"{as_of.isoformat()} is outside the dates this tool can handle in {digest.timezone} "
            "(years 1 to 9999, in UTC and in the digest's time zone)"
        ) from None
    return aware


def period_of(digest: Digest, as_of: datetime) -> str:
    """The name of the period `as_of` falls in, in the digest's time zone: 2022-W30 (weekly),
    2022-07 (monthly), 2022-07-26 (daily), and for short schedules 2022-07-26T07 (hourly),
    2022-07-26T0700 (minutely) or 2022-07-26T070002 (secondly)."""
    local = as_of.astimezone(digest.zone)
    day = local.date()
    if digest.period == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year:04d}-W{week:02d}"
    if digest.period == "monthly":
        return f"{day.year:04d}-{day.month:02d}"
    formats = {"daily": "%Y-%m-%d", "hourly": "%Y-%m-%dT%H", "minutely": "%Y-%m-%dT%H%M", "secondly": "%Y-%m-%dT%H%M%S"}
    return local.strftime(formats[digest.period])


def covers(digest: Digest, tags: tuple[str, ...], language: str) -> bool:
    """A digest takes content in its language that shares one of its tags (any, if it has none)."""
    return language == digest.language and (not digest.tags or not set(digest.tags).isdisjoint(tags))


def compose(library: Library, digest: Digest, as_of: datetime) -> Issue:
    """Pick the newest brief dated on or before `as_of` and the latest entries, newest first.

    An entry counts from the first day it may have happened (a "late June" entry
    appears from June 21). Entries are ordered by the latest day they may have
    happened, capped at the as-of day, so a month-precision entry never passes for
    the 1st of its month.
    """
    day, oldest = _window(digest, as_of)
    briefs = [
        b for b in library.briefs
        if b.date <= day and covers(digest, b.tags, b.language)
    ]
    brief = max(briefs, key=lambda b: (b.date, b.slug)) if briefs else None
    pool = library.timeline + (library.trusted_drafts if digest.include_drafts == "trusted" else ())
    candidates = (e for e in pool if _shown(digest, day, oldest, e.date, e.tags, e.language))
    # The first few in order (what sorting all and slicing gives), without a list of them all.
    entries = tuple(heapq.nsmallest(digest.max_entries, candidates, key=lambda e: (*_recency(e.date, day), e.title)))
    issue = Issue(digest, period_of(digest, as_of), as_of, brief, entries)
    too_high = [p for p in level_problems(library, digest) if _in(issue, p)]
    if too_high:
        raise Invalid(too_high)
    if brief is None and not entries:
        raise DigestError(
            f"digest '{digest.name}' has nothing to send as of {day.isoformat()}: no brief or "
            f"timeline entry in language '{digest.language}' matches its tags on or before that day"
        )
    return issue


def may_show(sketches: Sequence[Sketch], digest: Digest, as_of: datetime) -> set[int]:
    """The sketched timeline entries an issue of `digest` as of `as_of` may show (positions):
    those `compose` would pick if every sketch holds (with any that tie with the last of them),
    and every entry whose sketch is incomplete.

    A library of these entries composes the same issue as the whole timeline: an entry left out
    is one that `compose` would leave out, read in full or not.
    """
    day, oldest = _window(digest, as_of)
    unsure: set[int] = set()
    ranked: list[tuple[tuple[int, int, str], int]] = []
    for index, s in enumerate(sketches):
        if s.date is None or s.title is None or s.tags is None or s.language is None:
            unsure.add(index)
        elif _shown(digest, day, oldest, s.date, s.tags, s.language):
            ranked.append(((*_recency(s.date, day), s.title), index))
    ranked.sort()
    if digest.max_entries < len(ranked):
        last = ranked[digest.max_entries - 1][0] if digest.max_entries else None
        ranked = [r for r in ranked if last is not None and r[0] <= last]
    return unsure | {i for _, i in ranked}


def _window(digest: Digest, as_of: datetime) -> tuple[date, date]:
    """The as-of day in the digest's zone, and the first day an entry may reach back to."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    day = as_of.astimezone(digest.zone).date()
    return day, _days_before(day, digest.lookback_days) if digest.lookback_days else date.min


def _shown(digest: Digest, day: date, oldest: date, when: FuzzyDate, tags: tuple[str, ...], language: str) -> bool:
    """Whether an issue of `day` may show an entry: begun by then, not older than the lookback,
    and in the digest's language and tags."""
    return when.start <= day and when.end >= oldest and covers(digest, tags, language)


def _recency(when: FuzzyDate, day: date) -> tuple[int, int]:
    """Newest first: by the latest day it may have happened (capped at `day`), then its first."""
    return (-min(when.end, day).toordinal(), -when.start.toordinal())


def _in(issue: Issue, problem: SourceError) -> bool:
    """Whether a marking problem is about something this issue holds."""
    held = [(e.path, e.line) for e in issue.entries]
    if issue.brief is not None:
        held += [(issue.brief.path, issue.brief.tlp_line or 1)] + [(issue.brief.path, p.line) for p in issue.brief.key_points]
    return (problem.file, problem.line) in held


def level_problems(library: Library, digest: Digest) -> list[SourceError]:
    """Content the digest covers that is marked above its `max_tlp`: each one a problem at the
    file and line of its marking (one home for the rule: `check` lists them, compose refuses)."""
    ceiling = rank(digest.max_tlp)
    problems: list[SourceError] = []

    def over(level: str, path: Path, line: int, field: str) -> None:
        if rank(level) > ceiling:
            problems.append(ContentError(
                path, line, field, f"{label(level)} is above digest '{digest.name}''s max_tlp, {label(digest.max_tlp)}"))

    for brief in library.briefs:
        if covers(digest, brief.tags, brief.language):
            over(brief.tlp or digest.tlp_default, brief.path, brief.tlp_line or 1, "tlp")
            for index, point in enumerate(brief.key_points):
                if point.tlp:
                    over(point.tlp, brief.path, point.line, f"key_points[{index}].tlp")
    for entry in library.timeline:
        if covers(digest, entry.tags, entry.language) and entry.tlp:
            over(entry.tlp, entry.path, entry.line, "tlp")
    return problems


def _days_before(day: date, days: int) -> date:
    try:
        return day - timedelta(days=days)
    except OverflowError:  # before year 1: everything is recent enough
        return date.min
