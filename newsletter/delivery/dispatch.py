"""Run an issue's deliveries through a transport: resumable, retrying, rate-limited.

The outbox rows in the store are the only state. A sender claims a small batch of due rows
under a lease, sends each one, and records each result in its own transaction the moment
the server has answered, so a sender killed at any point repeats at most the message that
was on the wire, once per connection, and loses nobody.

Every sending thread catches what it meets: an expected error about our setup (PolicyError)
or a bug alike stops the whole send, is recorded against the delivery in hand, and is raised
again in the thread that called `run()`, so nothing dies silently.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ..compose.message import PreparedMessage
from ..errors import DeliveryError, InternalError, NewsletterError, PermanentError, PolicyError, TransientError
from ..inputs.config import Mailbox, Policy, Site
from ..store import Delivery, Store, StoredIssue, lease_owner, utcnow
from .tokens import unsubscribe_token
from .transport import Transport

IDLE_POLL = 1.0  # seconds between looks at the outbox while waiting for a retry


@dataclass
class SendReport:
    issue: str
    queued: int = 0  # deliveries written by this run (0 when resuming)
    sent: int = 0
    deferred: int = 0  # 4xx answers this run; each is retried later
    failed: int = 0
    bounced: int = 0  # addresses marked bounced by this run
    remaining: int = 0  # still queued or deferred when the run ended
    stopped: bool = False  # a stop was asked for (SIGTERM, Ctrl-C)
    attempted: int = 0  # deliveries this run handed to the transport (whatever the answer)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, other: SendReport) -> None:
        """Count `other`'s deliveries in this report too (a worker's total over issues)."""
        for name in ("queued", "sent", "deferred", "failed", "bounced", "remaining", "attempted"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors)
        self.stopped = self.stopped or other.stopped
        self.seconds += other.seconds


class RateLimiter:
    """At most `rate` starts per second, shared by every connection (0 means no limit)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def wait(self, stop: threading.Event) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.interval
        if start > now:
            stop.wait(start - now)


def message_id(issue: StoredIssue, delivery_id: int, site: Site) -> str:
    """Unique per delivery and the same on a retry, so a repeated copy can be recognized."""
    return f"<{issue.name}.{delivery_id}.{issue.nonce}@{site.domain}>"


class Dispatcher:
    """Sends one issue's queued deliveries; `run()` returns a SendReport or raises the error
    that stopped the send (PolicyError, InternalError)."""

    def __init__(
        self, store: Store, issue: StoredIssue, prepared: PreparedMessage, signing_key: bytes,
        open_transport: Callable[[], Transport], policy: Policy,
        progress: Callable[[int], None] | None = None, stop: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.issue = issue
        self.prepared = prepared
        self.site = prepared.site
        self.sender = prepared.rendered.sender.address
        self.signing_key = signing_key
        self.open_transport = open_transport
        self.policy = policy
        self.progress = progress
        self.stop = stop or threading.Event()
        self.limiter = RateLimiter(policy.rate)
        self.report = SendReport(issue.name)
        self.lock = threading.Lock()
        self.fatal: NewsletterError | None = None  # what stopped the send, the first one only

    def run(self) -> SendReport:
        started = time.monotonic()
        self.store.outbox.reclaim_dead(self.issue.id)
        threads = [
            threading.Thread(target=self._connection, name=f"send-{n}", daemon=True)
            for n in range(max(1, self.policy.connections))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # short joins keep the main thread free for signals
        self.report.remaining = self.store.outbox.pending(self.issue.id)
        self.report.stopped = self.stop.is_set() and self.fatal is None
        self.report.seconds = time.monotonic() - started
        if self.fatal is not None:
            raise self.fatal
        return self.report

    def _connection(self) -> None:
        owner = lease_owner()
        sender = owner.rsplit(":", 1)[0]  # host:pid, for progress per worker
        in_hand: Delivery | None = None
        try:
            with self.open_transport() as transport:
                while not self.stop.is_set():
                    batch = self.store.outbox.claim(self.issue.id, owner, self.policy.batch, self.policy.lease_seconds)
                    if batch:
                        for delivery in batch:
                            if self.stop.is_set():
                                break  # what is left of the batch is released below
                            in_hand = delivery
                            self._deliver(transport, delivery, sender)
                            in_hand = None
                    elif not self._wait_for_retry():
                        return
        except NewsletterError as exc:  # our setup refused (PolicyError), or a transport we cannot open
            self._stop_with(exc, in_hand)
        except Exception as exc:  # a bug: stop everyone, say where, never die silently
            where = f"sending {self.issue.name}" + (f" to {in_hand.address} (delivery {in_hand.id})" if in_hand else "")
            self._stop_with(InternalError(where, exc), in_hand)
        finally:
            try:
                self.store.outbox.release(owner)
            except Exception as exc:  # the store itself failing: reported, the leases expire
                self._stop_with(InternalError(f"releasing the deliveries of {self.issue.name}", exc), None)

    def _stop_with(self, error: NewsletterError, delivery: Delivery | None) -> None:
        with self.lock:
            if self.fatal is None:
                self.fatal = error
        self.stop.set()
        if delivery is not None:
            try:
                self.store.outbox.note_error(delivery, " ".join(error.lines()))
            except Exception:  # noqa: BLE001  the first error is the one to report
                pass

    def _wait_for_retry(self) -> bool:
        """Sleep until a deferred delivery is due; False when there is none to wait for soon
        (within the policy's `wait_for_retries`)."""
        due = self.store.outbox.next_retry(self.issue.id)
        if due is None:
            return False
        wait = max(0.0, (due - utcnow()).total_seconds())
        if wait > self.policy.wait_for_retries:
            return False
        self.stop.wait(min(IDLE_POLL, wait) or 0.01)
        return True

    def _deliver(self, transport: Transport, delivery: Delivery, sender_name: str) -> None:
        mid = delivery.message_id or message_id(self.issue, delivery.id, self.site)
        token = unsubscribe_token(self.signing_key, delivery.subscription_id)
        recipient = Mailbox(delivery.name, delivery.address)
        try:
            raw = self.prepared.for_recipient(recipient, token, mid, datetime.now(UTC))
        except NewsletterError as exc:
            # A row stored before names were checked at the door: nothing the server or the
            # reader did, so it fails for good without counting as a bounce.
            self.store.outbox.mark_failed(delivery, f"cannot address the message: {exc}", mid, None)
            self._count(failed=1, error=f"{delivery.address}: cannot address the message: {exc}")
            return
        sender = f"bounce+{delivery.id}@{self.site.domain}" if self.policy.verp else self.sender
        self.limiter.wait(self.stop)
        with self.lock:
            self.report.attempted += 1
        try:
            try:
                transport.send(sender, delivery.address, raw, dot_safe=self.prepared.dot_safe)
            except TransientError as exc:
                if exc.code is not None:
                    raise
                # The connection dropped: once more, on a new one.
                transport.send(sender, delivery.address, raw, dot_safe=self.prepared.dot_safe)
        except PolicyError:
            raise
        except TransientError as exc:
            self._defer(delivery, exc, mid)
        except PermanentError as exc:
            bounced = self.store.outbox.mark_failed(delivery, str(exc), mid, self.policy.bounce_limit)
            self._count(failed=1, bounced=int(bounced), error=f"{delivery.address}: {exc}")
        except DeliveryError as exc:
            self._defer(delivery, exc, mid)
        else:
            self.store.outbox.mark_sent(delivery, mid, sender_name)
            self._count(sent=1)

    def _defer(self, delivery: Delivery, error: DeliveryError, mid: str) -> None:
        attempts = delivery.attempts + 1
        if attempts >= self.policy.max_attempts:
            self.store.outbox.mark_failed(delivery, f"gave up after {attempts} attempts: {error}", mid, None)
            self._count(failed=1, error=f"{delivery.address}: gave up after {attempts} attempts: {error}")
            return
        delay = self.policy.retry_after * (2 ** (attempts - 1))
        self.store.outbox.mark_deferred(delivery, str(error), utcnow() + timedelta(seconds=delay), mid)
        self._count(deferred=1, done=False)

    def _count(
        self, sent: int = 0, failed: int = 0, deferred: int = 0, bounced: int = 0,
        error: str | None = None, done: bool = True,
    ) -> None:
        with self.lock:
            self.report.sent += sent
            self.report.failed += failed
            self.report.deferred += deferred
            self.report.bounced += bounced
            if error:
                self.report.errors.append(error)
        if done and self.progress:
            self.progress(1)
