"""The send use case: an issue built once or reused, a transport chosen, the outbox drained.

`newsletter send`, the scheduler and the web app's confirmation mail all come through here,
so they share one notion of an issue (one per digest and period, kept in the store) and one
way to pick a transport and a signing key.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .build import Project
from ..inputs.config import DKIM_KEY_ENV, SECRET_KEY_ENV, Config, Digest, Mailbox
from ..compose.digest import Issue, compose, period_of
from ..delivery.dispatch import Dispatcher, Policy, SendReport
from ..errors import NewsletterError
from ..compose.message import DkimSigner, PreparedMessage, build_message, single_message
from ..compose.render import Rendered, Renderer
from ..store import Store, StoredIssue
from ..delivery.tokens import unsubscribe_token
from ..delivery.transport import Transport, TransportSettings, open_transport, parse_transport_url

TEST_SUBSCRIPTION = 0  # the unsubscribe link of a test copy stands for no subscription


@dataclass(frozen=True)
class IssueInStore:
    stored: StoredIssue
    created: bool  # built by this call
    changed_since: bool  # the content now renders differently from what was stored


def content_hash(rendered: Rendered) -> str:
    return hashlib.sha256(f"{rendered.subject}\0{rendered.text}\0{rendered.html}".encode()).hexdigest()


def issue_in_store(project: Project, store: Store, digest: Digest, as_of: datetime) -> IssueInStore:
    """The issue of `digest` for the period of `as_of`: built and saved the first time, the
    stored one after that, so a resumed or repeated send never mixes two versions."""
    stored = store.issue(digest.name, period_of(digest, as_of))
    if stored is not None and stored.queued_at is not None:
        return IssueInStore(stored, created=False, changed_since=False)
    issue = compose(project.library, digest, as_of)
    rendered = project.renderer.render(issue)
    if stored is None:
        stored, created = save_issue(store, issue, rendered)
    else:
        created = False
    return IssueInStore(stored, created, changed_since=stored.content_hash != content_hash(rendered))


def save_issue(store: Store, issue: Issue, rendered: Rendered) -> tuple[StoredIssue, bool]:
    """Record a composed issue; (the stored issue, whether this call created it)."""
    return store.save_issue(
        issue.digest.name, issue.period, rendered.subject, rendered.preheader, rendered.html,
        rendered.text, content_hash(rendered), issue.as_of, issue.contents,
    )


def rendered_from(stored: StoredIssue, digest: Digest) -> Rendered:
    return Rendered(stored.name, digest, stored.subject, stored.preheader, stored.html, stored.text)


def transport_settings(config: Config, url: str | None = None) -> TransportSettings:
    delivery = config.delivery
    return TransportSettings(
        url=url or delivery.transport, username=delivery.username,
        password=config.secrets.smtp_password, timeout=delivery.timeout,
    )


def signing_key(config: Config, settings: TransportSettings) -> tuple[bytes, str | None]:
    """The key for unsubscribe links, and a warning when there is none to use.

    Mail that leaves for real needs the configured key, or its links would not verify.
    A Maildir preview gets a throwaway key, so a fresh checkout can try `send` at once."""
    if config.secrets.signing_key is not None:
        return config.secrets.signing_key, None
    if parse_transport_url(settings.url, config.path.parent).kind == "file":
        return secrets.token_bytes(32), (
            f"{SECRET_KEY_ENV} is not set: unsubscribe links in these messages use a throwaway "
            "key and will not work (fine for a preview Maildir)"
        )
    raise NewsletterError(
        f"set {SECRET_KEY_ENV} before sending: it signs the unsubscribe links "
        "(at least 32 random characters; keep it the same for every run)"
    )


def signer(config: Config) -> DkimSigner | None:
    dkim = config.delivery.dkim
    if dkim is None:
        return None
    if config.secrets.dkim_key is None:
        raise NewsletterError(f"delivery.dkim is set in {config.path.name} but {DKIM_KEY_ENV} is empty")
    return DkimSigner(dkim.selector, dkim.domain, config.secrets.dkim_key)


def policy(config: Config) -> Policy:
    d = config.delivery
    return Policy(
        rate=d.rate, connections=d.connections, max_attempts=d.max_attempts, retry_after=d.retry_after,
        bounce_limit=d.bounce_limit, lease_seconds=d.lease_seconds, verp=d.verp,
    )


def send_issue(
    project: Project, store: Store, digest: Digest, as_of: datetime, transport_url: str | None = None,
    progress: Callable[[int], None] | None = None, stop: threading.Event | None = None,
    started: Callable[[IssueInStore, int], None] | None = None,
) -> SendReport:
    """Build or reuse the issue, queue it once, and deliver what is due.

    `started(issue, pending)` is called before the first message goes out."""
    in_store = issue_in_store(project, store, digest, as_of)
    return deliver(project.config, store, in_store, digest, transport_url, progress, stop, started)


def deliver(
    config: Config, store: Store, in_store: IssueInStore, digest: Digest, transport_url: str | None = None,
    progress: Callable[[int], None] | None = None, stop: threading.Event | None = None,
    started: Callable[[IssueInStore, int], None] | None = None, how: Policy | None = None,
) -> SendReport:
    """Queue a stored issue (once) and drain its outbox through the transport (`how`:
    the sending policy, default the config's)."""
    settings = transport_settings(config, transport_url)
    key, _ = signing_key(config, settings)
    prepared = PreparedMessage(rendered_from(in_store.stored, digest), config.site, signer(config))

    def make_transport() -> Transport:
        return open_transport(settings, config.path.parent)

    dispatcher = Dispatcher(store, in_store.stored, prepared, key, make_transport, how or policy(config), progress, stop)
    queued = store.queue(in_store.stored)
    if started is not None:
        started(in_store, store.pending(in_store.stored.id))
    report = dispatcher.run()
    report.queued = queued
    return report


def send_test_copy(project: Project, store: Store | None, digest: Digest, as_of: datetime, to: Mailbox,
                   transport_url: str | None = None) -> tuple[str, str]:
    """One copy to `to`, outside the outbox: no delivery row, no issue saved.

    Returns the subject and the transport it went through."""
    config = project.config
    settings = transport_settings(config, transport_url)
    key, _ = signing_key(config, settings)
    stored = store.issue(digest.name, period_of(digest, as_of)) if store else None
    rendered = rendered_from(stored, digest) if stored else project.renderer.render(compose(project.library, digest, as_of))
    now = datetime.now(UTC)
    raw = build_message(
        rendered, config.site, to, unsubscribe_token(key, TEST_SUBSCRIPTION),
        f"<{rendered.issue_id}.test.{secrets.token_hex(8)}@{config.site.domain}>", now,
    )
    return rendered.subject, _send_single(config, settings, digest, to, raw)


def send_confirmation(config: Config, renderer: Renderer, digest: Digest, to: Mailbox, link: str, hours: int) -> None:
    """The double opt-in message, through the configured transport."""
    rendered = renderer.confirmation(digest, link, hours)
    message_id = f"<{digest.name}.confirm.{secrets.token_hex(8)}@{config.site.domain}>"
    _send_single(config, transport_settings(config), digest, to, single_message(rendered, to, message_id, datetime.now(UTC)))


def _send_single(config: Config, settings: TransportSettings, digest: Digest, to: Mailbox, raw: bytes) -> str:
    """One message outside the outbox (a test copy, a confirmation), signed when DKIM is set up;
    returns the transport's name."""
    sig = signer(config)
    with open_transport(settings, config.path.parent) as transport:
        transport.send(digest.sender.address, to.address, sig.sign(raw) if sig else raw)
        return transport.name
