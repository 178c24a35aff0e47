"""Load a project once and write issue previews: digest.html, digest.txt and a sample digest.eml."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from ..inputs.config import Config, Digest, load_config
from ..inputs.content import Library, load_library
from ..intake.drafts import trusted_entries
from ..compose.digest import Issue, compose
from ..compose.message import build_message, preview_message_id, unsubscribe_url
from ..compose.render import UNSUBSCRIBE_URL, Rendered, Renderer

GMAIL_CLIP_BYTES = 102 * 1024  # Gmail hides the rest of a message past this much HTML
HTML_BUDGET_BYTES = 90 * 1024  # our margin below the clip
PREVIEW_TOKEN = "preview"  # in sample copies, where no subscriber stands behind the link


@dataclass(frozen=True)
class Project:
    """Config, content and templates, each loaded and checked once for any number of issues."""

    config: Config
    library: Library
    renderer: Renderer

    @classmethod
    def load(cls, config_path: Path) -> Project:
        config = load_config(config_path)
        library = load_library(config.content_dir)
        if any(d.include_drafts == "trusted" for d in config.digests):
            library = replace(library, trusted_drafts=tuple(trusted_entries(config.content_dir)))
        return cls(config, library, Renderer(config.templates_dir, config.site.base_url))

    def issue(self, digest: Digest, as_of: datetime) -> tuple[Issue, Rendered]:
        issue = compose(self.library, digest, as_of)
        return issue, self.renderer.render(issue)


@dataclass(frozen=True)
class Written:
    path: Path
    size: int


@dataclass(frozen=True)
class Preview:
    issue: Issue
    rendered: Rendered
    files: tuple[Written, ...]

    @property
    def html_bytes(self) -> int:
        return len(self.rendered.html.encode("utf-8"))


def clip_warning(html_bytes: int) -> str | None:
    if html_bytes <= HTML_BUDGET_BYTES:
        return None
    clipped = "will be clipped" if html_bytes > GMAIL_CLIP_BYTES else "is close to being clipped"
    return (
        f"HTML is {html_bytes / 1024:.0f} KB and {clipped} by Gmail (clip at 102 KB hides the "
        f"unsubscribe link); show fewer timeline entries or key points"
    )


def write_preview(project: Project, digest: Digest, as_of: datetime, out_dir: Path) -> Preview:
    issue, rendered = project.issue(digest, as_of)
    return Preview(issue, rendered, write_files(project.config, rendered, as_of, out_dir))


def write_files(config: Config, rendered: Rendered, as_of: datetime, out_dir: Path) -> tuple[Written, ...]:
    """`out_dir/<issue-id>/` digest.html, digest.txt and digest.eml (to the sample subscriber)."""
    link = unsubscribe_url(config.site, PREVIEW_TOKEN)
    folder = out_dir / rendered.issue_id
    folder.mkdir(parents=True, exist_ok=True)
    outputs = {
        "digest.html": rendered.html.replace(UNSUBSCRIBE_URL, link).encode("utf-8"),
        "digest.txt": rendered.text.replace(UNSUBSCRIBE_URL, link).encode("utf-8"),
        "digest.eml": build_message(
            rendered, config.site, config.sample_subscriber, PREVIEW_TOKEN,
            preview_message_id(rendered, config.site), as_of,
        ),
    }
    return tuple(_write_atomically(folder / name, data) for name, data in outputs.items())


def _write_atomically(path: Path, data: bytes) -> Written:
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
