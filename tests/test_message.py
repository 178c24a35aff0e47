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

from newsletter.config import Mailbox
from newsletter.content import Library
from newsletter.digest import compose, moment
from newsletter.errors import NewsletterError
from newsletter.message import Envelope, build_message
from newsletter.render import Rendered, Renderer

from .samples import DIGEST, SITE, brief, entry

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
LIBRARY = Library(Path("content"), (brief(date(2022, 7, 26), "backfire"),), (entry("2022-06-12", "Ring exposed"),))
WHEN = datetime(2022, 7, 26, 7, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    issue = compose(LIBRARY, DIGEST, moment(date(2022, 7, 26), DIGEST))
    return Renderer(TEMPLATES, SITE.base_url).render(issue)


def envelope(name: str = "Reader", address: str = "reader@example.org") -> Envelope:
    return Envelope(Mailbox(name, address), "tok123", "<abc.1@news.example.org>", WHEN)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_the_message_is_multipart_alternative_plaintext_first_html_last(rendered: Rendered) -> None:
    message = parse(build_message(rendered, SITE, envelope()))
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert all(p["Content-Transfer-Encoding"] == "quoted-printable" for p in parts)


def test_every_required_header_is_present_and_well_formed(rendered: Rendered) -> None:
    message = parse(build_message(rendered, SITE, envelope()))
    assert message["From"] == "Digest <digest@example.org>"
    assert message["To"] == "Reader <reader@example.org>"
    assert message["Subject"] == "Weekly: Backfire"
    assert message["Date"] == "Tue, 26 Jul 2022 07:00:00 +0000"
    assert message["Message-ID"] == "<abc.1@news.example.org>"
    assert message["MIME-Version"] == "1.0"
    assert message["List-Id"] == '"Weekly" <weekly.news.example.org>'
    assert message["List-Unsubscribe"] == (
        "<https://news.example.org/u/tok123>, <mailto:unsubscribe+tok123@news.example.org>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_the_unsubscribe_link_is_in_both_bodies(rendered: Rendered) -> None:
    message = parse(build_message(rendered, SITE, envelope()))
    plain, html = (p.get_content() for p in message.iter_parts())
    assert "https://news.example.org/u/tok123" in plain
    assert 'href="https://news.example.org/u/tok123"' in html
    assert "%%" not in plain + html


def test_on_the_wire_lines_end_in_crlf_and_stay_short(rendered: Rendered) -> None:
    raw = build_message(rendered, SITE, envelope())
    assert re.search(rb"(?<!\r)\n", raw) is None
    assert re.search(rb"\r(?!\n)", raw) is None
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78


def test_a_non_ascii_subject_and_name_are_encoded_words(rendered: Rendered) -> None:
    arabic = replace(rendered, subject="\u0625\u064a\u0631\u0627\u0646 \u0648\u062a\u0631\u0643\u064a\u0627")
    raw = build_message(arabic, SITE, envelope(name="\u00d6mer \u00d6zkizilcik"))
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert b"Subject: =?utf-8?" in headers
    assert b"To: =?utf-8?" in headers
    assert parse(raw)["Subject"] == arabic.subject


@pytest.mark.parametrize(
    "name", ["Eve\r\nBcc: victim@example.org", "Eve\nBcc: x@y", "Eve\rBcc: x@y", "Eve\x00", "Eve\n"]
)
def test_a_line_break_in_a_name_never_reaches_a_header(rendered: Rendered, name: str) -> None:
    with pytest.raises(NewsletterError, match="line break or control character"):
        build_message(rendered, SITE, envelope(name=name))
