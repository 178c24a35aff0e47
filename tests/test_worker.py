"""Worker processes sharing one outbox: PostgreSQL with four workers, SQLite with one.

20,000 deliveries are drained into a real in-process SMTP server; each recipient gets the
issue exactly once, and a worker killed mid-batch loses nobody: its rows go to the others
once its lease expires (SQLite: to the next worker at once, its owner being a dead process).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.inputs.config import load_config
from newsletter.store import Store, utcnow

from .conftest import Run
from .smtp_server import SmtpServer

KEY = "q" * 40
COUNT = 20_000
ADD_SUBSCRIBER = sa.text(
    "INSERT INTO subscribers (address, name, status, bounces, created_at, updated_at) "
    "VALUES (:address, '', 'active', 0, :now, :now)"
)

BRIEF = """---
title: Small brief
dek: A brief kept short so that twenty thousand copies pass quickly.
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


@pytest.fixture(params=["postgresql", "sqlite"])
def outbox(request: pytest.FixtureRequest, project: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, int]:
    """The project with a small brief, 20,000 active subscribers and a store of one kind;
    (project, how many workers to run on it)."""
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    for old in (project / "content" / "briefs").glob("*.md"):
        old.unlink()
    (project / "content" / "briefs" / "2022-07-26-small.md").write_text(BRIEF, encoding="utf-8")
    config = project / "config.yaml"
    text = config.read_text(encoding="utf-8").replace("entries: 8 ", "entries: 1 ")
    text = text.replace("  bounce_limit: 3", "  bounce_limit: 3\n  lease_seconds: 3")
    workers = 1
    if request.param == "postgresql":
        text = text.replace("store: .state/newsletter.db", f"store: {request.getfixturevalue('postgres').database()}")
        workers = 4
    config.write_text(text, encoding="utf-8")
    store = Store.open(load_config(config).store_url)
    now = utcnow()
    with store.engine.begin() as conn:
        conn.execute(ADD_SUBSCRIBER, [{"address": f"reader{n:05d}@example.org", "now": now} for n in range(COUNT)])
        conn.exec_driver_sql(
            "INSERT INTO subscriptions (subscriber_id, digest, status, created_at, updated_at) "
            "SELECT id, 'weekly', 'active', created_at, created_at FROM subscribers"
        )
    return project, workers


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """One server with PIPELINING, as Postfix offers it (not the both-ways fixture: 20,000
    messages twice over would be slow for no more insight)."""
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
        _, errors = process.communicate(timeout=300)
        assert process.returncode in (0, -signal.SIGKILL), errors


def test_workers_drain_the_outbox_each_recipient_exactly_once(
    outbox: tuple[Path, int], run: Run, smtp_server: SmtpServer
) -> None:
    project, count = outbox
    queue(run)
    finish(workers(project, smtp_server, count))
    delivered = Counter(smtp_server.recipients())
    assert len(delivered) == COUNT and set(delivered.values()) == {1}
    assert smtp_server.connections == count
    status = run("status").stdout
    assert "queued 0  deferred 0  sent 20000  failed 0" in status
    assert status.count(" sent, ") == count  # one line per worker


def test_a_worker_killed_mid_batch_loses_no_one(outbox: tuple[Path, int], run: Run, smtp_server: SmtpServer) -> None:
    project, count = outbox
    queue(run)
    running = workers(project, smtp_server, count)
    smtp_server.wait_for(3000, timeout=120)
    victim = running[0]
    victim.send_signal(signal.SIGKILL)  # mid-batch: it holds up to 50 leased deliveries
    victim.wait(timeout=10)
    if count == 1:  # the only worker: start another; the dead one's leases are taken at once
        running += workers(project, smtp_server, 1)
    finish(running)
    delivered = Counter(smtp_server.recipients())
    assert len(delivered) == COUNT  # nobody lost
    assert sum(delivered.values()) - COUNT <= 1  # at most the message on the killed connection
