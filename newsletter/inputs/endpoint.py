"""Transport URLs (file:DIR, smtp://, smtps://, smtp+starttls://): read once, checked at the door."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from ..errors import UsageError, display_path
from .secrets import SMTP_PASSWORD_ENV

Security = Literal["ssl", "starttls", "none"]

FORMS = "file:DIR, smtp://HOST:PORT, smtps://HOST:PORT or smtp+starttls://HOST:PORT"
SCHEMES: dict[str, tuple[Security, int]] = {
    "smtp": ("none", 25),
    "smtps": ("ssl", 465),
    "smtp+starttls": ("starttls", 587),
}
HOST = re.compile(r"[A-Za-z0-9_.-]+|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")  # a name, IPv4, or an IPv6 literal
PASSWORD = re.compile(r"(//[^/@]*?:)[^/@]*@")  # the secret in scheme://user:secret@host


@dataclass(frozen=True)
class Endpoint:
    """A parsed transport URL."""

    kind: Literal["file", "smtp"]
    folder: Path | None = None
    host: str = ""
    port: int = 0
    security: Security = "none"
    username: str | None = None

    @property
    def name(self) -> str:
        """The URL as an operator reads it in a log line: never a password."""
        if self.folder is not None:
            return f"file:{display_path(self.folder)}"
        scheme = next(s for s, (security, _) in SCHEMES.items() if security == self.security)
        user = f"{quote(self.username, safe='')}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}"


def _redacted(url: str) -> str:
    return PASSWORD.sub(r"\1***@", url)


def _bad_url(url: str, why: str) -> UsageError:
    return UsageError(f"transport {_redacted(url)!r}: {why}; use {FORMS}")


def parse_transport_url(url: str, base: Path) -> Endpoint:
    """Read `url`; a relative `file:` folder is relative to `base` (the config file's folder)."""
    scheme, colon, rest = url.partition(":")
    scheme = scheme.lower()
    if not colon or (scheme != "file" and scheme not in SCHEMES):
        raise _bad_url(url, "unknown kind of transport")
    if scheme == "file":
        return Endpoint("file", folder=_folder(url, rest, base))
    try:
        parts = urlsplit(url)
    except ValueError:  # a broken [IPv6] literal
        raise _bad_url(url, "invalid host") from None
    try:
        port = parts.port
    except ValueError:
        port = 0
    if parts.password is not None:
        raise UsageError(
            f"transport {_redacted(url)!r}: a password does not belong in the URL; set {SMTP_PASSWORD_ENV} instead"
        )
    host = parts.hostname or ""
    if not host or not HOST.fullmatch(host):
        raise _bad_url(url, "missing or invalid host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _bad_url(url, "nothing may follow HOST:PORT")
    if port == 0:
        raise _bad_url(url, "the port must be a number from 1 to 65535")
    security, default_port = SCHEMES[scheme]
    username = unquote(parts.username) if parts.username else None
    return Endpoint("smtp", host=host, port=port or default_port, security=security, username=username)


def _folder(url: str, rest: str, base: Path) -> Path:
    if rest.startswith("//"):  # file:///abs/path or file://localhost/abs/path
        authority, _, path = rest[2:].partition("/")
        if authority not in ("", "localhost"):
            raise _bad_url(url, f"a file URL cannot name another host ({authority})")
        folder = Path(unquote("/" + path))
        if folder == Path("/"):
            raise _bad_url(url, "no folder given")
        return folder
    if not rest:
        raise _bad_url(url, "no folder given")
    return base / Path(rest).expanduser()  # an absolute folder replaces base
