"""Worker processes sharing one outbox: PostgreSQL with four workers, SQLite with one.

2,000 deliveries of a small issue are queued with `newsletter send --queue-only` and drained by
`newsletter worker --until-idle` processes into a real in-process SMTP server with PIPELINING.
On each store this proves that:

- every recipient gets the issue exactly once, each worker sends over one SMTP connection, and
  `newsletter status` shows every delivery sent and one line per worker;
- a worker SIGKILLed while it holds leased deliveries, a quarter of the way through, loses
  nobody, and at most one recipient (the message on its connection as it died) gets a second
  copy. On PostgreSQL its rows go to the other workers once its short lease ends (it is made to
  look as if it ran on another machine, where no one can see that its process is gone); on
  SQLite a new worker takes them at once, seeing that the owning process no longer runs.

2,000 is enough for each of four workers to take many batches of 50, so the kill lands in the
middle of the run; the same proofs at 20,000 are `python bench/scale.py --proofs`. No wait
here assumes an idle machine: each one is for an event (messages arrived, a process stopped,
workers queued up on a lock), with a timeout of minutes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.inputs.config import load_config
from newsletter.store import Store, utcnow

from .conftest import Run, store_of
from .smtp_server import SmtpServer

KEY = "q" * 40
COUNT = 2_000
# PostgreSQL: the killed worker's rows wait for its lease to end, so it is short; but a live
# worker must finish its batch of 50 within it even on a loaded machine, or another worker
# takes the rows and they are sent twice. SQLite: longer than any wait here, so the test can
# only finish if the new worker takes the dead one's rows at once.
LEASE_SECONDS = {"postgresql": 10, "sqlite": 900}
WAIT = 300  # seconds: the most any one wait here may take on a loaded machine

ADD_SUBSCRIBER = sa.text(
    "INSERT INTO subscribers (address, name, status, bounces, created_at, updated_at) "
    "VALUES (:address, '', 'active', 0, :now, :now)"
)
HELD_BY = sa.text(
    "SELECT count(*) FROM deliveries WHERE lease_owner LIKE :owner AND status IN ('queued', 'deferred')"
)
# A lease owner is host:pid:nonce; another host's owner is never taken for dead, only outlived.
MOVE_ELSEWHERE = sa.text(
    "UPDATE deliveries SET lease_owner = regexp_replace(lease_owner, '^[^:]*', 'another-host') "
    "WHERE lease_owner LIKE :owner AND status IN ('queued', 'deferred')"
)

BRIEF = """---
title: Small brief
dek: A brief kept short so that thousands of copies pass quickly.
date: 2022-07-26
authors:
  - name: A. Writer
    bio: Writes short briefs.
tags: [iran]
key_points:
  - text: One point.
    sources:
      - title: Report
        publisher: Example
        url: https://example.org/report
---
Body.
"""


def small_issue(project: Path, lease_seconds: float, store: str | None = None) -> Path:
    """Make a copy of the shipped project quick to send in bulk: one short brief, one timeline
    entry, leases of `lease_seconds`, and `store` (a URL) in place of the shipped SQLite file.
    Returns its config path. (bench/scale.py --proofs uses it too.)"""
    for old in (project / "content" / "briefs").glob("*.md"):
        old.unlink()
    (project / "content" / "briefs" / "2022-07-26-small.md").write_text(BRIEF, encoding="utf-8")
    config = project / "config.yaml"
    text = config.read_text(encoding="utf-8").replace("entries: 8 ", "entries: 1 ")
    text = text.replace("  bounce_limit: 3", f"  bounce_limit: 3\n  lease_seconds: {lease_seconds}")
    if store is not None:
        text = text.replace("store: .state/newsletter.db", f"store: {store}")
    config.write_text(text, encoding="utf-8")
    return config


@pytest.fixture(params=["postgresql", "sqlite"])
def outbox(request: pytest.FixtureRequest, project: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, int]:
    """The project with a small brief, 2,000 active subscribers and a store of one kind;
    (project, how many workers to run on it)."""
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    kind = request.param
    url = request.getfixturevalue("postgres").database() if kind == "postgresql" else None
    store = Store.open(load_config(small_issue(project, LEASE_SECONDS[kind], url)).store_url)
    now = utcnow()
    with store.engine.begin() as conn:
        conn.execute(ADD_SUBSCRIBER, [{"address": f"reader{n:05d}@example.org", "now": now} for n in range(COUNT)])
        conn.exec_driver_sql(
            "INSERT INTO subscriptions (subscriber_id, digest, status, created_at, updated_at) "
            "SELECT id, 'weekly', 'active', created_at, created_at FROM subscribers"
        )
    store.close()
    return project, 4 if kind == "postgresql" else 1


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """One server with PIPELINING, as Postfix offers it (not the both-ways fixture: thousands
    of messages twice over would be slow for no more insight)."""
    with SmtpServer(pipelining=True) as server:
        yield server


def workers(project: Path, server: SmtpServer, count: int) -> list[subprocess.Popen[str]]:
    command = [sys.executable, "-m", "newsletter", "worker", "--until-idle", "--transport", server.url]
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": KEY, "NEWSLETTER_LOG_LEVEL": "WARNING"}
    return [
        subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]


def queue(run: Run) -> None:
    result = run("send", "--as-of", "2022-07-30", "--queue-only")
    assert result.exit_code == 0, result.output
    assert f"{COUNT} deliveries queued" in result.stdout


def finish(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        _, errors = process.communicate(timeout=WAIT)
        assert process.returncode in (0, -signal.SIGKILL), errors


@contextmanager
def lined_up(store: Store, count: int) -> Iterator[None]:
    """Workers started inside this block all take their first batch together as it ends.

    At 2,000 deliveries a worker slow to start on a busy machine could find every row already
    taken and send nothing. So on PostgreSQL the outbox is locked against writes until `count`
    workers wait on the lock to claim rows; then each takes its batch. (SQLite runs one worker.)
    """
    if store.engine.dialect.name != "postgresql":
        yield
        return
    with store.engine.connect() as conn, conn.begin():
        conn.exec_driver_sql("LOCK TABLE deliveries IN EXCLUSIVE MODE")  # reads go on, claims wait
        yield
        waiting = sa.text("SELECT count(*) FROM pg_locks WHERE relation = 'deliveries'::regclass AND NOT granted")
        deadline = time.monotonic() + WAIT
        while conn.execute(waiting).scalar_one() < count:
            assert time.monotonic() < deadline, f"{count} workers did not all come to claim within {WAIT} s"
            time.sleep(0.05)


def frozen(process: subprocess.Popen[str]) -> bool:
    """SIGSTOP `process` and wait until all its threads have stopped; False if it had exited."""
    process.send_signal(signal.SIGSTOP)  # no signal if it has already been reaped
    if process.returncode is not None:
        return False
    # WNOWAIT: an exit is only looked at here; Popen still reaps it, and learns its status.
    stopped = os.waitid(os.P_PID, process.pid, os.WSTOPPED | os.WEXITED | os.WNOWAIT)
    return stopped is not None and stopped.si_code == os.CLD_STOPPED


def kill_mid_batch(running: list[subprocess.Popen[str]], store: Store) -> int:
    """SIGKILL one of the `running` workers while it holds leased deliveries; how many it held.

    Each candidate is stopped first, so that what the store says it holds is still true when
    the kill lands (between batches a worker holds nothing). On PostgreSQL its rows are then
    marked as held from another machine: the other workers can only wait for the lease to end.
    """
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for process in running:
            if not frozen(process):
                continue
            owner = {"owner": f"%:{process.pid}:%"}
            with store.engine.begin() as conn:
                held = conn.execute(HELD_BY, owner).scalar_one()
                if held and store.engine.dialect.name == "postgresql":
                    conn.execute(MOVE_ELSEWHERE, owner)
            if held:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=WAIT)
                return int(held)
            process.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError(f"no worker held leased deliveries within {WAIT} s")


def test_workers_drain_the_outbox_each_recipient_exactly_once(
    outbox: tuple[Path, int], run: Run, smtp_server: SmtpServer
) -> None:
    project, count = outbox
    queue(run)
    with lined_up(store_of(project), count):
        running = workers(project, smtp_server, count)
    finish(running)
    delivered = Counter(smtp_server.recipients())
    assert len(delivered) == COUNT and set(delivered.values()) == {1}
    assert smtp_server.connections == count
    status = run("status").stdout
    assert f"queued 0  deferred 0  uncertain 0  sent {COUNT}  failed 0" in status
    assert status.count(" sent, ") == count  # one line per worker


def test_a_worker_killed_mid_batch_loses_no_one(outbox: tuple[Path, int], run: Run, smtp_server: SmtpServer) -> None:
    project, count = outbox
    queue(run)
    store = store_of(project)
    with lined_up(store, count):
        running = workers(project, smtp_server, count)
    smtp_server.wait_for(COUNT // 4, timeout=WAIT)
    assert 0 < kill_mid_batch(running, store) <= 50  # mid-batch: holding part of a batch of 50
    if count == 1:  # the only worker: start another; the dead one's leases are taken at once
        running += workers(project, smtp_server, 1)
    finish(running)
    delivered = Counter(smtp_server.recipients())
    assert len(delivered) == COUNT  # nobody lost
    assert sum(delivered.values()) - COUNT <= 1  # at most the message on the killed connection
    assert f"queued 0  deferred 0  uncertain 0  sent {COUNT}  failed 0" in run("status").stdout
