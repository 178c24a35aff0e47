"""Digests on their schedules: APScheduler jobs, one issue per period, catch-up, clean stop.

The store, not memory, decides what has been done: an issue exists once per (digest, period)
whoever built it, so a restart, a second runner on the same database, or a manual `send`
never makes a second issue. Each fire reloads the content (analysts edit it between fires)
and goes through the same life of an issue as `newsletter send` (usecases/issues.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cache, partial

from apscheduler.schedulers.background import BackgroundScheduler

from ..compose.digest import period_of
from ..delivery.dispatch import SendReport
from ..errors import DigestError, InternalError, NewsletterError, UsageError, display_path, worst
from ..inputs.config import Config, Digest
from ..inputs.cron import Schedule, last_fire, next_fires, trigger
from ..store import IssueState, Store, StoredIssue
from ..delivery.mailboxes import open_inbox
from ..intake.health import survey
from ..usecases import inbound, issues
from ..usecases.build import Project

log = logging.getLogger("newsletter.run")


@dataclass(frozen=True)
class StartDecision:
    """What a runner does on start about a digest's latest scheduled time."""

    action: str  # "catch-up", "skip" (missed beyond grace), "done" (built already) or "none"
    fire: datetime | None


def on_start(schedule: Schedule, now: datetime, grace: timedelta, built: Callable[[datetime], bool]) -> StartDecision:
    """A fire missed while no runner ran is made up if it is at most `grace` late."""
    fire = last_fire(schedule, now)
    if fire is None:
        return StartDecision("none", None)
    if built(fire):
        return StartDecision("done", fire)
    return StartDecision("catch-up" if now - fire <= grace else "skip", fire)


def upcoming(config: Config, now: datetime, count: int = 3) -> list[tuple[Digest, list[datetime]]]:
    """Each scheduled digest with its next `count` fire times (aware, in its own zone)."""
    return [
        (digest, next_fires(trigger(digest.schedule, digest.timezone), now, count))
        for digest in config.digests
        if digest.schedule
    ]


class Runner:
    """Fires the scheduled digests of one config until `stop` is set.

    Every error of a fire becomes log lines and is kept in `errors`, so `run --once` can exit
    with the status the worst of them deserves."""

    def __init__(self, config: Config, stop: threading.Event) -> None:
        self.config = config
        self.stop = stop
        self.scheduled = [d for d in config.digests if d.schedule]
        if not self.scheduled:
            raise UsageError(
                f"no digest in {display_path(config.path)} has a schedule; add `schedule: \"0 7 * * MON\"` to one"
            )
        self.lock = threading.Lock()  # one fire at a time: they share the store and the out folder
        self.errors: list[NewsletterError] = []

    def worst(self) -> NewsletterError | None:
        return worst(self.errors)

    def start_up(self, now: datetime | None = None) -> None:
        """Resume interrupted sends, then make up (or skip) fires missed while nothing ran."""
        now = now or datetime.now(UTC)
        grace = timedelta(seconds=self.config.run.misfire_grace)
        with Store.open(self.config.store_url) as store:
            for digest in self.scheduled:
                if self.stop.is_set():
                    return
                for stored in store.issues.unfinished(digest.name):
                    log.info("resuming %s: %d deliveries left", stored.name, store.outbox.pending(stored.id))
                    self._guarded(digest, partial(self._deliver, store, stored))
                schedule = trigger(digest.schedule or "", digest.timezone)
                decision = on_start(schedule, now, grace, partial(_built, store, digest))
                if decision.action == "catch-up" and decision.fire is not None:
                    earlier = _missed_before(store, digest, schedule, decision.fire)
                    log.info("catching up %s: its %s run was missed%s", digest.name, _when(decision.fire, digest),
                             f" (with {earlier} earlier run{'s' if earlier != 1 else ''}, made up by this one)"
                             if earlier else "")
                    self.fire(digest.name, decision.fire)
                elif decision.action == "skip" and decision.fire is not None:
                    log.warning(
                        "skipped %s-%s: its %s run was missed by %s, beyond the grace of %s",
                        digest.name, period_of(digest, decision.fire), _when(decision.fire, digest),
                        _span(now - decision.fire), _span(grace),
                    )

    def run_forever(self) -> None:
        """Start the scheduler and wait for `stop`; the fire in progress ends cleanly."""
        self.start_up()
        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.add_job(
            self._resume_due, "interval", seconds=self.config.run.retry_every, id="retries", name="retries",
            coalesce=True, max_instances=1,
        )
        if self.config.inbound.configured:
            scheduler.add_job(
                self._read_inbound, "interval", seconds=self.config.inbound.every, id="inbound", name="inbound",
                coalesce=True, max_instances=1,
            )
        if self.config.ingest.every and self.config.ingest.feeds:  # at once, then every `ingest.every`
            scheduler.add_job(
                self._ingest, "interval", seconds=self.config.ingest.every, id="ingest", name="ingest",
                coalesce=True, max_instances=1, next_run_time=datetime.now(UTC),
            )
        for digest in self.scheduled:
            schedule = trigger(digest.schedule or "", digest.timezone)
            scheduler.add_job(
                self._scheduled, schedule, args=(digest.name, schedule), id=digest.name, name=digest.name,
                coalesce=True, max_instances=1, misfire_grace_time=max(1, int(self.config.run.misfire_grace)),
            )
            fires = next_fires(schedule, datetime.now(UTC), 1)
            log.info("scheduled %s: %s, next %s", digest.name, digest.schedule, _when(fires[0], digest) if fires else "never")
        scheduler.start()
        try:
            while not self.stop.wait(0.5):
                pass
        finally:
            log.info("stopping: finishing the message in flight")
            scheduler.shutdown(wait=True)
            log.info("stopped")

    def _resume_due(self) -> None:
        """Every `run.retry_every`: send what has come due of the issues still sending
        (deferred deliveries whose time came, a relay back after an outage)."""
        if self.stop.is_set():
            return
        with Store.open(self.config.store_url) as store:
            for stored in store.issues.unfinished():
                if self.stop.is_set() or not store.outbox.due(stored.id):
                    continue
                digest = next((d for d in self.config.digests if d.name == stored.digest), None)
                if digest is None:
                    continue  # a digest no longer in the config: `newsletter send` with its config sends it
                log.info("retrying %s: %d deliveries due", stored.name, store.outbox.due(stored.id))
                self._guarded(digest, partial(self._deliver, store, stored))

    def _read_inbound(self) -> None:
        """Every `inbound.every`: bounces, complaints and mailto unsubscribes waiting in the
        configured Maildir or IMAP folder."""
        _logging_errors("inbound", "reading inbound mail", self._inbound_once)

    def _inbound_once(self) -> None:
        settings = self.config.inbound
        inbox = open_inbox(settings.maildir, settings.imap, settings.processed_folder,
                           self.config.secrets.imap_password, settings.cafile)
        with Store.open(self.config.store_url) as store:
            try:
                report = inbound.process(self.config, store, inbox, self.stop)
            finally:
                inbox.close()
        if report.seen:
            log.info("inbound: %d messages, %d acted on", report.seen, report.acted)

    def _ingest(self) -> None:
        """Every `ingest.every`: the feeds read into drafts, as `newsletter ingest` does, and a
        warning for each feed that keeps failing or has gone quiet (intake/health.py)."""
        if not self.stop.is_set():
            _logging_errors("ingest", "reading the feeds", self._ingest_once)

    def _ingest_once(self) -> None:
        from ..intake.ingest import ingest  # feedparser and lxml, only for runners that ingest

        now = datetime.now(UTC)
        with self.lock, Store.open(self.config.store_url) as store:  # drafts are content a fire may read
            reports = ingest(self.config, store, now=now)
            surveyed = survey(store, self.config.ingest.feeds, now)
        unread = sum(not r.ok for r in reports)
        log.info(
            "ingest: %d new drafts, %d merged, from %d feeds%s", sum(len(r.drafted) for r in reports),
            sum(len(r.merged) for r in reports), len(reports), f" ({unread} could not be read)" if unread else "",
        )
        for health in surveyed:
            if health.problem:
                log.warning("feed %s: %s", health.feed.name, health.problem)

    def _scheduled(self, digest_name: str, schedule: Schedule) -> None:
        fire = last_fire(schedule, datetime.now(UTC))  # APScheduler does not pass the scheduled time
        if fire is not None and not self.stop.is_set():
            self.fire(digest_name, fire)

    def fire(self, digest_name: str, fire: datetime) -> None:
        """One scheduled run of a digest, as of its scheduled time; errors become log lines."""
        digest = self.config.digest(digest_name)
        log.info("fired %s for %s", digest.name, _when(fire, digest))
        self._guarded(digest, lambda: self._fire(digest, fire))

    def _guarded(self, digest: Digest, work: Callable[[], None]) -> None:
        """Run `work` in this thread with every error caught: one line each in the log."""
        with self.lock:
            try:
                work()
            except NewsletterError as exc:
                self._failed(digest, exc)
            except Exception as exc:  # a bug: one line, the traceback only at DEBUG
                log.debug("%s: traceback", digest.name, exc_info=True)
                self._failed(digest, InternalError(f"running {digest.name}", exc))

    def _failed(self, digest: Digest, error: NewsletterError) -> None:
        self.errors.append(error)
        for line in error.lines():
            log.error("%s: %s", digest.name, line)

    def _fire(self, digest: Digest, fire: datetime) -> None:
        config = self.config
        content = cache(partial(Project.of, config))  # the content as it is now
        with Store.open(config.store_url) as store:
            try:
                opened = issues.open_issue(content, store, digest, fire, out_dir=config.out_dir,
                                           since_written=digest.on_schedule == "write")
            except DigestError as exc:
                log.info("skipped %s-%s: %s", digest.name, period_of(digest, fire), exc)
                return
            if isinstance(opened, issues.Skipped):
                log.info("skipped %s: %s", opened.issue_id, opened.reason)
                return
            stored = opened.stored
            if opened.written:
                folder = opened.files[0].path.parent if opened.files else config.out_dir
                log.info("built %s: %s (%d entries) in %s", stored.name, stored.subject, opened.entries,
                         display_path(folder))
            else:
                log.info("skipped %s: built already at %s", stored.name, stored.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"))
            if stored.life.frozen or digest.on_schedule == "write":
                return
            queued = store.outbox.queue(stored) if stored.life is IssueState.STORED else None
            if queued == 0:
                log.warning("%s: no active subscribers of %s; nothing queued", stored.name, digest.name)
            elif digest.on_schedule == "queue":
                if queued:
                    log.info("queued %s: %d deliveries for `newsletter worker` processes", stored.name, queued)
            else:
                self._deliver(store, store.issues.by_id(stored.id) or stored)

    def _deliver(self, store: Store, stored: StoredIssue) -> None:
        """A stored issue needs the config and the store only, not the content (which may have
        changed, or be broken, since the issue was built)."""
        # No waiting for retries inside a fire: the `retries` job sends them as they come due.
        policy = replace(self.config.delivery.policy, wait_for_retries=0)
        report = issues.deliver(self.config, store, stored, policy=policy, stop=self.stop)
        log.info(
            "sent %s: %d sent, %d failed, %d deferred, %d left%s", report.issue, report.sent, report.failed,
            report.deferred, report.remaining, " (stopped)" if report.stopped else "",
        )
        self._outcome(report)

    def _outcome(self, report: SendReport) -> None:
        error = issues.outcome_error(report)
        if error is not None and not report.stopped:
            self.errors.append(error)
            for line in error.lines():
                log.warning("%s", line)


def _logging_errors(job: str, doing: str, work: Callable[[], None]) -> None:
    """Run a background job's `work` with every error caught: one log line each, `job: ...`."""
    try:
        work()
    except NewsletterError as exc:
        for line in exc.lines():
            log.error("%s: %s", job, line)
    except Exception as exc:  # a bug: one line, the traceback only at DEBUG
        log.debug("%s: traceback", job, exc_info=True)
        log.error("%s: %s", job, " ".join(InternalError(doing, exc).lines()))


def _missed_before(store: Store, digest: Digest, schedule: Schedule, fire: datetime) -> int:
    """Scheduled runs between the last issue and `fire` that never ran (they coalesce)."""
    previous = store.issues.previous(digest.name, fire)
    if previous is None:
        return 0
    since = previous.as_of.replace(tzinfo=UTC)
    return sum(1 for moment in next_fires(schedule, since + timedelta(seconds=1), 1000) if moment < fire)


def _built(store: Store, digest: Digest, fire: datetime) -> bool:
    return store.issues.get(digest.name, period_of(digest, fire)) is not None


def _when(moment: datetime, digest: Digest) -> str:
    return moment.astimezone(digest.zone).strftime(f"%Y-%m-%d %H:%M:%S {digest.timezone}")


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
