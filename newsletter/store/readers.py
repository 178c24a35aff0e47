"""What readers change themselves: subscriptions they ask for and confirm, and their preferences.

A requested subscription keeps the code of the one confirmation link that may make it active
(`confirm_code`). The link works once: following it clears the code, an unsubscribe clears
it, and so an old link replayed later changes nothing. Preferences (digests, a pause, plain
text only) change here, each change written into the reader's history in the same
transaction.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..inputs.addresses import check_name, normalize_address
from .connection import Database
from .history import record
from .records import Subscriber, utcnow
from .schema import subscribers, subscriptions
from .subscribers import end_subscriptions, insert_row, subscriber_record

SUPPRESSED = ("bounced", "complained")  # who comes back only through a confirmed request


class Outcome(StrEnum):
    """What a confirmation link does (or would do)."""

    PENDING = "pending"  # it would confirm the subscription (a GET shows the button)
    CONFIRMED = "confirmed"  # it just did
    ALREADY = "already"  # the subscription was active before: nothing to do
    STALE = "stale"  # unsubscribed since, or a newer request: the link does nothing


@dataclass(frozen=True)
class Confirmation:
    outcome: Outcome
    subscriber: Subscriber
    digest: str
    subscription_id: int


@dataclass(frozen=True)
class Request:
    """A requested subscription and the code its confirmation link must carry."""

    subscription_id: int
    code: str


@dataclass(frozen=True)
class Choice:
    """What a reader asks for on their preferences page."""

    digests: frozenset[str]  # the digests to receive; the rest are ended
    paused_until: datetime | None  # naive UTC; None: not paused
    plain_text: bool


class Readers:
    """Changes readers make through signed links; every method runs its own transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def request(self, address: str, name: str, digest: str) -> Request | None:
        """A subscription someone asked for on the web, pending until confirmed.

        Returns it with its confirmation code, or None when the address already receives the
        digest (nothing to confirm). A request while one is pending keeps its code, so the
        links of both messages work; after an unsubscribe the code is new. Someone who left
        earlier may come back this way: only their own confirmation makes it active."""
        address, name = normalize_address(address), check_name(name)
        now = utcnow()
        with self.db.engine.begin() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.address == address)).first()
            if row is None:
                subscriber_id = insert_row(conn, subscribers, address=address, name=name, status="pending",
                                           created_at=now, updated_at=now)
                subscriber_status = "pending"
            else:
                subscriber_id, subscriber_status = row.id, row.status
            existing = conn.execute(sa.select(subscriptions).where(
                subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.digest == digest
            )).first()
            if existing is not None and existing.status == "active" and subscriber_status == "active":
                return None
            record(conn, subscriber_id, "requested", f"asked for {digest} on the web", at=now)
            if existing is None:
                code = secrets.token_hex(8)
                found = insert_row(conn, subscriptions, subscriber_id=subscriber_id, digest=digest, status="pending",
                                   confirm_code=code, created_at=now, updated_at=now)
                return Request(found, code)
            code = existing.confirm_code if existing.status == "pending" and existing.confirm_code else secrets.token_hex(8)
            conn.execute(subscriptions.update().where(subscriptions.c.id == existing.id)
                         .values(status="pending", confirm_code=code, updated_at=now))
            return Request(int(existing.id), code)

    def confirmation(self, subscription_id: int, code: str) -> Confirmation | None:
        """What following the link would do, changing nothing (a GET: mail scanners fetch links)."""
        with self.db.engine.connect() as conn:
            return _state(conn, subscription_id, code)

    def confirm(self, subscription_id: int, code: str) -> Confirmation | None:
        """Make the requested subscription active, if `code` is the one it waits for; None for
        an unknown subscription. A second call, or one after an unsubscribe, changes nothing."""
        now = utcnow()
        with self.db.engine.begin() as conn:
            took = conn.execute(
                subscriptions.update()
                .where(subscriptions.c.id == subscription_id, subscriptions.c.status == "pending",
                       subscriptions.c.confirm_code == code)
                .values(status="active", confirm_code=None, updated_at=now)
            ).rowcount
            if not took:
                return _state(conn, subscription_id, code)
            row = conn.execute(sa.select(subscriptions).where(subscriptions.c.id == subscription_id)).one()
            conn.execute(
                subscribers.update().where(subscribers.c.id == row.subscriber_id, subscribers.c.status != "active")
                .values(status="active", bounces=0, updated_at=now)
            )
            record(conn, row.subscriber_id, "confirmed",
                   f"confirmed {row.digest} by the link in the confirmation message", at=now)
            return Confirmation(Outcome.CONFIRMED, subscriber_record(conn, row.subscriber_id), str(row.digest), row.id)

    def choose(self, subscriber_id: int, choice: Choice, how: str = "on the preferences page") -> Subscriber | None:
        """Apply a reader's preferences; None for an unknown subscriber.

        Digests newly chosen start at once (the link that led here proves the address is
        theirs), except for an address that bounced or complained: that one comes back only
        through a confirmed request, so its choice of digests is left as it is."""
        now = utcnow()
        with self.db.engine.begin() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
            if row is None:
                return None
            current = dict(conn.execute(
                sa.select(subscriptions.c.digest, subscriptions.c.status)
                .where(subscriptions.c.subscriber_id == subscriber_id)
            ).all())
            receiving = {d for d, status in current.items() if status == "active"}
            if row.status not in SUPPRESSED:
                for digest in sorted(choice.digests - receiving):
                    _start(conn, subscriber_id, digest, digest in current, how, now)
                if choice.digests - receiving and row.status != "active":
                    conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id)
                                 .values(status="active", updated_at=now))
                for digest in sorted(receiving - choice.digests):
                    end_subscriptions(conn, subscriber_id, digest, how)
            changes: dict[str, Any] = {}
            if choice.paused_until != row.paused_until:
                changes["paused_until"] = choice.paused_until
                detail = (f"paused until {choice.paused_until:%Y-%m-%d %H:%M} UTC" if choice.paused_until
                          else "pause ended")
                record(conn, subscriber_id, "preferences", f"{detail}, {how}", at=now)
            if choice.plain_text != bool(row.plain_text):
                changes["plain_text"] = choice.plain_text
                detail = "plain text only" if choice.plain_text else "HTML with a plain text part"
                record(conn, subscriber_id, "preferences", f"{detail}, {how}", at=now)
            if changes:
                conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id)
                             .values(**changes, updated_at=now))
            return subscriber_record(conn, subscriber_id)

    def leave(self, subscriber_id: int, how: str = "on the preferences page") -> Subscriber | None:
        """Unsubscribe from every digest."""
        with self.db.engine.begin() as conn:
            if conn.execute(sa.select(subscribers.c.id).where(subscribers.c.id == subscriber_id)).first() is None:
                return None
            end_subscriptions(conn, subscriber_id, None, how)
            return subscriber_record(conn, subscriber_id)

    def digests_of(self, subscriber_id: int) -> dict[str, str]:
        """Each digest the subscriber has a subscription to, and its status."""
        with self.db.engine.connect() as conn:
            return dict(conn.execute(
                sa.select(subscriptions.c.digest, subscriptions.c.status)
                .where(subscriptions.c.subscriber_id == subscriber_id)
            ).all())


def _state(conn: Connection, subscription_id: int, code: str) -> Confirmation | None:
    row = conn.execute(sa.select(subscriptions).where(subscriptions.c.id == subscription_id)).first()
    if row is None:
        return None
    subscriber = subscriber_record(conn, row.subscriber_id)
    if row.status == "active" and subscriber.status == "active":
        outcome = Outcome.ALREADY
    elif row.status == "pending" and row.confirm_code is not None and secrets.compare_digest(row.confirm_code, code):
        outcome = Outcome.PENDING
    else:
        outcome = Outcome.STALE
    return Confirmation(outcome, subscriber, str(row.digest), row.id)


def _start(conn: Connection, subscriber_id: int, digest: str, known: bool, how: str, now: datetime) -> None:
    if known:
        conn.execute(subscriptions.update().where(
            subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.digest == digest
        ).values(status="active", confirm_code=None, updated_at=now))
    else:
        insert_row(conn, subscriptions, subscriber_id=subscriber_id, digest=digest, status="active",
                   created_at=now, updated_at=now)
    record(conn, subscriber_id, "preferences", f"subscribed to {digest}, {how}", at=now)

