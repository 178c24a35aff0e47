"""What the outbox says of an issue: deliveries per status, the last errors, each sender's pace."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import sqlalchemy as sa

from ..inputs.marking import TLP_LEVELS
from .connection import Database
from .records import DELIVERY_STATUSES, UNFINISHED, WorkerProgress, utcnow
from .schema import deliveries, subscribers


class DeliveryStatus:
    """Read-only views of the deliveries table for `newsletter status` and progress lines."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def counts(self, issue_id: int) -> dict[str, int]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.status, sa.func.count()).where(deliveries.c.issue_id == issue_id)
                .group_by(deliveries.c.status)
            ).all()
        found = {status: int(count) for status, count in rows}
        return {status: found.get(status, 0) for status in DELIVERY_STATUSES}

    def tiers(self, issue_id: int) -> dict[str, dict[str, int]]:
        """Deliveries per TLP clearance they were queued for, then per status (only the
        clearances that have any), lowest first."""
        level = sa.func.coalesce(deliveries.c.tlp, "clear")
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(level, deliveries.c.status, sa.func.count()).where(deliveries.c.issue_id == issue_id)
                .group_by(level, deliveries.c.status)
            ).all()
        found: dict[str, dict[str, int]] = {}
        for tier, status, count in rows:
            found.setdefault(str(tier), {})[str(status)] = int(count)
        return {tier: found[tier] for tier in TLP_LEVELS if tier in found}

    def last_errors(self, issue_id: int, limit: int = 10) -> list[tuple[str, str, str]]:
        """(address, status, error) of the latest failed or deferred deliveries."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(subscribers.c.address, deliveries.c.status, deliveries.c.last_error)
                .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                .where(deliveries.c.issue_id == issue_id, deliveries.c.last_error.is_not(None))
                .order_by(deliveries.c.updated_at.desc(), deliveries.c.id.desc())
                .limit(limit)
            ).all()
        return [(r.address, r.status, r.last_error or "") for r in rows]

    def progress(self, issue_id: int, window: float = 60.0) -> list[WorkerProgress]:
        """Per sender: deliveries sent, sent in the last `window` seconds, and held now."""
        since = utcnow() - timedelta(seconds=window)
        with self.db.engine.connect() as conn:
            sent = conn.execute(
                sa.select(
                    deliveries.c.sent_by, sa.func.count(),
                    sa.func.sum(sa.case((deliveries.c.sent_at >= since, 1), else_=0)),
                    sa.func.min(sa.case((deliveries.c.sent_at >= since, deliveries.c.sent_at), else_=None)),
                    sa.func.max(deliveries.c.sent_at),
                )
                .where(deliveries.c.issue_id == issue_id, deliveries.c.status == "sent")
                .group_by(deliveries.c.sent_by)
            ).all()
            held = conn.execute(
                sa.select(deliveries.c.lease_owner, sa.func.count())
                .where(deliveries.c.issue_id == issue_id, deliveries.c.lease_owner.is_not(None),
                       deliveries.c.status.in_(UNFINISHED))
                .group_by(deliveries.c.lease_owner)
            ).all()
        found: dict[str, WorkerProgress] = {}
        for worker, count, recent, first_recent, last in sent:
            name = worker or "(unnamed)"
            span = (last - first_recent).total_seconds() if recent and first_recent and last else 0.0
            rate = int(recent or 0) / max(span, 1.0)  # over the part of the window it was sending
            found[name] = WorkerProgress(name, int(count), rate, last, 0)
        for owner, count in held:
            name = owner.rsplit(":", 1)[0]
            current = found.get(name, WorkerProgress(name, 0, 0.0, None, 0))
            found[name] = replace(current, holding=current.holding + int(count))
        return sorted(found.values(), key=lambda p: p.worker)
