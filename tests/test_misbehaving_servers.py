"""Delivery against mail servers that misbehave: one test per fault of issue 11.

Each runs `newsletter send` (or workers) as an operator would, against a real server on
loopback that is slow, silent, trickling, refusing or absent, and asserts how many copies
each recipient got and how every delivery ended. Nobody is sent twice but for an answer that
never came (then once more, with the same Message-ID), nobody is lost, nothing is given up
before days have passed, and no reader is blamed for a fault that is not theirs.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.store import utcnow

from .conftest import Run, add_subscribers, store_of
from .scripted_smtp import ScriptedServer
from .smtp_server import SmtpServer
from .ports import free_port

KEY = "f" * 40


@pytest.fixture
def sender(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    return project


def delivery_settings(project: Path, settings: str) -> None:
    """Lines of YAML added to the top of config.yaml's `delivery:` block (two-space indented)."""
    path = project / "config.yaml"
    text = path.read_text(encoding="utf-8")
    keys = [line.split(":")[0].strip() for line in settings.strip().splitlines() if not line.startswith("    ")]
    kept = [line for line in text.splitlines() if not any(line.startswith(f"  {key}:") for key in keys)]
    text = "\n".join(kept) + "\n"
    path.write_text(text.replace("delivery:\n", "delivery:\n" + settings.rstrip() + "\n", 1), encoding="utf-8")


def statuses(project: Path) -> Counter[str]:
    with store_of(project).db.engine.connect() as conn:
        return Counter(conn.execute(sa.text("SELECT status FROM deliveries")).scalars().all())


def column(project: Path, name: str) -> list[object]:
    with store_of(project).db.engine.connect() as conn:
        return list(conn.execute(sa.text(f"SELECT {name} FROM deliveries ORDER BY id")).scalars().all())


def make_due(project: Path, age: timedelta | None = None) -> None:
    """Every retry due now; with `age`, as if the first try had been that long ago."""
    values = {"now": utcnow(), "first": utcnow() - age if age else None}
    with store_of(project).db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE deliveries SET next_attempt_at = :now"), values)
        if age:
            conn.execute(sa.text("UPDATE deliveries SET first_attempt_at = :first WHERE attempts > 0"), values)


def closed_port() -> int:
    return free_port()  # free a moment ago, and nothing listens on it


def message_ids(server: SmtpServer) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for received in server.messages():
        parsed = email.message_from_bytes(received.data, policy=email.policy.default)
        found.setdefault(received.recipient, []).append(str(parsed["Message-ID"]))
    return found


# --- the server keeps the message but answers the final dot too late ------------------------------

@pytest.mark.parametrize("smtp_server", [True], ids=["pipelining"], indirect=True)  # slow: one server mode
def test_an_answer_that_never_comes_makes_the_delivery_uncertain_not_resent_at_once(
    sender: Path, run: Run, smtp_server: SmtpServer
) -> None:
    delivery_settings(sender, "  retry_after: 3600\n  timeouts:\n    end_of_data: 0.5\n")
    addresses = add_subscribers(sender, 4)
    smtp_server.answer_delay = 3  # it keeps each message, then says so after our deadline
    first = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert first.exit_code == 75, first.output
    assert "0 sent, 0 failed, 0 deferred, 4 left, 4 uncertain (sent, no answer: tried again later)" in first.stdout
    assert Counter(smtp_server.recipients()) == Counter(addresses)  # one copy each, none at once again
    assert statuses(sender) == Counter({"uncertain": 4})
    assert "uncertain 4" in run("status").stdout

    smtp_server.answer_delay = 0
    make_due(sender)  # the retry schedule comes round
    again = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert again.exit_code == 0, again.output
    ids = message_ids(smtp_server)
    assert all(len(copies) == 2 and copies[0] == copies[1] for copies in ids.values()), ids  # same Message-ID
    assert statuses(sender) == Counter({"sent": 4})


# --- pipelining across messages (issue 17): one round trip per message -------------------------

def test_with_pipelining_the_next_message_goes_out_before_the_last_answer(sender: Path, run: Run) -> None:
    addresses = add_subscribers(sender, 6)
    with ScriptedServer(pipelining=True, hold_first=3) as server:  # its first 3 answers wait for our next command
        result = run("send", "--as-of", "2022-07-30", "--transport", server.url)
    assert result.exit_code == 0, result.output
    assert server.early == [True, True, True]  # each next MAIL came before the answer it did not wait for
    assert Counter(r for r, _ in server.received) == Counter(addresses) and server.connections == 1
    assert statuses(sender) == Counter({"sent": 6})


def test_without_pipelining_every_command_waits_for_the_last_answer(sender: Path, run: Run) -> None:
    addresses = add_subscribers(sender, 4)
    with ScriptedServer(pipelining=False, hold_first=2, hold_for=0.3) as server:
        result = run("send", "--as-of", "2022-07-30", "--transport", server.url)
    assert result.exit_code == 0, result.output
    assert server.early == [False, False]  # nothing came while it held its answers back
    assert Counter(r for r, _ in server.received) == Counter(addresses)


def test_a_server_that_vanishes_after_a_dot_leaves_that_message_uncertain_and_sends_the_next_anew(
    sender: Path, run: Run
) -> None:
    delivery_settings(sender, "  retry_after: 3600\n")
    addresses = add_subscribers(sender, 6)
    with ScriptedServer(pipelining=True, after_dot={3: "vanish"}) as server:
        # The 4th message's commands were already out when the connection ended after the 3rd's dot.
        first = run("send", "--as-of", "2022-07-30", "--transport", server.url)
        assert first.exit_code == 75, first.output
        assert server.connections == 2  # the 4th went again at once, on a new connection
        assert Counter(r for r, _ in server.received) == Counter(addresses)  # once each so far
        assert statuses(sender) == Counter({"sent": 5, "uncertain": 1})
        make_due(sender)
        again = run("send", "--as-of", "2022-07-30", "--transport", server.url)
    assert again.exit_code == 0, again.output
    copies = Counter(r for r, _ in server.received)
    assert set(copies) == set(addresses) and sum(copies.values()) == 7 and copies[addresses[2]] == 2  # one duplicate
    assert statuses(sender) == Counter({"sent": 6})


def test_a_421_after_a_dot_defers_that_message_only(sender: Path, run: Run) -> None:
    delivery_settings(sender, "  retry_after: 3600\n")
    addresses = add_subscribers(sender, 5)
    with ScriptedServer(pipelining=True, after_dot={2: "421"}) as server:
        first = run("send", "--as-of", "2022-07-30", "--transport", server.url)
    assert first.exit_code == 75, first.output
    assert statuses(sender) == Counter({"sent": 4, "deferred": 1}) and server.connections == 2
    assert column(sender, "status")[1] == "deferred" and "421 4.3.2" in str(column(sender, "last_error")[1])
    assert Counter(r for r, _ in server.received) == Counter(addresses)  # the 2nd was refused, not taken


# --- two workers, a rate limit, batches longer than the lease -----------------------------------

@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_workers_with_a_rate_limit_and_a_short_lease_send_each_once(
    sender: Path, run: Run, make_smtp_server: object, kind: str, request: pytest.FixtureRequest
) -> None:
    smtp_server: SmtpServer = make_smtp_server(pipelining=True)  # type: ignore[operator]
    if kind == "postgresql":
        config = sender / "config.yaml"
        url = request.getfixturevalue("postgres").database()
        config.write_text(config.read_text(encoding="utf-8").replace("store: .state/newsletter.db", f"store: {url}"))
    # A batch of 50 at 10 a second would take 5 s, five times the lease.
    delivery_settings(sender, "  rate: 10\n  lease_seconds: 1\n")
    addresses = add_subscribers(sender, 40)
    queued = run("send", "--as-of", "2022-07-30", "--queue-only")
    assert queued.exit_code == 0, queued.output
    smtp_server.data_delay = 0.02
    command = [sys.executable, "-m", "newsletter", "worker", "--until-idle", "--transport", smtp_server.url]
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": KEY, "NEWSLETTER_LOG_LEVEL": "WARNING"}
    workers = [subprocess.Popen(command, cwd=sender, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    ended = [worker.communicate(timeout=300) for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], ended
    assert Counter(smtp_server.recipients()) == Counter(addresses)  # each exactly once
    assert statuses(sender) == Counter({"sent": 40})
    assert "sent 40" in run("status").stdout


def test_a_mark_from_a_sender_that_lost_its_lease_changes_nothing(sender: Path) -> None:
    store = store_of(sender)
    add_subscribers(sender, 1)
    from .samples import stored_issue

    issue, _ = stored_issue(store)
    store.outbox.queue(issue)
    store.issues.begin_sending(issue.id)
    (slow,) = store.outbox.claim(issue.id, "slow:1:a", 10, 0.01)
    with store.db.engine.begin() as conn:  # its lease ran out; another sender takes the row
        conn.execute(sa.text("UPDATE deliveries SET lease_expires = :past"), {"past": utcnow() - timedelta(seconds=5)})
    (fast,) = store.outbox.claim(issue.id, "fast:1:b", 10, 60)
    assert store.outbox.mark_sent(slow, "<m@x>", "slow:1:a") is False
    assert store.outbox.mark_failed(slow, "550 late", "<m@x>", 1, "slow:1:a") is None
    assert store.status.counts(issue.id)["queued"] == 1  # untouched by the late marks
    assert store.outbox.mark_sent(fast, "<m@x>", "fast:1:b") is True
    assert store.status.counts(issue.id)["sent"] == 1


# --- one recipient refused by policy --------------------------------------------------------------

def test_a_554_5_7_1_for_one_recipient_fails_that_one_and_nobody_else(
    sender: Path, run: Run, smtp_server: SmtpServer
) -> None:
    addresses = add_subscribers(sender, 20)
    blocked = addresses[3]
    smtp_server.reply_for = lambda recipient, attempt: (
        f"554 5.7.1 <{recipient}>: Recipient address rejected: Access denied" if recipient == blocked else None
    )
    results = [run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url) for _ in range(3)]
    assert results[0].exit_code == 1, results[0].output
    assert "19 sent, 1 failed, 0 deferred, 0 left" in results[0].stdout
    assert Counter(smtp_server.recipients()) == Counter(a for a in addresses if a != blocked)
    assert statuses(sender) == Counter({"sent": 19, "failed": 1})


# --- the message is too large ---------------------------------------------------------------------

def test_a_552_after_the_data_stops_the_send_and_bounces_nobody(sender: Path, run: Run, smtp_server: SmtpServer) -> None:
    add_subscribers(sender, 20)
    smtp_server.data_reply_for = lambda recipient, attempt: "552 5.3.4 Message size exceeds fixed limit"
    for week in ("2022-07-30", "2022-08-06", "2022-08-13"):  # three issues
        result = run("send", "--as-of", week, "--force", "--transport", smtp_server.url)
        assert result.exit_code == 2, result.output
        assert "refused the message" in result.stderr and "as too large: 552 5.3.4" in result.stderr
        assert "nobody is counted as bounced" in result.stderr
    with store_of(sender).db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT status, bounces FROM subscribers")).all()
    assert set(rows) == {("active", 0)}
    assert statuses(sender)["failed"] == 0 and statuses(sender)["sent"] == 0


def test_a_message_larger_than_the_servers_size_is_refused_before_sending(
    sender: Path, run: Run, make_smtp_server: object
) -> None:
    server = make_smtp_server(size_limit=20_000)  # type: ignore[operator]
    add_subscribers(sender, 3)
    result = run("send", "--as-of", "2022-07-30", "--transport", server.url)
    assert result.exit_code == 2
    line = result.stderr.splitlines()[-1]
    assert re.search(r"takes messages of at most 20000 bytes and this one is \d{5} bytes: nothing was sent", line), line
    assert server.messages() == [] and statuses(sender) == Counter({"queued": 3})


# --- the relay is away for long ---------------------------------------------------------------------

def test_a_relay_that_is_down_costs_no_tries_and_the_send_resumes_when_it_is_back(
    sender: Path, run: Run, smtp_server: SmtpServer
) -> None:
    addresses = add_subscribers(sender, 20)
    down = run("send", "--as-of", "2022-07-30", "--transport", f"smtp://127.0.0.1:{closed_port()}")
    assert down.exit_code == 75, down.output
    assert "connection refused" in down.stderr and "20 deliveries of weekly-2022-W30 wait, none used up a try" in down.stderr
    assert set(column(sender, "attempts")) == {0} and statuses(sender) == Counter({"queued": 20})
    back = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert back.exit_code == 0, back.output
    assert Counter(smtp_server.recipients()) == Counter(addresses)


def test_deferred_deliveries_are_retried_for_days_then_failed_and_retry_sends_them_again(
    sender: Path, run: Run, smtp_server: SmtpServer
) -> None:
    delivery_settings(sender, "  retry_after: 3600\n")
    addresses = add_subscribers(sender, 5)
    smtp_server.reply_for = lambda recipient, attempt: "451 4.3.0 mail server temporarily overloaded"
    assert run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url).exit_code == 75
    first_ids = column(sender, "message_id")
    make_due(sender, age=timedelta(days=2))  # two days of refusals: still worth trying
    assert run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url).exit_code == 75
    assert statuses(sender) == Counter({"deferred": 5})
    make_due(sender, age=timedelta(days=3, hours=1))  # past max_age: given up, for good
    given_up = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert given_up.exit_code == 1, given_up.output
    assert statuses(sender) == Counter({"failed": 5})
    assert "gave up after 3 attempts over 3.0 days: " in given_up.stderr

    smtp_server.reply_for = None  # the server is fine again: the operator retries
    retried = run("retry", "weekly-2022-W30", "--failed", "--transport", smtp_server.url)
    assert retried.exit_code == 0, retried.output
    assert "5 deliveries to try again" in retried.stdout
    assert "(failed): gave up after 3 attempts over 3.0 days: " in retried.stdout
    assert Counter(smtp_server.recipients()) == Counter(addresses)
    assert column(sender, "message_id") == first_ids  # the same Message-IDs as the first tries
    assert "(done)" in run("status").stdout


def test_retry_leaves_out_readers_who_left_since(sender: Path, run: Run, smtp_server: SmtpServer) -> None:
    addresses = add_subscribers(sender, 3)
    smtp_server.reply_for = lambda recipient, attempt: "550 5.1.1 unknown" if attempt == 1 else None
    assert run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url).exit_code == 1
    store_of(sender).subscribers.remove(addresses[0])
    result = run("retry", "--failed", "--transport", smtp_server.url)
    assert result.exit_code == 0, result.output
    assert sorted(smtp_server.recipients()) == addresses[1:]


# --- servers that never greet, never answer DATA, or trickle ----------------------------------------

@pytest.mark.parametrize(("behaviour", "timeout"), [({"greeting": "silent"}, "greeting"),
                                                     ({"data": "silent"}, "data")], ids=["no greeting", "silent at DATA"])
def test_a_silent_server_costs_one_timeout_for_the_whole_run(
    sender: Path, run: Run, behaviour: dict[str, str], timeout: str
) -> None:
    delivery_settings(sender, f"  timeouts:\n    {timeout}: 1\n")
    add_subscribers(sender, 20)
    with ScriptedServer(**behaviour) as server:  # type: ignore[arg-type]
        result = run("send", "--as-of", "2022-07-30", "--transport", server.url)
        assert server.connections == 1
    assert result.exit_code == 75, result.output
    assert "none used up a try" in result.stderr and "timed out" in result.stderr
    assert set(column(sender, "attempts")) == {0}


def test_a_greeting_trickled_a_byte_at_a_time_meets_a_deadline(sender: Path, run: Run) -> None:
    delivery_settings(sender, "  timeouts:\n    greeting: 1\n")
    add_subscribers(sender, 3)
    with ScriptedServer(greeting="trickle", trickle_every=0.05) as server:
        started = time.monotonic()
        result = run("send", "--as-of", "2022-07-30", "--transport", server.url)
        took = time.monotonic() - started
        assert server.connections == 1
    assert result.exit_code == 75, result.output
    assert took < 60  # the server would trickle forever: only a deadline ends it
    assert "no reply within 1 s (timed out)" in result.stderr


# --- a password in clear -----------------------------------------------------------------------------

def test_a_login_over_plain_smtp_is_refused_by_check_and_by_send(sender: Path, run: Run) -> None:
    delivery_settings(sender, "  username: digest@threat-digest.example.org\n  transport: smtp://relay.example.org:25\n")
    checked = run("check")
    assert checked.exit_code == 2
    assert re.search(r"config.yaml:\d+: delivery.username: a login over smtp://relay.example.org:25 would send the "
                     r"password in clear", checked.stdout), checked.stdout
    delivery_settings(sender, "  transport: file:out/maildir\n")
    refused = run("send", "--transport", "smtp://relay.example.org:25")
    assert refused.exit_code == 2
    assert refused.stderr.startswith("error: --transport smtp://relay.example.org:25: a login over ")
    delivery_settings(sender, "  allow_plaintext_auth: true\n")
    assert run("check").exit_code == 0


# --- a full disk ----------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path) -> object:
    """A real filesystem of 8 MB (tmpfs) to fill up; skipped where mounting is not allowed."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")

    class Disk:
        path = folder

        def fill(self) -> None:
            with (folder / "filler").open("wb", buffering=0) as out:  # unbuffered: closing writes nothing
                try:
                    while True:
                        out.write(b"\0" * 65536)
                except OSError:
                    pass

        def free(self) -> None:
            (folder / "filler").unlink(missing_ok=True)

    yield Disk()
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_maildir_disk_stops_the_send_with_one_line_and_the_next_run_resumes(
    sender: Path, run: Run, small_disk: object
) -> None:
    disk = small_disk
    delivery_settings(sender, f"  transport: file:{disk.path}/maildir\n")  # type: ignore[attr-defined]
    addresses = add_subscribers(sender, 30)
    assert run("send", "--as-of", "2022-07-30", "--queue-only").exit_code == 0
    disk.fill()  # type: ignore[attr-defined]
    full = run("send", "--as-of", "2022-07-30")
    assert full.exit_code == 75, full.output
    assert full.stderr.splitlines()[-1].startswith("error: the disk of the Maildir ")
    assert "Traceback" not in full.output
    disk.free()  # type: ignore[attr-defined]
    resumed = run("send", "--as-of", "2022-07-30")
    assert resumed.exit_code == 0, resumed.output
    box = disk.path / "maildir" / "new"  # type: ignore[attr-defined]
    to = Counter(m.read_text(errors="replace").split("Delivered-To: ", 1)[1].split("\n", 1)[0] for m in box.iterdir())
    assert to == Counter(addresses)  # everyone once, nobody lost
    assert not list((disk.path / "maildir" / "tmp").iterdir())  # type: ignore[attr-defined]


def test_a_full_store_disk_is_one_line_and_loses_nobody(
    sender: Path, run: Run, smtp_server: SmtpServer, small_disk: object
) -> None:
    disk = small_disk
    config = sender / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        "store: .state/newsletter.db", f"store: {disk.path}/newsletter.db"))  # type: ignore[attr-defined]
    addresses = add_subscribers(sender, 30)
    disk.fill()  # type: ignore[attr-defined]
    queueing = run("send", "--as-of", "2022-07-30", "--queue-only")  # full before the issue is stored
    assert queueing.exit_code == 75, queueing.output
    assert queueing.stderr.splitlines()[-1].startswith("error: the disk of the store is full")
    disk.free()  # type: ignore[attr-defined]
    assert run("send", "--as-of", "2022-07-30", "--queue-only").exit_code == 0
    disk.fill()  # type: ignore[attr-defined]  # and full again while it sends
    full = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert full.exit_code == 75, full.output
    assert full.stderr.splitlines()[-1].startswith("error: the disk of the store is full")
    assert "Traceback" not in full.output
    disk.free()  # type: ignore[attr-defined]
    resumed = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert resumed.exit_code == 0, resumed.output
    delivered = Counter(smtp_server.recipients())
    assert set(delivered) == set(addresses) and sum(delivered.values()) - len(addresses) <= 1
    assert statuses(sender) == Counter({"sent": 30})


def test_a_full_disk_while_building_is_one_line(project: Path, run: Run, small_disk: object) -> None:
    small_disk.fill()  # type: ignore[attr-defined]
    result = run("build", "--as-of", "2022-07-30", "--out", str(small_disk.path / "out"))  # type: ignore[attr-defined]
    assert result.exit_code == 75
    assert result.stderr.splitlines() == [
        "error: the disk is full: cannot write the preview files in disk/out/weekly-2022-W30"
    ]
