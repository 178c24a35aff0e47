"""What readers change themselves, on a real SQLite file and a real PostgreSQL database:
confirmations that work once and only for their request, and preferences with their history."""

from __future__ import annotations

import threading
from datetime import timedelta

from newsletter.store import Choice, Outcome, Store, utcnow

from .test_store import db_url, new_url, save, store

__all__ = ["db_url", "new_url", "store"]  # fixtures


def test_a_confirmation_works_once_and_only_with_its_code(store: Store) -> None:
    request = store.readers.request("ann@example.org", "Ann", "weekly")
    assert request is not None
    assert store.readers.confirm(request.subscription_id, "0" * 16).outcome is Outcome.STALE  # type: ignore[union-attr]
    assert store.readers.confirmation(request.subscription_id, request.code).outcome is Outcome.PENDING  # type: ignore[union-attr]
    first = store.readers.confirm(request.subscription_id, request.code)
    assert first is not None and first.outcome is Outcome.CONFIRMED and first.subscriber.status == "active"
    again = store.readers.confirm(request.subscription_id, request.code)
    assert again is not None and again.outcome is Outcome.ALREADY
    assert [e.kind for e in store.history.of(first.subscriber.id)] == ["requested", "confirmed"]
    assert store.readers.request("ann@example.org", "Ann", "weekly") is None  # already receives it


def test_an_unsubscribe_voids_the_confirmation_still_out(store: Store) -> None:
    request = store.readers.request("ann@example.org", "", "weekly")
    assert request is not None
    store.readers.confirm(request.subscription_id, request.code)
    store.subscribers.unsubscribe(request.subscription_id)
    assert store.readers.confirm(request.subscription_id, request.code).outcome is Outcome.STALE  # type: ignore[union-attr]
    back = store.readers.request("ann@example.org", "", "weekly")
    assert back is not None and back.subscription_id == request.subscription_id and back.code != request.code
    assert store.readers.confirm(request.subscription_id, request.code).outcome is Outcome.STALE  # type: ignore[union-attr]
    assert store.readers.confirm(back.subscription_id, back.code).outcome is Outcome.CONFIRMED  # type: ignore[union-attr]


def test_two_clicks_at_once_confirm_once(store: Store) -> None:
    request = store.readers.request("ann@example.org", "", "weekly")
    assert request is not None
    outcomes: list[Outcome] = []
    start = threading.Barrier(4)

    def click() -> None:
        start.wait()
        result = store.readers.confirm(request.subscription_id, request.code)
        assert result is not None
        outcomes.append(result.outcome)

    threads = [threading.Thread(target=click) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == sorted([Outcome.CONFIRMED] + [Outcome.ALREADY] * 3)
    subscriber = store.subscribers.get("ann@example.org")
    assert subscriber is not None
    assert [e.kind for e in store.history.of(subscriber.id)].count("confirmed") == 1


def test_preferences_change_digests_pause_and_plain_text_with_history(store: Store) -> None:
    store.subscribers.add("ann@example.org", "", ["weekly"])
    ann = store.subscribers.get("ann@example.org")
    assert ann is not None
    until = (utcnow() + timedelta(days=10)).replace(microsecond=0)
    changed = store.readers.choose(ann.id, Choice(frozenset({"monthly"}), until, True))
    assert changed is not None
    assert (changed.digests, changed.paused_until, changed.plain_text) == (("monthly",), until, True)
    assert store.subscribers.count_recipients("monthly") == 0  # paused
    same = store.readers.choose(ann.id, Choice(frozenset({"monthly"}), until, True))
    assert same == changed
    details = [e.detail for e in store.history.of(ann.id) if e.kind in ("preferences", "unsubscribed")]
    assert sorted(details) == sorted([
        "subscribed to monthly, on the preferences page", "from weekly, on the preferences page",
        f"paused until {until:%Y-%m-%d %H:%M} UTC, on the preferences page", "plain text only, on the preferences page",
    ])  # the second, identical choice recorded nothing
    store.readers.choose(ann.id, Choice(frozenset({"monthly"}), None, True))
    assert store.subscribers.count_recipients("monthly") == 1


def test_a_paused_reader_gets_no_delivery_when_an_issue_is_queued(store: Store) -> None:
    for address in ("ann@example.org", "bob@example.org"):
        store.subscribers.add(address, "", ["weekly"])
    ann = store.subscribers.get("ann@example.org")
    assert ann is not None
    store.readers.choose(ann.id, Choice(frozenset({"weekly"}), utcnow() + timedelta(days=1), False))
    assert store.outbox.queue(save(store)) == 1


def test_leaving_ends_every_subscription(store: Store) -> None:
    store.subscribers.add("ann@example.org", "", ["weekly", "monthly"])
    ann = store.subscribers.get("ann@example.org")
    assert ann is not None
    left = store.readers.leave(ann.id)
    assert left is not None and (left.status, left.digests) == ("unsubscribed", ())
    assert store.readers.leave(4242) is None
