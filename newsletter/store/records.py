"""What the store hands out: frozen records, and the one form of time it keeps (naive UTC)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

SUBSCRIBER_STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")
SUBSCRIPTION_STATUSES = ("pending", "active", "unsubscribed")
# uncertain: the whole message went out and the server's answer never came; it waits for the
# retry schedule like a deferred one, and goes out again with the same Message-ID.
# withdrawn: the reader unsubscribed, bounced, complained or paused after it was queued.
DELIVERY_STATUSES = ("queued", "deferred", "uncertain", "sent", "failed", "withdrawn")
UNFINISHED = ("queued", "deferred", "uncertain")  # deliveries still to make


def utcnow() -> datetime:
    """Naive UTC: the one form of time in the store, alike on SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


class IssueState(StrEnum):
    """The steps of an issue's life once it is stored (usecases/issues.py moves it along)."""

    STORED = "stored"  # its snapshot is kept; it may still be replaced, nothing was queued
    QUEUED = "queued"  # one delivery per reader written; nothing attempted, snapshot replaceable
    SENDING = "sending"  # a sender began: the snapshot is frozen
    DONE = "done"  # every delivery sent
    DONE_WITH_FAILURES = "done_with_failures"  # every delivery finished, some failed for good

    @property
    def frozen(self) -> bool:
        """Whether its snapshot may no longer change (a copy may have gone out)."""
        return self in (IssueState.SENDING, IssueState.DONE, IssueState.DONE_WITH_FAILURES)

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


@dataclass(frozen=True)
class Subscriber:
    id: int
    address: str
    name: str
    status: str
    digests: tuple[str, ...]  # digests with an active subscription
    created_at: datetime
    paused_until: datetime | None = None  # naive UTC: nothing is sent before then
    plain_text: bool = False  # the plaintext part only, no HTML
    clearance: str = "clear"  # the highest TLP level they may receive (set by the operator only)

    def paused(self, now: datetime) -> bool:
        return self.paused_until is not None and self.paused_until > now


@dataclass(frozen=True)
class StoredIssue:
    """An issue as stored: the full snapshot its messages are made from, and its state."""

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
    sender_name: str | None = None  # None only for issues stored before schema version 6
    sender_address: str | None = None
    reply_to_name: str | None = None
    reply_to_address: str | None = None
    list_id: str | None = None
    language: str | None = None
    direction: str | None = None
    state: str = IssueState.STORED.value
    stix: str | None = None  # the CLEAR copy as a STIX 2.1 bundle (JSON), for the public archive

    @property
    def name(self) -> str:
        return f"{self.digest}-{self.period}"

    @property
    def contents(self) -> tuple[str, ...]:
        """Keys of the brief and entries in this issue, as they were stored."""
        return tuple(json.loads(self.items)) if self.items else ()

    @property
    def life(self) -> IssueState:
        return IssueState(self.state)


@dataclass(frozen=True)
class Snapshot:
    """What storing an issue records: everything its messages need, and what it holds."""

    digest: str
    period: str
    subject: str
    preheader: str
    html: str
    text: str
    sender_name: str
    sender_address: str
    reply_to_name: str | None
    reply_to_address: str | None
    list_id: str
    language: str
    direction: str
    content_hash: str
    as_of: datetime  # aware
    contents: tuple[str, ...]
    copies: tuple[Copy, ...] = ()  # the copies above TLP:CLEAR (subject, html, text above are the CLEAR one)
    stix: str | None = None  # the CLEAR copy as a STIX bundle


@dataclass(frozen=True)
class Copy:
    """One TLP copy of an issue: what readers cleared to `tlp` or above (and below the next
    copy's level) receive. `tlp` is the highest level it holds."""

    tlp: str
    subject: str
    preheader: str
    html: str
    text: str


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
    first_attempt_at: datetime | None = None  # naive UTC; None before the first try
    issue_id: int = 0
    plain_text: bool | None = False  # the reader wants the plaintext part only
    tlp: str | None = None  # the clearance it was queued for (None: clear)
    clearance: str | None = None  # the reader's clearance now: a copy above it is never sent


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


@dataclass(frozen=True)
class FeedRecord:
    """What the store knows of a feed's runs, for its health (intake/health.py): naive UTC
    times, None for never. A feed never run since schema version 12 has no times at all."""

    url: str
    checked_at: datetime | None = None
    status: str | None = None  # "ok", "not modified", or what went wrong on the last run
    succeeded_at: datetime | None = None
    first_succeeded_at: datetime | None = None  # quiet is counted from here until a first new item
    failed_at: datetime | None = None
    failure: str | None = None  # the status of the last failed run
    failures_in_row: int = 0
    new_at: datetime | None = None  # the last run that made a new draft or merged a source into one

    @property
    def ever_ran(self) -> bool:
        return self.succeeded_at is not None or self.failed_at is not None
