"""The editors' preview: the next issue from the files as they are, rendered once per change.

Loading content and templates and rendering an issue costs tens of milliseconds of CPU. An
editor reloads the preview far more often than the files change, so the project is kept
while no file under content/ or templates/ changes (their names, sizes and modification
times), and each rendered issue is kept for the day and period it was asked for.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..compose.digest import Issue, period_of
from ..compose.render import Rendered
from ..inputs.config import Config, Digest
from ..inputs.marking import rank
from .build import Project, compose_copies

KEPT_ISSUES = 64  # rendered issues kept for one state of the files


@dataclass(frozen=True)
class Preview:
    project: Project
    issue: Issue
    copies: tuple[Rendered, ...]  # one per TLP copy, the CLEAR one first

    def copy(self, clearance: str) -> Rendered:
        """What a reader cleared to `clearance` would get."""
        return max((c for c in self.copies if rank(c.tlp) <= rank(clearance)), key=lambda c: rank(c.tlp))


RACY_SECONDS = 2.0  # a file changed this recently may change again within the same clock tick
State = tuple[tuple[str, int, int, int], ...]


def fingerprint(*folders: Path) -> tuple[State, bool]:
    """Every file under `folders` with its size, inode and modification time: any edit, new
    file or removal changes it. A walk of a few dozen files costs well under a millisecond.

    Also whether it is racy (as git calls it): a file modified in the last moments could be
    written again within the same tick of the file system's clock, same size, and look
    unchanged; a racy state is not kept."""
    found: list[tuple[str, int, int, int]] = []
    newest = 0
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                try:
                    stat = os.stat(path)
                except OSError:  # removed while we looked: the next look sees it gone
                    continue
                found.append((path, stat.st_size, stat.st_ino, stat.st_mtime_ns))
                newest = max(newest, stat.st_mtime_ns)
    return tuple(found), newest > time.time_ns() - RACY_SECONDS * 1e9


class Previews:
    """Rendered previews, kept while content and templates stay as they are. Thread-safe: the
    web app's worker threads share one; a render happens once even when many ask at once."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.state: State | None = None
        self.project: Project | None = None
        self.issues: OrderedDict[tuple[str, str, str], Preview] = OrderedDict()
        self.renders = 0  # how many times an issue was rendered (tests and the load bench read it)

    def issue(self, digest: Digest, when: datetime) -> Preview:
        """The issue `digest` would have at `when`. NewsletterError for content with problems
        (nothing is kept then, so the fix shows at the next reload)."""
        state, racy = fingerprint(self.config.content_dir, self.config.templates_dir)
        with self.lock:
            if state != self.state or self.project is None:
                self.project = Project.of(self.config)
                self.state = None if racy else state
                self.issues.clear()
            project = self.project
            current = project.config.digest(digest.name)
            key = (current.name, period_of(current, when), when.astimezone(current.zone).date().isoformat())
            found = self.issues.get(key)
            if found is None:
                issue, copies = compose_copies(project, current, when)
                self.renders += 1
                found = self.issues[key] = Preview(project, issue, copies)
                while len(self.issues) > KEPT_ISSUES:
                    self.issues.popitem(last=False)
            else:
                self.issues.move_to_end(key)
            return found
