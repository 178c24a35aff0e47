"""A sender worker: drains the outbox of every queued issue, side by side with other workers.

Any number of workers, on any number of machines, share one store (PostgreSQL for more than
one machine). Each claims small batches of deliveries under a lease; a worker that dies
leaves its lease to expire, and another takes the rows over. Workers need only config.yaml
and the store: an issue is rendered and stored once, when it is queued.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..usecases import sending
from ..inputs.config import load_config
from ..errors import NewsletterError
from ..store import Store

log = logging.getLogger("newsletter.worker")
HELD_POLL = 0.2  # seconds between looks while other workers hold the last rows


@dataclass
class WorkerReport:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    issues: set[str] = field(default_factory=set)


def work(
    config_path: Path, stop: threading.Event, transport_url: str | None = None, batch: int = 50,
    until_idle: bool = False, poll: float = 2.0,
) -> WorkerReport:
    """Send what is due, issue after issue, until `stop` (or, with `until_idle`, until no issue
    has deliveries left). Rows held by another worker are left to it, or to its lease's end."""
    config = load_config(config_path)
    store = Store.open(config.store_url)
    how = replace(sending.policy(config), wait_for_retries=False, connections=1, batch=batch)
    report = WorkerReport()
    while not stop.is_set():
        pending = store.issues_with_work()
        if not pending and until_idle:
            break
        before = report.sent + report.failed + report.deferred
        for stored in pending:
            if stop.is_set():
                break
            try:
                digest = config.digest(stored.digest)
            except NewsletterError:
                log.error("%s: its digest is not in %s; skipped", stored.name, config_path.name)
                continue
            done = sending.deliver(
                config, store, sending.IssueInStore(stored, created=False, changed_since=False), digest,
                transport_url, stop=stop, how=how,
            )
            report.sent, report.failed, report.deferred = (
                report.sent + done.sent, report.failed + done.failed, report.deferred + done.deferred,
            )
            if done.sent or done.failed:
                report.issues.add(stored.name)
                log.info("%s: %d sent, %d failed, %d deferred, %d left", stored.name, done.sent, done.failed,
                         done.deferred, done.remaining)
        if report.sent + report.failed + report.deferred == before:
            # Nothing was due. Rows another worker holds come free soon (it finishes them, or
            # its lease ends): look again shortly. With no issue at all, wait the full poll.
            stop.wait(HELD_POLL if pending else poll)
    return report
