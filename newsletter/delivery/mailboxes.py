"""Where returned mail is read from: one message on standard input, a Maildir, or an IMAP folder.

Each source hands out messages one at a time with a way to say "handled", so a message is
moved out of the way (Maildir `cur/`, an IMAP folder) only once the store holds what it said.
"""

from __future__ import annotations

import imaplib
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urlsplit

from ..errors import ConnectionFault, PolicyError, UsageError, display_path
from ..inputs.secrets import IMAP_PASSWORD_ENV

MAX_MESSAGE = 50 * 1024 * 1024  # bytes read of one message; the rest is not ours to parse


@dataclass
class Incoming:
    raw: bytes
    where: str  # for the log and the store: stdin, maildir:PATH/new/NAME, imap:URL#UID
    truncated: bool = False


class Inbox(Protocol):
    name: str

    def messages(self) -> Iterator[Incoming]:
        """The messages waiting now, oldest first."""

    def handled(self, message: Incoming) -> None:
        """Move it out of the way: it will not be read again."""

    def close(self) -> None: ...


class StdinInbox:
    """The one message an MTA's pipe hands over."""

    name = "stdin"

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def messages(self) -> Iterator[Incoming]:
        raw = self.stream.read(MAX_MESSAGE + 1)
        if raw:
            yield Incoming(raw[:MAX_MESSAGE], "stdin", truncated=len(raw) > MAX_MESSAGE)

    def handled(self, message: Incoming) -> None:
        pass

    def close(self) -> None:
        pass


class MaildirInbox:
    """Every message in `new/`; a handled one goes to `cur/`, flagged seen (as a mail reader does)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = f"maildir:{display_path(folder)}"
        if not (folder / "new").is_dir() or not (folder / "cur").is_dir():
            raise UsageError(f"{display_path(folder)} is not a Maildir (it needs new/ and cur/ folders)")

    def messages(self) -> Iterator[Incoming]:
        for name in sorted(os.listdir(self.folder / "new")):
            if name.startswith("."):
                continue
            path = self.folder / "new" / name
            try:
                with path.open("rb") as stream:
                    raw = stream.read(MAX_MESSAGE + 1)
            except FileNotFoundError:  # another reader took it meanwhile
                continue
            yield Incoming(raw[:MAX_MESSAGE], f"{self.name}/new/{name}", truncated=len(raw) > MAX_MESSAGE)

    def handled(self, message: Incoming) -> None:
        name = message.where.rsplit("/", 1)[1]
        base = name.split(":2,", 1)[0]
        try:
            os.rename(self.folder / "new" / name, self.folder / "cur" / f"{base}:2,S")
        except FileNotFoundError:
            pass

    def close(self) -> None:
        pass


class ImapInbox:
    """Unseen messages of one IMAP folder, over TLS with the certificate verified; a handled
    one is flagged seen and moved to `done_folder`."""

    def __init__(self, url: str, password: str | None, done_folder: str = "Processed", cafile: str | None = None,
                 timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "imaps" or not parts.hostname or not parts.username:
            raise UsageError(f"--imap {url}: use imaps://USER@HOST[:PORT]/FOLDER (TLS, the password in "
                             f"{IMAP_PASSWORD_ENV})")
        if parts.password is not None:
            raise UsageError(f"--imap: a password does not belong in the URL; set {IMAP_PASSWORD_ENV} instead")
        if not password:
            raise UsageError(f"set {IMAP_PASSWORD_ENV} to read {parts.hostname} as {unquote(parts.username)}")
        self.folder = unquote(parts.path.lstrip("/")) or "INBOX"
        self.done_folder = done_folder
        self.name = f"imap:imaps://{parts.username}@{parts.hostname}:{parts.port or 993}/{self.folder}"
        context = ssl.create_default_context()
        if cafile:
            context.load_verify_locations(cafile=cafile)
        try:
            self.imap = imaplib.IMAP4_SSL(parts.hostname, parts.port or 993, ssl_context=context, timeout=timeout)
        except ssl.SSLCertVerificationError as exc:
            raise PolicyError(f"cannot read {self.name}: its certificate is not trusted ({exc.verify_message})") from None
        except OSError as exc:
            raise ConnectionFault(f"cannot connect to {self.name}: {exc.strerror or exc}") from None
        try:
            self.imap.login(unquote(parts.username), password)
            status, _ = self.imap.select(_quoted(self.folder))
        except imaplib.IMAP4.error as exc:
            raise PolicyError(f"cannot read {self.name}: {exc}") from None
        if status != "OK":
            raise UsageError(f"{self.name}: no folder {self.folder}")
        self.imap.create(_quoted(done_folder))  # fails harmlessly when it exists
        _, listed = self.imap.capability()  # after login: servers tell more than before it
        self.can_move = any(b"MOVE" in line.upper().split() for line in listed if isinstance(line, bytes))

    def messages(self) -> Iterator[Incoming]:
        status, found = self.imap.uid("SEARCH", "UNSEEN")
        if status != "OK" or not found or not found[0]:
            return
        for uid in found[0].split():
            status, data = self.imap.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((part[1] for part in data if isinstance(part, tuple)), None) if status == "OK" else None
            if isinstance(raw, bytes):
                yield Incoming(raw[:MAX_MESSAGE], f"{self.name}#{uid.decode()}", truncated=len(raw) > MAX_MESSAGE)

    def handled(self, message: Incoming) -> None:
        uid = message.where.rsplit("#", 1)[1]
        self.imap.uid("STORE", uid, "+FLAGS", r"(\Seen)")
        if self.can_move:
            self.imap.uid("MOVE", uid, _quoted(self.done_folder))
        else:
            self.imap.uid("COPY", uid, _quoted(self.done_folder))
            self.imap.uid("STORE", uid, "+FLAGS", r"(\Deleted)")
            self.imap.expunge()

    def close(self) -> None:
        try:
            self.imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def _quoted(folder: str) -> str:
    """An IMAP quoted string (RFC 3501)."""
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def open_inbox(maildir: Path | None, imap: str | None, done_folder: str, password: str | None,
               cafile: str | None = None) -> Inbox:
    """The inbox these settings name: a Maildir, an IMAP folder, or else standard input."""
    if maildir is not None:
        return MaildirInbox(maildir)
    if imap is not None:
        return ImapInbox(imap, password, done_folder, cafile)
    import sys

    return StdinInbox(sys.stdin.buffer)
