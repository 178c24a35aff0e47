"""What each news feed answered last, so the next fetch is a conditional GET."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from .connection import Database
from .records import FeedRecord, utcnow
from .schema import feeds

HEALTH = ("succeeded_at", "first_succeeded_at", "failed_at", "failure", "failures_in_row", "new_at")


class FeedState:
    """The feeds table; every method runs its own transaction.

    Rows are keyed by URL: a feed's own, and (for kind: misp) each event file's, whose
    timestamp `record` keeps as its ETag. Only a feed's own row records runs (`ran`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def validators(self, url: str) -> tuple[str | None, str | None]:
        """(ETag, Last-Modified) the feed sent last time, for a conditional GET."""
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(feeds.c.etag, feeds.c.last_modified).where(feeds.c.url == url)).first()
        return (None, None) if row is None else (row.etag, row.last_modified)

    def record(self, url: str, status: str, etag: str | None = None, last_modified: str | None = None) -> None:
        """What a fetch of the feed gave; validators are kept unless new ones came."""
        self._write(url, self._answered(utcnow(), status, etag, last_modified))

    def ran(
        self, url: str, status: str, *, ok: bool, new: bool = False, etag: str | None = None,
        last_modified: str | None = None, at: datetime | None = None,
    ) -> None:
        """One run of a feed, as of `at` (aware; default now): what it answered, as `record`
        keeps it, and its health: when it last worked, or failed and why, its failures in a
        row, and whether it brought something new (`new`)."""
        now = utcnow() if at is None else at.astimezone(UTC).replace(tzinfo=None)
        values = self._answered(now, status, etag, last_modified)
        changed: dict[str, Any]  # expressions over the row, and what they give for a new one
        first: dict[str, Any]
        if ok:
            values.update(succeeded_at=now, failures_in_row=0)
            changed = {"first_succeeded_at": sa.func.coalesce(feeds.c.first_succeeded_at, now)}
            first = {"first_succeeded_at": now}
        else:
            values.update(failed_at=now, failure=status[:200])
            changed = {"failures_in_row": sa.func.coalesce(feeds.c.failures_in_row, 0) + 1}
            first = {"failures_in_row": 1}
        if new:
            values["new_at"] = now
        self._write(url, values, changed, first)

    def records(self, urls: Iterable[str]) -> dict[str, FeedRecord]:
        """What is known of these feeds' runs, by URL; a URL never fetched is left out."""
        wanted = list(urls)
        columns = [feeds.c.url, feeds.c.checked_at, feeds.c.status, *(feeds.c[name] for name in HEALTH)]
        with self.db.engine.connect() as conn:
            rows = conn.execute(sa.select(*columns).where(feeds.c.url.in_(wanted))).all() if wanted else []
        return {row.url: FeedRecord(**{**row._asdict(), "failures_in_row": row.failures_in_row or 0}) for row in rows}

    @staticmethod
    def _answered(now: datetime, status: str, etag: str | None, last_modified: str | None) -> dict[str, Any]:
        values: dict[str, Any] = {"checked_at": now, "status": status[:200]}
        if etag is not None or last_modified is not None:
            values.update(etag=etag, last_modified=last_modified)
        return values

    def _write(self, url: str, values: dict[str, Any], changed: dict[str, Any] | None = None,
               first: dict[str, Any] | None = None) -> None:
        """Update the row of `url` with `values` and `changed` (expressions over the row), or
        insert it with `values` and `first` (what those expressions give for a new row)."""
        with self.db.engine.begin() as conn:
            updated = conn.execute(feeds.update().where(feeds.c.url == url).values(**values, **(changed or {})))
            if updated.rowcount == 0:
                conn.execute(feeds.insert().values(url=url, **values, **(first or {})))
