"""The outbox: one delivery row per issue and reader, claimed under leases, marked as servers answer.

A row is written before its message goes out and marked the moment the server has answered,
so a sender killed at any point repeats at most the message that was on the wire and loses
nobody. Senders claim small batches under a lease (owner and expiry), so any number of them,
on any number of machines, share one outbox.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from functools import lru_cache
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .connection import Database
from .records import UNFINISHED, Delivery, IssueState, StoredIssue, utcnow
from .schema import deliveries, issues, subscribers, subscriptions
from .history import record
from .subscribers import count_bounce, recipients

# The one write made per message, as the driver's own SQL: even a text() statement costs
# SQLAlchemy about 20 microseconds of binding and result handling, which shows at thousands
# of messages a second. `{}` is the driver's placeholder.
_MARK_SENT = (
    "UPDATE deliveries SET status = 'sent', attempts = {}, message_id = {}, sent_at = {}, updated_at = {}, "
    "last_error = NULL, next_attempt_at = NULL, lease_owner = NULL, lease_expires = NULL, sent_by = {} "
    "WHERE id = {} AND lease_owner = {}"
)
PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
# A DateTime in SQLite as SQLAlchemy stores it ("2026-12-01 23:19:43.000123"), so they compare.


WITHDRAWN = "the reader unsubscribed or paused before it went out"
DELIVERY_FIELDS = tuple(f.name for f in fields(Delivery))


def _still_wanted(row: Any, now: datetime) -> bool:
    """Whether the reader still wants the message a delivery was queued for: an unsubscribe,
    a bounce, a complaint or a pause since it was queued withdraws it."""
    paused = row.paused_until is not None and row.paused_until > now
    return row.subscriber_status == "active" and row.subscription_status == "active" and not paused


def recipients_of_issue(issue_id: int) -> sa.Select[Any]:
    """The subscriptions that still receive the digest of issue `issue_id`."""
    digest = sa.select(issues.c.digest).where(issues.c.id == issue_id).scalar_subquery()
    return (
        sa.select(subscriptions.c.id)
        .join(subscribers, subscribers.c.id == subscriptions.c.subscriber_id)
        .where(subscriptions.c.digest == digest, subscriptions.c.status == "active", subscribers.c.status == "active")
    )


def lease_owner() -> str:
    """Who holds a lease: this host and process, plus a nonce in case the pid is reused."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_is_dead(owner: str) -> bool:
    """A lease taken by a process of this host that no longer runs can be taken over at once."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname()[:60] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@lru_cache(maxsize=None)
def _claim_statements(postgresql: bool, batch: int, held: tuple[str, ...]) -> tuple[sa.Update, sa.Select[Any]]:
    """claim()'s two statements, built once per batch size and held levels: building them
    anew cost SQLAlchemy more than running them, once per batch of the hot path."""
    now = sa.bindparam("now", type_=sa.DateTime())
    sending = sa.select(issues.c.id).where(
        issues.c.id == sa.bindparam("issue"), issues.c.state == IssueState.SENDING.value,
    )
    due = (
        sa.select(deliveries.c.id)
        .where(
            deliveries.c.issue_id == sa.bindparam("issue"),
            deliveries.c.status.in_(UNFINISHED),
            sa.or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now),
            sa.or_(deliveries.c.lease_expires.is_(None), deliveries.c.lease_expires < now),
            sending.exists(),
            *([sa.func.coalesce(deliveries.c.tlp, "clear").not_in(held)] if held else []),
        )
        # No ORDER BY: with it SQLite sorts every waiting row on each claim. The index on
        # (issue_id, status, id) hands rows over in id order within each status anyway.
        .limit(batch)
    )
    if postgresql:
        due = due.with_for_update(skip_locked=True)
    take = deliveries.update().where(deliveries.c.id.in_(due.scalar_subquery())).values(
        lease_owner=sa.bindparam("owner"), lease_expires=sa.bindparam("expires"),
    ).returning(deliveries.c.id)
    # The columns of Delivery in its order, then what tells whether the reader still wants it.
    read = (
        sa.select(
            deliveries.c.id, deliveries.c.subscriber_id, deliveries.c.subscription_id,
            subscribers.c.address, subscribers.c.name, deliveries.c.attempts, deliveries.c.message_id,
            subscribers.c.bounces, deliveries.c.first_attempt_at, deliveries.c.issue_id,
            subscribers.c.plain_text, deliveries.c.tlp, subscribers.c.clearance,
            subscribers.c.status.label("subscriber_status"), subscribers.c.paused_until,
            subscriptions.c.status.label("subscription_status"),
        )
        .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
        .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
        .where(deliveries.c.id.in_(sa.bindparam("taken", expanding=True)))
        .order_by(deliveries.c.id)
    )
    if tuple(read.selected_columns.keys())[:len(DELIVERY_FIELDS)] != DELIVERY_FIELDS:
        raise AssertionError("claim() reads the columns of Delivery in another order")
    return take, read


class Outbox:
    """The deliveries table; every method runs its own transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        dialect = db.autocommit.dialect
        self._mark_sent = _MARK_SENT.format(*[PLACEHOLDERS[dialect.paramstyle]] * 7)
        self._time_as_text = dialect.name == "sqlite"
        self._local = threading.local()

    def queue(self, issue: StoredIssue) -> int | None:
        """Stored -> queued: one delivery per active subscriber of the issue's digest, once.

        Returns how many deliveries were written; 0 when the digest has no active subscriber
        (then nothing changes: the issue stays stored, and a later call may queue it); None
        when the issue was queued before (who subscribes after that gets the next issue)."""
        now = utcnow()
        with self.db.engine.connect() as conn, conn.begin() as transaction:
            took = conn.execute(
                issues.update().where(issues.c.id == issue.id, issues.c.state == IssueState.STORED.value)
                .values(state=IssueState.QUEUED.value, queued_at=now)
            ).rowcount
            if not took:
                return None
            readers = recipients(issue.digest).add_columns(
                sa.literal(issue.id).label("issue_id"), sa.literal("queued").label("status"),
                sa.literal(now).label("created_at"), sa.literal(now).label("updated_at"),
                subscribers.c.clearance.label("tlp"),
            )
            conn.execute(deliveries.insert().from_select(
                ["subscriber_id", "subscription_id", "issue_id", "status", "created_at", "updated_at", "tlp"], readers,
            ))
            # Counted, not taken from rowcount: psycopg reports -1 for INSERT ... SELECT.
            written = int(conn.execute(
                sa.select(sa.func.count()).select_from(deliveries).where(deliveries.c.issue_id == issue.id)
            ).scalar() or 0)
            if written == 0:
                transaction.rollback()  # nobody to send to: the issue stays as it was
            return written

    def claim(
        self, issue_id: int, owner: str, batch: int, lease_seconds: float, held: tuple[str, ...] = (),
    ) -> list[Delivery]:
        """Take up to `batch` deliveries that are due and not held by a live sender, while the
        issue is sending (a snapshot that may still be replaced is never sent). Deliveries
        queued for a clearance in `held` stay where they are (TLP:RED without TLS).

        One UPDATE picks and leases the rows, so two senders never take the same one: SQLite
        runs writes one at a time, and PostgreSQL skips rows another sender has locked
        (UPDATE ... RETURNING needs SQLite 3.35 or newer)."""
        now = utcnow()
        take, read = _claim_statements(self.db.postgresql, batch, held)
        with self.db.engine.begin() as conn:
            taken = conn.execute(
                take, {"issue": issue_id, "now": now, "owner": owner, "expires": now + timedelta(seconds=lease_seconds)}
            ).scalars().all()
            if not taken:
                return []
            rows = conn.execute(read, {"taken": taken}).all()
            gone = [row.id for row in rows if not _still_wanted(row, now)]
            if gone:
                conn.execute(deliveries.update().where(deliveries.c.id.in_(gone)).values(
                    status="withdrawn", last_error=WITHDRAWN, updated_at=now, lease_owner=None, lease_expires=None,
                    next_attempt_at=None,
                ))
        width = len(DELIVERY_FIELDS)
        return [Delivery(*row[:width]) for row in rows if row.id not in gone]

    def reclaim_dead(self, issue_id: int) -> None:
        """Free at once the leases of senders on this host that no longer run (a killed send):
        a restart on the same machine need not wait for them to expire. Checked when a send
        starts, not per batch: it reads every held row."""
        with self.db.engine.begin() as conn:
            owners = conn.execute(
                sa.select(deliveries.c.lease_owner).distinct().where(
                    deliveries.c.issue_id == issue_id,
                    deliveries.c.lease_owner.is_not(None),
                    deliveries.c.status.in_(UNFINISHED),
                )
            ).scalars().all()
            dead = [owner for owner in owners if _owner_is_dead(owner)]
            if dead:
                conn.execute(
                    deliveries.update().where(deliveries.c.lease_owner.in_(dead))
                    .values(lease_owner=None, lease_expires=None)
                )

    def renew(self, owners: list[str], lease_seconds: float) -> int:
        """Extend the leases these senders hold (their heartbeat); how many rows they hold."""
        if not owners:
            return 0
        with self.db.engine.begin() as conn:
            return int(conn.execute(
                deliveries.update()
                .where(deliveries.c.lease_owner.in_(owners), deliveries.c.status.in_(UNFINISHED))
                .values(lease_expires=utcnow() + timedelta(seconds=lease_seconds))
            ).rowcount)

    def release(self, owner: str) -> None:
        """Give back the deliveries this sender took and did not finish."""
        with self.db.engine.begin() as conn:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.lease_owner == owner, deliveries.c.status.in_(UNFINISHED))
                .values(lease_owner=None, lease_expires=None)
            )

    @contextmanager
    def sending(self) -> Iterator[None]:
        """While a sending thread is inside, its marks reuse one connection instead of taking one
        from the pool for each message (a pool checkout costs about as much as the mark), and
        go to the driver's cursor straight: SQLAlchemy's execution costs half as much again."""
        with self.db.autocommit.connect() as conn:
            self._local.conn = conn
            self._local.cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                yield
            finally:
                self._local.cursor.close()
                self._local.conn = self._local.cursor = None

    def mark_sent(self, delivery: Delivery, message_id: str, owner: str, sent_by: str | None = None) -> bool:
        """Once per message on the hot path: the driver's SQL, one statement unless a bounce count
        resets. Only the holder of the row's lease may mark it: False when `owner` lost it (the
        row is another sender's now, and this mark counts for nothing)."""
        at = utcnow()
        now: datetime | str = at.isoformat(" ", "microseconds") if self._time_as_text else at
        params = (delivery.attempts + 1, message_id, now, now, sent_by, delivery.id, owner)
        held: Connection | None = getattr(self._local, "conn", None)
        if held is not None:
            return self._marked(held, delivery, params, self._local.cursor)
        with self.db.autocommit.connect() as conn:
            return self._marked(conn, delivery, params)

    def _marked(self, conn: Connection, delivery: Delivery, params: tuple[object, ...], cursor: Any = None) -> bool:
        if cursor is None:
            marked = conn.exec_driver_sql(self._mark_sent, params).rowcount
        else:
            try:
                cursor.execute(self._mark_sent, params)  # autocommit: committed when it returns
            except Exception as exc:
                error = self.db.driver_error(exc)
                if error is not exc:
                    raise error from None
                raise
            marked = cursor.rowcount
        if marked and delivery.bounces:
            conn.execute(subscribers.update().where(subscribers.c.id == delivery.subscriber_id).values(bounces=0))
        return bool(marked)

    def mark_deferred(self, delivery: Delivery, error: str, retry_at: datetime, message_id: str, owner: str,
                      uncertain: bool = False) -> bool:
        """Tried, not delivered (or, `uncertain`, perhaps delivered): due again at `retry_at`.
        False when `owner` no longer holds the row."""
        with self.db.engine.begin() as conn:
            return _attempted(conn, delivery, "uncertain" if uncertain else "deferred", error, message_id,
                              retry_at, utcnow(), owner)

    def mark_failed(self, delivery: Delivery, error: str, message_id: str, bounce_limit: int | None,
                    owner: str) -> bool | None:
        """A permanent failure. With `bounce_limit`, it counts towards bouncing the address.
        Returns True when this failure marked the subscriber bounced, None when `owner` no
        longer holds the row (then nothing changed)."""
        now = utcnow()
        with self.db.engine.begin() as conn:
            if not _attempted(conn, delivery, "failed", error, message_id, None, now, owner):
                return None
            if bounce_limit is None:
                return False
            record(conn, delivery.subscriber_id, "bounce", f"refused when sent: {error}", issue_id=delivery.issue_id,
                   delivery_id=delivery.id, at=now)
            bounced = count_bounce(conn, delivery.subscriber_id, bounce_limit, now)
            if bounced:
                record(conn, delivery.subscriber_id, "bounced", f"{bounce_limit} permanent failures in a row",
                       issue_id=delivery.issue_id, delivery_id=delivery.id, at=now)
            return bounced

    def note_error(self, delivery: Delivery, error: str, owner: str) -> None:
        """Record why a delivery could not be tried (our setup, or a server out of reach, not
        the reader): it stays due, its attempts unchanged, for the next run."""
        with self.db.engine.begin() as conn:
            conn.execute(deliveries.update().where(deliveries.c.id == delivery.id, deliveries.c.lease_owner == owner)
                         .values(last_error=error[:2000], updated_at=utcnow(), lease_owner=None, lease_expires=None))

    def requeue(self, issue_id: int, failed: bool = False) -> list[tuple[str, str, str]]:
        """Make the issue's deferred and uncertain deliveries due now, and with `failed` those
        that failed for good too (for readers still subscribed: an unsubscribe or a bounce is
        honoured). Message-IDs are kept. Returns (address, status, last error) of each."""
        wanted = ("deferred", "uncertain", "failed") if failed else ("deferred", "uncertain")
        readers = recipients_of_issue(issue_id)
        with self.db.engine.begin() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.id, subscribers.c.address, deliveries.c.status, deliveries.c.last_error)
                .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                .where(deliveries.c.issue_id == issue_id, deliveries.c.status.in_(wanted),
                       deliveries.c.subscription_id.in_(readers))
                .order_by(deliveries.c.id)
            ).all()
            if rows:
                conn.execute(
                    deliveries.update().where(deliveries.c.id.in_([r.id for r in rows])).values(
                        status=sa.case((deliveries.c.status == "failed", "queued"), else_=deliveries.c.status),
                        next_attempt_at=None, first_attempt_at=None, updated_at=utcnow(),
                    )
                )
        return [(r.address, r.status, r.last_error or "") for r in rows]

    def next_retry(self, issue_id: int) -> datetime | None:
        """When the earliest deferred delivery of the issue is due, if any is waiting."""
        with self.db.engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.min(deliveries.c.next_attempt_at)).where(
                    deliveries.c.issue_id == issue_id, deliveries.c.status == "deferred"
                )
            ).scalar()
        return value if isinstance(value, datetime) else None

    def pending(self, issue_id: int, levels: tuple[str, ...] = ()) -> int:
        """Deliveries not finished: queued or deferred, held by anyone or no one (with `levels`,
        only those queued for one of these clearances)."""
        query = sa.select(sa.func.count()).select_from(deliveries).where(
            deliveries.c.issue_id == issue_id, deliveries.c.status.in_(UNFINISHED)
        )
        if levels:
            query = query.where(sa.func.coalesce(deliveries.c.tlp, "clear").in_(levels))
        with self.db.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def due(self, issue_id: int) -> int:
        """Unfinished deliveries due now and held by no live lease: what a sender would take."""
        now = utcnow()
        with self.db.engine.connect() as conn:
            return int(conn.execute(
                sa.select(sa.func.count()).select_from(deliveries).where(
                    deliveries.c.issue_id == issue_id, deliveries.c.status.in_(UNFINISHED),
                    sa.or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now),
                    sa.or_(deliveries.c.lease_expires.is_(None), deliveries.c.lease_expires < now),
                )
            ).scalar() or 0)

    def due_or_held(self, issue_id: int) -> int:
        """Unfinished deliveries due now, or held by a sender (which may give them back):
        0 means all that is left waits for a retry time."""
        now = utcnow()
        with self.db.engine.connect() as conn:
            return int(conn.execute(
                sa.select(sa.func.count()).select_from(deliveries).where(
                    deliveries.c.issue_id == issue_id, deliveries.c.status.in_(UNFINISHED),
                    sa.or_(
                        deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now,
                        deliveries.c.lease_owner.is_not(None),
                    ),
                )
            ).scalar() or 0)



def _attempted(conn: Connection, delivery: Delivery, status: str, error: str, message_id: str,
               retry_at: datetime | None, now: datetime, owner: str) -> bool:
    """Record an attempt that did not deliver, and give the row back; False (and nothing
    changed) when `owner` no longer holds it."""
    values: dict[str, Any] = dict(
        status=status, attempts=delivery.attempts + 1, last_error=error[:2000], next_attempt_at=retry_at,
        message_id=message_id, updated_at=now, lease_owner=None, lease_expires=None,
        first_attempt_at=delivery.first_attempt_at or now,
    )
    return bool(conn.execute(
        deliveries.update().where(deliveries.c.id == delivery.id, deliveries.c.lease_owner == owner).values(**values)
    ).rowcount)
