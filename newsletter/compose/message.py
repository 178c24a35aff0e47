"""Rendered issue + one recipient -> an RFC 5322 message (MIME, list and unsubscribe headers).

`PreparedMessage` does the expensive part once per issue: it encodes the fixed headers and
both bodies (quoted-printable) and keeps only the few lines that hold the unsubscribe link
open. `for_recipient` then fills in To, Date, Message-ID, List-Unsubscribe and those lines:
string work on a few hundred bytes, no parsing and no re-encoding of the 40 KB bodies.
"""

from __future__ import annotations

import binascii
import html
import email.policy
import hashlib
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from ..errors import NewsletterError
from ..inputs.config import Mailbox, Site
from ..inputs.headers import MAX_NAME_LENGTH, header_value
from .render import PLACEHOLDERS, PREFERENCES_URL, RECIPIENT, UNSUBSCRIBE_URL, Rendered, fill

SMTP_POLICY = email.policy.SMTP.clone(max_line_length=78)
MAX_TOKEN_LENGTH = 52  # `unsubscribe+TOKEN` must fit the 64-character local part
SAMPLE_TOKEN = "preview"  # in sample and test copies, where no subscriber stands behind a link
DKIM_HEADERS = (
    b"From", b"To", b"Subject", b"Date", b"Message-ID", b"MIME-Version", b"Content-Type", b"Reply-To",
    b"List-Id", b"List-Unsubscribe", b"List-Unsubscribe-Post",
)


def unsubscribe_url(site: Site, token: str) -> str:
    return f"{site.base_url}/u/{token}"


def preferences_url(site: Site, token: str) -> str:
    return f"{site.base_url}/p/{token}"


def for_sample(text: str, site: Site, reader: Mailbox | None = None, is_html: bool = False) -> str:
    """A rendered body with the links of a sample copy (previews, `build`, the archive's test
    pages), where no subscriber stands behind them; a TLP:RED copy names `reader`."""
    name = (reader.name or reader.address) if reader else ""
    return fill(text, unsubscribe_url(site, SAMPLE_TOKEN), preferences_url(site, SAMPLE_TOKEN),
                html.escape(name) if is_html else name)


def _checked_token(token: str) -> str:
    """A token of ours (tokens.py): short, lowercase letters, digits, '-' and '.'."""
    header_value(token, "token")
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii() or not token.replace(".", "").replace("-", "").isalnum():
        raise NewsletterError(f"token {token!r} is not of our form")
    return token


QP_LINE = 76  # RFC 2045: encoded lines at most 76 characters, soft break included


def _qp(text: str) -> bytes:
    """Quoted-printable with CRLF line ends, no line over 76 characters, and no line that
    starts with a dot (it is written =2E), so SMTP needs no dot-stuffing pass over it."""
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True)
    if encoded.startswith(b".") or b"\n." in encoded:
        encoded = b"\n".join(part for line in encoded.split(b"\n") for part in _without_leading_dot(line))
    return encoded.replace(b"\n", b"\r\n")


def _without_leading_dot(line: bytes) -> list[bytes]:
    parts: list[bytes] = []
    while True:
        if line.startswith(b"."):
            line = b"=2E" + line[1:]
        if len(line) <= QP_LINE:
            parts.append(line)
            return parts
        cut = QP_LINE - 1
        if line[cut - 1:cut] == b"=":  # never split an =XX escape
            cut -= 1
        elif line[cut - 2:cut - 1] == b"=":
            cut -= 2
        parts.append(line[:cut] + b"=")
        line = line[cut:]


@dataclass(frozen=True)
class _Body:
    """An encoded body: constant chunks, and between them the lines to fill per recipient."""

    chunks: tuple[bytes, ...]  # one more than `open_lines`
    open_lines: tuple[str, ...]
    is_html: bool = False  # a recipient's name is escaped into it

    @classmethod
    def prepare(cls, text: str, is_html: bool = False) -> _Body:
        if not text.endswith("\n"):
            text += "\n"
        chunks: list[bytes] = []
        open_lines: list[str] = []
        constant: list[str] = []
        for line in text.splitlines(keepends=True):
            if any(placeholder in line for placeholder in PLACEHOLDERS):
                chunks.append(_qp("".join(constant)))
                open_lines.append(line)
                constant = []
            else:
                constant.append(line)
        chunks.append(_qp("".join(constant)))
        return cls(tuple(chunks), tuple(open_lines), is_html)

    def fill(self, unsubscribe: str, preferences: str, recipient: str = "") -> list[bytes]:
        named = html.escape(recipient) if self.is_html else recipient
        out = [self.chunks[0]]
        for line, chunk in zip(self.open_lines, self.chunks[1:], strict=True):
            filled = line.replace(UNSUBSCRIBE_URL, unsubscribe).replace(PREFERENCES_URL, preferences)
            out.append(_qp(filled.replace(RECIPIENT, named)))
            out.append(chunk)
        return out


class PreparedMessage:
    """One issue's message, encoded once, to be addressed to any number of recipients.

    No line of its messages starts with a dot (`dot_safe`): transports may skip dot-stuffing.
    """

    dot_safe = True

    def __init__(self, rendered: Rendered, site: Site, signer: DkimSigner | None = None) -> None:
        self.rendered = rendered
        self.site = site
        self.signer = signer
        seed = f"{rendered.issue_id}\0{rendered.subject}\0{rendered.text}\0{rendered.html}".encode()
        self.boundary = "=_" + hashlib.sha256(seed).hexdigest()[:32]  # same content, same bytes
        top = EmailMessage(policy=SMTP_POLICY)
        _sender_headers(top, rendered, subject=False)
        bottom = EmailMessage(policy=SMTP_POLICY)
        bottom["MIME-Version"] = "1.0"
        bottom["List-Id"] = rendered.list_id
        bottom["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        bottom["Content-Language"] = rendered.language
        self.top_headers, self.bottom_headers = (
            m.as_bytes().split(b"\r\n\r\n", 1)[0] + b"\r\n" for m in (top, bottom)
        )
        self.top_headers += _subject_header(rendered.subject)
        self.alternative = f'Content-Type: multipart/alternative;\r\n boundary="{self.boundary}"\r\n'.encode()
        # For readers who asked for plain text only: the text part alone, no HTML at all.
        self.plain_only = b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n'
        self.text = _Body.prepare(rendered.text)
        self.html = _Body.prepare(rendered.html, is_html=True)
        self.part_head = {
            subtype: (
                f"--{self.boundary}\r\nContent-Type: text/{subtype}; charset=\"utf-8\"\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            ).encode()
            for subtype in ("plain", "html")
        }
        self.closing = f"--{self.boundary}--\r\n".encode()

    def for_recipient(
        self, recipient: Mailbox, unsubscribe_token: str, message_id: str, date: datetime,
        preferences_token: str | None = None, plain: bool = False,
    ) -> bytes:
        """The message as it goes on the wire: CRLF line ends, plaintext part first, HTML last
        (only the plaintext, for a reader who chose `plain`)."""
        token = _checked_token(unsubscribe_token)
        link = unsubscribe_url(self.site, token)
        preferences = preferences_url(self.site, _checked_token(preferences_token or SAMPLE_TOKEN))
        unsubscribe = f"<{link}>, <mailto:unsubscribe+{token}@{self.site.domain}>"
        head = [
            self.top_headers,
            b"To: ", _address_header(recipient), b"\r\n",
            b"Date: ", format_datetime(date).encode(), b"\r\n",
            b"Message-ID: ", header_value(message_id, "Message-ID").encode("ascii"), b"\r\n",
            _folded(b"List-Unsubscribe: ", unsubscribe.encode("ascii")), b"\r\n",
            self.bottom_headers,
        ]
        named = recipient.name or recipient.address  # a TLP:RED copy says whom it is for
        if plain:
            body = [self.plain_only, b"\r\n", *self.text.fill(link, preferences, named)]
        else:
            body = [
                self.alternative, b"\r\n",
                b"This is a multipart message in MIME format.\r\n\r\n",
                self.part_head["plain"], *self.text.fill(link, preferences, named), b"\r\n",
                self.part_head["html"], *self.html.fill(link, preferences, named), b"\r\n",
                self.closing,
            ]
        message = b"".join(head + body)
        return self.signer.sign(message) if self.signer else message


def check_headers(rendered: Rendered) -> None:
    """Refuse a rendered issue whose shared headers could not be written safely (the same
    checks PreparedMessage makes, without encoding the bodies)."""
    header_value(rendered.sender.name, "sender name")
    if rendered.reply_to is not None:
        header_value(rendered.reply_to.name, "reply-to name")
    header_value(rendered.subject, "subject")
    header_value(rendered.list_id, "List-Id")
    header_value(rendered.language, "language")


def _sender_headers(message: EmailMessage, rendered: Rendered, subject: bool = True) -> None:
    """From, Reply-To (when set) and Subject: the headers every message of an issue shares."""
    check_headers(rendered)
    message["From"] = Address(rendered.sender.name, addr_spec=rendered.sender.address)
    if rendered.reply_to is not None:
        message["Reply-To"] = Address(rendered.reply_to.name, addr_spec=rendered.reply_to.address)
    if subject:
        message["Subject"] = rendered.subject


def _subject_header(subject: str) -> bytes:
    """The Subject line, folded at spaces within 78 characters. The email package folds an
    ASCII subject that starts with "[TLP:CLEAR]" before its first word, so that readers would
    see it with a leading space; RFC 2047 encoding (non-ASCII) is left to it."""
    if not subject.isascii():
        message = EmailMessage(policy=SMTP_POLICY)
        message["Subject"] = subject
        return message.as_bytes().split(b"\r\n\r\n", 1)[0] + b"\r\n"
    lines: list[str] = []
    line = "Subject:"
    for word in subject.split(" "):
        if len(line) + 1 + len(word) > 78 and line.strip() != "Subject:":
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _address_header(mailbox: Mailbox) -> bytes:
    """`Name <address>`, RFC 2047-encoded when the name is not ASCII, folded when long."""
    name = header_value(mailbox.name, "recipient name")
    address = header_value(mailbox.address, "recipient address")
    if len(name) > MAX_NAME_LENGTH:
        raise NewsletterError(f"recipient name is longer than {MAX_NAME_LENGTH} characters")
    if not address.isascii() or "\\" in address or " " in address:
        raise NewsletterError(f"recipient address {address!r} is not a plain ASCII address")
    line = formataddr((name, address), charset="utf-8")
    if len(line) + 4 <= 78:
        return line.encode("ascii")
    folded = SMTP_POLICY.fold_binary("To", SMTP_POLICY.header_factory("To", str(Address(name, addr_spec=address))))
    return folded.removeprefix(b"To: ").rstrip(b"\r\n")


def _folded(name: bytes, value: bytes) -> bytes:
    """Fold a comma-separated header at its commas when the line would pass 78 characters."""
    if len(name) + len(value) <= 78:
        return name + value
    return name + value.replace(b", ", b",\r\n ")


class DkimSigner:
    """DKIM-signs finished messages (relaxed/relaxed, rsa-sha256), covering the list headers."""

    def __init__(self, selector: str, domain: str, private_key: bytes) -> None:
        import dkim  # only needed when signing is configured

        self._dkim = dkim
        self.selector = selector.encode()
        self.domain = domain.encode()
        self.key = private_key
        try:
            self.sign(b"From: a@b.example\r\nSubject: key check\r\n\r\nbody\r\n")
        except Exception as exc:  # dkimpy raises several types for a bad key
            raise NewsletterError(f"the DKIM key cannot sign: {exc}") from None

    def sign(self, message: bytes) -> bytes:
        present = tuple(h for h in DKIM_HEADERS if h.lower() + b":" in message[:4096].lower())
        signature = self._dkim.sign(
            message, self.selector, self.domain, self.key,
            canonicalize=(b"relaxed", b"relaxed"), include_headers=list(present), linesep=b"\r\n",
        )
        return bytes(signature) + message


def preview_message_id(rendered: Rendered, site: Site) -> str:
    """A stable Message-ID for the sample copy `newsletter build` writes."""
    digest_of = hashlib.sha256(f"{rendered.subject}\0{rendered.text}".encode()).hexdigest()[:16]
    return f"<{rendered.issue_id}.{digest_of}.preview@{site.domain}>"


def build_message(
    rendered: Rendered, site: Site, recipient: Mailbox, unsubscribe_token: str, message_id: str, date: datetime
) -> bytes:
    """One message on its own (a preview or a test copy); senders reuse a PreparedMessage."""
    return PreparedMessage(rendered, site).for_recipient(recipient, unsubscribe_token, message_id, date)


def single_message(rendered: Rendered, recipient: Mailbox, message_id: str, date: datetime) -> bytes:
    """A one-off message that is not an issue (the subscription confirmation): no list headers,
    since it is not list mail; plaintext first, HTML last, as every message we send."""
    msg = EmailMessage(policy=SMTP_POLICY)
    _sender_headers(msg, rendered)
    _address_header(recipient)  # the same checks as for an issue
    msg["To"] = Address(recipient.name, addr_spec=recipient.address)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = header_value(message_id, "Message-ID")
    msg["Content-Language"] = rendered.language
    msg.set_content(_qp_safe(rendered.text), subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(_qp_safe(rendered.html), subtype="html", charset="utf-8", cte="quoted-printable")
    for part in msg.iter_parts():
        del part["MIME-Version"]
    return msg.as_bytes()


def _qp_safe(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"
