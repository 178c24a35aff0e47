"""How long one issue takes to build, beside premailer's own time to inline the same HTML.

    python bench/build.py [--config config.yaml] [--as-of 2022-07-30] [--repeat 30]

Prints medians over --repeat runs (after one warm-up), so a busy moment on the machine moves
the spread, not the figure. premailer is the reference: inlining CSS is the one expensive
step, and everything else in a build (compose, Jinja2, Markdown, the sample .eml, writing
three files) should add at most half again on top of it (target: ratio <= 1.5).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

from newsletter.build import Project, write_preview
from newsletter.digest import compose, moment
from newsletter.render import inline_css


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

    load_ms, load_spread = timed(lambda: Project.load(args.config), max(5, args.repeat // 3))
    project = Project.load(args.config)
    digest = project.config.digests[0]
    when = moment(date.fromisoformat(args.as_of), digest)
    issue = compose(project.library, digest, when)
    page = project.renderer.html_before_inlining(issue)

    with tempfile.TemporaryDirectory() as out:
        rows = [
            ("load config, content, templates (once)", timed(lambda: Project.load(args.config), 5)),
            ("compose", timed(lambda: compose(project.library, digest, when), args.repeat)),
            ("compose + render (incl. premailer)", timed(lambda: project.issue(digest, when), args.repeat)),
            ("whole build: + .eml + write 3 files", timed(lambda: write_preview(project, digest, when, Path(out)), args.repeat)),
            ("reference: premailer inlining alone", timed(lambda: inline_css(page), args.repeat)),
        ]
        names = [f"{digest.name}{n}" for n in range(4)]
        variants = [replace(digest, name=name) for name in names]
        once, _ = timed(lambda: [write_preview(project, d, when, Path(out)) for d in variants], 5)
        each, _ = timed(
            lambda: [write_preview(Project.load(args.config), d, when, Path(out)) for d in variants], 5
        )

    html_kb = len(project.renderer.render(issue).html.encode()) / 1024
    print(f"issue {issue.id}: {len(issue.entries)} entries, HTML {html_kb:.1f} KB after inlining")
    print(f"{'step':44} {'median ms':>10} {'spread ms':>10}")
    for name, (median, spread) in rows:
        print(f"{name:44} {median:10.2f} {spread:10.2f}")
    build_ms = rows[3][1][0]
    premailer_ms = rows[4][1][0]
    print(f"ratio whole build / premailer alone: {build_ms / premailer_ms:.2f} (target <= 1.5)")
    print(
        f"4 digests, content and templates loaded once: {once:.1f} ms; "
        f"loaded again per digest: {each:.1f} ms (one load is {load_ms:.1f} ms, spread {load_spread:.1f})"
    )


if __name__ == "__main__":
    main()
