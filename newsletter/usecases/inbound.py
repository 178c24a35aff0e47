"""What comes back, acted on: bounces counted, complaints and mailto unsubscribes honoured.

One path for every source (an MTA's pipe, a Maildir, an IMAP folder): each message is read
(delivery/returns.py), its claims checked, acted on, recorded (store/returns.py) and only
then moved out of its inbox. Nothing forged acts:

- a bounce acts only on a delivery we made, named by its signed VERP address or by one of
  our Message-IDs whose issue nonce matches;
- an unsubscribe acts only on a token our key signed;
- a complaint acts only on a delivery or a token of ours.

A message that cannot be read, or names nothing of ours, is recorded and changes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field

from ..delivery import returns
from ..delivery.mailboxes import Inbox, Incoming
from ..delivery.tokens import TokenError, read_unsubscribe_token, read_verp_token
from ..inputs.config import Config
from ..store import Sent, Store

log = logging.getLogger("newsletter.inbound")


@dataclass(frozen=True)
class Handled:
    kind: str
    acted: bool
    note: str  # what was done, or why nothing was
    issue_id: int | None = None


@dataclass
class InboundReport:
    seen: int = 0
    acted: int = 0
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, handled: Handled) -> None:
        self.seen += 1
        self.acted += int(handled.acted)
        self.kinds[handled.kind] += 1


def process(config: Config, store: Store, inbox: Inbox, stop: threading.Event | None = None) -> InboundReport:
    """Every message waiting in `inbox`, handled and then moved out of the way."""
    report = InboundReport()
    for message in inbox.messages():
        if stop is not None and stop.is_set():
            break
        handled = handle(config, store, message)
        inbox.handled(message)
        report.add(handled)
    return report


def handle(config: Config, store: Store, message: Incoming) -> Handled:
    """One message: read, checked, acted on, recorded; one log line."""
    found = returns.read(message.raw, config.site.domain)
    if message.truncated:
        handled = Handled(found.kind, False, f"larger than we read ({len(message.raw)} bytes kept); not acted on")
    elif found.kind == "bounce":
        handled = _bounce(config, store, found, message.where)
    elif found.kind == "complaint":
        handled = _complaint(config, store, found, message.where)
    elif found.kind == "unsubscribe":
        handled = _unsubscribe(config, store, found, message.where)
    elif found.kind == "auto-reply":
        handled = Handled("auto-reply", False, "an automatic reply: ignored")
    else:
        handled = Handled("unknown", False, f"kept aside: {found.why}")
    store.returns.note(
        handled.kind, handled.acted, handled.note, found.message_id, found.sender, found.subject, message.where,
        handled.issue_id, raw=message.raw if handled.kind == "unknown" else None,
    )
    (log.info if handled.acted else log.warning if handled.kind == "unknown" else log.info)(
        "%s: %s from %s: %s", message.where, handled.kind, found.sender or "(no sender)", handled.note,
    )
    return handled


def _ours(config: Config, store: Store, found: returns.Returned) -> list[Sent]:
    """The deliveries we made that a report names, its claims checked: a VERP address only
    with our signature, a Message-ID only with its issue's nonce."""
    key = config.secrets.signing_key
    named: dict[int, Sent] = {}
    if found.verp is not None and key is not None:
        try:
            sent = store.returns.sent(read_verp_token(key, found.verp))
        except TokenError:
            log.warning("a bounce to bounce+%s@ carries a forged or altered signature: ignored", found.verp)
            sent = None
        if sent is not None:
            named[sent.delivery_id] = sent
    for ours in found.ours:
        if ours.delivery_id in named:
            continue  # named by its VERP address already
        sent = store.returns.sent(ours.delivery_id)
        if sent is not None and sent.nonce == ours.nonce and sent.issue_name == ours.issue:
            named[sent.delivery_id] = sent
    return list(named.values())


def _bounce(config: Config, store: Store, found: returns.Returned, origin: str) -> Handled:
    sent = _ours(config, store, found)
    if not sent:
        return Handled("bounce", False, f"{found.why}: it names no delivery we made (no VERP address of ours, no "
                       "Message-ID of ours), so nothing changes")
    origin = f"{found.message_id or '(no Message-ID)'} in {origin}"
    done: list[str] = []
    acted = False
    for delivery in sent:
        failure = _failure_for(delivery, found.failures, alone=len(sent) == 1)
        if failure is None:
            done.append(f"{delivery.address}: the report names other addresses ({returns.summary(found.failures)})")
            continue
        acted = True
        detail = f"{failure.diagnostic} (reported for {failure.address})" if failure.address != delivery.address \
            else failure.diagnostic
        done.append(store.returns.bounce(
            delivery, failure.hard, failure.hard and failure.status.startswith("5.1."), detail, failure.status, origin,
            config.delivery.policy.bounce_limit,
        ))
    return Handled("bounce", acted, f"{found.why}: " + "; ".join(done), sent[0].issue_id)


def _failure_for(delivery: Sent, failures: tuple[returns.Failure, ...], alone: bool) -> returns.Failure | None:
    """The failure a report gives for this delivery's address; when the report names one
    delivery and one failure, that failure (a forwarded address fails under another name)."""
    for failure in failures:
        if failure.address == delivery.address:
            return failure
    return failures[0] if alone and len(failures) == 1 else None


def _complaint(config: Config, store: Store, found: returns.Returned, origin: str) -> Handled:
    origin = f"{found.message_id or '(no Message-ID)'} in {origin}"
    code = found.feedback_type or "abuse"
    detail = f"a complaint (feedback type {code}) from {found.sender or 'a mailbox provider'}"
    sent = _ours(config, store, found)
    if sent:
        for delivery in sent:
            store.returns.complaint(delivery.subscriber_id, detail, code, origin, delivery.issue_id, delivery.delivery_id)
        return Handled("complaint", True, f"{found.why}: {', '.join(d.address for d in sent)} unsubscribed and "
                       "suppressed", sent[0].issue_id)
    subscription = _subscription(config, found.unsubscribe)
    found_by_token = store.subscribers.subscription(subscription) if subscription is not None else None
    if found_by_token is not None:
        subscriber = found_by_token[0]
        store.returns.complaint(subscriber.id, detail, code, origin)
        return Handled("complaint", True, f"{found.why}: {subscriber.address} unsubscribed and suppressed")
    return Handled("complaint", False, f"{found.why}: it names no message of ours (no Message-ID, no signed "
                   "unsubscribe link), so nothing changes")


def _subscription(config: Config, token: str | None) -> int | None:
    key = config.secrets.signing_key
    if token is None or key is None:
        return None
    try:
        return read_unsubscribe_token(key, token)
    except TokenError:
        log.warning("unsubscribe+%s@ carries a forged or altered token: ignored", token)
        return None


def _unsubscribe(config: Config, store: Store, found: returns.Returned, origin: str) -> Handled:
    if config.secrets.signing_key is None:
        return Handled("unsubscribe", False, "NEWSLETTER_SECRET_KEY is not set, so the token cannot be checked: kept "
                       "for a run with the key")
    subscription = _subscription(config, found.unsubscribe)
    if subscription is None:
        return Handled("unsubscribe", False, "the token is forged or altered: nothing changes")
    subscriber = store.subscribers.unsubscribe(subscription, how="by a message to the unsubscribe address",
                                               origin=f"{found.message_id or '(no Message-ID)'} in {origin}")
    if subscriber is None:
        return Handled("unsubscribe", False, "the token names no subscription we have: nothing changes")
    return Handled("unsubscribe", True, f"{subscriber.address} unsubscribed")
