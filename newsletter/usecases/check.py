"""Validate config, content and templates together and report every problem found."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

from .build import clip_warning
from ..inputs.config import Config, Digest, load_config
from ..inputs.content import Library, load_library
from ..compose.digest import compose, covers, moment
from ..errors import Invalid, NewsletterError
from ..compose.render import Renderer


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, exc: NewsletterError) -> None:
        if isinstance(exc, Invalid):
            self.problems.extend(str(p) for p in exc.problems)
        else:
            self.problems.append(str(exc))


def check_project(config_path: Path, as_of: date | datetime | None = None) -> Report:
    """Everything `build` would trip over, without writing anything.

    Each digest is rendered as of `as_of`, or else as of the newest content it
    covers, which exercises the templates with the fullest issue there is.
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
    try:
        renderer = Renderer(config.templates_dir, config.site.base_url)
    except NewsletterError as exc:
        report.fail(exc)
    if library is not None and renderer is not None:
        for digest in config.digests:
            _check_digest(config, library, renderer, digest, as_of, report)
    return report


def _check_digest(
    config: Config, library: Library, renderer: Renderer, digest: Digest,
    as_of: date | datetime | None, report: Report,
) -> None:
    language = digest.language
    if language not in renderer.labels and language.split("-")[0] not in renderer.labels:
        report.warnings.append(
            f"{config.path.name}: digests.{digest.name}.language: no labels for '{language}' in "
            f"labels.yaml; English labels will be used"
        )
    when = moment(as_of, digest) if as_of else _newest_moment(library, digest)
    if when is None:
        report.warnings.append(f"digest '{digest.name}' matches no brief or timeline entry yet")
        return
    try:
        issue = compose(library, digest, when)
        rendered = renderer.render(issue)
    except NewsletterError as exc:
        report.fail(exc)
        return
    size = len(rendered.html.encode("utf-8"))
    report.notes.append(
        f"digest {digest.name}: issue {issue.id}, {len(issue.entries)} entries, HTML {size / 1024:.1f} KB"
    )
    warning = clip_warning(size)
    if warning:
        report.warnings.append(f"digest {digest.name}: {warning}")


def _newest_moment(library: Library, digest: Digest) -> datetime | None:
    days = [b.date for b in library.briefs if covers(digest, b.tags, b.language)] + [
        e.date.end for e in library.timeline if covers(digest, e.tags, e.language)
    ]
    if not days:
        return None
    return datetime.combine(max(days), time(12), tzinfo=digest.zone)


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number} {one if number == 1 else many or one + 's'}"
