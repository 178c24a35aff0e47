"""The first step of an issue's life: composed and rendered from a project, written out for preview.

A project is config, content and templates loaded once. Nothing is stored here:
usecases/issues.py takes the issue from there."""

from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from collections.abc import Iterable, Sequence

from ..compose import stix
from ..compose.digest import Issue, compose, may_show
from ..inputs.marking import TLP_LEVELS
from ..compose.message import SAMPLE_TOKEN, build_message, check_headers, for_sample, preview_message_id
from ..inputs.config import Digest
from ..compose.render import Rendered, Renderer
from ..errors import OutOfSpace, StoreError, display_path
from ..inputs.config import Config
from ..inputs.content import Library, Sketch, load_library
from ..intake.drafts import trusted_entries

GMAIL_CLIP_BYTES = 102 * 1024  # Gmail hides the rest of a message past this much HTML
HTML_BUDGET_BYTES = 90 * 1024  # our margin below the clip
PREVIEW_TOKEN = SAMPLE_TOKEN
PREVIEW_FILES = ("digest.html", "digest.txt", "digest.eml")


@dataclass(frozen=True)
class Project:
    """Config, content and templates, each loaded and checked once for any number of issues."""

    config: Config
    library: Library
    renderer: Renderer

    @classmethod
    def of(cls, config: Config) -> Project:
        """The content and templates `config` names, loaded now (the scheduler calls this on
        every fire: analysts edit the content between fires)."""
        return cls._loaded(config, load_library(config.content_dir))

    @classmethod
    def for_issues(cls, config: Config, issues: Iterable[tuple[Digest, datetime]]) -> Project:
        """Enough of the content for these issues (a digest and a moment each), as `build` needs:
        every timeline file is parsed, but only the entries an issue may show are read and checked
        in full, so a timeline of years costs little more than a parse. `check` reads the rest."""
        wanted = tuple(issues)

        def shortlist(sketches: Sequence[Sketch]) -> set[int]:
            return set().union(*(may_show(sketches, digest, when) for digest, when in wanted))

        return cls._loaded(config, load_library(config.content_dir, shortlist))

    @classmethod
    def _loaded(cls, config: Config, library: Library) -> Project:
        if any(d.include_drafts == "trusted" for d in config.digests):
            library = replace(library, trusted_drafts=tuple(trusted_entries(config.content_dir)))
        return cls(config, library, Renderer(config.templates_dir, config.site))


@dataclass(frozen=True)
class Written:
    path: Path
    size: int


@dataclass(frozen=True)
class Preview:
    """An issue composed and written out, stored nowhere (`newsletter build`): one copy per
    TLP level its content has, the CLEAR one first."""

    issue: Issue
    copies: tuple[Rendered, ...]
    files: tuple[Written, ...]

    @property
    def rendered(self) -> Rendered:
        return self.copies[0]

    @property
    def html_bytes(self) -> int:
        return max(len(copy.html.encode("utf-8")) for copy in self.copies)


def compose_copies(
    project: Project, digest: Digest, as_of: datetime, clearances: Iterable[str] = TLP_LEVELS,
) -> tuple[Issue, tuple[Rendered, ...]]:
    """Composed, and rendered once per distinct copy readers of `clearances` get (the CLEAR one
    always, first: the public copy), each one's headers checked: pure, no store, no clock."""
    issue = compose(project.library, digest, as_of)
    copies = tuple(project.renderer.render(copy) for copy in issue.copies(tuple(clearances)).values())
    for rendered in copies:
        check_headers(rendered)  # a subject or sender no header can carry is refused here
    return issue, copies


def compose_issue(project: Project, digest: Digest, as_of: datetime) -> tuple[Issue, Rendered]:
    """The issue and its CLEAR copy alone (what the public may see)."""
    issue, copies = compose_copies(project, digest, as_of, ("clear",))
    return issue, copies[0]


def preview(project: Project, digest: Digest, as_of: datetime, out_dir: Path) -> Preview:
    """`newsletter build`: composed, every copy written to `out_dir/<issue>/`."""
    issue, copies = compose_copies(project, digest, as_of)
    bundles = {copy.tlp: stix.dumps(stix.issue_bundle(issue, copy.tlp)).encode() for copy in copies}
    return Preview(issue, copies, write_files(project.config, copies, as_of, out_dir, bundles))




def clip_warning(html_bytes: int) -> str | None:
    if html_bytes <= HTML_BUDGET_BYTES:
        return None
    clipped = "will be clipped" if html_bytes > GMAIL_CLIP_BYTES else "is close to being clipped"
    return (
        f"HTML is {html_bytes / 1024:.0f} KB and {clipped} by Gmail (clip at 102 KB hides the "
        f"unsubscribe link); show fewer timeline entries or key points"
    )


def write_files(
    config: Config, copies: Iterable[Rendered], as_of: datetime, out_dir: Path, bundles: dict[str, bytes] | None = None,
) -> tuple[Written, ...]:
    """`out_dir/<issue-id>/` digest.html, digest.txt and digest.eml (to the sample subscriber)
    of the CLEAR copy, and the same in `tlp-amber/` (and so on) for each copy above it; with
    `bundles`, each copy's STIX bundle beside it as digest.stix.json."""
    outputs: dict[Path, bytes] = {}
    folder = out_dir
    for rendered in copies:
        folder = out_dir / rendered.issue_id
        place = folder if rendered.tlp == "clear" else folder / f"tlp-{rendered.tlp.replace('+', '-')}"
        sample = config.sample_subscriber
        outputs |= {
            place / "digest.html": for_sample(rendered.html, config.site, sample, is_html=True).encode("utf-8"),
            place / "digest.txt": for_sample(rendered.text, config.site, sample).encode("utf-8"),
            place / "digest.eml": build_message(
                rendered, config.site, sample, PREVIEW_TOKEN, preview_message_id(rendered, config.site), as_of,
            ),
        }
        if bundles is not None:
            outputs[place / "digest.stix.json"] = bundles[rendered.tlp]
    try:
        for path in outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
        return tuple(write_atomically(path, data) for path, data in outputs.items())
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutOfSpace(f"the disk is full: cannot write the preview files in {display_path(folder)}") from None
        raise StoreError(f"cannot write the preview files in {display_path(folder)}: {exc.strerror or exc}") from None


def write_atomically(path: Path, data: bytes) -> Written:
    """Write beside the target and rename, so a reader never sees half a file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return Written(path, len(data))
