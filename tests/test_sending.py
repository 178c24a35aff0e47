"""`newsletter send` end to end: subscribers in, messages out, and a SIGKILL survived."""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest


from .conftest import Run, add_subscribers, store_of
from .smtp_server import SmtpServer

KEY = "k" * 40


@pytest.fixture
def sender(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped project with a signing key in the environment, as an operator sets it."""
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    return project




def test_import_then_send_delivers_exactly_once_to_a_real_server(
    sender: Path, run: Run, smtp_server: SmtpServer
) -> None:
    (sender / "subscribers.csv").write_text(
        "email,name\nann@example.org,Ann Example\nbob@example.org,Bob\nbroken,Nobody\n", encoding="utf-8"
    )
    imported = run("subscribers", "import", "subscribers.csv")
    assert imported.exit_code == 2  # one row was rejected; the others are in
    assert imported.stdout.startswith("2 added, 0 updated, 0 unchanged, 0 left unsubscribed, 1 rejected")
    assert "subscribers.csv:4: address: 'broken' is not a valid address" in imported.stderr

    result = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("weekly-2022-W30: [TLP:CLEAR] Iran, Turkey and Israel Weekly 2022-W30")
    assert "2 sent, 0 failed, 0 deferred, 0 left" in result.stdout
    assert sorted(smtp_server.recipients()) == ["ann@example.org", "bob@example.org"]

    again = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert "(done: sent already)" in again.stdout and "0 sent" in again.stdout
    assert len(smtp_server.recipients()) == 2

    status = run("status")
    assert status.stdout.splitlines()[1].split() == ["queued", "0", "deferred", "0", "uncertain", "0", "sent", "2", "failed", "0", "withdrawn", "0"]


def test_a_test_copy_touches_no_delivery(sender: Path, run: Run, smtp_server: SmtpServer) -> None:
    add_subscribers(sender, 3)
    result = run("send", "--as-of", "2022-07-30", "--to", "Editor@Example.org", "--transport", smtp_server.url)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"test copy of weekly sent to editor@example.org via {smtp_server.url}: ")
    assert smtp_server.recipients() == ["editor@example.org"]
    assert store_of(sender).issues.latest() is None
    (copy,) = smtp_server.messages()
    subject = email.message_from_bytes(copy.data, policy=email.policy.default)["Subject"]
    assert subject.startswith("[TEST] [TLP:CLEAR] Iran, Turkey and Israel Weekly 2022-W30")  # a reader's copy never has the mark


def test_the_shipped_config_sends_into_a_maildir_without_a_secret(
    project: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET_KEY", raising=False)
    add_subscribers(project, 3)
    result = run("send", "--as-of", "2022-07-30")
    assert result.exit_code == 0, result.output
    assert "NEWSLETTER_SECRET_KEY is not set" in result.stderr
    box = mailbox.Maildir(project / "out" / "maildir", create=False)
    messages = [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.keys()]
    assert sorted(str(m["To"]) for m in messages) == [f"reader{n:05d}@example.org" for n in range(3)]


def test_real_mail_needs_the_signing_key(project: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET_KEY", raising=False)
    result = run("send", "--transport", "smtp://127.0.0.1:2525")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: set NEWSLETTER_SECRET_KEY before sending")


def test_a_dry_run_counts_and_records_nothing(sender: Path, run: Run) -> None:
    add_subscribers(sender, 4)
    result = run("send", "--dry-run", "--as-of", "2022-07-30")
    assert result.exit_code == 0
    assert "4 active subscribers would receive it" in result.stdout
    assert store_of(sender).issues.latest() is None


def test_subscriber_commands(sender: Path, run: Run) -> None:
    assert run("subscribers", "add", "Ann@Example.org", "--name", "Ann").stdout == "added: ann@example.org (active; weekly; cleared for TLP:CLEAR)\n"
    bad = run("subscribers", "add", "ann@example")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: 'ann@example' is not a valid address")
    assert run("subscribers", "add", "bob@example.org", "--digest", "weekly").exit_code == 0
    assert run("subscribers", "remove", "bob@example.org").stdout == "removed: bob@example.org (unsubscribed; no digests; cleared for TLP:CLEAR)\n"
    again = run("subscribers", "add", "bob@example.org")
    assert again.exit_code == 2 and "--resubscribe" in again.stderr
    listed = run("subscribers", "list")
    lines = listed.stdout.splitlines()
    assert lines[0] == "ann@example.org\tactive\tweekly\tAnn"
    assert lines[1].startswith("bob@example.org\tunsubscribed\t-\t\t")  # and why, last:
    assert lines[1].endswith(" unsubscribed: from every digest, removed with `newsletter subscribers remove`")
    exported = run("subscribers", "export", "--status", "active")
    assert exported.stdout.splitlines()[1].startswith("ann@example.org,Ann,active,weekly,")
    unknown = run("subscribers", "add", "c@example.org", "--digest", "daily")
    assert unknown.exit_code == 2 and "unknown digest daily (known: weekly)" in unknown.stderr


KILL_POINTS = [
    pytest.param(0.0, id="while-starting"),
    pytest.param(1, id="after-the-first-message"),
    pytest.param(90, id="mid-batch"),
    pytest.param(251, id="late"),
]


@pytest.mark.parametrize(("smtp_server", "kill_at"), [
    *[pytest.param(True, p.values[0], id=f"pipelining-{p.id}") for p in KILL_POINTS],
    *[pytest.param(False, p.values[0], id=f"one-by-one-{p.id}") for p in KILL_POINTS[1:3]],  # slow: two moments
], indirect=["smtp_server"])
def test_sigkill_at_any_moment_then_send_again_loses_no_one(
    sender: Path, smtp_server: SmtpServer, kill_at: float
) -> None:
    addresses = add_subscribers(sender, 300)
    smtp_server.data_delay = 0.002  # a real server takes a moment too; it makes the kill land mid-run
    command = [sys.executable, "-m", "newsletter", "send", "--as-of", "2022-07-30", "--transport", smtp_server.url]
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": KEY}
    process = subprocess.Popen(command, cwd=sender, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if isinstance(kill_at, float):
        time.sleep(0.3)
    else:
        smtp_server.wait_for(kill_at, timeout=60)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    before = len(smtp_server.recipients())

    finished = subprocess.run(command, cwd=sender, env=env, capture_output=True, text=True, timeout=120)

    assert finished.returncode == 0, finished.stderr
    delivered = Counter(smtp_server.recipients())
    assert set(delivered) == set(addresses)  # nobody lost
    duplicates = sum(delivered.values()) - len(addresses)
    assert duplicates <= 1, f"{duplicates} duplicates after a kill at {before} messages"  # one connection


@pytest.mark.parametrize("smtp_server", [True], ids=["pipelining"], indirect=True)  # slow: one server mode
def test_send_with_local_workers(
    sender: Path, run: Run, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.faces.cli import Progress

    monkeypatch.setattr(Progress, "EVERY", 0.05)  # every 10 s in real life
    addresses = add_subscribers(sender, 300)
    smtp_server.data_delay = 0.005
    result = run("send", "--as-of", "2022-07-30", "--workers", "2", "--transport", smtp_server.url)
    assert result.exit_code == 0, result.output
    ticks = [line for line in result.stderr.splitlines() if line.startswith("  weekly-2022-W30: ")]
    assert ticks and all(" sent, 0 failed, 0 deferred, 0 uncertain, " in line for line in ticks)  # one line for all
    assert "300 deliveries queued" in result.stdout
    assert "weekly-2022-W30: 300 sent, 0 failed, 0 left, by 2 workers" in result.stdout
    assert Counter(smtp_server.recipients()) == Counter(addresses)
    assert smtp_server.connections == 2
