"""Reading bounces at volume: `newsletter inbound` over a Maildir of N delivery status
notifications, beside flufl.bounce alone reading the same messages.

    python bench/inbound.py [--count 10000]

A copy of the shipped project sends the seed issue to --count subscribers (into a Maildir,
with VERP return paths), then a Postfix-shaped DSN per delivery (5.1.1, quoting the original
headers) is written into a bounce Maildir. Figures, from the same run:

- `newsletter inbound --maildir`: seconds, messages a second, peak memory (max RSS) of the
  process; every subscriber must end bounced, every message moved to cur/;
- the reference: `flufl.bounce.scan_message` on the same messages, in one process (parsing
  and detecting only, no store, no moves).
"""

from __future__ import annotations

import argparse
import email
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.send import KEY, project_with  # noqa: E402

DSN = """\
Return-Path: <>
Delivered-To: {to}
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
Subject: Undelivered Mail Returned to Sender
To: {to}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B{n}"
Message-Id: <bounce.{n}@mx.example.net>

--B{n}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

<{address}>: host mx.example.net said: 550 5.1.1 <{address}>: Recipient address rejected

--B{n}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Arrival-Date: Wed,  2 Dec 2026 00:24:41 +0000 (UTC)

Final-Recipient: rfc822; {address}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <{address}>: Recipient address rejected

--B{n}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{headers}
--B{n}--
"""


# The command in a process that says its own peak memory when it ends (ru_maxrss, KB).
MEASURED = """
import resource, sys
from newsletter.faces.cli import cli
try:
    cli.main(sys.argv[1:], prog_name="newsletter")
except SystemExit as end:
    status = end.code
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(status)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        project_with(project, args.count)
        config = project / "config.yaml"
        config.write_text(config.read_text(encoding="utf-8").replace("  bounce_limit: 3", "  bounce_limit: 3\n  verp: true"))
        env = {**os.environ, "NEWSLETTER_SECRET_KEY": KEY, "NEWSLETTER_LOG_LEVEL": "WARNING"}
        subprocess.run([sys.executable, "-m", "newsletter", "send", "--as-of", "2022-07-30"], cwd=project, env=env,
                       check=True, capture_output=True)
        sent = project / "out" / "maildir" / "new"
        bounces = project / "bounces"
        for sub in ("new", "cur", "tmp"):
            (bounces / sub).mkdir(parents=True)
        for n, path in enumerate(sorted(sent.iterdir())):
            raw = path.read_bytes()
            message = email.message_from_bytes(raw)
            head = raw.split(b"\n\n", 1)[0].decode()
            to = message["Return-Path"].strip("<>")
            (bounces / "new" / f"{n:06d}.bench").write_text(
                DSN.format(n=n, to=to, address=message["Delivered-To"], headers=head), encoding="utf-8")
        shutil.rmtree(project / "out")
        files = sorted((bounces / "new").iterdir())

        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", MEASURED, "inbound", "--maildir", "bounces"], cwd=project,
                              env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode:
            sys.exit(done.stderr)
        peak = float(done.stderr.strip().splitlines()[-1]) / 1024
        check = subprocess.run(
            [sys.executable, "-m", "newsletter", "subscribers", "list", "--status", "bounced"], cwd=project, env=env,
            capture_output=True, text=True, check=True,
        )
        bounced = len(check.stdout.splitlines())
        moved = len(list((bounces / "cur").iterdir()))

        from flufl.bounce import scan_message

        started = time.perf_counter()
        for path in files:
            scan_message(email.message_from_bytes((bounces / "cur" / f"{path.name}:2,S").read_bytes()))
        reference = time.perf_counter() - started

    print(f"{args.count} delivery status notifications (5.1.1), each naming one of our deliveries by VERP:")
    print(f"  newsletter inbound --maildir   {seconds:7.1f} s  {args.count / seconds:7.0f} msg/s  "
          f"peak RSS {peak:.0f} MB  ({bounced} marked bounced, {moved} moved to cur/)")
    print(f"  flufl.bounce scan_message only {reference:7.1f} s  {args.count / reference:7.0f} msg/s  "
          f"(parse and detect, no store)")
    print(f"  ratio: {seconds / reference:.1f}x the time of detection alone")


if __name__ == "__main__":
    main()
