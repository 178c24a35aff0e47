"""What happened to each subscriber, and by what: one row per event, written with the change it explains."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .connection import Database
from .records import utcnow
from .schema import events

KINDS = (
    "added", "requested", "confirmed", "resubscribed", "unsubscribed", "bounce", "soft-bounce", "bounced",
    "complaint", "preferences", "clearance",
)


@dataclass(frozen=True)
class Event:
    at: datetime  # naive UTC
    kind: str
    detail: str
    code: str | None = None
    issue_id: int | None = None
    delivery_id: int | None = None
    origin: str | None = None


def record(conn: Connection, subscriber_id: int, kind: str, detail: str, *, code: str | None = None,
           issue_id: int | None = None, delivery_id: int | None = None, origin: str | None = None,
           at: datetime | None = None) -> None:
    """Write one event in the caller's transaction, so the change and its reason stand or fall together."""
    assert kind in KINDS, kind
    conn.execute(events.insert().values(
        subscriber_id=subscriber_id, at=at or utcnow(), kind=kind, detail=detail[:2000], code=code,
        issue_id=issue_id, delivery_id=delivery_id, origin=(origin or "")[:500] or None,
    ))


class History:
    """Reads of the events table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def of(self, subscriber_id: int) -> list[Event]:
        """A subscriber's events, oldest first."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(events.c.at, events.c.kind, events.c.detail, events.c.code, events.c.issue_id,
                          events.c.delivery_id, events.c.origin)
                .where(events.c.subscriber_id == subscriber_id).order_by(events.c.at, events.c.id)
            ).all()
        return [Event(*row) for row in rows]

    def last(self, subscriber_ids: list[int]) -> dict[int, Event]:
        """The newest event of each of these subscribers."""
        if not subscriber_ids:
            return {}
        newest = (
            sa.select(events.c.subscriber_id, sa.func.max(events.c.id).label("id"))
            .where(events.c.subscriber_id.in_(subscriber_ids)).group_by(events.c.subscriber_id).subquery()
        )
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(events.c.subscriber_id, events.c.at, events.c.kind, events.c.detail, events.c.code,
                          events.c.issue_id, events.c.delivery_id, events.c.origin)
                .join(newest, newest.c.id == events.c.id)
            ).all()
        return {row[0]: Event(*row[1:]) for row in rows}

    def per_issue(self, issue_id: int) -> Counter[str]:
        """How many of each kind of event an issue brought about (bounces, complaints, unsubscribes)."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(events.c.kind, sa.func.count()).where(events.c.issue_id == issue_id).group_by(events.c.kind)
            ).all()
        return Counter({kind: int(count) for kind, count in rows})
