"""Workers on PostgreSQL beside Postfix's smtp-source, with 1, 2 and 4 of each.

    python bench/scale.py [--count 20000] [--workers 1,2,4] [--rounds 3] [--fast-commit]

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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.send import KEY, Sink, project_with, sample_message, tool  # noqa: E402
from tests.postgres import Cluster  # noqa: E402


def drain(sink: Sink, database: str, count: int, workers: int) -> float:
    """Seconds for `workers` processes to send `count` queued messages."""
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        os.environ["NEWSLETTER_DATABASE_URL"] = database
        try:
            project_with(project, count)
            env = {**os.environ, "NEWSLETTER_SECRET_KEY": KEY, "NEWSLETTER_LOG_LEVEL": "WARNING"}
            subprocess.run(
                [sys.executable, "-m", "newsletter", "send", "--as-of", "2022-07-30", "--queue-only"],
                cwd=project, env=env, check=True, capture_output=True,
            )
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--fast-commit", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

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
