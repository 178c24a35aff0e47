"""A sender worker: drains the outbox of every queued issue, side by side with other workers.

Any number of workers, on any number of machines, share one store (PostgreSQL for more than
one machine). Each claims small batches of deliveries under a lease; a worker that dies
leaves its lease to expire, and another takes the rows over. Workers need only config.yaml
(for the transport, the policy and the store) and the secrets: each issue's snapshot is in
the store.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

from ..delivery.dispatch import SendReport
from ..inputs.config import Config
from ..store import Store
from ..usecases import issues

log = logging.getLogger("newsletter.worker")
HELD_POLL = 0.2  # seconds between looks while other workers hold the last rows


def work(
    config: Config, stop: threading.Event, batch: int = 50, until_idle: bool = False, poll: float = 2.0,
) -> SendReport:
    """Send what is due, issue after issue, until `stop` (or, with `until_idle`, until nothing
    is due or held any more). Rows held by another worker are left to it, or to its lease's
    end. The report's `remaining` counts what is still unfinished when the worker stops."""
    policy = replace(config.delivery.policy, wait_for_retries=0, connections=1, batch=batch)
    total = SendReport("all issues")
    with Store.open(config.store_url) as store:
        while not stop.is_set():
            pending = store.issues.unfinished()
            before = total.attempted
            for stored in pending:
                if stop.is_set():
                    break
                done = issues.deliver(config, store, stored, policy=policy, stop=stop)
                done.remaining = 0  # counted once, at the end
                total.add(done)
                if done.attempted:
                    log.info("%s: %d sent, %d failed, %d deferred", stored.name, done.sent, done.failed, done.deferred)
            if total.attempted > before:
                continue
            if until_idle and not any(store.outbox.due_or_held(s.id) for s in pending):
                break  # what is left waits for its retry time
            # Nothing was due. Rows another worker holds come free soon (it finishes them, or
            # its lease ends): look again shortly. With no issue at all, wait the full poll.
            stop.wait(HELD_POLL if pending else poll)
        total.remaining = sum(store.outbox.pending(s.id) for s in store.issues.unfinished())
    total.stopped = stop.is_set()
    return total
