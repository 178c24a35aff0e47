"""Compose one issue of a digest for a moment: pure and deterministic (time comes in as an argument)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from ..inputs.config import Digest
from ..inputs.content import Brief, Library, TimelineEntry
from ..errors import DigestError, UsageError


@dataclass(frozen=True)
class Issue:
    """One edition: the newest brief and the latest timeline entries as of a moment."""

    digest: Digest
    period: str  # e.g. 2022-W30
    as_of: datetime  # timezone-aware
    brief: Brief | None
    entries: tuple[TimelineEntry, ...]  # newest first

    @property
    def id(self) -> str:
        return f"{self.digest.name}-{self.period}"

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
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    day = as_of.astimezone(digest.zone).date()
    briefs = [
        b for b in library.briefs
        if b.date <= day and covers(digest, b.tags, b.language)
    ]
    brief = max(briefs, key=lambda b: (b.date, b.slug)) if briefs else None
    oldest = _days_before(day, digest.lookback_days) if digest.lookback_days else date.min
    pool = library.timeline + (library.trusted_drafts if digest.include_drafts == "trusted" else ())
    candidates = [
        e for e in pool
        if e.date.start <= day and e.date.end >= oldest and covers(digest, e.tags, e.language)
    ]
    candidates.sort(
        key=lambda e: (-min(e.date.end, day).toordinal(), -e.date.start.toordinal(), e.title)
    )
    entries = tuple(candidates[: digest.max_entries])
    if brief is None and not entries:
        raise DigestError(
            f"digest '{digest.name}' has nothing to send as of {day.isoformat()}: no brief or "
            f"timeline entry in language '{digest.language}' matches its tags on or before that day"
        )
    return Issue(digest, period_of(digest, as_of), as_of, brief, entries)


def _days_before(day: date, days: int) -> date:
    try:
        return day - timedelta(days=days)
    except OverflowError:  # before year 1: everything is recent enough
        return date.min
