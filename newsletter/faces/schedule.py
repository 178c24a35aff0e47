"""Digests on their schedules: APScheduler jobs, one issue per period, catch-up, clean stop.

The store, not memory, decides what has been done: an issue exists once per (digest, period)
whoever built it, so a restart, a second runner on the same database, or a manual `send`
never makes a second issue. Each fire reloads the content (analysts edit it between fires)
and goes through the same code as `newsletter build` and `newsletter send`.
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from ..usecases import sending
from ..usecases.build import Project, write_files
from ..inputs.config import Config, Digest, load_config
from ..inputs.cron import Schedule, last_fire, next_fires, trigger
from ..compose.digest import compose, period_of
from ..errors import DigestError, NewsletterError, display_path
from ..store import Store, StoredIssue

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
    """Fires the scheduled digests of one config file until `stop` is set."""

    def __init__(self, config_path: Path, stop: threading.Event, transport_url: str | None = None) -> None:
        self.config_path = config_path
        self.stop = stop
        self.transport_url = transport_url
        self.config = load_config(config_path)
        self.scheduled = [d for d in self.config.digests if d.schedule]
        if not self.scheduled:
            raise NewsletterError(
                f"no digest in {display_path(config_path)} has a schedule; add `schedule: \"0 7 * * MON\"` to one"
            )
        self.lock = threading.Lock()  # one fire at a time: they share the store and the out folder

    def start_up(self, now: datetime | None = None) -> None:
        """Resume interrupted sends, then make up (or skip) fires missed while nothing ran."""
        now = now or datetime.now(UTC)
        store = Store.open(self.config.store_url)
        grace = timedelta(seconds=self.config.run.misfire_grace)
        for digest in self.scheduled:
            if self.stop.is_set():
                return
            for stored in store.unfinished_issues(digest.name):
                log.info("resuming %s: %d deliveries left", stored.name, store.pending(stored.id))
                self._guarded(digest, partial(self._resume, digest, stored))
            schedule = trigger(digest.schedule or "", digest.timezone)
            decision = on_start(schedule, now, grace, partial(_built, store, digest))
            if decision.action == "catch-up" and decision.fire is not None:
                earlier = _missed_before(store, digest, schedule, decision.fire)
                log.info("catching up %s: its %s run was missed%s", digest.name, _when(decision.fire, digest),
                         f" (with {earlier} earlier run{'s' if earlier != 1 else ''}, made up by this one)" if earlier else "")
                self.fire(digest.name, decision.fire)
            elif decision.action == "skip" and decision.fire is not None:
                late = now - decision.fire
                log.warning(
                    "skipped %s-%s: its %s run was missed by %s, beyond the grace of %s",
                    digest.name, period_of(digest, decision.fire), _when(decision.fire, digest),
                    _span(late), _span(grace),
                )

    def run_forever(self) -> None:
        """Start the scheduler and wait for `stop`; the fire in progress ends cleanly."""
        self.start_up()
        scheduler = BackgroundScheduler(timezone=UTC)
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

    def _scheduled(self, digest_name: str, schedule: Schedule) -> None:
        fire = last_fire(schedule, datetime.now(UTC))  # APScheduler does not pass the scheduled time
        if fire is not None and not self.stop.is_set():
            self.fire(digest_name, fire)

    def fire(self, digest_name: str, fire: datetime) -> None:
        """One scheduled run of a digest, as of its scheduled time; errors become log lines."""
        digest = self.config.digest(digest_name)
        log.info("fired %s for %s", digest.name, _when(fire, digest))
        self._guarded(digest, lambda: self._fire(digest_name, fire))

    def _guarded(self, digest: Digest, work: Callable[[], None]) -> None:
        with self.lock:
            try:
                work()
            except NewsletterError as exc:
                for line in str(exc).splitlines():
                    log.error("%s: %s", digest.name, line)
            except Exception:
                log.exception("%s: unexpected error", digest.name)

    def _fire(self, digest_name: str, fire: datetime) -> None:
        project = Project.load(self.config_path)  # content may have changed since the last fire
        digest = project.config.digest(digest_name)
        store = Store.open(project.config.store_url)
        existing = store.issue(digest.name, period_of(digest, fire))
        if existing is not None:
            log.info("skipped %s: built already at %s", existing.name, existing.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"))
            return
        try:
            issue = compose(project.library, digest, fire)
        except DigestError as exc:
            log.info("skipped %s-%s: %s", digest.name, period_of(digest, fire), exc)
            return
        previous = store.previous_issue(digest.name, fire)
        if digest.when_nothing_new == "skip" and previous is not None and set(issue.contents) <= set(previous.contents):
            log.info("skipped %s: nothing new since %s (when_nothing_new: skip)", issue.id, previous.name)
            return
        rendered = project.renderer.render(issue)
        stored, created = sending.save_issue(store, issue, rendered)
        if created:
            files = write_files(project.config, rendered, fire, project.config.out_dir)
            log.info("built %s: %s (%d entries) in %s", stored.name, stored.subject, len(issue.entries),
                     display_path(files[0].path.parent))
        else:
            log.info("%s was built by another runner at the same time", stored.name)
        if digest.on_schedule == "send":
            self._send(project.config, store, digest, sending.IssueInStore(stored, created, changed_since=False))
        elif digest.on_schedule == "queue":
            queued = store.queue(stored)
            log.info("queued %s: %d deliveries for `newsletter worker` processes", stored.name, queued)

    def _resume(self, digest: Digest, stored: StoredIssue) -> None:
        """A stored issue needs the config and the store only, not the content (which may have
        changed, or be broken, since the issue was built)."""
        config = load_config(self.config_path)
        self._send(config, Store.open(config.store_url), digest, sending.IssueInStore(stored, False, False))

    def _send(self, config: Config, store: Store, digest: Digest, in_store: sending.IssueInStore) -> None:
        report = sending.deliver(config, store, in_store, digest, self.transport_url, stop=self.stop)
        log.info(
            "sent %s: %d sent, %d failed, %d deferred, %d left%s", report.issue, report.sent, report.failed,
            report.deferred, report.remaining, " (stopped)" if report.stopped else "",
        )


def _missed_before(store: Store, digest: Digest, schedule: Schedule, fire: datetime) -> int:
    """Scheduled runs between the last issue and `fire` that never ran (they coalesce)."""
    previous = store.previous_issue(digest.name, fire)
    if previous is None:
        return 0
    since = previous.as_of.replace(tzinfo=UTC)
    return sum(1 for moment in next_fires(schedule, since + timedelta(seconds=1), 1000) if moment < fire)


def _built(store: Store, digest: Digest, fire: datetime) -> bool:
    return store.issue(digest.name, period_of(digest, fire)) is not None


def _when(moment: datetime, digest: Digest) -> str:
    return moment.astimezone(digest.zone).strftime(f"%Y-%m-%d %H:%M:%S {digest.timezone}")


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
