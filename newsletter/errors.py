"""The exception family: every expected failure is a NewsletterError that carries its exit status.

Faces never choose an exit status themselves: the CLI turns any NewsletterError into its
`lines()` on stderr and exits with its `exit_code` (faces/cli.py, one place); the scheduler
and the web app turn the same lines into log lines and pages.
"""

from __future__ import annotations

import os
from pathlib import Path

# Exit statuses (sysexits.h where one fits): the README's command table lists them.
EXIT_DONE = 0
EXIT_FAILED = 1  # some deliveries failed for good
EXIT_USAGE = 2  # usage, config or content error: fix something, then run again
EXIT_SOFTWARE = 70  # EX_SOFTWARE: a bug in this program, not in the input
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: deliveries deferred, or the send stopped early: run again later
EXIT_INTERRUPTED = 130  # 128 + SIGINT: stopped by a signal before the work was done


def display_path(path: Path) -> str:
    """A path as a user would type it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return os.fspath(path)


class NewsletterError(Exception):
    """An expected failure the user can act on; faces turn it into one line."""

    exit_code = EXIT_USAGE

    def lines(self) -> list[str]:
        """What the user reads, one line each (a face prints or logs them as they are)."""
        return [f"error: {line}" for line in str(self).splitlines() or [type(self).__name__]]


class UsageError(NewsletterError):
    """An option or argument the command cannot use (a bad date, an unknown transport)."""


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

    def lines(self) -> list[str]:
        return [str(self)]


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
        super().__init__("\n".join(str(p) for p in self.problems))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class DigestError(NewsletterError):
    """A digest cannot be composed (unknown name, nothing to put in it)."""


class StoreError(NewsletterError):
    """The database cannot be opened or written, or is newer than this program."""


class DeliveryError(NewsletterError):
    """A message was not delivered; `code` is the server's reply code when it gave one, and
    `enhanced` its RFC 3463 status (5, 7, 1) when the reply had one."""

    exit_code = EXIT_TEMPFAIL

    def __init__(self, message: str, code: int | None = None, enhanced: tuple[int, int, int] | None = None) -> None:
        self.code = code
        self.enhanced = enhanced
        super().__init__(message)


class TransientError(DeliveryError):
    """Worth trying again: a 4xx reply, a dropped connection, a timeout (code is None then)."""


class ConnectionFault(TransientError):
    """The server could not be reached or would not talk (refused, no greeting, 421 at once):
    nothing was attempted, so no delivery uses up a try; the run stops opening connections."""


class UncertainError(TransientError):
    """The whole message went out and its answer never came: it may have been delivered. It
    is not sent again on the spot; the retry schedule sends it again, with the same Message-ID."""


class PermanentError(DeliveryError):
    """A 5xx reply for this recipient: do not retry; it counts towards bouncing the address."""

    exit_code = EXIT_FAILED


class PolicyError(DeliveryError):
    """Our own setup is refused (5.7.x, authentication, relay rights, TLS): stop and tell the
    operator. It is a configuration error: the deliveries wait, untouched, for the fix."""

    exit_code = EXIT_USAGE


class MessageRejected(DeliveryError):
    """The server refuses the message itself (too large, RFC 1870 / 5.3.4), whoever it is for:
    the send stops and nobody is counted as bounced."""

    exit_code = EXIT_USAGE


class OutOfSpace(NewsletterError):
    """A disk is full (the store's, or the Maildir's): nothing was lost, the step stopped;
    run again once there is room."""

    exit_code = EXIT_TEMPFAIL


class DeliveriesFailed(NewsletterError):
    """A send ended with some deliveries failed for good (the others went out)."""

    exit_code = EXIT_FAILED


class WorkLeft(NewsletterError):
    """A send ended with deliveries still deferred or unsent: run it again later to resume."""

    exit_code = EXIT_TEMPFAIL


class Interrupted(NewsletterError):
    """Stopped by SIGINT or SIGTERM before the work was done; running again resumes it."""

    exit_code = EXIT_INTERRUPTED


class Exited(NewsletterError):
    """A process of ours that this one started (a worker of `send --workers`) ended with
    `status`; it printed its own lines, this one says which status it passes on."""

    def __init__(self, message: str, status: int) -> None:
        self.exit_code = status
        super().__init__(message)


class InternalError(NewsletterError):
    """An unexpected exception (a bug), caught where it happened, in any thread, so that it
    ends the work with one line instead of a silent death or a traceback."""

    exit_code = EXIT_SOFTWARE

    def __init__(self, where: str, error: BaseException) -> None:
        self.where = where
        self.error = error
        super().__init__(f"{where}: {type(error).__name__}: {error}")

    def lines(self) -> list[str]:
        return [f"internal error: {' '.join(str(self).split())}"]


def worst(errors: list[NewsletterError]) -> NewsletterError | None:
    """The error whose exit status wins when a command ended with several outcomes: an
    interruption, then a bug, then a usage error, then work left, then failed deliveries."""
    order = (EXIT_INTERRUPTED, EXIT_SOFTWARE, EXIT_USAGE, EXIT_TEMPFAIL, EXIT_FAILED)
    ranked = sorted(errors, key=lambda e: order.index(e.exit_code) if e.exit_code in order else len(order))
    return ranked[0] if ranked else None
