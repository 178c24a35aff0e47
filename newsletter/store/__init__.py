"""The store: subscribers, issues, the outbox of deliveries and feed state, in SQLite or PostgreSQL.

SQLAlchemy Core keeps one schema for both (schema.py); opening a store upgrades an older
database in place (migrations.py). Each table group has a part of its own behind the one
connection: `store.subscribers`, `store.readers`, `store.issues`, `store.outbox`, `store.status`, `store.feeds`.
"""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.engine import Engine

from .connection import Database
from .feeds import FeedState
from .history import Event, History
from .issues import Issues
from .migrations import SCHEMA_VERSION, migrate, version
from .outbox import Outbox, lease_owner
from .status import DeliveryStatus
from .returns import Returns, Sent
from .records import (
    DELIVERY_STATUSES, SUBSCRIBER_STATUSES, AddResult, Copy, Delivery, IssueState, Snapshot, StoredIssue, Subscriber,
    WorkerProgress, utcnow,
)
from .readers import Choice, Confirmation, Outcome, Readers, Request
from .subscribers import Subscribers

__all__ = [
    "DELIVERY_STATUSES", "SCHEMA_VERSION", "SUBSCRIBER_STATUSES", "AddResult", "Choice", "Confirmation", "Delivery",
    "Copy", "Event", "IssueState", "Outcome", "Request", "Snapshot", "Sent", "Store", "StoredIssue", "Subscriber", "WorkerProgress", "lease_owner", "migrate", "utcnow",
]


class Store:
    """One database and its parts; open with `Store.open(url)`, close it (or use `with`)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.subscribers = Subscribers(db)
        self.readers = Readers(db)
        self.issues = Issues(db)
        self.outbox = Outbox(db)
        self.status = DeliveryStatus(db)
        self.history = History(db)
        self.returns = Returns(db)
        self.feeds = FeedState(db)

    @classmethod
    def open(cls, url: str, upgrade: bool = True) -> Store:
        return cls(Database.open(url, upgrade))

    @property
    def engine(self) -> Engine:
        return self.db.engine

    @property
    def version(self) -> int:
        with self.db.engine.connect() as conn:
            return version(conn)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
