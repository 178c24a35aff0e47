"""Subscribers and their subscriptions: who receives which digest, and who asked to leave.

Every way in (the CLI, a CSV import, the web form) comes through `add` or `Readers.request`,
which check the address and the name at the door, so no row holds what cannot go into a header.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..inputs.addresses import check_name, normalize_address
from ..inputs.marking import label as tlp_label
from .connection import Database
from .history import record
from .records import AddResult, Subscriber, utcnow
from .schema import subscribers, subscriptions

LEFT = ("unsubscribed", "bounced", "complained")  # who is not signed up again without --resubscribe


def not_paused(now: datetime) -> sa.ColumnElement[bool]:
    """Subscribers who have not paused their digests past `now`."""
    return sa.or_(subscribers.c.paused_until.is_(None), subscribers.c.paused_until <= now)


def recipients(digest: str, now: datetime | None = None) -> sa.Select[Any]:
    """(subscriber_id, subscription_id) of everyone who receives `digest` now (not paused)."""
    return (
        sa.select(subscribers.c.id.label("subscriber_id"), subscriptions.c.id.label("subscription_id"))
        .join(subscriptions, subscriptions.c.subscriber_id == subscribers.c.id)
        .where(
            subscribers.c.status == "active",
            subscriptions.c.status == "active",
            subscriptions.c.digest == digest,
            not_paused(now or utcnow()),
        )
    )


class Subscribers:
    """The subscribers and subscriptions tables; every method runs its own transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self, address: str, name: str, digests: Iterable[str], status: str = "active",
        resubscribe: bool = False, how: str = "added by the operator", clearance: str | None = None,
    ) -> AddResult:
        """Create or update a subscriber (`status` active or pending) and their subscriptions.

        Someone who unsubscribed, bounced or complained is left as they are unless `resubscribe`
        says so, and so is a subscription they ended: an import never signs anyone up again
        silently. `how` goes into their history. `clearance` (a TLP level) is given by the
        operator only; None leaves it as it is (clear for someone new)."""
        address, name = normalize_address(address), check_name(name)
        now = utcnow()
        wanted = "active" if status == "active" else "pending"
        with self.db.engine.begin() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.address == address)).first()
            if row is None:
                subscriber_id = insert_row(conn, subscribers, address=address, name=name, status=wanted,
                                        created_at=now, updated_at=now, clearance=clearance)
                record(conn, subscriber_id, "added", how, at=now)
                if clearance is not None and clearance != "clear":
                    record(conn, subscriber_id, "clearance", f"cleared for {tlp_label(clearance)} ({how})", at=now)
                changed = True
            else:
                subscriber_id = row.id
                if row.status in LEFT and not resubscribe:
                    return AddResult(subscriber_record(conn, row.id), created=False, changed=False, blocked=True)
                if row.status in LEFT:
                    record(conn, subscriber_id, "resubscribed", f"{how} (was {row.status})", at=now)
                updates: dict[str, Any] = {}
                if name and name != row.name:
                    updates["name"] = name
                if clearance is not None and clearance != (row.clearance or "clear"):
                    updates["clearance"] = clearance
                    record(conn, subscriber_id, "clearance",
                           f"cleared for {tlp_label(clearance)}, was {tlp_label(row.clearance or 'clear')} ({how})", at=now)
                if row.status != wanted and row.status != "active":
                    updates.update(status=wanted, bounces=0)
                if updates:
                    conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(**updates, updated_at=now))
                changed = bool(updates)
            level = wanted if row is None or row.status != "active" else "active"
            for digest in dict.fromkeys(digests):
                changed |= _subscribe(conn, subscriber_id, digest, level, resubscribe, now)
            return AddResult(subscriber_record(conn, subscriber_id), created=row is None, changed=changed)

    def clearances(self, digest: str) -> tuple[str, ...]:
        """The clearances among the readers `digest` goes to now: which TLP copies it needs."""
        readers = recipients(digest).add_columns(sa.func.coalesce(subscribers.c.clearance, "clear").label("level"))
        with self.db.engine.connect() as conn:
            found = conn.execute(sa.select(readers.subquery().c.level).distinct()).scalars().all()
        return tuple(str(level) for level in found)

    def get(self, address: str) -> Subscriber | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(subscribers.c.id).where(subscribers.c.address == address.lower())).first()
            return None if row is None else subscriber_record(conn, row.id)

    def subscription(self, subscription_id: int) -> tuple[Subscriber, str, str] | None:
        """(subscriber, digest, subscription status) for a subscription id."""
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(subscriptions).where(subscriptions.c.id == subscription_id)).first()
            if row is None:
                return None
            return subscriber_record(conn, row.subscriber_id), str(row.digest), str(row.status)

    def remove(self, address: str, digest: str | None = None, how: str = "removed by the operator") -> Subscriber | None:
        """Unsubscribe from one digest, or from all; the row stays, marked, so that a later
        import does not sign the address up again. None if the address is unknown."""
        with self.db.engine.begin() as conn:
            row = conn.execute(sa.select(subscribers.c.id).where(subscribers.c.address == address.lower())).first()
            if row is None:
                return None
            end_subscriptions(conn, row.id, digest, how)
            return subscriber_record(conn, row.id)

    def unsubscribe(self, subscription_id: int, how: str = "by the unsubscribe link",
                    origin: str | None = None) -> Subscriber | None:
        """What an unsubscribe link (or a mail to unsubscribe+TOKEN@) does: end one
        subscription (idempotent)."""
        with self.db.engine.begin() as conn:
            row = conn.execute(
                sa.select(subscriptions.c.subscriber_id, subscriptions.c.digest)
                .where(subscriptions.c.id == subscription_id)
            ).first()
            if row is None:
                return None
            end_subscriptions(conn, row.subscriber_id, row.digest, how, origin)
            return subscriber_record(conn, row.subscriber_id)

    def by_id(self, subscriber_id: int) -> Subscriber | None:
        with self.db.engine.connect() as conn:
            found = conn.execute(sa.select(subscribers.c.id).where(subscribers.c.id == subscriber_id)).first()
            return None if found is None else subscriber_record(conn, subscriber_id)

    def iter(self, status: str | None = None, digest: str | None = None, batch: int = 1000) -> Iterator[Subscriber]:
        """Every subscriber in address order, read in batches so memory stays flat."""
        after = ""
        while True:
            with self.db.engine.connect() as conn:
                query = sa.select(subscribers).where(subscribers.c.address > after)
                if status:
                    query = query.where(subscribers.c.status == status)
                if digest:
                    query = query.where(subscribers.c.id.in_(
                        sa.select(subscriptions.c.subscriber_id).where(
                            subscriptions.c.digest == digest, subscriptions.c.status == "active"
                        )
                    ))
                rows = conn.execute(query.order_by(subscribers.c.address).limit(batch)).all()
                if not rows:
                    return
                active = conn.execute(
                    sa.select(subscriptions.c.subscriber_id, subscriptions.c.digest)
                    .where(
                        subscriptions.c.subscriber_id.in_([r.id for r in rows]),
                        subscriptions.c.status == "active",
                    )
                    .order_by(subscriptions.c.digest)
                ).all()
            digests: dict[int, list[str]] = {}
            for sub in active:
                digests.setdefault(sub.subscriber_id, []).append(sub.digest)
            for row in rows:
                yield _record(row, tuple(digests.get(row.id, ())))
            after = rows[-1].address

    def count_recipients(self, digest: str) -> int:
        with self.db.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(recipients(digest).subquery())).scalar() or 0)


def insert_row(conn: Connection, table: sa.Table, **values: Any) -> int:
    """Insert one row; its new id."""
    inserted = conn.execute(table.insert().values(**values)).inserted_primary_key
    assert inserted is not None
    return int(inserted[0])


def subscriber_record(conn: Connection, subscriber_id: int) -> Subscriber:
    """The subscriber as the store hands it out, with the digests they receive."""
    row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).one()
    digests = conn.execute(
        sa.select(subscriptions.c.digest)
        .where(subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.status == "active")
        .order_by(subscriptions.c.digest)
    ).scalars().all()
    return _record(row, tuple(digests))


def _record(row: Any, digests: tuple[str, ...]) -> Subscriber:
    return Subscriber(row.id, row.address, row.name, row.status, digests, row.created_at, row.paused_until,
                      bool(row.plain_text), row.clearance or "clear")


def _subscribe(conn: Connection, subscriber_id: int, digest: str, status: str, resubscribe: bool, now: datetime) -> bool:
    existing = conn.execute(sa.select(subscriptions).where(
        subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.digest == digest
    )).first()
    if existing is None:
        insert_row(conn, subscriptions, subscriber_id=subscriber_id, digest=digest, status=status,
                created_at=now, updated_at=now)
        return True
    if existing.status == status or existing.status == "active":
        return False
    if existing.status == "unsubscribed" and not resubscribe:
        return False
    conn.execute(subscriptions.update().where(subscriptions.c.id == existing.id).values(status=status, updated_at=now))
    return True


def end_subscriptions(conn: Connection, subscriber_id: int, digest: str | None, how: str,
                      origin: str | None = None, status: str = "unsubscribed") -> None:
    """End one subscription (or all, `digest` None), recorded with `how`; a subscriber left with
    none becomes `status`. A confirmation link still out for it stops working."""
    now = utcnow()
    ended = subscriptions.update().where(
        subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.status != "unsubscribed"
    )
    if digest is not None:
        ended = ended.where(subscriptions.c.digest == digest)
    if conn.execute(ended.values(status="unsubscribed", confirm_code=None, updated_at=now)).rowcount:
        what = f"from {digest}" if digest else "from every digest"
        record(conn, subscriber_id, "unsubscribed", f"{what}, {how}", origin=origin, at=now)
    remaining = conn.execute(
        sa.select(sa.func.count()).select_from(subscriptions).where(
            subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.status != "unsubscribed"
        )
    ).scalar()
    if not remaining:
        conn.execute(
            subscribers.update()
            .where(subscribers.c.id == subscriber_id, subscribers.c.status.not_in(("bounced", "complained")))
            .values(status=status, updated_at=now)
        )


def count_bounce(conn: Connection, subscriber_id: int, bounce_limit: int, now: datetime, at_once: bool = False) -> bool:
    """One more permanent failure for this address (or, `at_once`, one that is final, such as
    5.1.1 "no such user"); True when it marked the subscriber bounced."""
    conn.execute(
        subscribers.update().where(subscribers.c.id == subscriber_id)
        .values(bounces=subscribers.c.bounces + 1, updated_at=now)
    )
    limit = subscribers.c.bounces >= bounce_limit
    return bool(conn.execute(
        subscribers.update()
        .where(subscribers.c.id == subscriber_id, subscribers.c.status == "active", sa.true() if at_once else limit)
        .values(status="bounced", updated_at=now)
    ).rowcount)


def complained(conn: Connection, subscriber_id: int, detail: str, origin: str | None, now: datetime) -> None:
    """A spam complaint: every subscription ended and the address suppressed ("complained"),
    so no import signs it up again without --resubscribe."""
    end_subscriptions(conn, subscriber_id, None, "after a complaint", origin, status="complained")
    conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id)
                 .values(status="complained", updated_at=now))
