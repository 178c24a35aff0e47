"""What readers do through the web and the links in their mail: ask for a digest, confirm it,
choose their preferences, leave. Each route of the web face calls one of these.

Links are signed (delivery/tokens.py) and bound to state (store/readers.py): a confirmation
works once and only for the request it answers; a preferences link names its subscriber.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from ..compose.message import PreparedMessage, single_message
from ..compose.render import Renderer
from ..delivery.tokens import (
    TokenError, confirm_token, preferences_token, read_confirm_token, read_preferences_token, unsubscribe_token,
)
from ..errors import DeliveryError, NewsletterError
from ..inputs.config import Config, Digest, Mailbox
from ..inputs.cron import next_fires, trigger
from ..store import Choice, Confirmation, Outcome, Store, Subscriber
from ..store.readers import SUPPRESSED
from .sending import send_single

log = logging.getLogger("newsletter.readers")
NOT_OURS = "this link is not valid: it was changed or is not one of ours"
MAX_PAUSE_DAYS = 366


class PauseError(NewsletterError):
    """A pause date that is not a day after today and within a year."""


def ask(config: Config, renderer: Renderer, store: Store, key: bytes, digest: Digest, who: Mailbox, now: int) -> bool:
    """Someone asked for `digest` on the web: a pending subscription and its confirmation mail.
    False when the address already receives it (then nothing is sent). DeliveryError when the
    mail could not be handed over."""
    request = store.readers.request(who.address, who.name, digest.name)
    if request is None:
        return False
    token = confirm_token(key, request.subscription_id, request.code, now)
    link = f"{config.site.base_url}/confirm/{token}"
    rendered = renderer.confirmation(digest, who.address, link, config.web.confirm_hours)
    message_id = f"<{digest.name}.confirm.{secrets.token_hex(8)}@{config.site.domain}>"
    send_single(config, rendered.sender.address, who, single_message(rendered, who, message_id, datetime.now(UTC)))
    return True


def confirm(config: Config, renderer: Renderer, store: Store, key: bytes, token: str, now: int,
            follow: bool) -> Confirmation:
    """What a confirmation link does: with `follow` (the button was pressed) it confirms, once,
    and sends the welcome message; without, it only tells. TokenError for a link that is not
    ours or has expired."""
    subscription, code = read_confirm_token(key, token, now, config.web.confirm_hours * 3600)
    result = store.readers.confirm(subscription, code) if follow else store.readers.confirmation(subscription, code)
    if result is None:
        raise TokenError(NOT_OURS)
    if result.outcome is Outcome.CONFIRMED:
        digest = _configured(config, result.digest)
        if digest is not None:
            try:
                welcome(config, renderer, key, result.subscriber, result.subscription_id, digest)
            except DeliveryError as exc:  # the subscription stands; only the greeting is lost
                log.warning("welcome message to %s not sent: %s", result.subscriber.address, " ".join(exc.lines()))
    return result


def welcome(config: Config, renderer: Renderer, key: bytes, subscriber: Subscriber, subscription_id: int,
            digest: Digest) -> None:
    """The welcome message: list mail like an issue (List-Unsubscribe, the preferences link)."""
    rendered = renderer.welcome(digest, subscriber.address, next_issue(digest, datetime.now(UTC)))
    who = Mailbox(subscriber.name, subscriber.address)
    message_id = f"<{digest.name}.welcome.{secrets.token_hex(8)}@{config.site.domain}>"
    raw = PreparedMessage(rendered, config.site).for_recipient(
        who, unsubscribe_token(key, subscription_id), message_id, datetime.now(UTC),
        preferences_token(key, subscriber.id), plain=subscriber.plain_text,
    )
    send_single(config, rendered.sender.address, who, raw)


def next_issue(digest: Digest, now: datetime) -> date | None:
    """The day of the digest's next scheduled issue, in its time zone (None without a schedule)."""
    if not digest.schedule:
        return None
    fires = next_fires(trigger(digest.schedule, digest.timezone), now, 1)
    return fires[0].astimezone(digest.zone).date() if fires else None


@dataclass(frozen=True)
class Preferences:
    """What the preferences page shows."""

    subscriber: Subscriber
    digests: tuple[tuple[Digest, bool], ...]  # every digest on offer, and whether it is received
    suppressed: bool  # bounced or complained: only a confirmed request brings them back
    paused_until: date | None  # the day the pause ends, in the zone of the reader's first digest

    @property
    def zone_digest(self) -> Digest:
        return self.digests[0][0]


def preferences(config: Config, store: Store, key: bytes, token: str) -> Preferences:
    """The reader a preferences link stands for, and what they receive. TokenError if not ours."""
    return _page(config, store, _subscriber(store, key, token))


def choose(config: Config, store: Store, key: bytes, token: str, digests: Iterable[str], pause: str,
           plain_text: bool, today: date) -> Preferences:
    """Save the preferences page's form. Digests not in the config are left as they are; a
    pause is a day after `today` and within a year (PauseError otherwise), or empty."""
    subscriber = _subscriber(store, key, token)
    offered = {d.name for d in config.digests}
    receiving = set(subscriber.digests)
    chosen = (set(digests) & offered) | (receiving - offered)
    zone_digest = _zone_digest(config, subscriber)
    paused_until = _pause(pause.strip(), today, zone_digest)
    changed = store.readers.choose(subscriber.id, Choice(frozenset(chosen), paused_until, plain_text))
    if changed is None:
        raise TokenError(NOT_OURS)
    return _page(config, store, changed)


def leave(config: Config, store: Store, key: bytes, token: str) -> Preferences:
    """Unsubscribe the reader of a preferences link from every digest."""
    subscriber = _subscriber(store, key, token)
    left = store.readers.leave(subscriber.id, "by \"unsubscribe from all\" on the preferences page")
    if left is None:
        raise TokenError(NOT_OURS)
    return _page(config, store, left)


def _subscriber(store: Store, key: bytes, token: str) -> Subscriber:
    found = store.subscribers.by_id(read_preferences_token(key, token))
    if found is None:
        raise TokenError(NOT_OURS)
    return found


def _page(config: Config, store: Store, subscriber: Subscriber) -> Preferences:
    digests = tuple((d, d.name in subscriber.digests) for d in config.digests)
    zone = _zone_digest(config, subscriber).zone
    paused = None
    if subscriber.paused(datetime.now(UTC).replace(tzinfo=None)) and subscriber.paused_until is not None:
        paused = subscriber.paused_until.replace(tzinfo=UTC).astimezone(zone).date()
    return Preferences(subscriber, digests, subscriber.status in SUPPRESSED, paused)


def _zone_digest(config: Config, subscriber: Subscriber) -> Digest:
    """The digest whose time zone (and language) the reader's page speaks: their first one."""
    for digest in config.digests:
        if digest.name in subscriber.digests:
            return digest
    return config.digests[0]


def _pause(raw: str, today: date, digest: Digest) -> datetime | None:
    """The moment a pause until day `raw` ends: that day's start in the digest's zone, naive UTC."""
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise PauseError(raw) from None
    if not today < day <= today + timedelta(days=MAX_PAUSE_DAYS):
        raise PauseError(raw)
    start = datetime.combine(day, time(0), tzinfo=digest.zone)
    return start.astimezone(UTC).replace(tzinfo=None)


def _configured(config: Config, name: str) -> Digest | None:
    return next((d for d in config.digests if d.name == name), None)
