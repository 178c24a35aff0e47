"""Workers on PostgreSQL beside Postfix's smtp-source, with 1, 2 and 4 of each; or, with
--proofs, that four workers deliver exactly once at that scale.

    python bench/scale.py [--count 20000] [--workers 1,2,4] [--rounds 3] [--fast-commit]
    python bench/scale.py --proofs [--count 20000]

For each number W, a fresh PostgreSQL database gets --count subscribers, `newsletter send
--queue-only` queues the seed digest (about 50 KB a message), and W `newsletter worker
--until-idle` processes drain it into Postfix's `smtp-sink` on loopback; the time runs from
starting the workers to the last one exiting. Beside it, `smtp-source -d -s W` sends the same
count and size over W sessions to the same sink. Target: each worker count at least 0.5x
smtp-source with as many sessions.

PostgreSQL runs in a throwaway cluster with its default durability (every commit flushed to
disk); the store itself writes its per-message marks with synchronous_commit=off (see
store.py). --fast-commit turns it off for everything, for comparison. This machine's timings
swing widely from run to run, so each figure is a median of interleaved rounds.

--proofs checks correctness, not speed: tests/test_worker.py's proofs at --count deliveries
instead of 2,000. Each proof queues a small issue to --count subscribers in a fresh database
of a throwaway cluster and drains it with 4 `newsletter worker --until-idle` processes into
an SMTP server that records every message (tests/smtp_server.py, with PIPELINING):

- exactly once: every subscriber gets one copy, and `newsletter status` shows all sent;
- killed: one worker is SIGKILLed while it holds leased rows, a quarter of the way through,
  its rows marked as held from another machine (so the others must wait for its short lease,
  LEASE_SECONDS there, to end); nobody is lost and at most one subscriber gets a second copy.

It prints a line per proof (pass or fail, counts, seconds) and exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.send import KEY, Sink, project_with, sample_message, tool  # noqa: E402
from newsletter.store import Store  # noqa: E402
from tests import test_worker as proofs  # noqa: E402
from tests.postgres import Cluster  # noqa: E402
from tests.smtp_server import SmtpServer  # noqa: E402

PROOF_WORKERS = 4


def queue_issue(project: Path, env: Mapping[str, str]) -> str:
    """`newsletter send --queue-only` of the seed week's issue; what it printed."""
    return subprocess.run(
        [sys.executable, "-m", "newsletter", "send", "--as-of", "2022-07-30", "--queue-only"],
        cwd=project, env=env, check=True, capture_output=True, text=True,
    ).stdout


def drain(sink: Sink, database: str, count: int, workers: int) -> float:
    """Seconds for `workers` processes to send `count` queued messages."""
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        os.environ["NEWSLETTER_DATABASE_URL"] = database
        try:
            project_with(project, count)
            env = {**os.environ, "NEWSLETTER_SECRET_KEY": KEY, "NEWSLETTER_LOG_LEVEL": "WARNING"}
            queue_issue(project, env)
            command = [sys.executable, "-m", "newsletter", "worker", "--until-idle", "--transport",
                       f"smtp://127.0.0.1:{sink.port}"]
            start = time.perf_counter()
            running = [subprocess.Popen(command, cwd=project, env=env) for _ in range(workers)]
            for process in running:
                if process.wait():
                    sys.exit(f"a worker failed with status {process.returncode}")
            return time.perf_counter() - start
        finally:
            del os.environ["NEWSLETTER_DATABASE_URL"]


def source(sink: Sink, count: int, size: int, sessions: int) -> float:
    start = time.perf_counter()
    subprocess.run(
        [tool("smtp-source"), "-d", "-s", str(sessions), "-m", str(count), "-l", str(size),
         "-f", "digest@threat-digest.example.org", "-t", "reader@example.org", f"127.0.0.1:{sink.port}"],
        check=True,
    )
    return time.perf_counter() - start


def prove(cluster: Cluster, count: int, kill: bool) -> bool:
    """One proof on a fresh database: PROOF_WORKERS workers drain `count` deliveries, one of
    them SIGKILLed mid-batch if `kill`. Prints its line; True if it passed."""
    name = f"one of {PROOF_WORKERS} workers SIGKILLed" if kill else f"{PROOF_WORKERS} workers, exactly once"
    database = cluster.database()
    expected = {f"reader{n:06d}@example.org" for n in range(count)}  # as project_with adds them
    env = {**os.environ, "NEWSLETTER_DATABASE_URL": database, "NEWSLETTER_SECRET_KEY": proofs.KEY}
    problems: list[str] = []
    held = 0
    os.environ["NEWSLETTER_DATABASE_URL"] = database  # for project_with and proofs.workers
    try:
        with tempfile.TemporaryDirectory() as folder, SmtpServer(pipelining=True) as server:
            project = project_with(Path(folder), count)
            proofs.small_issue(project, proofs.LEASE_SECONDS["postgresql"])
            queued = queue_issue(project, env)
            if f"{count} deliveries queued" not in queued:
                problems.append(f"queueing said: {queued.strip()}")
            start = time.perf_counter()
            running = proofs.workers(project, server, PROOF_WORKERS)
            try:
                if kill:
                    server.wait_for(count // 4, timeout=proofs.WAIT)
                    store = Store.open(database)
                    try:
                        held = proofs.kill_mid_batch(running, store)
                    finally:
                        store.close()
                proofs.finish(running)
            except (AssertionError, subprocess.TimeoutExpired) as error:
                problems.append(str(error)[:300])  # a timeout's message may list every recipient
            finally:
                for process in running:  # after a failure, none is left behind
                    if process.poll() is None:
                        process.kill()
                        process.wait()
            seconds = time.perf_counter() - start
            copies = Counter(server.recipients())
            status = subprocess.run(
                [sys.executable, "-m", "newsletter", "status"], cwd=project, env=env, capture_output=True, text=True,
            ).stdout
    finally:
        del os.environ["NEWSLETTER_DATABASE_URL"]
    lost = len(expected - copies.keys())
    strays = len(copies.keys() - expected)
    extra = sum(copies.values()) - len(copies)
    if lost or strays:
        problems.append(f"{lost} subscribers got nothing, {strays} addresses not subscribed got mail")
    if extra > (1 if kill else 0):  # killed: the message on its connection may go again
        problems.append(f"{extra} copies too many")
    if f"queued 0  deferred 0  uncertain 0  sent {count}  failed 0" not in status:
        counts = [line.strip() for line in status.splitlines() if line.strip().startswith("queued ")]
        problems.append(f"status: {counts[0] if counts else status.strip()[:300]}")
    if kill and not held:
        problems.append("no worker was killed holding rows")
    detail = f"; killed holding {held} rows" if kill else ""
    print(f"{name:38} {'fail' if problems else 'pass'}  {len(copies)} of {count} subscribers, "
          f"{sum(copies.values())} messages, {extra} extra{detail}, {seconds:.1f} s", flush=True)
    for problem in problems:
        print(f"    {problem}", flush=True)
    return not problems


def prove_all(count: int) -> None:
    """Both proofs on one throwaway cluster; exits 1 if either failed."""
    folder = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    cluster = Cluster(folder)  # no fsync: correctness here does not depend on durability
    try:
        passed = [prove(cluster, count, kill) for kill in (False, True)]
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
    if not all(passed):
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--fast-commit", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--proofs", action="store_true", help=f"check exactly-once delivery by {PROOF_WORKERS} "
                        "workers, and no one lost when one is killed, instead of measuring rates")
    args = parser.parse_args()
    if args.proofs:
        prove_all(args.count)
        return

    size = len(sample_message())
    folder = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    cluster = Cluster(folder, durable=True)
    if args.fast_commit:
        cluster.admin.execute("ALTER SYSTEM SET synchronous_commit = off")
        cluster.admin.execute("SELECT pg_reload_conf()")
    sink = Sink()
    counts = [int(n) for n in args.workers.split(",")]
    ours: dict[int, list[float]] = {w: [] for w in counts}
    theirs: dict[int, list[float]] = {w: [] for w in counts}
    try:
        for _ in range(args.rounds):  # interleaved, so a busy spell of the machine hits both
            for workers in counts:
                ours[workers].append(args.count / drain(sink, cluster.database(), args.count, workers))
                theirs[workers].append(args.count / source(sink, args.count, size, workers))
    finally:
        sink.stop()
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
    rows = [(w, statistics.median(ours[w]), statistics.median(theirs[w])) for w in counts]
    commit = "synchronous_commit=off" if args.fast_commit else "every commit flushed"
    print(f"{args.count} messages of {size / 1024:.1f} KB to smtp-sink; PostgreSQL with {commit}; "
          f"{os.cpu_count()} CPU cores; median of {args.rounds} rounds [min-max]")
    print(f"{'W':>3} {'workers msg/s':>22} {'smtp-source -s W msg/s':>24} {'ratio':>6}")
    for workers, mine, reference in rows:
        spread = f"[{min(ours[workers]):.0f}-{max(ours[workers]):.0f}]"
        their_spread = f"[{min(theirs[workers]):.0f}-{max(theirs[workers]):.0f}]"
        print(f"{workers:>3} {mine:>8.0f} {spread:>13} {reference:>10.0f} {their_spread:>13} {mine / reference:>6.2f}")
    base = rows[0][1]
    print("scaling of workers from the first row: " + ", ".join(f"{w}: {o / base:.2f}x" for w, o, _ in rows))


if __name__ == "__main__":
    main()
