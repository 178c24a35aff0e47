"""Messages that came back: each one recorded, and the changes they cause made with their reasons."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import sqlalchemy as sa

from .connection import Database
from .history import record
from .records import utcnow
from .schema import deliveries, issues, returns, subscribers
from .subscribers import complained, count_bounce

RAW_KEPT = 1024 * 1024  # bytes of a message nobody recognized that the store keeps for a person to read


@dataclass(frozen=True)
class Sent:
    """A delivery we made, as a report about it needs it."""

    delivery_id: int
    issue_id: int
    issue_name: str
    nonce: str
    subscriber_id: int
    subscription_id: int
    address: str
    subscriber_status: str


class Returns:
    """The returns table, and the subscriber changes reports cause; each method one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def sent(self, delivery_id: int) -> Sent | None:
        """The delivery with this id, if we made it (it was tried: sent, failed or deferred)."""
        with self.db.engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    deliveries.c.id, deliveries.c.issue_id, (issues.c.digest + "-" + issues.c.period).label("name"),
                    issues.c.nonce, deliveries.c.subscriber_id, deliveries.c.subscription_id, subscribers.c.address,
                    subscribers.c.status,
                )
                .join(issues, issues.c.id == deliveries.c.issue_id)
                .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                .where(deliveries.c.id == delivery_id, deliveries.c.attempts > 0)
            ).first()
        return None if row is None else Sent(*row)

    def bounce(self, sent: Sent, hard: bool, at_once: bool, detail: str, code: str, origin: str,
               bounce_limit: int) -> str:
        """A bounce report about `sent`: counted towards `bounce_limit` when hard, marking the
        address bounced at once when `at_once` (5.1.x: no such mailbox); soft ones are only
        recorded. Returns what it did, in words."""
        now = utcnow()
        kind = "bounce" if hard else "soft-bounce"
        with self.db.engine.begin() as conn:
            record(conn, sent.subscriber_id, kind, detail, code=code, issue_id=sent.issue_id,
                   delivery_id=sent.delivery_id, origin=origin, at=now)
            if not hard:
                return f"{sent.address}: a soft bounce ({code}) recorded"
            if count_bounce(conn, sent.subscriber_id, bounce_limit, now, at_once=at_once):
                why = "no such mailbox" if at_once else f"{bounce_limit} permanent failures in a row"
                record(conn, sent.subscriber_id, "bounced", why, code=code, issue_id=sent.issue_id,
                       delivery_id=sent.delivery_id, origin=origin, at=now)
                return f"{sent.address} marked bounced ({why})"
            return f"{sent.address}: a bounce ({code}) counted towards bouncing the address"

    def complaint(self, subscriber_id: int, detail: str, code: str, origin: str, issue_id: int | None = None,
                  delivery_id: int | None = None) -> None:
        """A spam complaint: the subscriber is unsubscribed from everything and suppressed."""
        now = utcnow()
        with self.db.engine.begin() as conn:
            record(conn, subscriber_id, "complaint", detail, code=code, issue_id=issue_id, delivery_id=delivery_id,
                   origin=origin, at=now)
            complained(conn, subscriber_id, detail, origin, now)

    def note(self, kind: str, acted: bool, note: str, message_id: str, sender: str, subject: str, origin: str,
             issue_id: int | None = None, raw: bytes | None = None) -> None:
        """Record one message that came back, and what became of it (with its bytes, up to
        RAW_KEPT, when nobody recognized it)."""
        with self.db.engine.begin() as conn:
            conn.execute(returns.insert().values(
                at=utcnow(), kind=kind, acted=acted, note=note[:2000], message_id=message_id[:500] or None,
                sender=sender[:500] or None, subject=subject[:500] or None, origin=origin[:500], issue_id=issue_id,
                raw=raw[:RAW_KEPT] if raw is not None else None,
            ))

    def counts(self, issue_id: int | None = None) -> Counter[str]:
        """Messages that came back, per kind (of one issue, or of all); `kept aside` counts
        those nobody acted on."""
        query = sa.select(returns.c.kind, returns.c.acted, sa.func.count()).group_by(returns.c.kind, returns.c.acted)
        if issue_id is not None:
            query = query.where(returns.c.issue_id == issue_id)
        with self.db.engine.connect() as conn:
            rows = conn.execute(query).all()
        found: Counter[str] = Counter()
        for kind, acted, count in rows:
            found[kind] += int(count)
            if not acted and kind == "unknown":
                found["kept aside"] += int(count)
        return found
