"""Transports: the file and SMTP transports keep one contract; SMTP failures become our errors."""

from __future__ import annotations

import email
import email.policy
import mailbox
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from newsletter.errors import (
    DeliveryError, MessageRejected, NewsletterError, PermanentError, PolicyError, TransientError,
)
from newsletter.delivery.transport import Envelope, Outcome, Transport, open_transport
from newsletter.inputs.config import Timeouts, TransportSettings
from newsletter.inputs.endpoint import Endpoint, parse_transport_url

from .smtp_server import MakeServer, SmtpServer

SENDER = "digest@news.example.org"
READERS = ("ada@example.org", "grace@example.org", "linus@example.org")
FORMS = "use file:DIR, smtp://HOST:PORT, smtps://HOST:PORT or smtp+starttls://HOST:PORT"


def message(recipient: str, subject: str = "Weekly: Backfire") -> bytes:
    """A finished message as message.py hands it over: CRLF line ends, one line starting with a dot."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = f"Digest <{SENDER}>"
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{recipient.split('@')[0]}.1@news.example.org>"
    msg.set_content("Key points this week.\n.A line that starts with a dot must survive SMTP.\n")
    return msg.as_bytes()


def smtp(server: SmtpServer, password: str | None = None, **settings: Any) -> Transport:
    """A transport to `server`; `settings` as in TransportSettings, the password as from the environment."""
    return open_transport(TransportSettings(server.url, helo="sender.test", **settings), Path("."), password)


# The contract every transport keeps.

Delivered = tuple[str, str, bytes]  # envelope sender, envelope recipient, the message as sent


def read_maildir(folder: Path) -> list[Delivered]:
    """What the file transport wrote, with its trace lines read back and CRLF restored."""
    delivered = []
    box = mailbox.Maildir(folder, create=False)
    for raw in (box.get_bytes(key) for key in box.keys()):
        return_path, delivered_to, rest = raw.split(b"\n", 2)
        assert return_path.startswith(b"Return-Path: <") and delivered_to.startswith(b"Delivered-To: ")
        assert b"\r" not in raw
        sender = return_path.removeprefix(b"Return-Path: <").removesuffix(b">").decode()
        delivered.append((sender, delivered_to.removeprefix(b"Delivered-To: ").decode(), rest.replace(b"\n", b"\r\n")))
    return delivered


@dataclass(frozen=True)
class Rig:
    transport: Transport
    delivered: Callable[[], list[Delivered]]


@pytest.fixture(params=["file", "smtp", "smtp-pipelining"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    if request.param == "file":
        with open_transport(TransportSettings("file:maildir"), tmp_path) as transport:
            yield Rig(transport, lambda: read_maildir(tmp_path / "maildir"))
    else:
        with SmtpServer(pipelining=request.param == "smtp-pipelining") as server, smtp(server) as transport:
            yield Rig(transport, lambda: [(m.sender, m.recipient, m.data) for m in server.messages()])


def test_three_messages_arrive_as_sent_with_the_right_envelope(rig: Rig) -> None:
    sent = [(SENDER, reader, message(reader)) for reader in READERS]
    for sender, recipient, data in sent:
        rig.transport.send(sender, recipient, data)
    assert sorted(rig.delivered()) == sorted(sent)


def test_a_line_break_in_an_envelope_address_is_refused_before_anything_is_sent(rig: Rig) -> None:
    with pytest.raises(PermanentError, match="recipient address contains a line break"):
        rig.transport.send(SENDER, "ada@example.org\r\nRCPT TO:<eve@example.org>", message("ada@example.org"))
    assert rig.delivered() == []


# The file transport.


def test_the_maildir_opens_in_a_mail_reader_and_every_message_parses(tmp_path: Path) -> None:
    with open_transport(TransportSettings("file:out/maildir"), tmp_path) as transport:
        assert transport.name.endswith("out/maildir")
        for reader in READERS:
            transport.send(SENDER, reader, message(reader, subject=f"For {reader}"))
    folder = tmp_path / "out" / "maildir"
    assert sorted(p.name for p in folder.iterdir()) == ["cur", "new", "tmp"]
    assert len(list((folder / "new").iterdir())) == 3 and not list((folder / "tmp").iterdir())
    box = mailbox.Maildir(folder, create=False)
    parsed = [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.keys()]
    assert sorted(m["Delivered-To"] for m in parsed) == sorted(READERS)
    assert {m["Return-Path"] for m in parsed} == {f"<{SENDER}>"}
    assert sorted(m["Subject"] for m in parsed) == sorted(f"For {r}" for r in READERS)
    assert all(isinstance(m, EmailMessage) and "dot must survive" in m.get_content() for m in parsed)


def test_the_file_transport_is_named_as_the_operator_wrote_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert open_transport(TransportSettings("file:out/maildir"), tmp_path).name == "file:out/maildir"


# The SMTP transport: one connection, reused.


def test_many_messages_share_one_connection(smtp_server: SmtpServer) -> None:
    with smtp(smtp_server) as transport:
        assert smtp_server.connections == 0  # connects on the first send, not when opened
        for n in range(20):
            transport.send(SENDER, f"reader{n}@example.org", message(f"reader{n}@example.org"))
    assert smtp_server.connections == 1
    assert {m.connection for m in smtp_server.messages()} == {1}
    assert smtp_server.recipients() == [f"reader{n}@example.org" for n in range(20)]


def test_with_pipelining_a_body_goes_out_before_the_answers_are_recorded_and_only_its_dot_delivers_it(
    make_smtp_server: MakeServer,
) -> None:
    server = make_smtp_server(pipelining=True)
    first, second = (Envelope(n, SENDER, reader, message(reader)) for n, reader in enumerate(READERS[:2]))
    transport = smtp(server)
    assert transport.submit(first) == []  # MAIL, RCPT, DATA out; nothing read
    assert transport.collect() == []  # 354 read: the first's body goes out, without its dot
    assert transport.submit(second) == []  # the first's dot, with the second's commands
    assert transport.collect() == [Outcome(0, None)]  # the first taken; the second's body out
    assert server.wait_for(1) and server.recipients() == [READERS[0]]
    transport.close()  # as if the process died here, before recording the first's answer
    server.wait_closed()
    assert server.recipients() == [READERS[0]]  # the second's body without its dot was never taken


def test_a_dropped_connection_is_transient_and_the_next_send_reconnects(smtp_server: SmtpServer) -> None:
    smtp_server.drop_after(2)
    with smtp(smtp_server) as transport:
        transport.send(SENDER, READERS[0], message(READERS[0]))
        transport.send(SENDER, READERS[1], message(READERS[1]))
        with pytest.raises(TransientError, match="lost the connection to smtp://127.0.0.1:") as caught:
            transport.send(SENDER, READERS[2], message(READERS[2]))
        assert caught.value.code is None
        transport.send(SENDER, READERS[2], message(READERS[2]))
    assert smtp_server.recipients() == list(READERS)
    assert [m.connection for m in smtp_server.messages()] == [1, 1, 2]


def test_421_is_transient_closes_the_connection_and_the_next_send_reconnects(smtp_server: SmtpServer) -> None:
    def close_once(recipient: str, attempt: int) -> str | None:
        return "421 4.3.2 closing" if recipient == READERS[1] and attempt == 1 else None

    smtp_server.reply_for = close_once
    with smtp(smtp_server) as transport:
        transport.send(SENDER, READERS[0], message(READERS[0]))
        with pytest.raises(TransientError) as caught:
            transport.send(SENDER, READERS[1], message(READERS[1]))
        assert caught.value.code == 421
        assert str(caught.value) == (
            f"{smtp_server.url} closed the connection while taking {READERS[1]}: 421 4.3.2 closing"
        )
        transport.send(SENDER, READERS[1], message(READERS[1]))
        transport.send(SENDER, READERS[2], message(READERS[2]))
    assert [m.connection for m in smtp_server.messages()] == [1, 2, 2]


@pytest.mark.parametrize(
    ("stage", "reply", "error", "code"),
    [
        ("rcpt", "451 4.3.0 try later", TransientError, 451),
        ("rcpt", "452 4.2.2 mailbox full", TransientError, 452),
        ("rcpt", "550 5.1.1 <x@example.org>: user unknown", PermanentError, 550),
        ("rcpt", "553 5.1.3 bad address syntax", PermanentError, 553),
        ("rcpt", "554 5.7.1 <x@example.org>: recipient address rejected: access denied", PermanentError, 554),
        ("rcpt", "530 5.7.0 authentication required", PolicyError, 530),
        ("data", "451 4.3.0 try later", TransientError, 451),
        ("rcpt", "552 5.2.2 mailbox full", TransientError, 552),
        ("data", "552 5.3.4 message too big", MessageRejected, 552),
        ("data", "550 5.1.1 <x@example.org>: user unknown", PermanentError, 550),
        ("data", "554 5.7.1 message refused by policy", PolicyError, 554),
    ],
)
def test_a_refusal_maps_to_our_error_with_the_reply_and_the_connection_stays_usable(
    smtp_server: SmtpServer, stage: str, reply: str, error: type[DeliveryError], code: int
) -> None:
    def refuse(recipient: str, attempt: int) -> str | None:
        return reply if recipient == "x@example.org" else None

    if stage == "rcpt":
        smtp_server.reply_for = refuse
    else:
        smtp_server.data_reply_for = refuse
    with smtp(smtp_server) as transport:
        with pytest.raises(DeliveryError) as caught:
            transport.send(SENDER, "x@example.org", message("x@example.org"))
        transport.send(SENDER, READERS[0], message(READERS[0]))
    assert type(caught.value) is error
    assert caught.value.code == code
    assert reply in str(caught.value)
    assert smtp_server.recipients() == [READERS[0]]
    assert smtp_server.connections == 1  # after RSET the same connection carried on


def test_a_permanent_refusal_says_who_refused_whom_and_why(smtp_server: SmtpServer) -> None:
    smtp_server.reply_for = lambda recipient, attempt: "550 5.1.1 <x@example.org>: user unknown"
    with smtp(smtp_server) as transport, pytest.raises(PermanentError) as caught:
        transport.send(SENDER, "x@example.org", message("x@example.org"))
    assert str(caught.value) == f"{smtp_server.url} refused x@example.org: 550 5.1.1 <x@example.org>: user unknown"


def test_a_server_too_slow_to_answer_is_transient_and_the_next_send_reconnects(smtp_server: SmtpServer) -> None:
    smtp_server.data_delay = 1.0
    with smtp(smtp_server, timeouts=Timeouts.all(0.2)) as transport:
        with pytest.raises(TransientError, match="timed out"):
            transport.send(SENDER, READERS[0], message(READERS[0]))
        smtp_server.data_delay = 0.0
        transport.send(SENDER, READERS[1], message(READERS[1]))
    assert smtp_server.connections == 2


def test_nothing_listening_is_transient_and_close_still_does_not_raise() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, now closed again
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = open_transport(TransportSettings(f"smtp://127.0.0.1:{port}", helo="sender.test"), Path("."))
    with pytest.raises(TransientError, match="connection refused"):
        transport.send(SENDER, READERS[0], message(READERS[0]))
    transport.close()


def test_close_after_the_server_went_away_does_not_raise(smtp_server: SmtpServer) -> None:
    transport = smtp(smtp_server)
    transport.send(SENDER, READERS[0], message(READERS[0]))
    smtp_server.stop()
    transport.close()


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_an_ipv6_literal_reaches_the_server(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(host="::1")
    with smtp(server) as transport:
        assert transport.name == f"smtp://[::1]:{server.port}"
        transport.send(SENDER, READERS[0], message(READERS[0]))
    assert server.recipients() == [READERS[0]]


def test_an_internationalized_address_goes_out_with_smtputf8(smtp_server: SmtpServer) -> None:
    with smtp(smtp_server) as transport:
        transport.send(SENDER, "zoë@example.org", message("zoe@example.org"))
    assert smtp_server.recipients() == ["zoë@example.org"]


# TLS and login.


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_tls_with_a_trusted_certificate_and_login(make_smtp_server: MakeServer, tls: str) -> None:
    server = make_smtp_server(tls=tls, login=("digest", "s3cret"))
    with smtp(server, cafile=server.cafile, username="digest", password="s3cret") as transport:
        assert transport.name == server.url
        for reader in READERS:
            transport.send(SENDER, reader, message(reader))
    assert [(m.recipient, m.tls, m.login, m.connection) for m in server.messages()] == [
        (reader, True, "digest", 1) for reader in READERS
    ]


def test_the_username_can_come_from_the_url(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(tls="ssl", login=("digest@news.example.org", "s3cret"))
    url = server.url.replace("smtps://", "smtps://digest%40news.example.org@")
    settings = TransportSettings(url, cafile=server.cafile, helo="sender.test")
    with open_transport(settings, Path("."), "s3cret") as transport:
        transport.send(SENDER, READERS[0], message(READERS[0]))
    assert server.messages()[0].login == "digest@news.example.org"


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_an_untrusted_certificate_is_a_policy_error(make_smtp_server: MakeServer, tls: str) -> None:
    server = make_smtp_server(tls=tls)
    with smtp(server) as transport, pytest.raises(PolicyError, match="certificate is not trusted"):
        transport.send(SENDER, READERS[0], message(READERS[0]))
    assert server.messages() == []


def test_a_wrong_password_is_a_policy_error_naming_the_environment_variable(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(tls="starttls", login=("digest", "s3cret"))
    with smtp(server, cafile=server.cafile, username="digest", password="wrong") as transport:
        with pytest.raises(PolicyError) as caught:
            transport.send(SENDER, READERS[0], message(READERS[0]))
    assert caught.value.code == 535
    assert str(caught.value) == (
        f"cannot log in to {server.url}: the server refused user digest: "
        "535 5.7.8 Authentication credentials invalid (check the username and NEWSLETTER_SMTP_PASSWORD)"
    )
    assert "wrong" not in str(caught.value)


def test_a_username_without_a_password_is_refused_before_connecting(smtp_server: SmtpServer) -> None:
    with pytest.raises(PolicyError, match="no password for user digest; set NEWSLETTER_SMTP_PASSWORD"):
        smtp(smtp_server, username="digest", allow_plaintext_auth=True)
    assert smtp_server.connections == 0


def test_a_server_that_offers_no_login_before_tls_is_a_policy_error(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(login=("digest", "s3cret"))  # AUTH only after STARTTLS, and it has no TLS
    with smtp(server, username="digest", password="s3cret", allow_plaintext_auth=True) as transport:
        with pytest.raises(PolicyError, match=r"offers no login \(AUTH\) without TLS"):
            transport.send(SENDER, READERS[0], message(READERS[0]))


def test_starttls_to_a_server_without_it_is_a_policy_error(smtp_server: SmtpServer) -> None:
    url = smtp_server.url.replace("smtp://", "smtp+starttls://")
    with open_transport(TransportSettings(url, helo="sender.test"), Path(".")) as transport:
        with pytest.raises(PolicyError, match="does not offer STARTTLS"):
            transport.send(SENDER, READERS[0], message(READERS[0]))


def test_smtps_to_a_plain_server_is_a_policy_error_that_explains_the_two_tls_kinds(smtp_server: SmtpServer) -> None:
    url = smtp_server.url.replace("smtp://", "smtps://")
    with open_transport(TransportSettings(url, helo="sender.test"), Path(".")) as transport:
        with pytest.raises(PolicyError, match="TLS handshake failed .*smtps:// expects TLS from the first byte"):
            transport.send(SENDER, READERS[0], message(READERS[0]))


def test_a_missing_ca_file_is_a_policy_error(tmp_path: Path) -> None:
    settings = TransportSettings("smtps://mail.example.org", cafile=str(tmp_path / "ca.pem"))
    with pytest.raises(PolicyError, match=r"cannot read the CA file .*ca.pem: No such file or directory"):
        open_transport(settings, tmp_path)


# Transport URLs.

BASE = Path("/srv/newsletter")


@pytest.mark.parametrize(
    ("url", "endpoint", "name"),
    [
        ("file:out/maildir", Endpoint("file", folder=BASE / "out/maildir"), None),
        ("file:/var/mail/digest", Endpoint("file", folder=Path("/var/mail/digest")), None),
        ("file:///var/mail/digest", Endpoint("file", folder=Path("/var/mail/digest")), None),
        ("file://localhost/var/mail/my%20digest", Endpoint("file", folder=Path("/var/mail/my digest")), None),
        ("smtp://127.0.0.1:2525", Endpoint("smtp", host="127.0.0.1", port=2525), "smtp://127.0.0.1:2525"),
        ("smtp://mail.example.org", Endpoint("smtp", host="mail.example.org", port=25), "smtp://mail.example.org:25"),
        ("smtps://mail.example.org", Endpoint("smtp", host="mail.example.org", port=465, security="ssl"), None),
        (
            "smtp+starttls://mail.example.org",
            Endpoint("smtp", host="mail.example.org", port=587, security="starttls"),
            "smtp+starttls://mail.example.org:587",
        ),
        (
            "SMTP+STARTTLS://Mail.Example.ORG:2587/",
            Endpoint("smtp", host="mail.example.org", port=2587, security="starttls"),
            "smtp+starttls://mail.example.org:2587",
        ),
        ("smtp://[::1]:2525", Endpoint("smtp", host="::1", port=2525), "smtp://[::1]:2525"),
        ("smtps://[2001:db8::25]", Endpoint("smtp", host="2001:db8::25", port=465, security="ssl"), None),
        (
            "smtps://digest%40news.example.org@mail.example.org",
            Endpoint("smtp", host="mail.example.org", port=465, security="ssl", username="digest@news.example.org"),
            "smtps://digest%40news.example.org@mail.example.org:465",
        ),
    ],
)
def test_a_good_transport_url(url: str, endpoint: Endpoint, name: str | None) -> None:
    assert parse_transport_url(url, BASE) == endpoint
    if name is not None:
        assert endpoint.name == name


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("maildir", "unknown kind of transport"),
        ("http://mail.example.org", "unknown kind of transport"),
        ("lmtp://mail.example.org:24", "unknown kind of transport"),
        ("file:", "no folder given"),
        ("file:///", "no folder given"),
        ("file://mailhost/var/mail", "a file URL cannot name another host (mailhost)"),
        ("smtp://", "missing or invalid host"),
        ("smtp://:25", "missing or invalid host"),
        ("smtp://mail example.org", "missing or invalid host"),
        ("smtp://::1:25", "missing or invalid host"),
        ("smtp://[::1:25", "invalid host"),
        ("smtp://mail.example.org:0", "the port must be a number from 1 to 65535"),
        ("smtp://mail.example.org:65536", "the port must be a number from 1 to 65535"),
        ("smtp://mail.example.org:smtp", "the port must be a number from 1 to 65535"),
        ("smtp://mail.example.org:25/inbox", "nothing may follow HOST:PORT"),
        ("smtps://mail.example.org?verify=no", "nothing may follow HOST:PORT"),
    ],
)
def test_a_bad_transport_url(url: str, why: str) -> None:
    with pytest.raises(NewsletterError) as caught:
        parse_transport_url(url, BASE)
    assert str(caught.value) == f"transport {url!r}: {why}; {FORMS}"
    assert not isinstance(caught.value, DeliveryError)


def test_a_password_in_the_url_is_refused_without_being_repeated() -> None:
    with pytest.raises(NewsletterError) as caught:
        parse_transport_url("smtps://digest:hunter2@mail.example.org", BASE)
    assert str(caught.value) == (
        "transport 'smtps://digest:***@mail.example.org': a password does not belong in the URL; "
        "set NEWSLETTER_SMTP_PASSWORD instead"
    )


def test_a_username_in_both_the_url_and_the_settings_must_agree() -> None:
    settings = TransportSettings("smtps://digest@mail.example.org", username="other")
    with pytest.raises(NewsletterError, match="the URL names user digest but the settings name other"):
        open_transport(settings, BASE, "x")


def test_a_login_over_plain_smtp_is_refused_unless_allowed(smtp_server: SmtpServer) -> None:
    """The password would cross the wire in clear: only a relay on loopback, said so in the
    config, may take it that way."""
    with pytest.raises(PolicyError, match="would send the password in clear: use smtps:// or smtp\\+starttls://"):
        smtp(smtp_server, username="digest", password="s3cret")
    assert smtp_server.connections == 0
