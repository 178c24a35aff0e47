"""Dispatcher: the outbox drained through a real in-process SMTP server, faults and all."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.inputs.content import Library
from newsletter.compose.digest import compose, moment
from newsletter.delivery.dispatch import Dispatcher, SendReport
from newsletter.inputs.config import Policy, Timeouts, TransportSettings
from newsletter.errors import PolicyError
from newsletter.compose.message import PreparedMessage
from newsletter.compose.render import Renderer
from newsletter.store import Store, StoredIssue
from newsletter.delivery.tokens import read_unsubscribe_token
from newsletter.delivery.transport import Transport, open_transport

from .samples import DIGEST, SITE, brief, entry, stored_issue
from .smtp_server import SmtpServer

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
KEY = b"s" * 32
FAST = Policy(retry_after=0.05, max_attempts=4, bounce_limit=1)


@pytest.fixture(scope="module")
def prepared() -> PreparedMessage:
    library = Library(Path("content"), (brief(date(2022, 7, 26), "backfire"),), (entry("2022-06-12", "Ring exposed"),))
    issue = compose(library, DIGEST, moment(date(2022, 7, 26), DIGEST))
    return PreparedMessage(Renderer(TEMPLATES, SITE).render(issue), SITE)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'newsletter.db'}")


def subscribe(store: Store, count: int) -> list[str]:
    addresses = [f"reader{n:04d}@example.org" for n in range(count)]
    for address in addresses:
        store.subscribers.add(address, f"Reader {address[6:10]}", ["weekly"])
    return addresses


def queued_issue(store: Store) -> StoredIssue:
    issue, _ = stored_issue(store)
    store.outbox.queue(issue)
    return issue


def run(
    store: Store, prepared: PreparedMessage, server: SmtpServer, policy: Policy = FAST,
    stop: threading.Event | None = None, progress: Callable[[int], None] | None = None,
) -> SendReport:
    def transport() -> Transport:
        return open_transport(TransportSettings(server.url, timeouts=Timeouts.all(5)), Path("."))

    issue = store.issues.get("weekly", "2022-W30")
    assert issue is not None
    issue = store.issues.begin_sending(issue.id)  # what usecases.issues.deliver does first
    return Dispatcher(store, issue, {"clear": prepared}, KEY, transport, policy, progress, stop).run()


def test_every_subscriber_gets_one_copy_over_one_connection(
    store: Store, prepared: PreparedMessage, smtp_server: SmtpServer
) -> None:
    addresses = subscribe(store, 120)
    issue = queued_issue(store)
    report = run(store, prepared, smtp_server)
    assert (report.sent, report.failed, report.remaining) == (120, 0, 0)
    assert sorted(smtp_server.recipients()) == addresses
    assert smtp_server.connections == 1
    assert store.status.counts(issue.id)["sent"] == 120
    again = run(store, prepared, smtp_server)
    assert again.sent == 0 and len(smtp_server.recipients()) == 120


def test_a_delivered_message_is_personal_and_standards_clean(
    store: Store, prepared: PreparedMessage, smtp_server: SmtpServer
) -> None:
    subscribe(store, 2)
    issue = queued_issue(store)
    run(store, prepared, smtp_server)
    received = smtp_server.messages()
    parsed = [email.message_from_bytes(r.data, policy=email.policy.default) for r in received]
    ids = {m["Message-ID"] for m in parsed}
    assert len(ids) == 2 and all(i.endswith(f".{issue.nonce}@news.example.org>") for i in ids)
    for raw, message in zip(received, parsed, strict=True):
        assert message["To"].addresses[0].addr_spec == raw.recipient
        link = message["List-Unsubscribe"].split(",")[0].strip("<> ")
        token = link.rsplit("/", 1)[1]
        subscription = read_unsubscribe_token(KEY, token)
        assert store.subscribers.unsubscribe(subscription) is not None  # the token names this reader's subscription
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert f"<mailto:unsubscribe+{token}@news.example.org>" in message["List-Unsubscribe"]
        assert message["Date"] and message["MIME-Version"] == "1.0" and message["List-Id"]
        plain, html = message.iter_parts()
        assert link in plain.get_content() and f'href="{link}"' in html.get_content()
        assert all(len(line) <= 998 for line in raw.data.split(b"\r\n"))


def test_a_faulty_server_loses_no_one(store: Store, prepared: PreparedMessage, smtp_server: SmtpServer) -> None:
    addresses = subscribe(store, 40)
    queued_issue(store)
    rejected = addresses[7]

    def reply(recipient: str, attempt: int) -> str | None:
        if recipient == rejected:
            return "550 5.1.1 <%s>: user unknown" % recipient
        if recipient in addresses[10:13] and attempt == 1:
            return "451 4.3.0 greylisted, try again later"
        if recipient == addresses[20] and attempt <= 2:
            return "421 4.3.2 too busy, closing"
        return None

    smtp_server.reply_for = reply
    smtp_server.drop_after(15)  # and hang up once in a while without a word
    report = run(store, prepared, smtp_server)
    # A hang-up after a message's data leaves it uncertain: it waits for the retry schedule,
    # unless retries of deferred ones keep the run going until it is due. Make it due now.
    assert report.remaining <= report.uncertain
    sent, remaining = report.sent, report.remaining
    if remaining:
        with store.db.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE deliveries SET next_attempt_at = CURRENT_TIMESTAMP WHERE status = 'uncertain'")
        later = run(store, prepared, smtp_server)
        sent, remaining = sent + later.sent, later.remaining
    delivered = Counter(smtp_server.recipients())
    assert set(delivered) == set(addresses) - {rejected}
    assert max(delivered.values()) == 1  # the server took none of the messages it hung up on
    assert (sent, report.failed, remaining) == (39, 1, 0)
    # Three greylisted and the 421s; a 421 whose close resets the connection before its line is
    # read (commands pipelined behind it are unread) is a lost connection: sent again at once.
    assert report.deferred >= 4 and report.uncertain >= 2  # and two hang-ups
    issue = store.issues.get("weekly", "2022-W30")
    assert issue is not None and store.outbox.pending(issue.id) == 0
    errors = {address: error for address, _, error in store.status.last_errors(issue.id)}
    assert errors[rejected].endswith(f"refused {rejected}: 550 5.1.1 <{rejected}>: user unknown")
    subscriber = store.subscribers.get(rejected)
    assert subscriber is not None and subscriber.status == "bounced"  # bounce_limit 1 here
    assert smtp_server.connections >= 3


def test_retries_stop_at_max_attempts(store: Store, prepared: PreparedMessage, smtp_server: SmtpServer) -> None:
    [address] = subscribe(store, 1)
    queued_issue(store)
    smtp_server.reply_for = lambda recipient, attempt: "452 4.2.2 mailbox full"
    report = run(store, prepared, smtp_server, replace(FAST, max_attempts=3))
    assert (report.sent, report.failed, report.deferred) == (0, 1, 2)
    assert smtp_server.attempts(address) == 3
    assert report.errors[0].startswith(f"{address}: gave up after 3 attempts over ")
    assert report.errors[0].endswith("452 4.2.2 mailbox full")


def test_a_policy_rejection_stops_the_send_and_keeps_the_rest_queued(
    store: Store, prepared: PreparedMessage, smtp_server: SmtpServer
) -> None:
    subscribe(store, 10)
    issue = queued_issue(store)
    smtp_server.reply_for = lambda recipient, attempt: "554 5.7.1 <x>: Relay access denied"
    with pytest.raises(PolicyError, match="5 recipients in a row were refused by policy before any message "
                                          "was accepted .*: the server refuses us, not them"):
        run(store, prepared, smtp_server)
    counts = store.status.counts(issue.id)
    assert (counts["failed"], counts["sent"]) == (0, 0)  # our setup is wrong, not the readers
    assert counts["queued"] + counts["deferred"] == 10
    assert all(s.status == "active" for s in store.subscribers.iter())
    with store.db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT max(bounces) FROM subscribers")).scalar() == 0


def test_a_policy_refusal_of_one_recipient_fails_that_recipient_only(
    store: Store, prepared: PreparedMessage, smtp_server: SmtpServer
) -> None:
    """Postfix's per-recipient access reject (554 5.7.1) is about that address: the others
    still get the issue, and the refused one fails once the server has shown it takes mail."""
    addresses = subscribe(store, 20)
    queued_issue(store)
    smtp_server.reply_for = lambda recipient, attempt: (
        f"554 5.7.1 <{recipient}>: Recipient address rejected: Access denied" if recipient == addresses[0] else None
    )
    report = run(store, prepared, smtp_server)
    assert Counter(smtp_server.recipients()) == Counter(addresses[1:])
    assert (report.sent, report.failed, report.remaining) == (19, 1, 0)
    assert smtp_server.attempts(addresses[0]) == 2  # refused first, before any was accepted: once more, then failed
    refused = store.subscribers.get(addresses[0])
    assert refused is not None and refused.status == "bounced"  # bounce_limit 1 here


def test_parallel_connections_share_the_outbox(store: Store, prepared: PreparedMessage, smtp_server: SmtpServer) -> None:
    addresses = subscribe(store, 200)
    queued_issue(store)
    report = run(store, prepared, smtp_server, replace(FAST, connections=3))
    assert report.sent == 200
    assert sorted(smtp_server.recipients()) == addresses
    assert smtp_server.connections == 3
    assert len({r.connection for r in smtp_server.messages()}) == 3


def test_the_rate_limit_spaces_messages(store: Store, prepared: PreparedMessage, smtp_server: SmtpServer) -> None:
    subscribe(store, 6)
    queued_issue(store)
    started = time.monotonic()
    run(store, prepared, smtp_server, replace(FAST, rate=20, connections=2))
    assert time.monotonic() - started >= 5 / 20


def test_a_stop_finishes_the_message_in_flight_and_a_later_run_resumes(
    store: Store, prepared: PreparedMessage, smtp_server: SmtpServer
) -> None:
    addresses = subscribe(store, 60)
    issue = queued_issue(store)
    stop = threading.Event()
    sent = 0

    def progress(count: int) -> None:
        nonlocal sent
        sent += count
        if sent == 25:
            stop.set()

    report = run(store, prepared, smtp_server, stop=stop, progress=progress)
    # With PIPELINING the 26th message is already out when the 25th's answer comes: it is
    # answered and recorded too, never dropped unanswered (which could send it twice).
    out = 26 if smtp_server.pipelining else 25
    assert report.stopped and report.sent == out and report.remaining == 60 - out
    assert store.status.counts(issue.id) == {
        "queued": 60 - out, "deferred": 0, "uncertain": 0, "sent": out, "failed": 0, "withdrawn": 0}
    rest = run(store, prepared, smtp_server)
    assert rest.sent == 60 - out
    assert sorted(smtp_server.recipients()) == addresses
