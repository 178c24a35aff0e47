"""Secrets come from environment variables only, never from a file in the project."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

SECRET_KEY_ENV = "NEWSLETTER_SECRET_KEY"  # signs unsubscribe and confirmation tokens
SMTP_PASSWORD_ENV = "NEWSLETTER_SMTP_PASSWORD"
DKIM_KEY_ENV = "NEWSLETTER_DKIM_KEY"  # PEM text, or the path of a PEM file outside the project
DATABASE_URL_ENV = "NEWSLETTER_DATABASE_URL"  # overrides `store` in config.yaml
LOG_LEVEL_ENV = "NEWSLETTER_LOG_LEVEL"  # overrides `run.log_level`
IMAP_PASSWORD_ENV = "NEWSLETTER_IMAP_PASSWORD"  # for `newsletter inbound --imap`
EDITOR_PASSWORD_ENV = "NEWSLETTER_EDITOR_PASSWORD"  # the web app's editor login (the preview)
MIN_SECRET_KEY_LENGTH = 32
MIN_EDITOR_PASSWORD_LENGTH = 12


@dataclass(frozen=True)
class Secrets:
    """What the environment holds; repr never shows the values."""

    signing_key: bytes | None = field(default=None, repr=False)
    smtp_password: str | None = field(default=None, repr=False)
    imap_password: str | None = field(default=None, repr=False)
    dkim_key: bytes | None = field(default=None, repr=False)
    editor_password: str | None = field(default=None, repr=False)


def read_secrets(environ: Mapping[str, str]) -> Secrets:
    """The secrets in `environ`, checked: a short signing key or an unreadable DKIM key file
    is refused with one line."""
    key = environ.get(SECRET_KEY_ENV) or None
    if key is not None and len(key) < MIN_SECRET_KEY_LENGTH:
        raise UsageError(
            f"{SECRET_KEY_ENV} is too short ({len(key)} characters): use at least "
            f"{MIN_SECRET_KEY_LENGTH} random characters, e.g. from "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    editor = environ.get(EDITOR_PASSWORD_ENV) or None
    if editor is not None and len(editor) < MIN_EDITOR_PASSWORD_LENGTH:
        raise UsageError(
            f"{EDITOR_PASSWORD_ENV} is too short ({len(editor)} characters): use at least "
            f"{MIN_EDITOR_PASSWORD_LENGTH}, e.g. a passphrase of four random words"
        )
    dkim = environ.get(DKIM_KEY_ENV) or None
    dkim_key: bytes | None = None
    if dkim is not None:
        if dkim.lstrip().startswith("-----BEGIN"):
            dkim_key = dkim.encode()
        else:
            try:
                dkim_key = Path(dkim).read_bytes()
            except OSError as exc:
                raise UsageError(f"{DKIM_KEY_ENV}: cannot read the key file {dkim}: {exc.strerror}") from None
    return Secrets(
        signing_key=key.encode() if key else None,
        smtp_password=environ.get(SMTP_PASSWORD_ENV) or None,
        imap_password=environ.get(IMAP_PASSWORD_ENV) or None,
        dkim_key=dkim_key,
        editor_password=editor,
    )
