"""build_message(): a standards-clean multipart message from a rendered issue."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import replace
from datetime import date, datetime, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest

from newsletter.inputs.config import Mailbox
from newsletter.inputs.content import Library
from newsletter.compose.digest import compose, moment
from newsletter.errors import NewsletterError
from newsletter.compose.message import DkimSigner, PreparedMessage, build_message
from newsletter.compose.render import Rendered, Renderer, list_id

from .samples import DIGEST, SITE, brief, entry

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
LIBRARY = Library(Path("content"), (brief(date(2022, 7, 26), "backfire"),), (entry("2022-06-12", "Ring exposed"),))
WHEN = datetime(2022, 7, 26, 7, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    issue = compose(LIBRARY, DIGEST, moment(date(2022, 7, 26), DIGEST))
    return Renderer(TEMPLATES, SITE).render(issue)


def wire(rendered: Rendered, name: str = "Reader", address: str = "reader@example.org") -> bytes:
    return build_message(rendered, SITE, Mailbox(name, address), "tok123", "<abc.1@news.example.org>", WHEN)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_the_message_is_multipart_alternative_plaintext_first_html_last(rendered: Rendered) -> None:
    message = parse(wire(rendered))
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert all(p["Content-Transfer-Encoding"] == "quoted-printable" for p in parts)


def test_every_required_header_is_present_and_well_formed(rendered: Rendered) -> None:
    message = parse(wire(rendered))
    assert message["From"] == "Digest <digest@example.org>"
    assert message["To"] == "Reader <reader@example.org>"
    assert message["Subject"] == "[TLP:CLEAR] Weekly: Backfire"
    assert message["Date"] == "Tue, 26 Jul 2022 07:00:00 +0000"
    assert message["Message-ID"] == "<abc.1@news.example.org>"
    assert message["MIME-Version"] == "1.0"
    assert message["List-Id"] == '"Weekly" <weekly.news.example.org>'
    assert message["List-Unsubscribe"] == (
        "<https://news.example.org/u/tok123>, <mailto:unsubscribe+tok123@news.example.org>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_the_unsubscribe_link_is_in_both_bodies(rendered: Rendered) -> None:
    message = parse(wire(rendered))
    plain, html = (p.get_content() for p in message.iter_parts())
    assert "https://news.example.org/u/tok123" in plain
    assert 'href="https://news.example.org/u/tok123"' in html
    assert "%%" not in plain + html


def test_on_the_wire_lines_end_in_crlf_and_stay_short(rendered: Rendered) -> None:
    raw = wire(rendered)
    assert re.search(rb"(?<!\r)\n", raw) is None
    assert re.search(rb"\r(?!\n)", raw) is None
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78


def test_a_non_ascii_subject_and_name_are_encoded_words(rendered: Rendered) -> None:
    arabic = replace(rendered, subject="\u0625\u064a\u0631\u0627\u0646 \u0648\u062a\u0631\u0643\u064a\u0627")
    raw = wire(arabic, name="\u00d6mer \u00d6zkizilcik")
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert b"Subject: =?utf-8?" in headers
    assert b"To: =?utf-8?" in headers
    assert parse(raw)["Subject"] == arabic.subject


@pytest.mark.parametrize(
    "name", ["Eve\r\nBcc: victim@example.org", "Eve\nBcc: x@y", "Eve\rBcc: x@y", "Eve\x00", "Eve\n"]
)
def test_a_line_break_in_a_name_never_reaches_a_header(rendered: Rendered, name: str) -> None:
    with pytest.raises(NewsletterError, match="line break or control character"):
        wire(rendered, name=name)


NASTY = [
    "Eve\r\nBcc: victim@example.org", "Eve\nBcc: x@y", "Eve\rBcc: x@y", "Eve\x00", "Eve\n",
    "Eve\u2028Bcc: x@y", "=?UTF-8?Q?Eve=0ABcc:_x@y?=", "=?utf-8?b?RXZlCkJjYzogeEB5?=",
]


@pytest.mark.parametrize("nasty", NASTY)
@pytest.mark.parametrize("field", ["recipient name", "subject", "sender name", "reply-to name", "digest title", "message id"])
def test_no_input_can_start_a_header(rendered: Rendered, field: str, nasty: str) -> None:
    recipient, message_id = Mailbox("Reader", "reader@example.org"), "<abc.1@news.example.org>"
    if field == "recipient name":
        recipient = Mailbox(nasty, recipient.address)
    elif field == "message id":
        message_id = nasty
    elif field == "subject":
        rendered = replace(rendered, subject=nasty)
    elif field == "sender name":
        rendered = replace(rendered, sender=Mailbox(nasty, rendered.sender.address))
    elif field == "reply-to name":
        rendered = replace(rendered, reply_to=Mailbox(nasty, "replies@example.org"))
    else:
        rendered = replace(rendered, list_id=list_id(replace(DIGEST, title=nasty), SITE))
    with pytest.raises(NewsletterError, match="line break or control character|encoded header word"):
        build_message(rendered, SITE, recipient, "tok123", message_id, WHEN)


def test_one_prepared_message_serves_every_recipient(rendered: Rendered) -> None:
    prepared = PreparedMessage(rendered, SITE)
    first = prepared.for_recipient(Mailbox("Ann", "ann@example.org"), "1.aaa", "<i.1@news.example.org>", WHEN)
    second = prepared.for_recipient(Mailbox("Bob", "bob@example.org"), "2.bbb", "<i.2@news.example.org>", WHEN)
    assert first == build_message(rendered, SITE, Mailbox("Ann", "ann@example.org"), "1.aaa", "<i.1@news.example.org>", WHEN)
    one, two = parse(first), parse(second)
    assert (one["To"], two["To"]) == ("Ann <ann@example.org>", "Bob <bob@example.org>")
    assert "https://news.example.org/u/2.bbb" in list(two.iter_parts())[1].get_content()
    assert "1.aaa" not in second.decode("ascii")
    changed = {line for line in first.split(b"\r\n")} ^ {line for line in second.split(b"\r\n")}
    assert len(changed) <= 12  # To, Message-ID, List-Unsubscribe (2 lines), and the link lines


def test_a_long_unsubscribe_header_folds_at_its_comma(rendered: Rendered) -> None:
    site = replace(SITE, base_url="https://newsletters.threat-digest.example.org/iran-turkey-israel")
    raw = build_message(rendered, site, Mailbox("R", "r@example.org"), "123456.abcdefghijklmnopqrstuvwx", "<m@x.org>", WHEN)
    assert b"List-Unsubscribe: <https://newsletters.threat-digest.example.org/iran-turkey-israel/u/" in raw
    assert b">,\r\n <mailto:unsubscribe+123456.abcdefghijklmnopqrstuvwx@news.example.org>\r\n" in raw
    long_lines = [line for line in raw.split(b"\r\n") if len(line) > 78]
    assert [line[:18] for line in long_lines] == [b"List-Unsubscribe: "]  # a URL cannot be folded
    assert len(long_lines[0]) <= 998


def test_dkim_signs_the_list_headers_and_verifies(rendered: Rendered) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    import dkim

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    record = b"v=DKIM1; k=rsa; p=" + __import__("base64").b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == b"sel._domainkey.news.example.org." else None

    prepared = PreparedMessage(rendered, SITE, DkimSigner("sel", "news.example.org", pem))
    raw = prepared.for_recipient(Mailbox("Reader", "reader@example.org"), "tok123", "<m.1@news.example.org>", WHEN)
    assert dkim.verify(raw, dnsfunc=dns)
    signed = parse(raw)["DKIM-Signature"].replace(" ", "").lower()
    header_list = signed.split("h=")[1].split(";")[0].split(":")
    assert {"from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"} <= set(header_list)
    tampered = raw.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: nothing")
    assert not dkim.verify(tampered, dnsfunc=dns)


@pytest.mark.parametrize(
    "text",
    [
        ".starts with a dot\n",
        "a\n.b\n..c\n",
        "x" * 75 + ".after a soft break\n",
        "." + "y" * 74 + "\n",  # the =2E makes the line too long: it is wrapped again
        "." + "é" * 40 + "\n",  # escapes near the cut are never split
        "=" * 30 + ".\n." + "=" * 30 + "\n",
    ],
)
def test_quoted_printable_bodies_never_start_a_line_with_a_dot(text: str) -> None:
    import quopri

    from newsletter.compose.message import _qp

    encoded = _qp(text)
    lines = encoded.split(b"\r\n")
    assert not any(line.startswith(b".") for line in lines)
    assert all(len(line) <= 76 for line in lines)
    assert quopri.decodestring(encoded.replace(b"\r\n", b"\n")).decode("utf-8") == text


def test_a_whole_message_needs_no_dot_stuffing(rendered: Rendered) -> None:
    raw = wire(rendered)
    assert PreparedMessage.dot_safe and b"\n." not in raw and not raw.startswith(b".")


def test_a_reader_who_chose_plain_text_gets_the_text_part_alone(rendered: Rendered) -> None:
    raw = PreparedMessage(rendered, SITE).for_recipient(
        Mailbox("Reader", "reader@example.org"), "tok123", "<m.1@news.example.org>", WHEN, "pref456", plain=True)
    message = parse(raw)
    assert message.get_content_type() == "text/plain" and not message.is_multipart()
    body = message.get_content()
    assert "https://news.example.org/u/tok123" in body and "https://news.example.org/p/pref456" in body
    assert "<html" not in body and message["List-Unsubscribe"]
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
