"""The exception family: every expected failure is a NewsletterError."""

from __future__ import annotations

import os
from pathlib import Path


def display_path(path: Path) -> str:
    """A path as a user would type it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return os.fspath(path)


class NewsletterError(Exception):
    """An expected failure the user can act on; faces turn it into one line."""


class SourceError(NewsletterError):
    """A problem at a place in a file the user edits: `file:line: field: message`."""

    def __init__(self, file: Path, line: int, field: str, message: str) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{display_path(self.file)}:{self.line}: {self.field}: {self.message}"


class ContentError(SourceError):
    """A brief or timeline file is invalid."""


class ConfigError(SourceError):
    """config.yaml is invalid."""


class TemplateError(SourceError):
    """A template does not parse or does not render."""


class Invalid(NewsletterError):
    """Several problems found at once; `problems` lists each one in file and line order."""

    def __init__(self, problems: list[SourceError]) -> None:
        self.problems = sorted(problems, key=lambda p: (str(p.file), p.line))
        super().__init__("\n".join(str(p) for p in problems))


class DigestError(NewsletterError):
    """A digest cannot be composed (unknown name, nothing to put in it)."""


class DeliveryError(NewsletterError):
    """A message was not delivered; `code` is the server's reply code when it gave one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(message)


class TransientError(DeliveryError):
    """Worth trying again: a 4xx reply, a dropped connection, a timeout (code is None then)."""


class PermanentError(DeliveryError):
    """A 5xx reply for this recipient: do not retry; it counts towards bouncing the address."""


class PolicyError(DeliveryError):
    """Our own setup is refused (5.7.x, authentication, relay rights, TLS): stop and tell the operator."""
