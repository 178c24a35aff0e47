"""Whether a feed is healthy: not failing run after run, and not quiet for longer than its `quiet_after`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from ..inputs.config import Feed
from ..store import Store
from ..store.records import FeedRecord

FAILING_RUNS = 3  # failed runs in a row that make a feed unhealthy: one or two may be a bad hour


@dataclass(frozen=True)
class Health:
    """A configured feed, what the store knows of its runs, and what is wrong with it (if anything)."""

    feed: Feed
    record: FeedRecord  # all empty for a feed never run
    problem: str | None  # None: healthy, or never run

    @property
    def healthy(self) -> bool:
        return self.problem is None


def problem(feed: Feed, record: FeedRecord | None, now: datetime) -> str | None:
    """Why `feed` is unhealthy at `now` (aware), or None. Failing comes first: a feed that
    cannot be read is also quiet, and the failure is what to fix. A feed never run is not judged."""
    if record is None or not record.ever_ran:
        return None
    if record.failures_in_row >= FAILING_RUNS:
        return f"failed its last {record.failures_in_row} runs: {record.failure}"
    since = record.new_at or record.first_succeeded_at
    if since is None:
        return None
    quiet = now.astimezone(UTC).replace(tzinfo=None) - since
    if quiet.total_seconds() <= feed.quiet_after:
        return None
    start = "since" if record.new_at else "since its first good run on"
    return f"nothing new for {span(quiet.total_seconds())}, {start} {when(since)} (quiet_after {span(feed.quiet_after)})"


def survey(store: Store, feeds: Iterable[Feed], now: datetime) -> list[Health]:
    """The health of each of `feeds` at `now`, in their order, from what the store recorded."""
    chosen = list(feeds)
    records = store.feeds.records(f.url for f in chosen)
    found = []
    for feed in chosen:
        record = records.get(feed.url) or FeedRecord(feed.url)
        found.append(Health(feed, record, problem(feed, record, now)))
    return found


def when(moment: datetime | None) -> str:
    """A stored moment (naive UTC) as the faces show it: to the minute, or `never`."""
    return "never" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def span(seconds: float) -> str:
    """A length of time in the units config.yaml's durations use: 7d, 36h, 90m, 45s. The
    largest unit it is a whole number of, or at least two of (then rounded down)."""
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= 2 * size or (whole >= size and whole % size == 0):
            return f"{whole // size}{unit}"
    return f"{whole}s"
