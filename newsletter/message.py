"""Rendered issue + one recipient -> an RFC 5322 message (MIME, list and unsubscribe headers)."""

from __future__ import annotations

import email.policy
import hashlib
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from .config import Mailbox, Site
from .errors import NewsletterError
from .render import UNSUBSCRIBE_URL, Rendered

SMTP_POLICY = email.policy.SMTP.clone(max_line_length=78)


@dataclass(frozen=True)
class Envelope:
    """What differs between two copies of one issue."""

    recipient: Mailbox
    unsubscribe_token: str
    message_id: str
    date: datetime


def header_value(value: str, what: str) -> str:
    """Refuse any control character in text bound for a header (CR/LF would forge headers)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise NewsletterError(f"{what} contains a line break or control character: {value!r}")
    return value


def list_id(rendered: Rendered, site: Site) -> str:
    title = rendered.digest.title.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{title}" <{rendered.digest.name}.{site.domain}>'


def unsubscribe_url(site: Site, token: str) -> str:
    return f"{site.base_url}/u/{token}"


def build_message(rendered: Rendered, site: Site, envelope: Envelope) -> bytes:
    """The message as it goes on the wire: CRLF line ends, plaintext part first, HTML last."""
    digest = rendered.digest
    token = header_value(envelope.unsubscribe_token, "unsubscribe token")
    link = unsubscribe_url(site, token)
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = Address(
        header_value(digest.sender.name, "sender name"), addr_spec=digest.sender.address
    )
    msg["To"] = Address(
        header_value(envelope.recipient.name, "recipient name"),
        addr_spec=header_value(envelope.recipient.address, "recipient address"),
    )
    msg["Subject"] = header_value(rendered.subject, "subject")
    msg["Date"] = format_datetime(envelope.date)
    msg["Message-ID"] = header_value(envelope.message_id, "Message-ID")
    msg["List-Id"] = header_value(list_id(rendered, site), "List-Id")
    msg["List-Unsubscribe"] = f"<{link}>, <mailto:unsubscribe+{token}@{site.domain}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(
        rendered.text.replace(UNSUBSCRIBE_URL, link), subtype="plain", charset="utf-8", cte="quoted-printable"
    )
    msg.add_alternative(
        rendered.html.replace(UNSUBSCRIBE_URL, link), subtype="html", charset="utf-8", cte="quoted-printable"
    )
    for part in msg.iter_parts():
        del part["MIME-Version"]  # belongs on the message only
    msg["Content-Language"] = digest.language
    # A boundary derived from the content keeps previews byte-identical between builds.
    seed = f"{envelope.message_id}\0{rendered.text}\0{rendered.html}".encode()
    msg.set_boundary("=_" + hashlib.sha256(seed).hexdigest()[:32])
    return msg.as_bytes()


def preview_envelope(rendered: Rendered, site: Site, recipient: Mailbox, date: datetime) -> Envelope:
    """A deterministic envelope for the sample copy `newsletter build` writes."""
    digest_of = hashlib.sha256(f"{rendered.subject}\0{rendered.text}".encode()).hexdigest()[:16]
    return Envelope(
        recipient=recipient,
        unsubscribe_token="preview",
        message_id=f"<{rendered.issue_id}.{digest_of}.preview@{site.domain}>",
        date=date,
    )
