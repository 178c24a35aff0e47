"""Run an issue's deliveries through a transport: resumable, retrying, rate-limited.

The outbox rows in the store are the only state. A sender claims a small batch of due rows
under a lease, sends each one, and records each result in its own transaction the moment
the server has answered, so a sender killed at any point repeats at most the message that
was on the wire, once per connection, and loses nobody. Over a server with PIPELINING the
next message goes out before the previous one's answer is read (one round trip per message),
and each answer is still recorded the moment it is read, while the server reads the next
message's body: only that message's final dot, which goes out after the record, lets the
server take it. A heartbeat renews the leases while
the batch goes out, and every mark is made only by the lease's holder, so a slow sender
never has its rows sent by another.

What the far side does decides what happens to a delivery, never to the reader's record
unless it is about the reader (a 5xx for that address):

- a server out of reach costs one timeout per connection and no delivery a try;
- a message whose answer never came is uncertain: it waits for the retry schedule;
- a 4xx is retried with backoff for `max_age` (days), as an MTA's queue does;
- our own setup refused, or a message too large for the server, stops the send.

Every sending thread catches what it meets and hands the first fatal error to the thread that
called `run()`, so nothing dies silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from ..compose.message import PreparedMessage
from ..errors import (
    ConnectionFault, DeliveryError, InternalError, NewsletterError, PermanentError, PolicyError, TransientError,
    UncertainError,
)
from ..inputs.config import Mailbox, Policy, Site
from ..inputs.marking import rank
from ..store import Delivery, Store, StoredIssue, lease_owner, utcnow
from .tokens import preferences_token, unsubscribe_token, verp_token
from .transport import Envelope, Outcome, Transport

log = logging.getLogger("newsletter.send")
IDLE_POLL = 1.0  # seconds between looks at the outbox while waiting for a retry
POLICY_STREAK = 5  # 5.7.x refusals of recipients in a row, none accepted: the server refuses us


@dataclass
class SendReport:
    issue: str
    queued: int = 0  # deliveries written by this run (0 when resuming)
    sent: int = 0
    deferred: int = 0  # 4xx answers this run; each is retried later
    uncertain: int = 0  # messages that went out whose answer never came; retried later
    failed: int = 0
    bounced: int = 0  # addresses marked bounced by this run
    remaining: int = 0  # still queued, deferred or uncertain when the run ended
    stopped: bool = False  # a stop was asked for (SIGTERM, Ctrl-C)
    attempted: int = 0  # deliveries this run handed to the transport (whatever the answer)
    lost_leases: int = 0  # answers that came after another sender took the row: not counted
    fault: str | None = None  # why the server could not be reached, when that ended the run
    held: int = 0  # TLP:RED deliveries kept back: the transport is not TLS
    next_retry: datetime | None = None  # when the earliest deferred delivery is due (naive UTC)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, other: SendReport) -> None:
        """Count `other`'s deliveries in this report too (a worker's total over issues)."""
        for name in ("queued", "sent", "deferred", "uncertain", "failed", "bounced", "remaining", "attempted",
                     "lost_leases", "held"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors)
        self.stopped = self.stopped or other.stopped
        self.fault = self.fault or other.fault
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


def batch_size(policy: Policy) -> int:
    """As many rows as one connection can send well within its lease at the configured rate."""
    if policy.rate <= 0:
        return policy.batch
    per_connection = policy.rate / max(1, policy.connections)
    return max(1, min(policy.batch, int(per_connection * policy.lease_seconds / 2)))


def retry_delay(policy: Policy, attempts: int) -> float:
    """Seconds until the next try after `attempts` tries: doubling from `retry_after`, capped."""
    return float(min(policy.retry_after * 2.0 ** min(attempts - 1, 30), max(policy.retry_max, policy.retry_after)))


def copy_for(copies: dict[str, PreparedMessage], delivery: Delivery) -> PreparedMessage:
    """The copy a delivery gets: the highest one at or below both the clearance it was queued
    for and the reader's clearance now (lowered since, the lower copy goes)."""
    allowed = min(rank(delivery.tlp or "clear"), rank(delivery.clearance or "clear"))
    return copies[max((level for level in copies if rank(level) <= allowed), key=rank)]


@dataclass(frozen=True)
class InFlight:
    """A delivery handed to the transport and not yet answered."""

    delivery: Delivery
    mid: str
    envelope: Envelope
    retried: bool = False  # already sent again at once, after a connection lost before its content


class Flight:
    """What one connection has out: the deliveries handed to its transport and not yet answered,
    and their answers recorded (through `record`) in the order they come, each before the next
    message's final dot goes out."""

    def __init__(
        self, transport: Transport, record: Callable[[InFlight, DeliveryError | None, bool], bool],
        stop: threading.Event,
    ) -> None:
        self.transport = transport
        self.record = record  # True when the delivery is to be sent again at once
        self.stop = stop
        self.items: dict[int, InFlight] = {}  # by delivery id

    def send(self, item: InFlight) -> None:
        self.settle(self.transport.collect())
        self.items[item.delivery.id] = item
        self.settle(self.transport.submit(item.envelope))

    def drain(self) -> None:
        """Everything out answered and recorded (a message sent again at once included)."""
        while self.items and not self.stop.is_set():
            outcomes = self.transport.flush()
            if not outcomes:
                return
            self.settle(outcomes)

    def stopping(self) -> None:
        """What is under way is finished; what only waits to start is given back."""
        self.settle(self.transport.flush(send_waiting=False))

    def settle(self, outcomes: Sequence[Outcome]) -> None:
        """Record each answer in the order it came. An error that stops the send is raised once
        every answer in hand is recorded, so none is lost behind it."""
        waiting = deque(outcomes)
        stopping: NewsletterError | None = None
        while waiting:
            again: list[InFlight] = []  # sent again once every answer in hand is recorded
            while waiting:
                outcome = waiting.popleft()
                item = self.items.pop(outcome.ticket)
                if outcome.unsent:  # it never left, through no fault of its own: again at once, at no cost
                    again.append(item)
                    continue
                try:
                    if self.record(item, outcome.error, stopping is None):
                        again.append(replace(item, retried=True))
                except NewsletterError as exc:  # our setup, the message itself, a full disk, a silent server
                    stopping = stopping or exc
            for item in again:
                if stopping is None and not self.stop.is_set():  # else released when the sender leaves
                    self.items[item.delivery.id] = item
                    waiting.extend(self.transport.submit(item.envelope))
        if stopping is not None:
            raise stopping

    def land(self) -> None:
        """The send is stopping on an error with messages still out: read their answers and
        record them, so that one accepted is never sent again. Errors here only end the landing."""
        try:
            for outcome in self.transport.flush(send_waiting=False):
                item = self.items.pop(outcome.ticket)
                if not outcome.unsent:
                    try:
                        self.record(item, outcome.error, False)
                    except NewsletterError:
                        pass  # the send is stopping already; the delivery is released for the next run
        except Exception as exc:  # noqa: BLE001  the first error is the one to report
            log.warning("could not read the last answers before stopping: %s", exc)


class Dispatcher:
    """Sends one issue's queued deliveries; `run()` returns a SendReport or raises the error
    that stopped the send (PolicyError, MessageRejected, OutOfSpace, InternalError).

    `copies` are the issue's TLP copies by the highest level each holds ("clear" always). With
    `red_allowed` False (a transport without TLS) deliveries queued for TLP:RED readers stay
    queued when there is a RED copy: they wait for a run over TLS, and the report says so."""

    def __init__(
        self, store: Store, issue: StoredIssue, copies: dict[str, PreparedMessage],
        signing_key: bytes, open_transport: Callable[[], Transport], policy: Policy,
        progress: Callable[[int], None] | None = None, stop: threading.Event | None = None,
        notice: Callable[[str], None] | None = None, red_allowed: bool = True,
    ) -> None:
        self.store = store
        self.issue = issue
        self.copies = copies
        public = self.copies["clear"]
        self.held = ("red",) if "red" in self.copies and not red_allowed else ()
        self.site = public.site
        self.sender = public.rendered.sender.address
        self.signing_key = signing_key
        self.open_transport = open_transport
        self.policy = policy
        self.batch = batch_size(policy)
        self.progress = progress
        self.notice = notice
        self.stop = stop or threading.Event()
        self.limiter = RateLimiter(policy.rate)
        self.report = SendReport(issue.name)
        self.lock = threading.Lock()
        self.fatal: NewsletterError | None = None  # what stopped the send, the first one only
        self.owners: list[str] = []  # the leases this dispatcher's connections hold
        self.accepted = False  # the server took a message this run: it does not refuse us
        self.refused_by_policy = 0  # 5.7.x refusals of recipients in a row, before any was accepted
        self.announced: datetime | None = None  # the retry time last announced to `notice`

    def run(self) -> SendReport:
        started = time.monotonic()
        self.store.outbox.reclaim_dead(self.issue.id)
        done = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(done,), name="send-heartbeat", daemon=True)
        heartbeat.start()
        threads = [
            threading.Thread(target=self._connection, name=f"send-{n}", daemon=True)
            for n in range(max(1, self.policy.connections))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # short joins keep the main thread free for signals
        done.set()
        heartbeat.join()
        self.report.remaining = self.store.outbox.pending(self.issue.id)
        self.report.held = self.store.outbox.pending(self.issue.id, self.held) if self.held else 0
        self.report.next_retry = self.store.outbox.next_retry(self.issue.id) if self.report.remaining else None
        self.report.stopped = self.stop.is_set() and self.fatal is None and self.report.fault is None
        self.report.seconds = time.monotonic() - started
        if self.fatal is not None:
            raise self.fatal
        return self.report

    def _heartbeat(self, done: threading.Event) -> None:
        """Renew this dispatcher's leases a few times per lease, however slow the server is."""
        while not done.wait(self.policy.lease_seconds / 3):
            try:
                with self.lock:
                    owners = list(self.owners)
                self.store.outbox.renew(owners, self.policy.lease_seconds)
            except Exception as exc:  # the store failing: say so once, stop; the leases will end
                self._stop_with(InternalError(f"renewing the leases of {self.issue.name}", exc), None, "")
                return

    def _connection(self) -> None:
        owner = lease_owner()
        with self.lock:
            self.owners.append(owner)
        sender = owner.rsplit(":", 1)[0]  # host:pid, for progress per worker
        in_hand: Delivery | None = None
        try:
            with self.open_transport() as transport, self.store.outbox.sending():
                flight = Flight(transport, lambda item, error, may_retry: self._record(
                    item, error, sender, owner, may_retry), self.stop)
                try:
                    while not self.stop.is_set():
                        # Each batch is answered in full before the next is claimed: between
                        # batches a sender holds nothing (one round trip per batch).
                        flight.drain()
                        batch = self.store.outbox.claim(self.issue.id, owner, self.batch,
                                                        self.policy.lease_seconds, self.held)
                        if not batch:
                            if not self._wait_for_retry():
                                return
                            continue
                        for delivery in batch:
                            if self.stop.is_set():
                                break  # what is left of the batch is released below
                            in_hand = delivery
                            self._submit(flight, delivery, owner)
                            in_hand = None
                    flight.stopping()
                finally:
                    if flight.items:
                        flight.land()
        except ConnectionFault as fault:
            # Out of reach: no delivery is to blame, and more connections would only wait too.
            with self.lock:
                self.report.fault = self.report.fault or str(fault)
            if in_hand is not None:
                self.store.outbox.note_error(in_hand, str(fault), owner)
            self.stop.set()
        except NewsletterError as exc:  # our setup refused, a message too large, a full disk
            self._stop_with(exc, in_hand, owner)
        except Exception as exc:  # a bug: stop everyone, say where, never die silently
            where = f"sending {self.issue.name}" + (f" to {in_hand.address} (delivery {in_hand.id})" if in_hand else "")
            self._stop_with(InternalError(where, exc), in_hand, owner)
        finally:
            try:
                self.store.outbox.release(owner)
            except Exception as exc:  # the store itself failing: reported, the leases expire
                self._stop_with(InternalError(f"releasing the deliveries of {self.issue.name}", exc), None, owner)

    def _stop_with(self, error: NewsletterError, delivery: Delivery | None, owner: str) -> None:
        with self.lock:
            if self.fatal is None:
                self.fatal = error
        self.stop.set()
        if delivery is not None:
            try:
                self.store.outbox.note_error(delivery, " ".join(error.lines()), owner)
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
        if self.notice is not None and due != self.announced:
            self.announced = due
            at = due.replace(tzinfo=UTC).astimezone().strftime("%H:%M:%S")
            self.notice(f"waiting for a retry: the next try is at {at} (in {wait:.0f} s)")
        self.stop.wait(min(IDLE_POLL, wait) or 0.01)
        return True

    def _submit(self, flight: Flight, delivery: Delivery, owner: str) -> None:
        """Hand one delivery to the transport, and record every answer that comes back meanwhile."""
        mid = delivery.message_id or message_id(self.issue, delivery.id, self.site)
        token = unsubscribe_token(self.signing_key, delivery.subscription_id)
        recipient = Mailbox(delivery.name, delivery.address)
        prepared = copy_for(self.copies, delivery)
        try:
            raw = prepared.for_recipient(
                recipient, token, mid, datetime.now(UTC), preferences_token(self.signing_key, delivery.subscriber_id),
                plain=bool(delivery.plain_text),
            )
        except NewsletterError as exc:
            # A row stored before names were checked at the door: nothing the server or the
            # reader did, so it fails for good without counting as a bounce.
            why = f"cannot address the message: {exc}"
            self._counted(delivery, self.store.outbox.mark_failed(delivery, why, mid, None, owner) is not None,
                          failed=1, error=f"{delivery.address}: {why}")
            return
        sender = f"bounce+{verp_token(self.signing_key, delivery.id)}@{self.site.domain}" if self.policy.verp else self.sender
        if self.limiter.interval:  # paced: the message waiting for its content goes now, not after the pause
            flight.drain()
        self.limiter.wait(self.stop)
        with self.lock:
            self.report.attempted += 1
        # The answers that came meanwhile are recorded before the next final dot goes out: a
        # sender killed at any point leaves at most one accepted message unrecorded.
        flight.send(InFlight(delivery, mid, Envelope(delivery.id, sender, delivery.address, raw, prepared.dot_safe)))

    def _record(self, item: InFlight, error: DeliveryError | None, sender_name: str, owner: str,
                may_retry: bool) -> bool:
        """Record what the server said of one delivery; True when it is to be sent again at once.
        An error that stops the send is noted on the delivery and raised."""
        try:
            return self._recorded(item, error, sender_name, owner, may_retry)
        except NewsletterError as exc:
            self.store.outbox.note_error(item.delivery, " ".join(exc.lines()), owner)
            raise

    def _recorded(self, item: InFlight, error: DeliveryError | None, sender_name: str, owner: str,
                  may_retry: bool) -> bool:
        delivery, mid = item.delivery, item.mid
        if error is None:
            self.accepted = True
            self._counted(delivery, self.store.outbox.mark_sent(delivery, mid, owner, sender_name), sent=1)
            return False
        if isinstance(error, ConnectionFault):
            with self.lock:
                self.report.attempted -= 1  # it never reached a server that would talk
            raise error
        if isinstance(error, TransientError):
            if error.code is None and not isinstance(error, UncertainError) and not item.retried and may_retry:
                # The connection dropped before the message was complete: it cannot have been
                # delivered, so once more at once, on a new connection.
                return True
            self._defer(delivery, error, mid, owner)
            return False
        if isinstance(error, PermanentError):
            if self._refuses_us(error):
                self._defer(delivery, error, mid, owner)
                return False
            bounced = self.store.outbox.mark_failed(delivery, str(error), mid, self.policy.bounce_limit, owner)
            self._counted(delivery, bounced is not None, failed=1, bounced=int(bool(bounced)),
                          error=f"{delivery.address}: {error}")
            return False
        raise error  # our setup, or the message itself: the send stops, nobody is blamed

    def _refuses_us(self, error: PermanentError) -> bool:
        """A 5.7.x refusal of a recipient is that recipient's, once the server has taken a message
        this run. Before that it may be the server refusing us (no relay rights): the delivery
        waits for a retry instead of failing, and after POLICY_STREAK such refusals in a row the
        send stops, blaming our setup and nobody's address."""
        if error.enhanced is None or error.enhanced[1] != 7 or self.accepted:
            return False
        with self.lock:
            self.refused_by_policy += 1
            streak = self.refused_by_policy
        if streak >= POLICY_STREAK:
            raise PolicyError(
                f"{streak} recipients in a row were refused by policy before any message was accepted "
                f"(the last: {error}): the server refuses us, not them; check its relay rights, SPF and DKIM"
            )
        return True

    def _defer(self, delivery: Delivery, error: DeliveryError, mid: str, owner: str) -> None:
        """Tried and not delivered (or perhaps delivered, when uncertain): due again on the
        retry schedule, or failed for good once it has been trying for `max_age`."""
        now = utcnow()
        attempts = delivery.attempts + 1
        first = delivery.first_attempt_at or now
        policy = self.policy
        too_old = (now - first).total_seconds() >= policy.max_age
        too_many = policy.max_attempts is not None and attempts >= policy.max_attempts
        if too_old or too_many:
            span = _span((now - first).total_seconds())
            why = f"gave up after {attempts} attempts over {span}: {error}"
            self._counted(delivery, self.store.outbox.mark_failed(delivery, why, mid, None, owner) is not None,
                          failed=1, error=f"{delivery.address}: {why}")
            return
        uncertain = isinstance(error, UncertainError)
        retry_at = now + timedelta(seconds=retry_delay(policy, attempts))
        marked = self.store.outbox.mark_deferred(delivery, str(error), retry_at, mid, owner, uncertain=uncertain)
        self._counted(delivery, marked, uncertain=int(uncertain), deferred=int(not uncertain), done=False)

    def _counted(
        self, delivery: Delivery, marked: bool, sent: int = 0, failed: int = 0, deferred: int = 0, uncertain: int = 0,
        bounced: int = 0, error: str | None = None, done: bool = True,
    ) -> None:
        """Count one delivery's outcome, unless its mark came too late: another sender holds
        the row now, and counting it here would count it twice."""
        if not marked:
            log.warning("%s: delivery %d to %s was taken over by another sender while this one waited for the "
                        "server; not counted here", self.issue.name, delivery.id, delivery.address)
            with self.lock:
                self.report.lost_leases += 1
            return
        with self.lock:
            self.report.sent += sent
            self.report.failed += failed
            self.report.deferred += deferred
            self.report.uncertain += uncertain
            self.report.bounced += bounced
            if error:
                self.report.errors.append(error)
        if done and self.progress:
            self.progress(1)


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} hours"
    return f"{seconds / 86400:.1f} days"
