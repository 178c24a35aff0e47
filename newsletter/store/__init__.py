"""The store: subscribers, issues and the outbox of deliveries, in SQLite or PostgreSQL.

SQLAlchemy Core keeps one schema for both. The schema has numbered versions; opening a
store upgrades an older database in place, one version per transaction. The delivery
table is the outbox: a row is written before a message goes out and marked after, so a
crash loses no recipient and repeats at most the message that was on the wire.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import NewsletterError

SUBSCRIBER_STATUSES = ("pending", "active", "unsubscribed", "bounced")
SUBSCRIPTION_STATUSES = ("pending", "active", "unsubscribed")
DELIVERY_STATUSES = ("queued", "deferred", "sent", "failed")


def utcnow() -> datetime:
    """Naive UTC: the one form of time in the store, alike on SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


class StoreError(NewsletterError):
    """The database cannot be opened, or is newer than this program."""


# --- schema and its versions -----------------------------------------------------------------
# Version 1 is written out once and never edited; each later version says what it adds, and the
# tables the code uses are version 1 plus those additions. An old database takes the same steps.

_v1_schema = sa.MetaData()

schema_version = sa.Table(
    "schema_version", _v1_schema,
    sa.Column("version", sa.Integer, nullable=False),
)

sa.Table(
    "subscribers", _v1_schema,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("address", sa.String(320), nullable=False, unique=True),  # normalized, lowercase
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("bounces", sa.Integer, nullable=False, server_default="0"),  # permanent failures in a row
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

sa.Table(
    "subscriptions", _v1_schema,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False),
    sa.Column("digest", sa.String(100), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("subscriber_id", "digest"),
)

sa.Table(
    "issues", _v1_schema,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("digest", sa.String(100), nullable=False),
    sa.Column("period", sa.String(20), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("preheader", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("nonce", sa.String(32), nullable=False),  # makes Message-IDs unique across databases
    sa.Column("as_of", sa.DateTime, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("queued_at", sa.DateTime),
    sa.Column("finished_at", sa.DateTime),
    sa.UniqueConstraint("digest", "period"),
)

_v1_deliveries = sa.Table(
    "deliveries", _v1_schema,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id"), nullable=False),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False),
    sa.Column("subscription_id", sa.Integer, sa.ForeignKey("subscriptions.id"), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("message_id", sa.String(200)),
    sa.Column("next_attempt_at", sa.DateTime),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("sent_at", sa.DateTime),
    sa.UniqueConstraint("issue_id", "subscriber_id"),
)
sa.Index("deliveries_by_status", _v1_deliveries.c.issue_id, _v1_deliveries.c.status, _v1_deliveries.c.id)


def _v1(conn: Connection) -> None:
    """Subscribers, subscriptions, issues and deliveries."""
    _v1_schema.create_all(conn, tables=[t for t in _v1_schema.sorted_tables if t is not schema_version])


# Later versions add columns: (table, column, type).
_ADDED: dict[int, tuple[tuple[str, str, sa.types.TypeEngine[Any]], ...]] = {
    # Leases on deliveries, so that two senders never take the same row.
    2: (("deliveries", "lease_owner", sa.String(120)), ("deliveries", "lease_expires", sa.DateTime())),
    # What an issue holds (its brief and entries), to tell whether the next one has news.
    3: (("issues", "items", sa.Text()),),
    # Which sender sent a delivery (host:pid), for progress per worker.
    5: (("deliveries", "sent_by", sa.String(80)),),
}


def _adding(version: int) -> Callable[[Connection], None]:
    def step(conn: Connection) -> None:
        for table, column, kind in _ADDED[version]:
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {kind.compile(dialect=conn.dialect)}"))

    step.__doc__ = f"Version {version}: add {', '.join(f'{t}.{c}' for t, c, _ in _ADDED[version])}."
    return step


# Version 4: what each news feed answered last, for conditional GETs (ETag, Last-Modified).
_v4_schema = sa.MetaData()
sa.Table(
    "feeds", _v4_schema,
    sa.Column("url", sa.String(1000), primary_key=True),
    sa.Column("etag", sa.String(500)),
    sa.Column("last_modified", sa.String(100)),
    sa.Column("checked_at", sa.DateTime),
    sa.Column("status", sa.String(200)),  # "ok", "not modified", or what went wrong
)


def _v4(conn: Connection) -> None:
    """Feeds: the validators each news feed sent last."""
    _v4_schema.create_all(conn)


MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_v1, _adding(2), _adding(3), _v4, _adding(5))
SCHEMA_VERSION = len(MIGRATIONS)

# The tables as the code sees them: version 1 and what each later version added.
metadata = sa.MetaData()
subscribers, subscriptions, issues, deliveries = (
    _v1_schema.tables[name].to_metadata(metadata) for name in ("subscribers", "subscriptions", "issues", "deliveries")
)
for _version_added in sorted(_ADDED):
    for _table, _column, _kind in _ADDED[_version_added]:
        metadata.tables[_table].append_column(sa.Column(_column, _kind))
feeds = _v4_schema.tables["feeds"].to_metadata(metadata)


def _version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)


def migrate(engine: Engine, target: int = SCHEMA_VERSION) -> int:
    """Upgrade the database to `target`; return the version it was at."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # One migrator at a time; the lock ends with the transaction.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7302022)"))
        elif engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        found = _version(conn)
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"the database is at schema version {found}, newer than this program knows "
                f"({SCHEMA_VERSION}): upgrade threat-brief-newsletter"
            )
        if found == 0:
            schema_version.create(conn, checkfirst=True)
        for number in range(found + 1, target + 1):
            MIGRATIONS[number - 1](conn)
            conn.execute(schema_version.insert().values(version=number))
    return found


# --- records -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Subscriber:
    id: int
    address: str
    name: str
    status: str
    digests: tuple[str, ...]  # digests with an active subscription
    created_at: datetime


@dataclass(frozen=True)
class StoredIssue:
    id: int
    digest: str
    period: str
    subject: str
    preheader: str
    html: str
    text: str
    content_hash: str
    nonce: str
    as_of: datetime
    created_at: datetime
    queued_at: datetime | None
    finished_at: datetime | None
    items: str | None = None  # JSON list of what the issue holds (see `contents`)

    @property
    def name(self) -> str:
        return f"{self.digest}-{self.period}"

    @property
    def contents(self) -> tuple[str, ...]:
        """Keys of the brief and entries in this issue, as `save_issue` was given them."""
        return tuple(json.loads(self.items)) if self.items else ()


@dataclass(frozen=True)
class Delivery:
    """One claimed row of the outbox, with what sending it needs."""

    id: int
    subscriber_id: int
    subscription_id: int
    address: str
    name: str
    attempts: int
    message_id: str | None
    bounces: int  # the subscriber's permanent failures in a row so far


@dataclass(frozen=True)
class WorkerProgress:
    worker: str  # host:pid
    sent: int
    rate: float  # messages a second while it sent, within the last minute
    last_sent: datetime | None
    holding: int  # deliveries it has claimed and not finished


@dataclass(frozen=True)
class AddResult:
    subscriber: Subscriber
    created: bool  # a new address
    changed: bool  # anything about it changed
    blocked: bool = False  # unsubscribed or bounced earlier, left alone (no `resubscribe`)


# SQLAlchemy's statement cache still builds a cache key per execution of a Core update; a text
# statement skips that, which shows at thousands of messages a second.
_MARK_SENT = sa.text(
    "UPDATE deliveries SET status = 'sent', attempts = :attempts, message_id = :message_id, "
    "sent_at = :now, updated_at = :now, last_error = NULL, next_attempt_at = NULL, "
    "lease_owner = NULL, lease_expires = NULL, sent_by = :sent_by WHERE id = :id"
).bindparams(sa.bindparam("now", type_=sa.DateTime))


# --- the store -----------------------------------------------------------------------------------

def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable at checkpoints, never corrupt
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _mark_options(url: str) -> dict[str, Any]:
    """On PostgreSQL the per-message marks commit without waiting for the disk flush.

    Waiting serializes every worker on the WAL flush (about 1,300 marks a second here, however
    many workers). Not waiting is safe against what the outbox guards against (a worker or a
    connection dying: the mark is committed and visible at once); only a crash of the
    PostgreSQL server itself can lose the last fraction of a second of marks, whose messages
    are then sent again. Queueing and claiming stay fully durable."""
    if url.startswith("postgresql"):
        return {"connect_args": {"options": "-c synchronous_commit=off"}}
    return {}


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


class Store:
    """One database: open with `Store.open(url)`; every method runs its own transaction."""

    def __init__(self, engine: Engine, autocommit: Engine | None = None) -> None:
        self.engine = engine
        # For the write made once per message: one statement in its own implicit transaction,
        # on PostgreSQL one round trip instead of three (BEGIN, UPDATE, COMMIT). A pool of its
        # own, so no connection switches modes back and forth (each switch costs round trips).
        self.autocommit = autocommit or engine

    @classmethod
    def open(cls, url: str, upgrade: bool = True) -> Store:
        if url.startswith("sqlite:///"):
            path = url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        try:
            engine = sa.create_engine(url)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise StoreError(f"cannot use the database {_safe_url(url)}: {exc}") from None
        autocommit = sa.create_engine(url, isolation_level="AUTOCOMMIT", **_mark_options(url))
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            sa.event.listen(autocommit, "connect", _sqlite_pragmas)
        store = cls(engine, autocommit)
        if upgrade:
            try:
                migrate(engine)
            except sa.exc.OperationalError as exc:
                raise StoreError(f"cannot open the database {_safe_url(url)}: {exc.orig}") from None
        return store

    def close(self) -> None:
        self.engine.dispose()
        self.autocommit.dispose()

    @property
    def version(self) -> int:
        with self.engine.connect() as conn:
            return _version(conn)

    # --- subscribers ---

    def add_subscriber(
        self, address: str, name: str, digests: Iterable[str], status: str = "active",
        resubscribe: bool = False,
    ) -> AddResult:
        """Create or update a subscriber (`status` active or pending) and their subscriptions.

        Someone who unsubscribed or bounced is left as they are unless `resubscribe` says so,
        and so is a subscription they ended: an import never signs anyone up again silently.
        """
        now = utcnow()
        wanted = "active" if status == "active" else "pending"
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.address == address.lower())).first()
            if row is None:
                inserted = conn.execute(subscribers.insert().values(
                    address=address.lower(), name=name, status=wanted, created_at=now, updated_at=now
                )).inserted_primary_key
                assert inserted is not None
                subscriber_id = int(inserted[0])
                changed = True
            else:
                subscriber_id = row.id
                if row.status in ("unsubscribed", "bounced") and not resubscribe:
                    return AddResult(self._subscriber(conn, row.id), created=False, changed=False, blocked=True)
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
                changed |= self._subscribe(conn, subscriber_id, digest, level, resubscribe, now)
            return AddResult(self._subscriber(conn, subscriber_id), created=row is None, changed=changed)

    @staticmethod
    def _subscribe(conn: Connection, subscriber_id: int, digest: str, status: str, resubscribe: bool, now: datetime) -> bool:
        existing = conn.execute(sa.select(subscriptions).where(
            subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.digest == digest
        )).first()
        if existing is None:
            conn.execute(subscriptions.insert().values(
                subscriber_id=subscriber_id, digest=digest, status=status, created_at=now, updated_at=now
            ))
            return True
        if existing.status == status or existing.status == "active":
            return False
        if existing.status == "unsubscribed" and not resubscribe:
            return False
        conn.execute(subscriptions.update().where(subscriptions.c.id == existing.id).values(status=status, updated_at=now))
        return True

    def subscriber(self, address: str) -> Subscriber | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(subscribers.c.id).where(subscribers.c.address == address.lower())).first()
            return None if row is None else self._subscriber(conn, row.id)

    def _subscriber(self, conn: Connection, subscriber_id: int) -> Subscriber:
        row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).one()
        digests = conn.execute(
            sa.select(subscriptions.c.digest)
            .where(subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.status == "active")
            .order_by(subscriptions.c.digest)
        ).scalars().all()
        return Subscriber(row.id, row.address, row.name, row.status, tuple(digests), row.created_at)

    def request_subscription(self, address: str, name: str, digest: str) -> int | None:
        """A subscription someone asked for on the web, pending until confirmed.

        Returns the subscription to confirm, or None when the address already receives the
        digest (nothing to confirm). Someone who left earlier may come back this way: they ask
        for it themselves, and only their confirmation makes it active."""
        now = utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.address == address.lower())).first()
            if row is None:
                inserted = conn.execute(subscribers.insert().values(
                    address=address.lower(), name=name, status="pending", created_at=now, updated_at=now
                )).inserted_primary_key
                assert inserted is not None
                subscriber_id, subscriber_status = int(inserted[0]), "pending"
            else:
                subscriber_id, subscriber_status = row.id, row.status
            existing = conn.execute(sa.select(subscriptions).where(
                subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.digest == digest
            )).first()
            if existing is not None and existing.status == "active" and subscriber_status == "active":
                return None
            if existing is None:
                inserted = conn.execute(subscriptions.insert().values(
                    subscriber_id=subscriber_id, digest=digest, status="pending", created_at=now, updated_at=now
                )).inserted_primary_key
                assert inserted is not None
                return int(inserted[0])
            if existing.status != "pending":
                conn.execute(subscriptions.update().where(subscriptions.c.id == existing.id)
                             .values(status="pending", updated_at=now))
            return int(existing.id)

    def confirm_subscription(self, subscription_id: int) -> tuple[Subscriber, str] | None:
        """Make a requested subscription active (and its subscriber); the same again is harmless.
        Returns the subscriber and the digest, or None for an unknown subscription."""
        now = utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(subscriptions).where(subscriptions.c.id == subscription_id)).first()
            if row is None:
                return None
            conn.execute(subscriptions.update().where(subscriptions.c.id == row.id).values(status="active", updated_at=now))
            conn.execute(
                subscribers.update().where(subscribers.c.id == row.subscriber_id, subscribers.c.status != "active")
                .values(status="active", bounces=0, updated_at=now)
            )
            return self._subscriber(conn, row.subscriber_id), str(row.digest)

    def subscription(self, subscription_id: int) -> tuple[Subscriber, str, str] | None:
        """(subscriber, digest, subscription status) for a subscription id."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(subscriptions).where(subscriptions.c.id == subscription_id)).first()
            if row is None:
                return None
            return self._subscriber(conn, row.subscriber_id), str(row.digest), str(row.status)

    def remove_subscriber(self, address: str, digest: str | None = None) -> Subscriber | None:
        """Unsubscribe from one digest, or from all; the row stays, marked, so that a later
        import does not sign the address up again. None if the address is unknown."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(subscribers.c.id).where(subscribers.c.address == address.lower())).first()
            if row is None:
                return None
            self._unsubscribe(conn, row.id, digest)
            return self._subscriber(conn, row.id)

    def unsubscribe(self, subscription_id: int) -> Subscriber | None:
        """What an unsubscribe link does: end one subscription (idempotent)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(subscriptions.c.subscriber_id, subscriptions.c.digest)
                .where(subscriptions.c.id == subscription_id)
            ).first()
            if row is None:
                return None
            self._unsubscribe(conn, row.subscriber_id, row.digest)
            return self._subscriber(conn, row.subscriber_id)

    def _unsubscribe(self, conn: Connection, subscriber_id: int, digest: str | None) -> None:
        now = utcnow()
        ended = subscriptions.update().where(
            subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.status != "unsubscribed"
        )
        if digest is not None:
            ended = ended.where(subscriptions.c.digest == digest)
        conn.execute(ended.values(status="unsubscribed", updated_at=now))
        remaining = conn.execute(
            sa.select(sa.func.count()).select_from(subscriptions).where(
                subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.status != "unsubscribed"
            )
        ).scalar()
        if not remaining:
            conn.execute(
                subscribers.update()
                .where(subscribers.c.id == subscriber_id, subscribers.c.status != "bounced")
                .values(status="unsubscribed", updated_at=now)
            )

    def iter_subscribers(
        self, status: str | None = None, digest: str | None = None, batch: int = 1000
    ) -> Iterator[Subscriber]:
        """Every subscriber in address order, read in batches so memory stays flat."""
        after = ""
        while True:
            with self.engine.connect() as conn:
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
        with self.engine.connect() as conn:
            return int(conn.execute(
                sa.select(sa.func.count()).select_from(self._recipients(digest).subquery())
            ).scalar() or 0)

    @staticmethod
    def _recipients(digest: str) -> sa.Select[Any]:
        return (
            sa.select(subscribers.c.id.label("subscriber_id"), subscriptions.c.id.label("subscription_id"))
            .join(subscriptions, subscriptions.c.subscriber_id == subscribers.c.id)
            .where(
                subscribers.c.status == "active",
                subscriptions.c.status == "active",
                subscriptions.c.digest == digest,
            )
        )

    # --- issues ---

    def issue(self, digest: str, period: str) -> StoredIssue | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(issues).where(issues.c.digest == digest, issues.c.period == period)
            ).first()
        return None if row is None else StoredIssue(**row._mapping)

    def issue_by_name(self, name: str) -> StoredIssue | None:
        """`weekly-2022-W30`: the digest is the name up to the period."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(issues).where(issues.c.digest + "-" + issues.c.period == name)).first()
        return None if row is None else StoredIssue(**row._mapping)

    def latest_issue(self) -> StoredIssue | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(issues).order_by(issues.c.created_at.desc(), issues.c.id.desc())).first()
        return None if row is None else StoredIssue(**row._mapping)

    def previous_issue(self, digest: str, before: datetime) -> StoredIssue | None:
        """The latest issue of `digest` composed before the moment `before`."""
        cutoff = before.astimezone(UTC).replace(tzinfo=None)
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(issues).where(issues.c.digest == digest, issues.c.as_of < cutoff)
                .order_by(issues.c.as_of.desc(), issues.c.id.desc())
            ).first()
        return None if row is None else StoredIssue(**row._mapping)

    def unfinished_issues(self, digest: str) -> list[StoredIssue]:
        """Issues of `digest` that were queued and still have deliveries to make."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(issues).where(
                    issues.c.digest == digest, issues.c.queued_at.is_not(None), issues.c.finished_at.is_(None)
                ).order_by(issues.c.as_of)
            ).all()
        return [StoredIssue(**row._mapping) for row in rows]

    def feed_validators(self, url: str) -> tuple[str | None, str | None]:
        """(ETag, Last-Modified) the feed sent last time, for a conditional GET."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(feeds.c.etag, feeds.c.last_modified).where(feeds.c.url == url)).first()
        return (None, None) if row is None else (row.etag, row.last_modified)

    def record_feed(self, url: str, status: str, etag: str | None = None, last_modified: str | None = None) -> None:
        """What a fetch of the feed gave; validators are kept unless new ones came."""
        now = utcnow()
        with self.engine.begin() as conn:
            values: dict[str, Any] = {"checked_at": now, "status": status[:200]}
            if etag is not None or last_modified is not None:
                values.update(etag=etag, last_modified=last_modified)
            if conn.execute(feeds.update().where(feeds.c.url == url).values(**values)).rowcount == 0:
                conn.execute(feeds.insert().values(url=url, **values))

    def issues_with_work(self) -> list[StoredIssue]:
        """Every queued issue that still has deliveries to make, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(issues).where(issues.c.queued_at.is_not(None), issues.c.finished_at.is_(None))
                .order_by(issues.c.as_of, issues.c.id)
            ).all()
        return [StoredIssue(**row._mapping) for row in rows]

    def progress(self, issue_id: int, window: float = 60.0) -> list[WorkerProgress]:
        """Per sender: deliveries sent, sent in the last `window` seconds, and held now."""
        since = utcnow() - timedelta(seconds=window)
        with self.engine.connect() as conn:
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
                       deliveries.c.status.in_(("queued", "deferred")))
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

    def iter_issues(self) -> Iterator[StoredIssue]:
        with self.engine.connect() as conn:
            for row in conn.execute(sa.select(issues).order_by(issues.c.as_of.desc(), issues.c.id.desc())):
                yield StoredIssue(**row._mapping)

    def save_issue(
        self, digest: str, period: str, subject: str, preheader: str, html: str, text: str,
        content_hash: str, as_of: datetime, contents: Sequence[str] = (),
    ) -> tuple[StoredIssue, bool]:
        """Record an issue once per (digest, period); if it exists, return the stored one.

        The unique constraint decides between two processes saving at once."""
        try:
            with self.engine.begin() as conn:
                conn.execute(issues.insert().values(
                    digest=digest, period=period, subject=subject, preheader=preheader, html=html,
                    text=text, content_hash=content_hash, nonce=uuid.uuid4().hex[:16],
                    as_of=as_of.astimezone(UTC).replace(tzinfo=None), created_at=utcnow(),
                    items=json.dumps(list(contents)),
                ))
            created = True
        except sa.exc.IntegrityError:
            created = False
        stored = self.issue(digest, period)
        assert stored is not None
        return stored, created

    # --- the outbox ---

    def queue(self, issue: StoredIssue) -> int:
        """Write one delivery per active subscriber of the issue's digest, once per issue.

        Who is subscribed when an issue is first queued gets it; running again only resumes.
        Returns how many deliveries this call wrote (0 if the issue was queued before)."""
        now = utcnow()
        with self.engine.begin() as conn:
            took = conn.execute(
                issues.update().where(issues.c.id == issue.id, issues.c.queued_at.is_(None)).values(queued_at=now)
            ).rowcount
            if not took:
                return 0
            recipients = self._recipients(issue.digest).add_columns(
                sa.literal(issue.id).label("issue_id"), sa.literal("queued").label("status"),
                sa.literal(now).label("created_at"), sa.literal(now).label("updated_at"),
            )
            conn.execute(deliveries.insert().from_select(
                ["subscriber_id", "subscription_id", "issue_id", "status", "created_at", "updated_at"],
                recipients,
            ))
            # Counted, not taken from rowcount: psycopg reports -1 for INSERT ... SELECT.
            return int(conn.execute(
                sa.select(sa.func.count()).select_from(deliveries).where(deliveries.c.issue_id == issue.id)
            ).scalar() or 0)

    def claim(self, issue_id: int, owner: str, batch: int, lease_seconds: float) -> list[Delivery]:
        """Take up to `batch` deliveries that are due and not held by a live sender.

        One UPDATE picks and leases the rows, so two senders never take the same one: SQLite
        runs writes one at a time, and PostgreSQL skips rows another sender has locked
        (UPDATE ... RETURNING needs SQLite 3.35 or newer)."""
        now = utcnow()
        with self.engine.begin() as conn:
            due = (
                sa.select(deliveries.c.id)
                .where(
                    deliveries.c.issue_id == issue_id,
                    deliveries.c.status.in_(("queued", "deferred")),
                    sa.or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now),
                    sa.or_(deliveries.c.lease_expires.is_(None), deliveries.c.lease_expires < now),
                )
                # No ORDER BY: with it SQLite sorts every waiting row on each claim. The index on
                # (issue_id, status, id) hands rows over in id order within each status anyway.
                .limit(batch)
            )
            if self.engine.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            taken = conn.execute(
                deliveries.update().where(deliveries.c.id.in_(due.scalar_subquery())).values(
                    lease_owner=owner, lease_expires=now + timedelta(seconds=lease_seconds)
                ).returning(deliveries.c.id)
            ).scalars().all()
            if not taken:
                return []
            rows = conn.execute(
                sa.select(
                    deliveries.c.id, deliveries.c.subscriber_id, deliveries.c.subscription_id,
                    subscribers.c.address, subscribers.c.name, deliveries.c.attempts, deliveries.c.message_id,
                    subscribers.c.bounces,
                )
                .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                .where(deliveries.c.id.in_(taken))
                .order_by(deliveries.c.id)
            ).all()
        return [Delivery(*row) for row in rows]

    def reclaim_dead(self, issue_id: int) -> None:
        """Free at once the leases of senders on this host that no longer run (a killed send):
        a restart on the same machine need not wait for them to expire. Checked when a send
        starts, not per batch: it reads every held row."""
        with self.engine.begin() as conn:
            self._reclaim_dead(conn, issue_id)

    def _reclaim_dead(self, conn: Connection, issue_id: int) -> None:
        owners = conn.execute(
            sa.select(deliveries.c.lease_owner).distinct().where(
                deliveries.c.issue_id == issue_id,
                deliveries.c.lease_owner.is_not(None),
                deliveries.c.status.in_(("queued", "deferred")),
            )
        ).scalars().all()
        dead = [owner for owner in owners if _owner_is_dead(owner)]
        if dead:
            conn.execute(
                deliveries.update().where(deliveries.c.lease_owner.in_(dead))
                .values(lease_owner=None, lease_expires=None)
            )

    def release(self, owner: str) -> None:
        """Give back the deliveries this sender took and did not finish."""
        with self.engine.begin() as conn:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.lease_owner == owner, deliveries.c.status.in_(("queued", "deferred")))
                .values(lease_owner=None, lease_expires=None)
            )

    def mark_sent(self, delivery: Delivery, message_id: str, sent_by: str | None = None) -> None:
        """Once per message on the hot path: plain SQL, one statement unless a bounce count resets."""
        now = utcnow()
        with self.autocommit.connect() as conn:
            conn.execute(_MARK_SENT, {
                "id": delivery.id, "attempts": delivery.attempts + 1, "message_id": message_id, "now": now,
                "sent_by": sent_by,
            })
            if delivery.bounces:
                conn.execute(subscribers.update().where(subscribers.c.id == delivery.subscriber_id).values(bounces=0))

    @staticmethod
    def _attempted(conn: Connection, delivery: Delivery, status: str, error: str, message_id: str,
                   retry_at: datetime | None, now: datetime) -> None:
        """Record an attempt that did not deliver, and give the row back."""
        conn.execute(deliveries.update().where(deliveries.c.id == delivery.id).values(
            status=status, attempts=delivery.attempts + 1, last_error=error[:2000], next_attempt_at=retry_at,
            message_id=message_id, updated_at=now, lease_owner=None, lease_expires=None,
        ))

    def mark_deferred(self, delivery: Delivery, error: str, retry_at: datetime, message_id: str) -> None:
        with self.engine.begin() as conn:
            self._attempted(conn, delivery, "deferred", error, message_id, retry_at, utcnow())

    def mark_failed(self, delivery: Delivery, error: str, message_id: str, bounce_limit: int | None) -> bool:
        """A permanent failure. With `bounce_limit`, it counts towards bouncing the address;
        returns True when this failure marked the subscriber bounced."""
        now = utcnow()
        with self.engine.begin() as conn:
            self._attempted(conn, delivery, "failed", error, message_id, None, now)
            if bounce_limit is None:
                return False
            conn.execute(
                subscribers.update().where(subscribers.c.id == delivery.subscriber_id)
                .values(bounces=subscribers.c.bounces + 1, updated_at=now)
            )
            bounced = conn.execute(
                subscribers.update()
                .where(
                    subscribers.c.id == delivery.subscriber_id,
                    subscribers.c.bounces >= bounce_limit,
                    subscribers.c.status == "active",
                )
                .values(status="bounced", updated_at=now)
            ).rowcount
            return bool(bounced)

    def next_retry(self, issue_id: int) -> datetime | None:
        """When the earliest deferred delivery of the issue is due, if any is waiting."""
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.min(deliveries.c.next_attempt_at)).where(
                    deliveries.c.issue_id == issue_id, deliveries.c.status == "deferred"
                )
            ).scalar()
        return value if isinstance(value, datetime) else None

    def pending(self, issue_id: int) -> int:
        """Deliveries not finished: queued or deferred, held by anyone or no one."""
        with self.engine.connect() as conn:
            return int(conn.execute(
                sa.select(sa.func.count()).select_from(deliveries).where(
                    deliveries.c.issue_id == issue_id, deliveries.c.status.in_(("queued", "deferred"))
                )
            ).scalar() or 0)

    def finish(self, issue_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                issues.update().where(issues.c.id == issue_id, issues.c.finished_at.is_(None))
                .values(finished_at=utcnow())
            )

    def counts(self, issue_id: int) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.status, sa.func.count()).where(deliveries.c.issue_id == issue_id)
                .group_by(deliveries.c.status)
            ).all()
        found = {status: int(count) for status, count in rows}
        return {status: found.get(status, 0) for status in DELIVERY_STATUSES}

    def last_errors(self, issue_id: int, limit: int = 10) -> list[tuple[str, str, str]]:
        """(address, status, error) of the latest failed or deferred deliveries."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(subscribers.c.address, deliveries.c.status, deliveries.c.last_error)
                .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                .where(deliveries.c.issue_id == issue_id, deliveries.c.last_error.is_not(None))
                .order_by(deliveries.c.updated_at.desc(), deliveries.c.id.desc())
                .limit(limit)
            ).all()
        return [(r.address, r.status, r.last_error or "") for r in rows]


def _safe_url(url: str) -> str:
    """A database URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url.split("@")[-1]
