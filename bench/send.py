"""Send rate and memory, each beside its reference from the same run.

    python bench/send.py [--count 5000] [--connections 2,4] [--mailmerge-count 2000] [--memory 1000,100000]
                         [--mailmerge PATH]

Every figure is measured against Postfix's `smtp-sink` on loopback (Debian: `apt-get install
postfix`; it runs as `-u nobody` when we are root, and never with `-c`):

- our send rate: `newsletter send` of the seed digest (about 50 KB a message) to --count
  subscribers over one connection, timed from the start of the send (issue built, outbox
  queued) to the last message accepted;
- Postfix's own client, `smtp-source -d -s 1`: the same count and size over one session;
- the same two with N parallel connections (`delivery.connections: N` beside
  `smtp-source -d -s N`), for each N of --connections;
- `mailmerge` (a new SMTP connection and a template render per message) for --mailmerge-count
  of the same message; it is installed into a throwaway virtual environment if not on PATH;
- the same send with the subscribers cleared for three TLP levels in turn (CLEAR, GREEN,
  AMBER: the seed content has items at each), so three copies are rendered and sent side by
  side, beside the one-level send of the same round;
- peak memory (max RSS) of a process that sends to 1,000 and to 100,000 subscribers: it should
  stay flat, since subscribers are streamed from the store.

Targets on this machine: at least 0.8x smtp-source on one connection and 0.5x with 2 and 4,
at least 9x mailmerge, three TLP levels within 10 % of one, and memory at 100,000 subscribers
within 1.2x of that at 1,000.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SBIN = ("/usr/sbin", "/usr/bin", "/sbin")
KEY = "bench-signing-key-" + "x" * 32

CHILD = """
import os, resource, sys, time
from datetime import date
from pathlib import Path
from newsletter.usecases import issues
from newsletter.usecases.build import Project
from newsletter.compose.digest import moment
from newsletter.inputs.config import load_config
from newsletter.store import Store
import dataclasses
config = load_config(Path("config.yaml")).with_transport(sys.argv[1])
policy = dataclasses.replace(config.delivery.policy, connections=int(sys.argv[3]))
config = dataclasses.replace(config, delivery=dataclasses.replace(config.delivery, policy=policy))
digest = config.digest("weekly")
store = Store.open(config.store_url)
start = time.perf_counter()
outcome = issues.send(config, lambda: Project.of(config), store, digest, moment(date(2022, 7, 30), digest))
report = outcome.report
seconds = time.perf_counter() - start
assert report is not None and report.sent == int(sys.argv[2]) and report.failed == 0, outcome
print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def tool(name: str) -> str:
    found = shutil.which(name) or next((f"{d}/{name}" for d in SBIN if Path(d, name).exists()), None)
    if found is None:
        sys.exit(f"{name} not found: apt-get install postfix")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], what: str, seconds: float) -> None:
    """Return once something accepts connections on `port`; exit with one line if `process`
    ends first or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            errors = process.stderr.read().decode() if process.stderr else ""
            sys.exit(f"{what} exited: {errors}".strip())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    process.kill()
    sys.exit(f"{what} did not start listening within {seconds:.0f} s")


class Sink:
    """smtp-sink on a free loopback port: accepts everything and keeps nothing."""

    def __init__(self) -> None:
        self.port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen([tool("smtp-sink"), *user, f"127.0.0.1:{self.port}", "1000"])
        wait_listening(self.port, self.process, "smtp-sink", 10)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def project_with(folder: Path, count: int, tiers: int = 1) -> Path:
    """A copy of the shipped project whose store holds `count` active subscribers, cleared for
    the first `tiers` TLP levels in turn."""
    for name in ("content", "templates"):
        shutil.copytree(REPO / name, folder / name)
    shutil.copy(REPO / "config.yaml", folder / "config.yaml")
    subprocess.run(
        [sys.executable, "-c", f"""
from pathlib import Path
import sqlalchemy as sa
from newsletter.inputs.config import load_config
from newsletter.store import Store, utcnow
store = Store.open(load_config(Path("config.yaml")).store_url)
now = utcnow()
rows = [{{"address": f"reader{{n:06d}}@example.org", "now": now}} for n in range({count})]
with store.engine.begin() as conn:
    if rows:
        conn.execute(
            sa.text("INSERT INTO subscribers (address, name, status, bounces, created_at, updated_at) "
                    "VALUES (:address, '', 'active', 0, :now, :now)"),
            rows,
        )
    conn.exec_driver_sql(
        "INSERT INTO subscriptions (subscriber_id, digest, status, created_at, updated_at) "
        "SELECT id, 'weekly', 'active', created_at, created_at FROM subscribers"
    )
    if {tiers} > 1:
        conn.exec_driver_sql(
            "UPDATE subscribers SET clearance = CASE id % {tiers} WHEN 1 THEN 'green' WHEN 2 THEN 'amber' END"
        )
"""],
        cwd=folder, check=True,
    )
    return folder


def our_send(sink: Sink, count: int, tiers: int = 1, connections: int = 1) -> tuple[float, int]:
    """Seconds to send `count` messages, and the sending process's peak RSS in KB."""
    with tempfile.TemporaryDirectory() as folder:
        project_with(Path(folder), count, tiers)
        done = subprocess.run(
            [sys.executable, "-c", CHILD, f"smtp://127.0.0.1:{sink.port}", str(count), str(connections)],
            cwd=folder, env={**os.environ, "NEWSLETTER_SECRET_KEY": KEY}, capture_output=True, text=True,
        )
        if done.returncode:
            sys.exit(done.stderr)
        seconds, rss = done.stdout.split()
        return float(seconds), int(rss)


def sample_message() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        project_with(Path(folder), 0)
        subprocess.run(
            [sys.executable, "-m", "newsletter", "build", "--as-of", "2022-07-30", "--out", "preview"],
            cwd=folder, check=True, capture_output=True,
        )
        return (Path(folder) / "preview" / "weekly-2022-W30" / "digest.eml").read_bytes()


def smtp_source(sink: Sink, count: int, size: int, sessions: int = 1) -> float:
    start = time.perf_counter()
    subprocess.run(
        [tool("smtp-source"), "-d", "-s", str(sessions), "-m", str(count), "-l", str(size),
         "-f", "digest@threat-digest.example.org", "-t", "reader@example.org", f"127.0.0.1:{sink.port}"],
        check=True,
    )
    return time.perf_counter() - start


def mailmerge_command(work: Path, given: str | None) -> str:
    found = given or shutil.which("mailmerge")
    if found:
        return found
    venv = work / "mailmerge-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "mailmerge"], check=True)
    return str(venv / "bin" / "mailmerge")


def mailmerge(sink: Sink, count: int, message: bytes, work: Path, given: str | None) -> float:
    command = mailmerge_command(work, given)
    head, _, body = message.decode("utf-8").replace("\r\n", "\n").partition("\n\n")
    head = "\n".join("TO: {{email}}" if line.startswith("To: ") else line for line in head.split("\n"))
    (work / "template.txt").write_text(head + "\n\n{% raw %}" + body + "{% endraw %}", encoding="utf-8")
    rows = "".join(f"reader{n:06d}@example.org\n" for n in range(count))
    (work / "database.csv").write_text("email\n" + rows, encoding="utf-8")
    (work / "server.conf").write_text(
        f"[smtp_server]\nhost = 127.0.0.1\nport = {sink.port}\nsecurity = Never\n", encoding="utf-8"
    )
    start = time.perf_counter()
    subprocess.run(
        [command, "--no-dry-run", "--no-limit", "--template", "template.txt", "--database", "database.csv",
         "--config", "server.conf", "--output-format", "raw"],
        cwd=work, check=True, stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--mailmerge-count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", default="2,4", help="parallel connections to compare too ('' for none)")
    parser.add_argument("--memory", default="1000,100000", help="subscriber counts for peak memory")
    parser.add_argument("--mailmerge", metavar="PATH", help="the mailmerge command (default: PATH, else installed)")
    args = parser.parse_args()

    message = sample_message()
    size = len(message)
    sink = Sink()
    try:
        ours: list[float] = []
        tiered: list[float] = []
        theirs: list[float] = []
        for _ in range(args.rounds):  # interleaved, so a busy spell of the machine hits all
            ours.append(args.count / our_send(sink, args.count)[0])
            tiered.append(args.count / our_send(sink, args.count, tiers=3)[0])
            theirs.append(args.count / smtp_source(sink, args.count, size))
        with tempfile.TemporaryDirectory() as folder:
            merge_rate = args.mailmerge_count / mailmerge(sink, args.mailmerge_count, message, Path(folder), args.mailmerge)
        ours_rate, source_rate, tiered_rate = statistics.median(ours), statistics.median(theirs), statistics.median(tiered)
        print(f"one connection, messages of {size / 1024:.1f} KB, to smtp-sink on loopback "
              f"(median of {args.rounds} interleaved rounds, min-max in brackets):")
        print(f"  {'threat-brief newsletter':26} {args.count:7d} msgs {ours_rate:8.0f} msg/s  [{min(ours):.0f}-{max(ours):.0f}]")
        print(f"  {'  readers in 3 TLP levels':26} {args.count:7d} msgs {tiered_rate:8.0f} msg/s  [{min(tiered):.0f}-{max(tiered):.0f}]")
        print(f"  {'smtp-source -d -s 1':26} {args.count:7d} msgs {source_rate:8.0f} msg/s  [{min(theirs):.0f}-{max(theirs):.0f}]")
        print(f"  {'mailmerge':26} {args.mailmerge_count:7d} msgs {merge_rate:8.0f} msg/s  (one run)")
        print(f"  ratio to smtp-source: {ours_rate / source_rate:.2f}x (target >= 0.8)")
        print(f"  ratio to mailmerge:   {ours_rate / merge_rate:.1f}x (target >= 9)")
        print(f"  3 TLP levels / 1:     {tiered_rate / ours_rate:.2f}x (target >= 0.9)")
        for n in (int(c) for c in args.connections.split(",") if c):
            ours_n, theirs_n = [], []
            for _ in range(args.rounds):
                ours_n.append(args.count / our_send(sink, args.count, connections=n)[0])
                theirs_n.append(args.count / smtp_source(sink, args.count, size, sessions=n))
            rate_n, source_n = statistics.median(ours_n), statistics.median(theirs_n)
            print(f"{n} connections (median of {args.rounds} interleaved rounds):")
            print(f"  {'threat-brief newsletter':26} {args.count:7d} msgs {rate_n:8.0f} msg/s  [{min(ours_n):.0f}-{max(ours_n):.0f}]")
            print(f"  {f'smtp-source -d -s {n}':26} {args.count:7d} msgs {source_n:8.0f} msg/s  "
                  f"[{min(theirs_n):.0f}-{max(theirs_n):.0f}]")
            print(f"  ratio to smtp-source: {rate_n / source_n:.2f}x (target >= 0.5)")
        peaks = []
        for count in (int(n) for n in args.memory.split(",")):
            seconds, rss = our_send(sink, count)
            peaks.append(rss)
            print(f"peak memory sending to {count:7d} subscribers: {rss / 1024:6.1f} MB ({count / seconds:.0f} msg/s)")
        if len(peaks) > 1:
            print(f"  ratio largest / smallest: {peaks[-1] / peaks[0]:.2f} (target <= 1.2)")
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
