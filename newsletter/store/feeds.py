"""What each news feed answered last, so the next fetch is a conditional GET."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .connection import Database
from .records import utcnow
from .schema import feeds


class FeedState:
    """The feeds table; every method runs its own transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def validators(self, url: str) -> tuple[str | None, str | None]:
        """(ETag, Last-Modified) the feed sent last time, for a conditional GET."""
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(feeds.c.etag, feeds.c.last_modified).where(feeds.c.url == url)).first()
        return (None, None) if row is None else (row.etag, row.last_modified)

    def record(self, url: str, status: str, etag: str | None = None, last_modified: str | None = None) -> None:
        """What a fetch of the feed gave; validators are kept unless new ones came."""
        now = utcnow()
        with self.db.engine.begin() as conn:
            values: dict[str, Any] = {"checked_at": now, "status": status[:200]}
            if etag is not None or last_modified is not None:
                values.update(etag=etag, last_modified=last_modified)
            if conn.execute(feeds.update().where(feeds.c.url == url).values(**values)).rowcount == 0:
                conn.execute(feeds.insert().values(url=url, **values))
