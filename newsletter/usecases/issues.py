"""The life of an issue: composed, stored, queued, sending, done (or done with failures).

Every face comes through here: `build` (composed, then written out), `send` and the
scheduler (stored, queued, delivered), `worker` (delivered), so each rule lives once:

- one issue per digest and period, kept by the store; its rendered snapshot holds all its
  messages need (subject, bodies, sender, Reply-To, List-Id, language, direction), so a
  resumed send takes nothing from today's config but the transport and the secrets;
- an issue with nothing new since the last one that went out is skipped
  (`when_nothing_new: skip`) unless forced;
- until a sender begins, the snapshot may be replaced by a fixed one; from then on it is
  frozen, and every resume sends it as it was;
- an issue is queued once, for the digest's active subscribers at that moment; with none,
  nothing is queued and the issue waits, unqueued, for the next send in its period.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from ..compose import stix
from ..compose.digest import Issue, period_of
from ..compose.message import PreparedMessage, build_message
from ..compose.render import Rendered, list_id
from ..delivery.dispatch import Dispatcher, SendReport
from ..delivery.tokens import unsubscribe_token
from ..errors import DeliveriesFailed, Interrupted, NewsletterError, WorkLeft
from ..inputs.config import Config, Digest, Mailbox, Policy
from ..store import Copy, IssueState, Snapshot, Store, StoredIssue
from .build import Preview, Project, Written, compose_copies, compose_issue, preview, write_files
from .sending import TEST_SUBSCRIPTION, send_single, signer, signing_key, tls_only_ok, transports

__all__ = [
    "Content", "Opened", "Outcome", "Preview", "Skipped", "compose_issue", "deliver", "open_issue", "outcome_error",
    "preview", "rendered_of", "retry", "send", "test_copy",
]


@dataclass(frozen=True)
class Opened:
    """The stored issue of a digest's period, after `open_issue`."""

    stored: StoredIssue
    written: bool  # this call stored its snapshot (the first time, or in place of an unsent one)
    changed_since: bool = False  # frozen, and today's content would render differently
    files: tuple[Written, ...] = ()  # the preview files this call wrote (when `written`)
    entries: int = 0  # timeline entries in it (0 when not composed by this call)


@dataclass(frozen=True)
class Skipped:
    """No issue this time: one line saying why."""

    issue_id: str
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What one send of one digest came to."""

    opened: Opened | Skipped
    queued: int | None = None  # deliveries written by this call; None when queued before
    report: SendReport | None = None  # None when nothing was delivered (skipped, no readers, queue only)

    @property
    def no_recipients(self) -> bool:
        return self.queued == 0


def content_hash(copies: tuple[Rendered, ...]) -> str:
    """What tells two renderings of an issue apart: everything its messages are made of, in
    every copy (which copies there are, too)."""
    parts = [
        part for rendered in copies for part in (
            rendered.tlp, rendered.subject, rendered.preheader, rendered.text, rendered.html, rendered.sender.name,
            rendered.sender.address, rendered.reply_to.name if rendered.reply_to else "",
            rendered.reply_to.address if rendered.reply_to else "", rendered.list_id, rendered.language,
            rendered.direction,
        )
    ]
    if len(copies) == 1:  # an issue with its CLEAR copy alone hashes as before copies existed
        parts = parts[1:]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def rendered_of(stored: StoredIssue, config: Config) -> Rendered:
    """The stored snapshot as a Rendered. Issues stored before schema version 6 kept no
    sender, List-Id or language: for those alone the config's digest fills them in."""
    if stored.sender_address is None:
        digest = config.digest(stored.digest)
        return Rendered(
            stored.name, stored.digest, stored.subject, stored.preheader, stored.html, stored.text, digest.sender,
            list_id(digest, config.site), digest.language, digest.direction, digest.reply_to,
        )
    reply_to = Mailbox(stored.reply_to_name or "", stored.reply_to_address) if stored.reply_to_address else None
    return Rendered(
        stored.name, stored.digest, stored.subject, stored.preheader, stored.html, stored.text,
        Mailbox(stored.sender_name or "", stored.sender_address), stored.list_id or "", stored.language or "en",
        stored.direction or "ltr", reply_to,
    )


def copies_of(stored: StoredIssue, store: Store, config: Config) -> tuple[Rendered, ...]:
    """Every stored copy of the issue as a Rendered, the CLEAR one first."""
    public = rendered_of(stored, config)
    return (public, *(
        replace(public, tlp=copy.tlp, subject=copy.subject, preheader=copy.preheader, html=copy.html, text=copy.text)
        for copy in store.issues.copies(stored.id)
    ))


def _snapshot(issue: Issue, copies: tuple[Rendered, ...]) -> Snapshot:
    """What the store keeps of an issue: its copies, and its CLEAR copy as STIX for the archive."""
    rendered = copies[0]
    reply_to = rendered.reply_to
    return Snapshot(
        digest=issue.digest.name, period=issue.period, subject=rendered.subject, preheader=rendered.preheader,
        html=rendered.html, text=rendered.text, sender_name=rendered.sender.name,
        sender_address=rendered.sender.address, reply_to_name=reply_to.name if reply_to else None,
        reply_to_address=reply_to.address if reply_to else None, list_id=rendered.list_id,
        language=rendered.language, direction=rendered.direction, content_hash=content_hash(copies),
        as_of=issue.as_of, contents=issue.contents,
        copies=tuple(Copy(c.tlp, c.subject, c.preheader, c.html, c.text) for c in copies[1:]),
        stix=stix.dumps(stix.issue_bundle(issue, "clear")),
    )


Content = Callable[[], Project]
"""The config's content and templates, loaded when first called: an issue already frozen is
sent from its snapshot, so a resumed send works even while the content is being edited."""


def open_issue(
    content: Content, store: Store, digest: Digest, as_of: datetime, *, force: bool = False,
    out_dir: Path | None = None, since_written: bool = False,
) -> Opened | Skipped:
    """The issue of `digest` for the period of `as_of`: composed and stored the first time
    (and its preview files written to `out_dir`), the stored one once it is frozen.

    Skipped when nothing is new since the digest's last issue that went out to readers (with
    `since_written`, the last one written out at all: a digest the scheduler only writes),
    unless `force` or the digest says `when_nothing_new: send`."""
    period = period_of(digest, as_of)
    stored = store.issues.get(digest.name, period)
    if stored is not None and stored.life.frozen:
        return Opened(stored, written=False, changed_since=_changed_since(content, store, digest, stored))
    project = content()
    # One copy per TLP level among the digest's readers (and the CLEAR one), never one per reader.
    issue, copies = compose_copies(project, digest, as_of, store.subscribers.clearances(digest.name))
    if not force and digest.when_nothing_new == "skip":
        previous = store.issues.previous(digest.name, as_of, went_out=not since_written)
        if previous is not None and previous.period != period and set(issue.contents) <= set(previous.contents):
            return Skipped(issue.id, f"nothing new since {previous.name} (when_nothing_new: skip)")
    stored, written = store.issues.save(_snapshot(issue, copies))
    files = write_files(project.config, copies, as_of, out_dir) if written and out_dir is not None else ()
    return Opened(stored, written, files=files, entries=len(issue.entries))


def _changed_since(content: Content, store: Store, digest: Digest, stored: StoredIssue) -> bool:
    """Whether today's content renders the frozen issue differently (it is sent as stored)."""
    levels = ("clear", *(copy.tlp for copy in store.issues.copies(stored.id)))
    try:
        _, copies = compose_copies(content(), digest, stored.as_of.replace(tzinfo=UTC), levels)
    except NewsletterError:
        return True  # the content no longer even composes: it has certainly changed
    return content_hash(copies) != stored.content_hash


def deliver(
    config: Config, store: Store, stored: StoredIssue, *, policy: Policy | None = None,
    stop: threading.Event | None = None, progress: Callable[[int], None] | None = None,
    started: Callable[[StoredIssue, int], None] | None = None, notice: Callable[[str], None] | None = None,
) -> SendReport:
    """Queued -> sending -> done: drain the issue's outbox through the config's transport.

    Needs nothing of the config but the transport, the policy and the secrets (the snapshot
    holds the rest). `started(issue, pending)` is called before the first message goes out.
    A send that attempted no delivery (it could not connect, or was stopped at once) leaves
    the issue unfrozen."""
    key, _ = signing_key(config)
    sign = signer(config)
    current = store.issues.begin_sending(stored.id)  # from here its copies are frozen
    prepared = {copy.tlp: PreparedMessage(copy, config.site, sign) for copy in copies_of(current, store, config)}
    if current.life is not IssueState.SENDING:  # finished by another sender, or never queued
        return SendReport(current.name, remaining=store.outbox.pending(current.id))
    if started is not None:
        started(current, store.outbox.pending(current.id))
    dispatcher = Dispatcher(store, current, prepared, key, transports(config), policy or config.delivery.policy,
                            progress, stop, notice, red_allowed=tls_only_ok(config))
    try:
        report = dispatcher.run()
    finally:
        if dispatcher.report.attempted == 0:
            store.issues.reopen_if_untouched(current.id)
    if report.remaining == 0:
        store.issues.finish(current.id)
    return report


def send(
    config: Config, content: Content, store: Store, digest: Digest, as_of: datetime, *, force: bool = False,
    queue_only: bool = False, stop: threading.Event | None = None, progress: Callable[[int], None] | None = None,
    started: Callable[[StoredIssue, int], None] | None = None, out_dir: Path | None = None,
    notice: Callable[[str], None] | None = None, announce: Callable[[Opened | Skipped], object] | None = None,
) -> Outcome:
    """The whole life: opened (and its preview written to `out_dir`), queued, delivered.

    `announce` hears what opening found before anything is sent; `queue_only` stops after
    queueing, for `newsletter worker` processes to deliver."""
    if not queue_only:
        signing_key(config)  # no key for real mail: refuse before anything is stored
    opened = open_issue(content, store, digest, as_of, force=force, out_dir=out_dir)
    if announce is not None:
        announce(opened)
    if isinstance(opened, Skipped):
        return Outcome(opened)
    queued = store.outbox.queue(opened.stored) if opened.stored.life is IssueState.STORED else None
    if queued == 0 or queue_only:
        return Outcome(opened, queued)
    fresh = store.issues.by_id(opened.stored.id) or opened.stored
    if fresh.life in (IssueState.DONE, IssueState.DONE_WITH_FAILURES):
        return Outcome(opened, queued, SendReport(fresh.name))
    report = deliver(config, store, fresh, stop=stop, progress=progress, started=started, notice=notice)
    report.queued = queued or 0
    return Outcome(replace(opened, stored=fresh), queued, report)


def retry(store: Store, stored: StoredIssue, failed: bool = False) -> list[tuple[str, str, str]]:
    """`newsletter retry`: the issue's deferred and uncertain deliveries due now, and with
    `failed` those failed for good too (for readers still subscribed), Message-IDs kept; a
    done issue is sending again. Returns (address, status, last reply) of each."""
    requeued = store.outbox.requeue(stored.id, failed)
    if requeued:
        store.issues.reopen(stored.id)
    return requeued


def outcome_error(report: SendReport) -> NewsletterError | None:
    """The exit status a send's end deserves, as an error carrying one line (None: all done)."""
    name = report.issue
    if report.stopped and report.remaining:
        return Interrupted(f"stopped with {report.remaining} deliveries left: run `newsletter send` again to finish {name}")
    if report.fault and report.remaining:
        return WorkLeft(
            f"{report.fault}; {report.remaining} deliveries of {name} wait, none used up a try: run "
            "`newsletter send` again later (`newsletter run` does on its own)"
        )
    if report.held and report.held == report.remaining:
        return WorkLeft(
            f"{report.held} TLP:RED deliveries of {name} wait: TLP:RED goes only over TLS; send them with "
            "--transport smtps://HOST:PORT or smtp+starttls://HOST:PORT"
        )
    if report.remaining:
        when = ""
        if report.next_retry is not None:
            when = f"; the next try is due at {report.next_retry.replace(tzinfo=UTC).astimezone():%Y-%m-%d %H:%M:%S %Z}"
        return WorkLeft(
            f"{report.remaining} deliveries of {name} not finished (deferred, uncertain, or held by another "
            f"sender){when}: run `newsletter send` again then (`newsletter run` does on its own)"
        )
    if report.failed:
        return DeliveriesFailed(f"{report.failed} deliveries of {name} failed for good: see `newsletter status {name}`")
    return None


TEST_MARK = "[TEST]"


def test_copy(
    config: Config, content: Content, store: Store, digest: Digest, as_of: datetime, to: Mailbox,
) -> tuple[str, str]:
    """One copy to `to`, outside the outbox: no delivery row, nothing stored. It is the stored
    snapshot when the period has one (what readers get), else the issue composed now.

    Returns the subject and the transport it went through."""
    key, _ = signing_key(config)
    stored = store.issues.get(digest.name, period_of(digest, as_of))
    rendered = rendered_of(stored, config) if stored else compose_issue(content(), digest, as_of)[1]
    rendered = replace(rendered, subject=f"{TEST_MARK} {rendered.subject}")  # a reader's copy never has it
    raw = build_message(
        rendered, config.site, to, unsubscribe_token(key, TEST_SUBSCRIPTION),
        f"<{rendered.issue_id}.test.{secrets.token_hex(8)}@{config.site.domain}>", datetime.now(UTC),
    )
    return rendered.subject, send_single(config, rendered.sender.address, to, raw)
