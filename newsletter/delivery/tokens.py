"""Signed tokens: links in messages (unsubscribe and preferences never expire; confirm
expires and works once), forms, editor sessions and return paths.

A token is `FIELD.FIELD...SIGNATURE`, all lowercase letters, digits and '-', so it fits in
a URL path and in the local part of `unsubscribe+TOKEN@domain` (at most 64 characters) and
survives mail systems that fold the case of addresses. The signature is an HMAC-SHA256 over
the purpose and the fields, truncated to 120 bits: a forger has to guess it online.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from ..errors import NewsletterError

FIELD = re.compile(r"^[a-z0-9-]+$")
SIGNATURE_BYTES = 15  # base32 without padding: 24 characters


class TokenError(NewsletterError):
    """A token that is malformed, forged, altered, for another purpose, or expired."""


def _signature(key: bytes, purpose: str, fields: tuple[str, ...]) -> str:
    mac = hmac.new(key, "\0".join((purpose, *fields)).encode(), hashlib.sha256).digest()
    return base64.b32encode(mac[:SIGNATURE_BYTES]).decode().lower()


def sign(key: bytes, purpose: str, *fields: str) -> str:
    for field in fields:
        if not FIELD.match(field):
            raise ValueError(f"token field {field!r} must be lowercase letters, digits and '-'")
    return ".".join((*fields, _signature(key, purpose, fields)))


def verify(key: bytes, purpose: str, token: str, count: int) -> tuple[str, ...]:
    """The `count` fields of a genuine token for `purpose`; TokenError otherwise."""
    parts = token.split(".")
    if len(parts) != count + 1 or not all(FIELD.match(p) for p in parts):
        raise TokenError("this link is not complete: copy the whole address from the message")
    fields = tuple(parts[:-1])
    if not hmac.compare_digest(parts[-1], _signature(key, purpose, fields)):
        raise TokenError("this link is not valid: it was changed or is not one of ours")
    return fields


def unsubscribe_token(key: bytes, subscription_id: int) -> str:
    return sign(key, "unsubscribe", str(subscription_id))


def read_unsubscribe_token(key: bytes, token: str) -> int:
    """The subscription an unsubscribe token stands for. These tokens do not expire: a
    reader may unsubscribe from a message of any age (and mailbox providers require it)."""
    (subscription,) = verify(key, "unsubscribe", token, 1)
    return int(subscription)


def confirm_token(key: bytes, subscription_id: int, code: str, issued: int) -> str:
    """A double opt-in confirmation for one request of a subscription (its `code`, see
    store/readers.py), issued at `issued` (Unix seconds)."""
    return sign(key, "confirm", str(subscription_id), code, format(issued, "x"))


def read_confirm_token(key: bytes, token: str, now: int, max_age: int) -> tuple[int, str]:
    """(subscription, code) of a genuine confirmation token that has not expired."""
    subscription, code, issued = verify(key, "confirm", token, 3)
    age = now - int(issued, 16)
    if age > max_age or age < -300:
        raise TokenError("this confirmation link has expired: subscribe again to get a new one")
    return int(subscription), code


def preferences_token(key: bytes, subscriber_id: int) -> str:
    """The reader's own preferences page. Like an unsubscribe link it does not expire (it is in
    every message, of any age); the page changes nothing without a form we served."""
    return sign(key, "preferences", str(subscriber_id))


def read_preferences_token(key: bytes, token: str) -> int:
    (subscriber,) = verify(key, "preferences", token, 1)
    return int(subscriber)


def editor_token(key: bytes, password: str, issued: int, nonce: str) -> str:
    """An editor's session: signed with the key and the password, so changing the password
    ends every session at once."""
    return sign(key, _editor_purpose(password), format(issued, "x"), nonce)


def read_editor_token(key: bytes, password: str, token: str, now: int, max_age: int) -> None:
    """Accept a session cookie we issued for this password, within `max_age` seconds."""
    (issued, _) = verify(key, _editor_purpose(password), token, 2)
    age = now - int(issued, 16)
    if age > max_age or age < -300:
        raise TokenError("this editor session has expired: log in again")


def _editor_purpose(password: str) -> str:
    return "editor:" + hashlib.sha256(password.encode()).hexdigest()


def form_token(key: bytes, nonce: str, issued: int) -> str:
    """A CSRF token for a form: bound to the browser's nonce cookie and to when it was issued."""
    return sign(key, "form", nonce, format(issued, "x"))


def read_form_token(key: bytes, token: str, nonce: str, now: int, max_age: int) -> None:
    """Accept a form only from a page we served to this browser recently."""
    bound, issued = verify(key, "form", token, 2)
    if not hmac.compare_digest(bound, nonce):
        raise TokenError("this form was not sent from this browser: reload the page and try again")
    if now - int(issued, 16) > max_age:
        raise TokenError("this form is too old: reload the page and try again")


def verp_token(key: bytes, delivery_id: int) -> str:
    """The part after `bounce+` of a delivery's return path: its id, signed, so a bounce to a
    made-up `bounce+123@` address is recognized as forged."""
    return sign(key, "verp", str(delivery_id))


def read_verp_token(key: bytes, token: str) -> int:
    (delivery,) = verify(key, "verp", token, 1)
    return int(delivery)
