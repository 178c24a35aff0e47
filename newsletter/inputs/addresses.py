"""The door for subscribers' addresses and names: what the store accepts, from any path."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from ..errors import NewsletterError
from .headers import MAX_NAME_LENGTH, header_problem


class AddressError(NewsletterError):
    """An address or name that cannot be accepted; the message says why."""


def normalize_address(raw: str) -> str:
    """The address as we store and send to it: valid syntax, ASCII (IDN domains as punycode),
    lowercase. No DNS lookup: deliverability shows when we send."""
    text = raw.strip()
    problem = header_problem(text)
    if problem is not None:
        raise AddressError(f"{text!r} is not a valid address: it {problem}")
    try:
        checked = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise AddressError(f"'{text}' is not a valid address: {exc}") from None
    return str(checked.ascii_email or checked.normalized).lower()


def check_name(raw: str) -> str:
    """A display name fit for a To header: printable, one line, not too long; spaces folded."""
    problem = header_problem(raw)
    if problem is not None:
        raise AddressError(f"name {problem}: {raw!r}")
    name = " ".join(raw.split())
    if len(name) > MAX_NAME_LENGTH:
        raise AddressError(f"name is longer than {MAX_NAME_LENGTH} characters")
    return name
