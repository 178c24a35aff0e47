"""The store on a real SQLite file and a real PostgreSQL database: subscribers, issues, the
outbox, and schema upgrades. Every test runs on both, but the SQLite-only WAL check."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from .samples import stored_issue
from newsletter.errors import StoreError
from newsletter.store import SCHEMA_VERSION, Store, StoredIssue, migrate, utcnow

AS_OF = datetime(2022, 7, 30, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def new_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Makes URLs of new, empty databases of one kind."""
    made = iter(range(100))

    def make() -> str:
        if request.param == "sqlite":
            return f"sqlite:///{tmp_path / 'state' / f'newsletter{next(made)}.db'}"
        return str(request.getfixturevalue("postgres").database())

    return make


@pytest.fixture
def db_url(new_url: Callable[[], str]) -> str:
    return new_url()


@pytest.fixture
def store(db_url: str) -> Store:
    return Store.open(db_url)


def save(store: Store, period: str = "2022-W30") -> StoredIssue:
    issue, _ = stored_issue(store, period)
    return issue


def test_a_new_sqlite_file_gets_the_newest_schema_in_wal_mode(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'state' / 'newsletter.db'}")
    assert store.version == SCHEMA_VERSION
    with sqlite3.connect(tmp_path / "state" / "newsletter.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_old_database_is_upgraded_in_place_keeping_its_rows(db_url: str) -> None:
    if db_url.startswith("sqlite:///"):  # a PostgreSQL URL is no path: nothing to make in the working tree
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(db_url)
    migrate(engine, target=1)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO subscribers (address, name, status, bounces, created_at, updated_at) "
            "VALUES ('ann@example.org', 'Ann', 'active', 0, '2022-01-01 00:00:00', '2022-01-01 00:00:00')"
        ))
        columns = {c["name"] for c in sa.inspect(conn).get_columns("deliveries")}
    assert "lease_owner" not in columns
    engine.dispose()
    store = Store.open(db_url)
    assert store.version == SCHEMA_VERSION
    subscriber = store.subscribers.get("ann@example.org")
    assert subscriber is not None and subscriber.name == "Ann"
    with store.engine.connect() as conn:
        assert "lease_owner" in {c["name"] for c in sa.inspect(conn).get_columns("deliveries")}


def test_a_newer_database_than_the_program_is_refused(db_url: str) -> None:
    store = Store.open(db_url)
    with store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO schema_version (version) VALUES (99)"))
    with pytest.raises(StoreError, match="schema version 99, newer than this program knows"):
        Store.open(db_url)


def test_adding_is_idempotent_and_case_insensitive(store: Store) -> None:
    first = store.subscribers.add("ann@example.org", "Ann", ["weekly"])
    again = store.subscribers.add("ANN@example.org", "Ann", ["weekly"])
    assert (first.created, again.created, again.changed) == (True, False, False)
    assert again.subscriber.id == first.subscriber.id


def test_removal_keeps_the_row_and_no_later_add_signs_them_up_silently(store: Store) -> None:
    store.subscribers.add("ann@example.org", "Ann", ["weekly", "monthly"])
    after_one = store.subscribers.remove("ann@example.org", "monthly")
    assert after_one is not None and (after_one.status, after_one.digests) == ("active", ("weekly",))
    gone = store.subscribers.remove("ann@example.org")
    assert gone is not None and (gone.status, gone.digests) == ("unsubscribed", ())
    blocked = store.subscribers.add("ann@example.org", "Ann", ["weekly"])
    assert blocked.blocked and blocked.subscriber.status == "unsubscribed"
    back = store.subscribers.add("ann@example.org", "Ann", ["weekly"], resubscribe=True)
    assert (back.subscriber.status, back.subscriber.digests) == ("active", ("weekly",))


def test_an_ended_subscription_stays_ended_when_the_person_is_added_to_another(store: Store) -> None:
    store.subscribers.add("ann@example.org", "Ann", ["weekly", "monthly"])
    store.subscribers.remove("ann@example.org", "monthly")
    result = store.subscribers.add("ann@example.org", "Ann", ["weekly", "monthly", "daily"])
    assert result.subscriber.digests == ("daily", "weekly")


def test_an_issue_is_saved_once_per_digest_and_period(store: Store) -> None:
    first, created = stored_issue(store, subject="A", content_hash="1")
    second, created_again = stored_issue(store, subject="B", content_hash="1")
    assert (created, created_again) == (True, False)
    assert second.id == first.id and second.subject == "A"
    assert store.issues.by_name("weekly-2022-W30") == first


def test_queueing_writes_one_delivery_per_active_subscriber_once(store: Store) -> None:
    for n in range(5):
        store.subscribers.add(f"r{n}@example.org", "", ["weekly"])
    store.subscribers.add("other@example.org", "", ["monthly"])
    store.subscribers.add("pending@example.org", "", ["weekly"], status="pending")
    store.subscribers.remove("r4@example.org")
    issue = save(store)
    assert store.outbox.queue(issue) == 4
    store.subscribers.add("late@example.org", "", ["weekly"])
    assert store.outbox.queue(issue) is None  # queued once; a later subscriber waits for the next issue
    assert store.status.counts(issue.id)["queued"] == 4


def test_two_senders_never_claim_the_same_delivery(store: Store) -> None:
    for n in range(200):
        store.subscribers.add(f"r{n}@example.org", "", ["weekly"])
    issue = save(store)
    store.outbox.queue(issue)
    store.issues.begin_sending(issue.id)  # senders claim only while it is sending
    claimed: list[list[int]] = [[], [], [], []]

    def take(slot: int) -> None:
        other = Store.open(str(store.engine.url))
        while batch := other.outbox.claim(issue.id, f"host:1:{slot}", 7, 60):
            for delivery in batch:
                claimed[slot].append(delivery.id)
                assert other.outbox.mark_sent(delivery, f"<{delivery.id}@x>", f"host:1:{slot}")

    threads = [threading.Thread(target=take, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [d for part in claimed for d in part]
    assert len(everything) == len(set(everything)) == 200
    assert store.status.counts(issue.id)["sent"] == 200


def test_a_lease_of_a_dead_local_process_is_taken_over_at_once(store: Store) -> None:
    store.subscribers.add("ann@example.org", "", ["weekly"])
    issue = save(store)
    store.outbox.queue(issue)
    store.issues.begin_sending(issue.id)  # senders claim only while it is sending
    import socket

    dead = f"{socket.gethostname()[:60]}:999999999:abc"  # no such pid
    assert len(store.outbox.claim(issue.id, dead, 10, 3600)) == 1
    assert store.outbox.claim(issue.id, "elsewhere:1:x", 10, 3600) == []
    store.outbox.reclaim_dead(issue.id)  # what a send does when it starts
    assert len(store.outbox.claim(issue.id, "elsewhere:1:x", 10, 3600)) == 1


def test_a_live_lease_holds_until_it_expires(store: Store) -> None:
    store.subscribers.add("ann@example.org", "", ["weekly"])
    issue = save(store)
    store.outbox.queue(issue)
    store.issues.begin_sending(issue.id)  # senders claim only while it is sending
    assert len(store.outbox.claim(issue.id, "other-host:1:x", 10, 0.2)) == 1
    assert store.outbox.claim(issue.id, "me:1:y", 10, 60) == []
    import time

    time.sleep(0.3)
    assert len(store.outbox.claim(issue.id, "me:1:y", 10, 60)) == 1


def test_deferred_deliveries_wait_for_their_time_and_failures_count_towards_bouncing(store: Store) -> None:
    store.subscribers.add("ann@example.org", "", ["weekly"])
    issue = save(store)
    store.outbox.queue(issue)
    store.issues.begin_sending(issue.id)  # senders claim only while it is sending
    (delivery,) = store.outbox.claim(issue.id, "me:1:x", 10, 60)
    store.outbox.mark_deferred(delivery, "451 4.3.0 try later", utcnow() + timedelta(hours=1), "<m@x>", "me:1:x")
    assert store.outbox.claim(issue.id, "me:1:x", 10, 60) == []
    assert store.outbox.next_retry(issue.id) is not None
    assert store.status.last_errors(issue.id) == [("ann@example.org", "deferred", "451 4.3.0 try later")]
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE deliveries SET next_attempt_at = NULL"))
    (delivery,) = store.outbox.claim(issue.id, "me:1:x", 10, 60)
    assert delivery.attempts == 1 and delivery.message_id == "<m@x>"
    assert store.outbox.mark_failed(delivery, "550 5.1.1 user unknown", "<m@x>", 1, "me:1:x") is True
    subscriber = store.subscribers.get("ann@example.org")
    assert subscriber is not None and subscriber.status == "bounced"
    assert store.status.counts(issue.id) == {
        "queued": 0, "deferred": 0, "uncertain": 0, "sent": 0, "failed": 1, "withdrawn": 0,
    }


def test_listing_streams_in_batches(store: Store) -> None:
    for n in range(25):
        store.subscribers.add(f"r{n:02d}@example.org", "", ["weekly"])
    listed = [s.address for s in store.subscribers.iter(batch=4)]
    assert listed == sorted(listed) and len(listed) == 25


def test_an_unusable_database_url_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot use the database"):
        Store.open("nosuchdb://x/y")


def test_processes_opening_a_new_sqlite_file_at_once_all_get_it(tmp_path: Path) -> None:
    """Switching a new file to WAL needs it alone for a moment, and SQLite says "locked" at once
    instead of waiting: a runner and a CLI command starting together must both get in."""
    failures: list[BaseException] = []

    def open_and_read(url: str) -> None:
        try:
            for _ in range(5):
                with Store.open(url) as store:
                    list(store.issues.iter())
        except BaseException as exc:  # noqa: BLE001  collected for the assertion
            failures.append(exc)

    for trial in range(10):
        url = f"sqlite:///{tmp_path / f'fresh{trial}.db'}"
        threads = [threading.Thread(target=open_and_read, args=(url,)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


def test_a_sent_mark_reads_back_as_the_time_it_was_made(store: Store) -> None:
    """The per-message mark is written in the driver's own SQL: its time must read back, and
    compare, like every other time the store keeps."""
    for n in range(3):
        store.subscribers.add(f"r{n}@example.org", "", ["weekly"])
    issue = save(store)
    store.outbox.queue(issue)
    store.issues.begin_sending(issue.id)
    before = utcnow()
    for delivery in store.outbox.claim(issue.id, "me:1:x", 10, 60):
        store.outbox.mark_sent(delivery, f"<{delivery.id}@x>", "me:1:x", "me:1")
    with store.db.engine.connect() as conn:
        sent = conn.execute(sa.text("SELECT sent_at FROM deliveries")).scalars().all()
    assert store.status.counts(issue.id)["sent"] == 3
    (progress,) = store.status.progress(issue.id)
    assert (progress.worker, progress.sent) == ("me:1", 3)
    assert progress.last_sent is not None and before <= progress.last_sent <= utcnow()
    assert len(sent) == 3
