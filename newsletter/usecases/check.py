"""Validate config, content and templates together and report every problem found."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from itertools import chain
from pathlib import Path

from ..compose.digest import covers, level_problems, moment
from ..errors import NewsletterError, display_path
from ..inputs.config import Digest, load_config
from ..inputs.content import Library, load_library
from ..inputs.marking import likelihood_with_confidence
from ..compose.render import Renderer
from .build import Project, clip_warning, compose_copies


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, exc: NewsletterError) -> None:
        self.problems.extend(exc.lines())


def check_project(config_path: Path, now: datetime, as_of: date | datetime | None = None) -> Report:
    """Everything `build` or `send` would trip over, without writing anything.

    Each digest is composed as `build` would compose it: as of `as_of`, or else `now`. A
    digest with nothing to send as of then is also composed as of its newest content, so the
    templates are still tried, and a warning says how to build that issue.
    """
    report = Report()
    try:
        config = load_config(config_path)
    except NewsletterError as exc:
        report.fail(exc)
        return report
    library: Library | None = None
    renderer: Renderer | None = None
    try:
        library = load_library(config.content_dir)
        report.notes.append(
            f"content: {_count(len(library.briefs), 'brief')}, "
            f"{_count(len(library.timeline), 'timeline entry', 'timeline entries')}"
        )
    except NewsletterError as exc:
        report.fail(exc)
    if library is not None:
        for digest in config.digests:
            for problem in level_problems(library, digest):
                report.fail(problem)
        report.warnings.extend(_estimative_warnings(library))
    try:
        renderer = Renderer(config.templates_dir, config.site)
    except NewsletterError as exc:
        report.fail(exc)
    if library is not None and renderer is not None:
        project = Project(config, library, renderer)
        for digest in config.digests:
            _check_digest(project, digest, moment(as_of or now, digest), report, explicit=as_of is not None)
    return report


def _check_digest(project: Project, digest: Digest, when: datetime, report: Report, explicit: bool) -> None:
    config, renderer = project.config, project.renderer
    language = digest.language
    if language not in renderer.labels and language.split("-")[0] not in renderer.labels:
        report.warnings.append(
            f"{config.path.name}: digests.{digest.name}.language: no labels for '{language}' in "
            f"labels.yaml; English labels will be used"
        )
    newest = _newest_moment(project.library, digest)
    if newest is None:
        report.warnings.append(f"digest '{digest.name}' matches no brief or timeline entry yet")
        return
    try:  # every TLP copy, as readers of each clearance would get it
        issue, copies = compose_copies(project, digest, when)
    except NewsletterError as exc:
        if explicit:
            report.fail(exc)
            return
        report.warnings.append(f"digest {digest.name}: {' '.join(exc.lines()).removeprefix('error: ')}")
        try:  # still try the templates, with the newest issue there is
            issue, copies = compose_copies(project, digest, newest)
        except NewsletterError as again:
            report.fail(again)
            return
    size = max(len(rendered.html.encode("utf-8")) for rendered in copies)  # the largest copy nears the clip first
    report.notes.append(
        f"digest {digest.name}: issue {issue.id}, {len(issue.entries)} entries, HTML {size / 1024:.1f} KB, "
        f"newest content of {newest.date().isoformat()}"
    )
    warning = clip_warning(size)
    if warning:
        report.warnings.append(f"digest {digest.name}: {warning}")


def _estimative_warnings(library: Library) -> list[str]:
    """Sentences that say both how likely and how sure (ICD 203 keeps the two apart)."""
    texts = chain(
        ((brief.path, point.line, f"key_points[{index}].text", point.text)
         for brief in library.briefs for index, point in enumerate(brief.key_points)),
        ((entry.path, entry.line, "summary", entry.summary) for entry in library.timeline),
    )
    return [
        f"{display_path(path)}:{line}: {field}: \"{sentence[:80]}\" pairs a likelihood term with a confidence level; "
        "ICD 203 asks for one or the other in a sentence"
        for path, line, field, text in texts for sentence in likelihood_with_confidence(text)
    ]


def _newest_moment(library: Library, digest: Digest) -> datetime | None:
    days = chain(
        (b.date for b in library.briefs if covers(digest, b.tags, b.language)),
        (e.date.end for e in library.timeline if covers(digest, e.tags, e.language)),
    )
    newest = max(days, default=None)
    if newest is None:
        return None
    return datetime.combine(newest, time(12), tzinfo=digest.zone)


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number} {one if number == 1 else many or one + 's'}"
