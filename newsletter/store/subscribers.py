"""Subscribers and their subscriptions: who receives which digest, and who asked to leave.

Every way in (the CLI, a CSV import, the web form) comes through `add` or `request`, which
check the address and the name at the door, so no row holds what cannot go into a header.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..inputs.addresses import check_name, normalize_address
from .connection import Database
from .history import record
from .records import AddResult, Subscriber, utcnow

LEFT = ("unsubscribed", "bounced", "complained")  # who is not signed up again without --resubscribe
from .schema import subscribers, subscriptions


def recipients(digest: str) -> sa.Select[Any]:
    """(subscriber_id, subscription_id) of everyone who receives `digest` now."""
    return (
        sa.select(subscribers.c.id.label("subscriber_id"), subscriptions.c.id.label("subscription_id"))
        .join(subscriptions, subscriptions.c.subscriber_id == subscribers.c.id)
        .where(
            subscribers.c.status == "active",
            subscriptions.c.status == "active",
            subscriptions.c.digest == digest,
        )
    )


class Subscribers:
    """The subscribers and subscriptions tables; every method runs its own transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self, address: str, name: str, digests: Iterable[str], status: str = "active",
        resubscribe: bool = False, how: str = "added by the operator",
    ) -> AddResult:
        """Create or update a subscriber (`status` active or pending) and their subscriptions.

        Someone who unsubscribed, bounced or complained is left as they are unless `resubscribe`
        says so, and so is a subscription they ended: an import never signs anyone up again
        silently. `how` goes into their history."""
        address, name = normalize_address(address), check_name(name)
        now = utcnow()
        wanted = "active" if status == "active" else "pending"
        with self.db.engine.begin() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.address == address)).first()
            if row is None:
                subscriber_id = _insert(conn, subscribers, address=address, name=name, status=wanted,
                                        created_at=now, updated_at=now)
                record(conn, subscriber_id, "added", how, at=now)
                changed = True
            else:
                subscriber_id = row.id
                if row.status in LEFT and not resubscribe:
                    return AddResult(_subscriber(conn, row.id), created=False, changed=False, blocked=True)
                if row.status in LEFT:
                    record(conn, subscriber_id, "resubscribed", f"{how} (was {row.status})", at=now)
                updates: dict[str, Any] = {}
                if name and name != row.name:
                    updates["name"] = name
                if row.status != wanted and row.status != "active":
                    updates.update(status=wanted, bounces=0)
                if updates:
                    conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(**updates, updated_at=now))
                changed = bool(updates)
            level = wanted if row is None or row.status != "active" else "active"
            for digest in dict.fromkeys(digests):
                changed |= _subscribe(conn, subscriber_id, digest, level, resubscribe, now)
            return AddResult(_subscriber(conn, subscriber_id), created=row is None, changed=changed)

    def get(self, address: str) -> Subscriber | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(subscribers.c.id).where(subscribers.c.address == address.lower())).first()
            return None if row is None else _subscriber(conn, row.id)

    def request(self, address: str, name: str, digest: str) -> int | None:
        """A subscription someone asked for on the web, pending until confirmed.

        Returns the subscription to confirm, or None when the address already receives the
        digest (nothing to confirm). Someone who left earlier may come back this way: they ask
        for it themselves, and only their confirmation makes it active."""
        address, name = normalize_address(address), check_name(name)
        now = utcnow()
        with self.db.engine.begin() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.address == address)).first()
            if row is None:
                subscriber_id = _insert(conn, subscribers, address=address, name=name, status="pending",
                                        created_at=now, updated_at=now)
                subscriber_status = "pending"
            else:
                subscriber_id, subscriber_status = row.id, row.status
            record(conn, subscriber_id, "requested", f"asked for {digest} on the web", at=now)
            existing = conn.execute(sa.select(subscriptions).where(
                subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.digest == digest
            )).first()
            if existing is not None and existing.status == "active" and subscriber_status == "active":
                return None
            if existing is None:
                return _insert(conn, subscriptions, subscriber_id=subscriber_id, digest=digest, status="pending",
                               created_at=now, updated_at=now)
            if existing.status != "pending":
                conn.execute(subscriptions.update().where(subscriptions.c.id == existing.id)
                             .values(status="pending", updated_at=now))
            return int(existing.id)

    def confirm(self, subscription_id: int) -> tuple[Subscriber, str] | None:
        """Make a requested subscription active (and its subscriber); the same again is harmless.
        Returns the subscriber and the digest, or None for an unknown subscription."""
        now = utcnow()
        with self.db.engine.begin() as conn:
            row = conn.execute(sa.select(subscriptions).where(subscriptions.c.id == subscription_id)).first()
            if row is None:
                return None
            conn.execute(subscriptions.update().where(subscriptions.c.id == row.id).values(status="active", updated_at=now))
            conn.execute(
                subscribers.update().where(subscribers.c.id == row.subscriber_id, subscribers.c.status != "active")
                .values(status="active", bounces=0, updated_at=now)
            )
            if row.status != "active":
                record(conn, row.subscriber_id, "confirmed", f"confirmed {row.digest} by the link in the confirmation "
                       "message", at=now)
            return _subscriber(conn, row.subscriber_id), str(row.digest)

    def subscription(self, subscription_id: int) -> tuple[Subscriber, str, str] | None:
        """(subscriber, digest, subscription status) for a subscription id."""
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(subscriptions).where(subscriptions.c.id == subscription_id)).first()
            if row is None:
                return None
            return _subscriber(conn, row.subscriber_id), str(row.digest), str(row.status)

    def remove(self, address: str, digest: str | None = None, how: str = "removed by the operator") -> Subscriber | None:
        """Unsubscribe from one digest, or from all; the row stays, marked, so that a later
        import does not sign the address up again. None if the address is unknown."""
        with self.db.engine.begin() as conn:
            row = conn.execute(sa.select(subscribers.c.id).where(subscribers.c.address == address.lower())).first()
            if row is None:
                return None
            _unsubscribe(conn, row.id, digest, how)
            return _subscriber(conn, row.id)

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
            _unsubscribe(conn, row.subscriber_id, row.digest, how, origin)
            return _subscriber(conn, row.subscriber_id)

    def by_id(self, subscriber_id: int) -> Subscriber | None:
        with self.db.engine.connect() as conn:
            found = conn.execute(sa.select(subscribers.c.id).where(subscribers.c.id == subscriber_id)).first()
            return None if found is None else _subscriber(conn, subscriber_id)

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
                yield Subscriber(row.id, row.address, row.name, row.status, tuple(digests.get(row.id, ())), row.created_at)
            after = rows[-1].address

    def count_recipients(self, digest: str) -> int:
        with self.db.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(recipients(digest).subquery())).scalar() or 0)


def _insert(conn: Connection, table: sa.Table, **values: Any) -> int:
    inserted = conn.execute(table.insert().values(**values)).inserted_primary_key
    assert inserted is not None
    return int(inserted[0])


def _subscriber(conn: Connection, subscriber_id: int) -> Subscriber:
    row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).one()
    digests = conn.execute(
        sa.select(subscriptions.c.digest)
        .where(subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.status == "active")
        .order_by(subscriptions.c.digest)
    ).scalars().all()
    return Subscriber(row.id, row.address, row.name, row.status, tuple(digests), row.created_at)


def _subscribe(conn: Connection, subscriber_id: int, digest: str, status: str, resubscribe: bool, now: datetime) -> bool:
    existing = conn.execute(sa.select(subscriptions).where(
        subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.digest == digest
    )).first()
    if existing is None:
        _insert(conn, subscriptions, subscriber_id=subscriber_id, digest=digest, status=status,
                created_at=now, updated_at=now)
        return True
    if existing.status == status or existing.status == "active":
        return False
    if existing.status == "unsubscribed" and not resubscribe:
        return False
    conn.execute(subscriptions.update().where(subscriptions.c.id == existing.id).values(status=status, updated_at=now))
    return True


def _unsubscribe(conn: Connection, subscriber_id: int, digest: str | None, how: str,
                 origin: str | None = None, status: str = "unsubscribed") -> None:
    now = utcnow()
    ended = subscriptions.update().where(
        subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.status != "unsubscribed"
    )
    if digest is not None:
        ended = ended.where(subscriptions.c.digest == digest)
    if conn.execute(ended.values(status="unsubscribed", updated_at=now)).rowcount:
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
    _unsubscribe(conn, subscriber_id, None, "after a complaint", origin, status="complained")
    conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id)
                 .values(status="complained", updated_at=now))
