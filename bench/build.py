"""How long one issue takes to build, beside premailer's own time to inline the same HTML.

    python bench/build.py [--config config.yaml] [--as-of 2022-07-30] [--repeat 30]

premailer is the reference: inlining CSS is the one expensive step of a build, and everything
else (compose, Jinja2, Markdown, the sample .eml, writing three files) should add at most half
again on top of it (target: whole build / premailer alone <= 1.5). Figures are medians over
--repeat runs after a warm-up, so a busy moment on the machine widens the spread column, not
the figure. "cold" is the first issue a fresh process builds, load included.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

from newsletter.compose.digest import compose, moment
from newsletter.inputs.config import load_config
from newsletter.usecases.build import Project, compose_issue, preview as write_preview
from newsletter.compose.inline import inline_css, inline_css_uncached

COLD = """
import sys, time, tempfile
from datetime import date
from pathlib import Path
start = time.perf_counter()
from newsletter.compose.digest import moment
from newsletter.inputs.config import load_config
from newsletter.usecases.build import Project, preview as write_preview
imported = time.perf_counter()
project = Project.of(load_config(Path(sys.argv[1])))
digest = project.config.digests[0]
write_preview(project, digest, moment(date.fromisoformat(sys.argv[2]), digest), Path(tempfile.mkdtemp()))
print((imported - start) * 1000, (time.perf_counter() - imported) * 1000)
"""


def timed(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and spread (max - min) in milliseconds."""
    work()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), max(samples) - min(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("config.yaml"))
    parser.add_argument("--as-of", default="2022-07-30")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    project = Project.of(load_config(args.config))
    digest = project.config.digests[0]
    when = moment(date.fromisoformat(args.as_of), digest)
    issue = compose(project.library, digest, when)
    page = project.renderer.html_before_inlining(issue)
    repeat = args.repeat

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        rows = {
            "load config, content, templates": timed(lambda: Project.of(load_config(args.config)), max(5, repeat // 3)),
            "compose": timed(lambda: compose(project.library, digest, when), repeat),
            "HTML template, before inlining": timed(lambda: project.renderer.html_before_inlining(issue), repeat),
            "inline CSS (ours: premailer, rules kept)": timed(lambda: inline_css(page), repeat),
            "compose + render": timed(lambda: compose_issue(project, digest, when), repeat),
            "whole build: + sample .eml + write 3 files": timed(
                lambda: write_preview(project, digest, when, out), repeat
            ),
            "reference: premailer alone, same HTML": timed(lambda: inline_css_uncached(page), repeat),
        }
        variants = [replace(digest, name=f"{digest.name}{n}") for n in range(4)]
        shared, _ = timed(lambda: [write_preview(project, d, when, out) for d in variants], 5)
        reloaded, _ = timed(
            lambda: [write_preview(Project.of(load_config(args.config)), d, when, out) for d in variants], 5
        )

    cold = [
        [float(x) for x in subprocess.run(
            [sys.executable, "-c", COLD, str(args.config), args.as_of], capture_output=True, text=True, check=True
        ).stdout.split()]
        for _ in range(5)
    ]

    html_kb = len(project.renderer.render(issue).html.encode()) / 1024
    print(f"issue {issue.id}: {len(issue.entries)} entries, {len(issue.brief.key_points) if issue.brief else 0} "
          f"key points, HTML {html_kb:.1f} KB after inlining")
    print(f"{'step':46} {'median ms':>10} {'spread ms':>10}")
    for name, (median, spread) in rows.items():
        print(f"{name:46} {median:10.2f} {spread:10.2f}")
    build = rows["whole build: + sample .eml + write 3 files"][0]
    premailer = rows["reference: premailer alone, same HTML"][0]
    print(f"ratio whole build / premailer alone: {build / premailer:.2f} (target <= 1.5)")
    print(f"4 digests from one load: {shared:.1f} ms; loading again for each: {reloaded:.1f} ms")
    print(f"cold process, median of 5: imports {statistics.median(c[0] for c in cold):.0f} ms, "
          f"load + first build {statistics.median(c[1] for c in cold):.0f} ms")


if __name__ == "__main__":
    main()
