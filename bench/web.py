"""The editors' preview under load, beside its reference from the same run.

    python bench/web.py [--clients 20] [--requests 400] [--tree DIR]

Starts `newsletter serve` on loopback (one process, as deployed) from a copy of the shipped
project and sends it GETs of the preview page and the previewed email (`/preview/weekly` and
`/preview/weekly/email`, alternately) from --clients threads with a kept-alive connection each,
--requests in all. Two rounds:

- files unchanged: every request after the first is served from the preview cache (a checkout
  from before the cache renders each one);
- the reference, an edit before every request: each client rewrites a brief's modification
  time before each of its requests, so every request renders the issue from the files again
  (what every request cost before the cache).

For each round: requests per second, median and 95th-percentile latency, and the server's CPU
time per request (from /proc, so the clients' own CPU is not counted).

--tree runs the same load against another checkout of the project (for example a worktree of
an older commit, `git worktree add /tmp/before COMMIT`), for a before/after on the same
machine in the same session. Target: under 10 ms of server CPU per unchanged preview.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.send import KEY, free_port, wait_listening  # noqa: E402

PATHS = ("/preview/weekly?as_of=2022-07-30", "/preview/weekly/email?as_of=2022-07-30")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Round:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float

    def line(self) -> str:
        ordered = sorted(self.latencies)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        return (f"  {self.name:<36} {self.requests / self.seconds:8.1f} req/s   p50 {statistics.median(ordered) * 1e3:7.1f} ms"
                f"   p95 {p95 * 1e3:7.1f} ms   server CPU {self.cpu_seconds / self.requests * 1e3:6.1f} ms/request")


def cpu_of(pid: int) -> float:
    """User plus system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_server(tree: Path, project: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(tree), "NEWSLETTER_SECRET_KEY": KEY}
    env.pop("NEWSLETTER_EDITOR_PASSWORD", None)  # on loopback the preview needs no login
    server = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_listening(port, server, "serve", 60)
    return server


def get(connection: http.client.HTTPConnection, path: str) -> None:
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200 or len(body) < 1000:
        raise SystemExit(f"GET {path}: {response.status} {body[:200]!r}")


def load(name: str, port: int, pid: int, clients: int, requests: int, edit: Path | None) -> Round:
    latencies: list[float] = []
    lock = threading.Lock()
    each = requests // clients

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        mine = []
        for i in range(each):
            if edit is not None:
                os.utime(edit, ns=(time.time_ns(), time.time_ns()))
            start = time.perf_counter()
            get(connection, PATHS[(number + i) % len(PATHS)])
            mine.append(time.perf_counter() - start)
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    cpu = cpu_of(pid)
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    return Round(name, len(latencies), seconds, latencies, cpu_of(pid) - cpu)


def project_copy(tree: Path, into: Path) -> Path:
    """The shipped project of `tree`, with old modification times (so nothing looks racy)."""
    project = into / "project"
    project.mkdir()
    for name in ("content", "templates"):
        shutil.copytree(tree / name, project / name)
    shutil.copy2(tree / "config.yaml", project / "config.yaml")
    old = time.time() - 3600
    for path in project.rglob("*"):
        os.utime(path, (old, old))
    return project


def bench(tree: Path, clients: int, requests: int) -> list[Round]:
    with tempfile.TemporaryDirectory() as scratch:
        project = project_copy(tree, Path(scratch))
        port = free_port()
        server = start_server(tree, project, port)
        try:
            warm = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            for path in PATHS:
                get(warm, path)
            warm.close()
            brief = sorted((project / "content" / "briefs").glob("*.md"))[0]
            return [
                load("files unchanged", port, server.pid, clients, requests, None),
                load("an edit before every request", port, server.pid, clients, requests, brief),
            ]
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--tree", type=Path, help="also load another checkout, e.g. a worktree of an older commit")
    args = parser.parse_args()
    trees = [("this checkout", REPO)] + ([(str(args.tree), args.tree.resolve())] if args.tree else [])
    print(f"preview on loopback: {args.clients} clients, {args.requests} requests per round, "
          f"{os.cpu_count()} cores")
    for label, tree in trees:
        print(label)
        for result in bench(tree, args.clients, args.requests):
            print(result.line())


if __name__ == "__main__":
    main()
