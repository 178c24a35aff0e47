"""Reading what comes back (delivery/returns.py): real bounces from many MTAs, complaints,
unsubscribe mails, auto-replies, and messages that are none of those or cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.delivery.returns import OurMessage, read

SAMPLES = Path(__file__).parent / "data" / "flufl_bounce"
DOMAIN = "threat-digest.example.org"

# Read off each sample by hand before the reader ran on them: the address the bounce is about,
# and whether the report says the failure is for good (5) or for now (4).
GOLD = [
    ("dsn_01.txt", ["userx@example.com"], "5"),
    ("dsn_03.txt", ["userx@example.be"], "5"),  # "Action: failure", and a block split by a line of one space
    ("dsn_05.txt", ["userx@example.cz"], "4"),  # a delay
    ("postfix_01.txt", ["xxxxx@local.ie"], "5"),
    ("qmail_01.txt", ["userx@example.de"], "5"),
    ("exim_01.txt", ["userx@its.example.nl"], "5"),
    ("microsoft_01.txt", ["userx@example.com"], "5"),
    ("yahoo_01.txt", ["userx@example.com"], "5"),
    ("groupwise_01.txt", ["userx@example.edu"], "5"),
    ("smtp32_01.txt", ["userx@example.ph"], "5"),
    ("simple_01.txt", ["bbbsss@example.com"], "5"),
    ("sendmail_01.txt", ["zzzzz@nfg.nl", "zzzzz@shaft.coal.nl"], "5"),
    ("aol_01.txt", ["screenname@aol.com"], "5"),
    ("netscape_01.txt", ["aaaaa@corel.com", "bbbbb@corel.com"], "5"),
]


@pytest.mark.parametrize(("name", "addresses", "kind"), GOLD, ids=[g[0] for g in GOLD])
def test_bounces_from_many_mtas_name_the_address_that_failed(name: str, addresses: list[str], kind: str) -> None:
    found = read((SAMPLES / name).read_bytes(), DOMAIN)
    assert found.kind == "bounce", found.why
    assert sorted(f.address for f in found.failures) == addresses
    assert {f.status[0] for f in found.failures} == {kind}


def test_a_qmail_notice_that_reports_no_failure_is_not_a_bounce() -> None:
    found = read((SAMPLES / "qmail_08.txt").read_bytes(), DOMAIN)
    assert found.kind != "bounce"


def test_a_dsn_names_our_message_and_its_parts() -> None:
    raw = (
        "From: MAILER-DAEMON@mx.example.net\r\nTo: bounce+42.abcdefghijklmnopqrstuvwx@" + DOMAIN + "\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        "Final-Recipient: rfc822; ann@example.org\r\nOriginal-Recipient: rfc822;Ann@Example.org\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n"
        "Final-Recipient: rfc822; bob@example.org\r\nAction: delivered\r\nStatus: 2.0.0\r\n"
        "--B\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <weekly-2022-W30.42.0123456789abcdef@" + DOMAIN + ">\r\n"
        "Subject: the issue\r\n\r\nbody\r\n--B--\r\n"
    ).encode()
    found = read(raw, DOMAIN)
    assert found.kind == "bounce" and found.verp == "42.abcdefghijklmnopqrstuvwx"
    (failure,) = found.failures  # the delivered one is not a failure
    assert (failure.address, failure.status, failure.hard) == ("ann@example.org", "5.1.1", True)
    assert failure.diagnostic == "smtp; 550 5.1.1 no such user"
    assert found.ours == (OurMessage("weekly-2022-W30", 42, "0123456789abcdef"),)


@pytest.mark.parametrize(("status", "hard"), [("5.1.1", True), ("5.7.1", True), ("5.2.2", False), ("4.4.7", False)])
def test_which_codes_are_for_good(status: str, hard: bool) -> None:
    raw = (
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
        f"Final-Recipient: rfc822; ann@example.org\r\nAction: failed\r\nStatus: {status}\r\n--B--\r\n"
    ).encode()
    (failure,) = read(raw, DOMAIN).failures
    assert failure.hard is hard


def test_a_message_to_the_unsubscribe_address_carries_its_token() -> None:
    raw = f"From: ann@example.org\r\nTo: <unsubscribe+7.sig@{DOMAIN}>\r\nSubject: unsubscribe\r\n\r\n\r\n".encode()
    found = read(raw, DOMAIN)
    assert (found.kind, found.unsubscribe) == ("unsubscribe", "7.sig")


def test_an_unsubscribe_address_of_another_domain_is_not_ours() -> None:
    raw = b"From: ann@example.org\r\nTo: unsubscribe+7.sig@example.net\r\nSubject: unsubscribe\r\n\r\n\r\n"
    assert read(raw, DOMAIN).kind == "unknown"


@pytest.mark.parametrize("header", [
    "Auto-Submitted: auto-replied", "Precedence: auto_reply", "X-Autoreply: yes", "Subject: Out of Office: back Monday",
])
def test_automatic_replies_are_recognized(header: str) -> None:
    raw = f"From: ann@example.org\r\nTo: digest@{DOMAIN}\r\n{header}\r\n\r\nAway.\r\n".encode()
    assert read(raw, DOMAIN).kind == "auto-reply"


@pytest.mark.parametrize("raw", [
    b"", b"\x00\x01\x02", b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\nno parts at all",
    b"From: =?utf-8?b?////?=\r\nSubject: =?x-nope?q?=FF?=\r\n\r\n\xff\xfe",
], ids=["empty", "binary", "a report with no parts", "broken encodings"])
def test_what_cannot_be_read_is_unknown_and_never_raises(raw: bytes) -> None:
    assert read(raw, DOMAIN).kind in ("unknown", "auto-reply")
