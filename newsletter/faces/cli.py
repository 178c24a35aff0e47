"""The `newsletter` command: parse options, call the core, print results.

Commands never choose an exit status: each outcome worth one is a NewsletterError (errors.py)
that carries it, and `NewsletterGroup.invoke` is the one place that turns any of them (and any
unexpected exception) into its lines on stderr and that status, as click does for its own.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache, partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from ..compose.digest import moment, parse_as_of
from ..errors import (
    EXIT_FAILED, EXIT_INTERRUPTED, EXIT_SOFTWARE, EXIT_TEMPFAIL, EXIT_USAGE, Exited, InternalError, Interrupted,
    Invalid, NewsletterError, UsageError, WorkLeft, display_path, worst,
)
from ..inputs.addresses import normalize_address
from ..inputs.config import Config, Digest, Mailbox, load_config
from ..inputs.marking import TLP_LEVELS, label as tlp_label
from ..inputs.secrets import LOG_LEVEL_ENV
from ..compose.stix import dumps as stix_dumps
from ..usecases.build import Project, clip_warning, preview, write_atomically
from ..usecases.check import check_project

# The store (SQLAlchemy), sending and the scheduler are imported by the commands that use them:
# importing them all took `check` and `build` 0.4 s, as long as reading 5,000 timeline entries.
if TYPE_CHECKING:
    from ..delivery.dispatch import SendReport
    from ..store import Store, StoredIssue, Subscriber
    from ..usecases import issues


class Failure(click.ClickException):
    """A NewsletterError on its way out: its lines on stderr, its exit status, no traceback."""

    def __init__(self, error: NewsletterError) -> None:
        super().__init__(str(error))
        self.error = error
        # click declares exit_code on the class; ours varies with the error it carries.
        setattr(self, "exit_code", error.exit_code)

    def show(self, file: IO[Any] | None = None) -> None:
        for line in self.error.lines():
            click.echo(line, err=True)


class NewsletterGroup(click.Group):
    """The command group that maps every error to one status: the only place that does."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except NewsletterError as exc:
            raise Failure(exc) from None
        except KeyboardInterrupt:
            raise Failure(Interrupted("interrupted: run the command again to go on where it stopped")) from None
        except Exception as exc:
            if os.environ.get(LOG_LEVEL_ENV, "").upper() == "DEBUG":
                traceback.print_exc()
            name = ctx.invoked_subcommand or ctx.info_name or "newsletter"
            raise Failure(InternalError(f"newsletter {name}", exc)) from None


class AsOf(click.ParamType["date | datetime"]):
    """A day (2022-07-26) or a moment (2022-07-26T07:00+03:00)."""

    name = "DATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date | datetime:
        if isinstance(value, (date, datetime)):
            return value
        try:
            return parse_as_of(value)
        except NewsletterError as exc:
            self.fail(str(exc), param, ctx)


@dataclass
class Session:
    """What every command shares: the config file, read and checked at most once."""

    config_path: Path
    loaded: list[Config] = field(default_factory=list)

    @property
    def config(self) -> Config:
        if not self.loaded:
            self.loaded.append(load_config(self.config_path))
        return self.loaded[0]

    def store(self) -> Store:
        from ..store import Store

        return Store.open(self.config.store_url)


pass_session = click.make_pass_decorator(Session)


def _human_size(size: int) -> str:
    return f"{size / 1024:.1f} KB" if size >= 1024 else f"{size} B"


def _now() -> datetime:
    return datetime.now(UTC)


@click.group(cls=NewsletterGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), default=Path("config.yaml"),
    envvar="NEWSLETTER_CONFIG", show_default=True, help="The config file to use.",
)
@click.version_option(package_name="threat-brief-newsletter")
@click.pass_context
def cli(ctx: click.Context, config_path: Path) -> None:
    """Turn threat briefs and an incident timeline into an email newsletter."""
    ctx.obj = Session(config_path)


@cli.command()
@click.option("--digest", "digest_name", metavar="NAME", help="Build only this digest (default: all).")
@click.option("--as-of", "as_of", type=AsOf(), help="Compose the issue as of this day or moment (default: now).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), help="Write under this folder (default: `out` in config.yaml).")
@pass_session
def build(session: Session, digest_name: str | None, as_of: date | datetime | None, out_dir: Path | None) -> None:
    """Write an issue's digest.html, digest.txt and a sample digest.eml."""
    config = session.config
    now = _now()
    wanted = [(digest, moment(as_of or now, digest)) for digest in config.selected(digest_name)]
    project = Project.for_issues(config, wanted)
    for digest, when in wanted:
        written = preview(project, digest, when, out_dir or config.out_dir)
        click.echo(f"{written.issue.id}: {written.rendered.subject}")
        for file in written.files:
            click.echo(f"  {display_path(file.path)}  {_human_size(file.size)}")
        warning = clip_warning(written.html_bytes)
        if warning:
            click.echo(f"warning: {warning}", err=True)


@cli.command()
@click.option("--as-of", "as_of", type=AsOf(), help="Compose digests as of this day or moment (default: now, as `build` does).")
@pass_session
def check(session: Session, as_of: date | datetime | None) -> None:
    """Validate config, content and templates; print every problem as file:line: field: message."""
    report = check_project(session.config_path, _now(), as_of)
    for note in report.notes:
        click.echo(note)
    for warning in report.warnings:
        click.echo(f"warning: {warning}")
    for problem in report.problems:
        click.echo(problem)
    if report.problems:
        count = len(report.problems)
        raise UsageError(f"{count} problem{'s' if count != 1 else ''} found")
    click.echo("ok")


# --- sending -------------------------------------------------------------------------------------

@dataclass
class Stop:
    """Set by SIGTERM or SIGINT: the send stops after the message on the wire."""

    event: threading.Event = field(default_factory=threading.Event)
    signal: int | None = None  # which one asked first


@contextmanager
def stop_on_signals(announce: bool = True) -> Iterator[Stop]:
    """SIGTERM and SIGINT ask the work to stop after the message on the wire; a second one
    stops at once."""
    stop = Stop()

    def ask(signum: int, _frame: object) -> None:
        if stop.event.is_set():
            raise KeyboardInterrupt
        if announce:
            click.echo(f"\n{signal.Signals(signum).name}: finishing the message in flight, then stopping", err=True)
        stop.signal = signum
        stop.event.set()

    previous = {sig: signal.signal(sig, ask) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@cli.command()
@click.option("--digest", "digest_name", metavar="NAME", help="Send only this digest (default: all).")
@click.option("--as-of", "as_of", type=AsOf(), help="Send the issue of the period of this day or moment (default: now).")
@click.option("--dry-run", is_flag=True, help="Build the issue and count recipients; send and record nothing.")
@click.option("--to", "to_address", metavar="ADDRESS", help="Send one test copy to ADDRESS; deliveries are left alone.")
@click.option("--transport", "transport_url", metavar="URL", help="file:DIR, smtp://HOST:PORT, smtps://HOST:PORT or smtp+starttls://HOST:PORT (default: config.yaml).")
@click.option("--queue-only", is_flag=True, help="Build the issue and queue its deliveries for `newsletter worker`; send nothing.")
@click.option("--workers", type=click.IntRange(1, 64), help="Send with N local worker processes instead of this one.")
@click.option("--force", is_flag=True, help="Send even when nothing is new since the last issue (when_nothing_new: skip).")
@pass_session
def send(
    session: Session, digest_name: str | None, as_of: date | datetime | None, dry_run: bool,
    to_address: str | None, transport_url: str | None, queue_only: bool, workers: int | None, force: bool,
) -> None:
    """Send an issue to every active subscriber, once; run again to resume."""
    from ..usecases.sending import signing_key

    config = session.config.with_transport(transport_url)
    digests = config.selected(digest_name)
    content = cache(partial(Project.of, config))
    if to_address is not None or dry_run:
        for digest in digests:
            _one_off(config, content, session, digest, moment(as_of or _now(), digest), to_address)
        return
    _, warning = signing_key(config)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    ends: list[NewsletterError] = []
    queued_issues: list[StoredIssue] = []
    with session.store() as store:
        for digest in digests:
            when = moment(as_of or _now(), digest)
            if queue_only or workers:
                stored = _queue(config, content, store, digest, when, force)
                if stored is not None:
                    queued_issues.append(stored)
            else:
                end = _send(config, content, store, digest, when, force)
                if end is not None:
                    ends.append(end)
    if workers:
        ends.extend(_run_workers(session.config_path, workers, transport_url, queued_issues, config))
    elif queue_only and queued_issues:
        click.echo("start `newsletter worker` processes to send them")
    error = worst(ends)
    if error is not None:
        raise error


def _one_off(config: Config, content: issues.Content, session: Session, digest: Digest, when: datetime,
             to_address: str | None) -> None:
    """`--to` (a test copy) and `--dry-run`: nothing recorded."""
    from ..store import IssueState
    from ..usecases import issues

    with session.store() as store:
        if to_address is not None:
            recipient = Mailbox("", normalize_address(to_address))
            subject, via = issues.test_copy(config, content, store, digest, when, recipient)
            click.echo(f"test copy of {digest.name} sent to {recipient.address} via {via}: {subject}")
            return
        issue, rendered = issues.compose_issue(content(), digest, when)
        stored = store.issues.get(digest.name, issue.period)
        if stored is not None and stored.life is not IssueState.STORED:
            count, what = store.outbox.pending(stored.id), "deliveries still to send"
        else:
            count, what = store.subscribers.count_recipients(digest.name), "active subscribers would receive it"
    click.echo(f"{issue.id}: {rendered.subject}")
    click.echo(f"  {count} {what}, via {config.endpoint().name}; nothing was sent or recorded (dry run)")


def _opened_lines(opened: issues.Opened | issues.Skipped) -> issues.Opened | None:
    """Print what `open_issue` found; the opened issue, or None when it was skipped."""
    from ..store import IssueState
    from ..usecases import issues

    if isinstance(opened, issues.Skipped):
        click.echo(f"{opened.issue_id}: skipped: {opened.reason}; `--force` sends it anyway")
        return None
    stored = opened.stored
    if stored.life in (IssueState.DONE, IssueState.DONE_WITH_FAILURES):
        note = f" ({stored.life.label}: sent already)"
    else:
        note = "" if opened.written or stored.life is IssueState.STORED else " (resuming the stored issue)"
    if opened.changed_since:
        note += "; content changed since it was built, the stored version is sent"
    click.echo(f"{stored.name}: {stored.subject}{note}")
    if opened.files:
        click.echo(f"  preview in {display_path(opened.files[0].path.parent)}/")
    return opened


def _queue(config: Config, content: issues.Content, store: Store, digest: Digest, when: datetime,
           force: bool) -> StoredIssue | None:
    from ..usecases import issues

    outcome = issues.send(config, content, store, digest, when, force=force, queue_only=True, out_dir=config.out_dir)
    opened = _opened_lines(outcome.opened)
    if opened is None:
        return None
    if outcome.no_recipients:
        click.echo(f"  no active subscribers of {digest.name}: nothing queued")
        return None
    click.echo(f"  {outcome.queued or 0} deliveries queued, {store.outbox.pending(opened.stored.id)} to send")
    return opened.stored


def _send(config: Config, content: issues.Content, store: Store, digest: Digest, when: datetime,
          force: bool) -> NewsletterError | None:
    """One digest's send, with a progress bar on a terminal (a line every 10 s elsewhere);
    what its end deserves."""
    from ..usecases import issues

    with ExitStack() as cleanup:
        progress = cleanup.enter_context(Progress(store))
        stop = cleanup.enter_context(stop_on_signals())
        outcome = issues.send(
            config, content, store, digest, when, force=force, stop=stop.event, progress=progress.advance,
            started=progress.start, out_dir=config.out_dir, notice=progress.notice, announce=_opened_lines,
        )
    if isinstance(outcome.opened, issues.Skipped):
        return None
    if outcome.no_recipients:
        click.echo(f"  no active subscribers of {digest.name}: nothing queued; the next `newsletter send` "
                   "in this period sends the issue")
        return None
    return _summary(outcome.report) if outcome.report is not None else None


def _summary(report: SendReport) -> NewsletterError | None:
    """The line a send ends with, its errors, and the exit status it deserves."""
    from ..usecases import issues

    rate = f" ({report.sent / report.seconds:.0f}/s)" if report.seconds and report.sent else ""
    extra = [f"{report.uncertain} uncertain (sent, no answer: tried again later)"] if report.uncertain else []
    if report.bounced:
        extra.append(f"{report.bounced} addresses marked bounced")
    click.echo(
        f"  {report.sent} sent, {report.failed} failed, {report.deferred} deferred, "
        f"{report.remaining} left{rate}" + "".join(f", {part}" for part in extra)
    )
    for error in report.errors[:10]:
        click.echo(f"  {error}", err=True)
    if len(report.errors) > 10:
        click.echo(f"  ... and {len(report.errors) - 10} more: see `newsletter status {report.issue}`", err=True)
    return issues.outcome_error(report)


class Progress:
    """How a send shows it is alive: a bar on a terminal, else a line on stderr every 10 s
    (from the store, so it counts every sender of the issue), and each wait for a retry."""

    EVERY = 10.0

    def __init__(self, store: Store, issues_to_watch: list[StoredIssue] | None = None) -> None:
        self.store = store
        self.watched = list(issues_to_watch or [])
        self.tty = sys.stdout.isatty()
        self.bar: Any = None
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.ticker: threading.Thread | None = None

    def __enter__(self) -> Progress:
        if self.watched:  # issues other processes send (`--workers`): a line every 10 s, terminal or not
            self._tick_from_now()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self.ticker is not None:
            self.ticker.join()
        if self.bar is not None:
            self.bar.render_finish()

    def start(self, stored: StoredIssue, pending: int) -> None:
        if self.tty and pending:
            self.bar = click.progressbar(length=pending, label="sending", show_pos=True, show_eta=True)
            self.bar.render_progress()
        elif not self.tty:
            self.watched.append(stored)
            self._tick_from_now()

    def advance(self, count: int) -> None:
        with self.lock:
            if self.bar is not None:
                self.bar.update(count)

    def notice(self, text: str) -> None:
        click.echo(f"  {text}", err=True)

    def _tick_from_now(self) -> None:
        if self.ticker is None:
            self.ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self.ticker.start()

    def _tick(self) -> None:
        while not self.done.wait(self.EVERY):
            for stored in list(self.watched):
                counts = self.store.status.counts(stored.id)
                left = counts["queued"] + counts["deferred"] + counts["uncertain"]
                click.echo(f"  {stored.name}: {counts['sent']} sent, {counts['failed']} failed, "
                           f"{counts['deferred']} deferred, {counts['uncertain']} uncertain, {left} left", err=True)


def _run_workers(config_path: Path, count: int, transport_url: str | None, queued: list[StoredIssue],
                 config: Config) -> list[NewsletterError]:
    """N `newsletter worker --until-idle` processes, waited for; then what they sent."""
    from ..store import Store

    command = [sys.executable, "-m", "newsletter", "--config", str(config_path), "worker", "--until-idle"]
    if transport_url:
        command += ["--transport", transport_url]
    started = time.monotonic()
    processes = [subprocess.Popen(command) for _ in range(count)]
    with Store.open(config.store_url) as store, Progress(store, queued), stop_on_signals() as stop:
        while any(p.poll() is None for p in processes):
            if stop.event.is_set():
                for process in processes:
                    if process.poll() is None:
                        process.send_signal(signal.SIGTERM)
            stop.event.wait(0.5)
    seconds = time.monotonic() - started
    ends: list[NewsletterError] = []
    with Store.open(config.store_url) as store:
        for stored in queued:
            counts = store.status.counts(stored.id)
            left = counts["queued"] + counts["deferred"]
            click.echo(f"  {stored.name}: {counts['sent']} sent, {counts['failed']} failed, "
                       f"{left} left, by {count} workers in {seconds:.1f} s")
    if stop.signal is not None:
        ends.append(Interrupted("stopped: run `newsletter send` or `newsletter worker` again to finish"))
    for status in sorted({p.returncode for p in processes if p.returncode}):
        known = status if status in (EXIT_FAILED, EXIT_USAGE, EXIT_SOFTWARE, EXIT_TEMPFAIL, EXIT_INTERRUPTED) else EXIT_SOFTWARE
        ends.append(Exited(f"a worker ended with exit status {status}: see its lines above", known))
    return ends


def _named_issue(store: Store, issue_name: str | None) -> StoredIssue:
    stored = store.issues.by_name(issue_name) if issue_name else store.issues.latest()
    if stored is None:
        raise UsageError(f"no issue named {issue_name}" if issue_name else "no issue has been sent yet")
    return stored


@cli.command()
@click.argument("issue_name", metavar="[ISSUE]", required=False)
@click.option("--failed", is_flag=True, help="Also re-queue deliveries that failed for good (to readers still subscribed).")
@click.option("--transport", "transport_url", metavar="URL", help="Send through this transport instead of config.yaml's.")
@pass_session
def retry(session: Session, issue_name: str | None, failed: bool, transport_url: str | None) -> None:
    """Try an issue's deferred and uncertain deliveries now (with --failed, its failed ones too),
    keeping their Message-IDs, and send them."""
    from ..usecases import issues
    from ..usecases.sending import signing_key

    config = session.config.with_transport(transport_url)
    signing_key(config)
    with session.store() as store:
        stored = _named_issue(store, issue_name)
        requeued = issues.retry(store, stored, failed)
        for address, state, error in requeued:
            click.echo(f"  {address} ({state}): {error or 'no reply recorded'}")
        click.echo(f"{stored.name}: {len(requeued)} deliveries to try again")
        if not requeued:
            return
        with ExitStack() as cleanup:
            progress = cleanup.enter_context(Progress(store))
            stop = cleanup.enter_context(stop_on_signals())
            fresh = store.issues.by_id(stored.id) or stored
            report = issues.deliver(config, store, fresh, stop=stop.event, progress=progress.advance,
                                    started=progress.start, notice=progress.notice)
    end = _summary(report)
    if end is not None:
        raise end


@cli.command()
@click.argument("issue_name", metavar="[ISSUE]", required=False)
@click.option("--feeds", "feeds", is_flag=True, help="The health of each feed under `ingest: feeds:` instead of an issue.")
@pass_session
def status(session: Session, issue_name: str | None, feeds: bool) -> None:
    """Show deliveries per status and the last errors of an issue (default: the latest), or
    with --feeds each feed's last success, last failure and last new item, and its health."""
    if feeds:
        if issue_name:
            raise UsageError(f"give an issue or --feeds, not both (found {issue_name})")
        _feeds_status(session)
        return
    with session.store() as store:
        stored = _named_issue(store, issue_name)
        counts = store.status.counts(stored.id)
        click.echo(f"{stored.name}: {stored.subject} ({stored.life.label})")
        click.echo("  " + "  ".join(f"{name} {count}" for name, count in counts.items()))
        tiers = store.status.tiers(stored.id)
        if any(tier != "clear" for tier in tiers):  # per TLP clearance, once readers are cleared above CLEAR
            for tier, by_status in tiers.items():
                click.echo(f"  {tlp_label(tier)}: " + "  ".join(
                    f"{name} {by_status[name]}" for name in counts if by_status.get(name)))
        workers = store.status.progress(stored.id)
        if workers:
            total = sum(w.rate for w in workers)
            click.echo(f"  senders ({total:.0f} messages/s together, within the last minute):")
            for worker in workers:
                click.echo(f"    {worker.worker}: {worker.sent} sent, {worker.rate:.0f}/s, holding {worker.holding}")
        came_back = store.history.per_issue(stored.id)
        returned = store.returns.counts(stored.id)
        if came_back or returned:
            parts = [f"{came_back[kind]} {label}" for kind, label in (
                ("bounce", "bounces"), ("soft-bounce", "soft bounces"), ("bounced", "addresses marked bounced"),
                ("complaint", "complaints"), ("unsubscribed", "unsubscribes"),
            ) if came_back[kind]]
            if returned["kept aside"]:
                parts.append(f"{returned['kept aside']} messages kept aside")
            click.echo("  came back: " + (", ".join(parts) or "nothing acted on"))
        errors = store.status.last_errors(stored.id)
        if errors:
            click.echo("  last errors:")
            for address, delivery_status, error in errors:
                click.echo(f"    {address} ({delivery_status}): {error}")


def _feeds_status(session: Session) -> None:
    """One line per configured feed (tab-separated, as lists are): its runs and its health."""
    from ..intake.health import survey, when

    config = session.config
    with session.store() as store:
        surveyed = survey(store, config.ingest.feeds, _now())
    for health in surveyed:
        record = health.record
        failure = f"{when(record.failed_at)} ({record.failure})" if record.failed_at else "never"
        click.echo("\t".join((
            health.feed.name, health.feed.kind, f"last ok {when(record.succeeded_at)}", f"last failure {failure}",
            f"{record.failures_in_row} failures in a row", f"last new item {when(record.new_at)}",
            health.problem or ("healthy" if record.ever_ran else "not run yet"),
        )))
    unhealthy = sum(not h.healthy for h in surveyed)
    click.echo(f"{len(surveyed)} feed{'s' if len(surveyed) != 1 else ''}, {unhealthy} unhealthy", err=True)


# --- workers and the scheduler ------------------------------------------------------------------

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"  # the README shows lines of this form
LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT, datefmt=LOG_DATE_FORMAT, stream=sys.stderr, force=True)
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLevelName(level)))


def _service_end(stop: Stop, error: NewsletterError | None) -> None:
    """How a long-running face ends: SIGTERM is its normal stop (0), SIGINT an interruption."""
    if stop.signal == signal.SIGINT:
        raise Interrupted("interrupted: start it again to go on")
    if stop.signal is None and error is not None:
        raise error


@cli.command()
@click.option("--transport", "transport_url", metavar="URL", help="Send through this transport instead of config.yaml's.")
@click.option("--batch", default=50, show_default=True, type=click.IntRange(1, 10000), help="Deliveries claimed at a time.")
@click.option("--until-idle", is_flag=True, help="Exit once nothing is due (default: keep waiting for work).")
@pass_session
def worker(session: Session, transport_url: str | None, batch: int, until_idle: bool) -> None:
    """Send queued deliveries, side by side with any number of other workers on the same store."""
    from ..usecases import issues
    from ..usecases.sending import signing_key
    from .worker import work

    config = session.config.with_transport(transport_url)
    signing_key(config)  # refuse at once, not at the first issue
    _configure_logging(config.run.log_level)
    with stop_on_signals(announce=False) as stop:
        report = work(config, stop.event, batch, until_idle)
    logging.getLogger("newsletter.worker").info(
        "worker done: %d sent, %d failed, %d deferred, %d left", report.sent, report.failed, report.deferred,
        report.remaining,
    )
    report.stopped = False  # a worker's stop is its normal end; _service_end reads the signal
    _service_end(stop, issues.outcome_error(report) if until_idle else None)


@cli.command("run")
@click.option("--once", is_flag=True, help="Do what is due now (resume sends, make up a fire missed within the grace) and exit.")
@click.option("--transport", "transport_url", metavar="URL", help="Send through this transport instead of config.yaml's.")
@pass_session
def run_command(session: Session, once: bool, transport_url: str | None) -> None:
    """Fire each digest on its schedule until SIGTERM or Ctrl-C (or once, for cron or a timer)."""
    from .schedule import Runner

    config = session.config.with_transport(transport_url)
    _configure_logging(config.run.log_level)
    with stop_on_signals(announce=False) as stop:  # the runner logs it
        runner = Runner(config, stop.event)
        if once:
            runner.start_up()
        else:
            runner.run_forever()
    _service_end(stop, runner.worst())


@cli.command("schedule")
@pass_session
def schedule_command(session: Session) -> None:
    """List each scheduled digest's next three runs, in its own time zone and in UTC."""
    from .schedule import upcoming

    config = session.config
    listed = upcoming(config, _now())
    for digest in config.digests:
        if not digest.schedule:
            click.echo(f"{digest.name}: no schedule (add `schedule:` to run it with `newsletter run`)")
    for digest, fires in listed:
        click.echo(f"{digest.name}: {digest.schedule} ({digest.timezone}), {digest.on_schedule} on schedule")
        for fire in fires:
            local = fire.astimezone(digest.zone)
            utc = fire.astimezone(UTC)
            click.echo(f"  {local:%a %Y-%m-%d %H:%M:%S %z}   {utc:%Y-%m-%d %H:%M:%S} UTC")


# --- the web app ---------------------------------------------------------------------------------

def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, or UsageError saying why it cannot be (a busy port)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        hint = "; stop what uses it or choose another with --port" if exc.errno == 98 else ""
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
    return sock


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback unless told otherwise).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@pass_session
def serve(session: Session, host: str, port: int) -> None:
    """Serve subscribe, confirm and unsubscribe pages, the preview, the archive and the feed."""
    import uvicorn

    from .web import create_app

    app = create_app(session.config, bound_host=host)
    site = app.state.site
    if site.key_warning:
        click.echo(f"warning: {site.key_warning}", err=True)
    sock = listening_socket(host, port)
    bound = sock.getsockname()[1]
    click.echo(f"serving http://{host}:{bound}/ (links in messages point to {site.config.site.base_url})", err=True)
    click.echo(site.editors.notice(), err=True)
    proxies = site.config.web.trusted_proxies
    click.echo(f"believing X-Forwarded-For and X-Forwarded-Proto from {', '.join(proxies)}" if proxies else
               "ignoring X-Forwarded-For and X-Forwarded-Proto (no web.trusted_proxies)", err=True)
    # uvicorn's own proxy handling is off: it would believe any client on loopback. The app
    # believes only web.trusted_proxies (create_app).
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", server_header=False, proxy_headers=False))
    server.run(sockets=[sock])


# --- what comes back ---------------------------------------------------------------------------------

@cli.command()
@click.option("--maildir", type=click.Path(path_type=Path, file_okay=False), help="Read every new message of this Maildir.")
@click.option("--imap", "imap_url", metavar="URL", help="Read the unseen messages of imaps://USER@HOST/FOLDER (password in NEWSLETTER_IMAP_PASSWORD).")
@click.option("--watch", is_flag=True, help="Keep looking (every `inbound.every` seconds, or --every) until SIGTERM or Ctrl-C.")
@click.option("--every", type=click.FloatRange(min=1), help="Seconds between looks with --watch.")
@pass_session
def inbound(session: Session, maildir: Path | None, imap_url: str | None, watch: bool, every: float | None) -> None:
    """Read bounces, complaints and mailto unsubscribes (one message on standard input by
    default, as an MTA's pipe hands it over) and act on those that name a message of ours."""
    from ..delivery.mailboxes import open_inbox
    from ..usecases.inbound import process

    config = session.config
    _configure_logging(config.run.log_level)
    settings = config.inbound
    if watch and maildir is None and imap_url is None:
        maildir, imap_url = settings.maildir, settings.imap
        if maildir is None and imap_url is None:
            raise UsageError("--watch needs --maildir or --imap, or `inbound: maildir:` (or `imap:`) in config.yaml")
    piped = maildir is None and imap_url is None
    try:
        with session.store() as store, stop_on_signals(announce=False) as stop:
            while True:
                try:
                    inbox = open_inbox(maildir, imap_url, settings.processed_folder, config.secrets.imap_password,
                                       settings.cafile)
                    try:
                        report = process(config, store, inbox, stop.event)
                    finally:
                        inbox.close()
                except NewsletterError as exc:
                    if not watch or piped:
                        raise
                    for line in exc.lines():  # the IMAP server away, say: try again at the next look
                        logging.getLogger("newsletter.inbound").error("%s", line)
                else:
                    if not piped:
                        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(report.kinds.items())) or "nothing new"
                        click.echo(f"{inbox.name}: {report.seen} messages ({kinds}), {report.acted} acted on", err=True)
                if not watch or stop.event.wait(every or settings.every):
                    break
    except NewsletterError as exc:
        if piped:  # the MTA keeps the message and hands it over again later
            raise WorkLeft(f"the message was not recorded ({' '.join(exc.lines())}); the MTA will try again") from None
        raise
    if stop.signal == signal.SIGINT:
        raise Interrupted("interrupted: start it again to go on")


# --- fresh content: feeds, imports, drafts --------------------------------------------------------

@cli.command()
@click.option("--feed", "feed_names", metavar="NAME", multiple=True, help="Read only this feed; repeat for several.")
@pass_session
def ingest(session: Session, feed_names: tuple[str, ...]) -> None:
    """Read the feeds in config.yaml and draft a timeline entry for each new matching item;
    warn of each feed that keeps failing or has brought nothing new for its `quiet_after`."""
    from ..intake.health import survey
    from ..intake.ingest import ingest as run_ingest

    config = session.config
    feeds = config.ingest.feeds
    if not feeds:
        raise UsageError(f"no feeds under `ingest: feeds:` in {display_path(session.config_path)}")
    unknown = [n for n in feed_names if n not in {f.name for f in feeds}]
    if unknown:
        raise UsageError(f"unknown feed {', '.join(unknown)} (known: {', '.join(f.name for f in feeds)})")
    chosen = [f for f in feeds if not feed_names or f.name in feed_names]
    now = _now()
    with session.store() as store:
        reports = run_ingest(config, store, chosen, now=now)
        surveyed = survey(store, chosen, now)
    failed = 0
    for report in reports:
        if not report.ok:
            failed += 1
            click.echo(f"{report.feed}: {report.status}", err=True)
            continue
        click.echo(
            f"{report.feed}: {report.status}, {report.items} items, {report.matched} matched, "
            f"{len(report.drafted)} new drafts, {len(report.merged)} merged, {report.known} known"
        )
        for identifier in report.kept_edits:
            click.echo(f"  {identifier}: edited by hand, left as it is", err=True)
    drafted = sum(len(r.drafted) for r in reports)
    if drafted:
        click.echo(f"{drafted} new drafts: see `newsletter drafts list`")
    for health in surveyed:
        if health.problem:
            click.echo(f"warning: feed {health.feed.name}: {health.problem}", err=True)
    if failed:
        raise WorkLeft(f"{failed} of {len(reports)} feeds could not be read; run `newsletter ingest` again later")


@cli.command("import")
@click.argument("source", metavar="FILE_OR_URL")
@click.option("--url", "url", metavar="URL", help="The address a saved file came from (its source in the drafts).")
@click.option("--published", "published", type=click.DateTime(["%Y-%m-%d"]), metavar="DATE",
              help="The publication date, when the page, its address and its date lines give none.")
@pass_session
def import_command(session: Session, source: str, url: str | None, published: datetime | None) -> None:
    """Draft a brief and dated timeline entries from one article (HTML, Markdown or text)."""
    from ..intake.importer import import_article

    config = session.config
    if url is not None and urlsplit(url).scheme not in ("http", "https"):
        raise UsageError(f"--url {url}: give the article's http(s) address")
    result = import_article(source, config.content_dir, Path.cwd(), date.today(), timeout=config.ingest.timeout,
                            url=url, published=published.date() if published else None)
    click.echo(f"brief draft: {display_path(result.brief)} ({result.key_points} key points)")
    for path in result.entries:
        click.echo(f"entry draft: {display_path(path)}")
    for line in result.skipped:
        click.echo(f"skipped: {line}", err=True)
    click.echo(f"{len(result.entries)} dated events drafted: review them with `newsletter drafts list`")


@cli.group()
def drafts() -> None:
    """Review drafts: list them, approve one into the content, or reject it."""


@drafts.command("list")
@pass_session
def drafts_list(session: Session) -> None:
    """Every draft: id, kind, date, title, and whether it is trusted, edited or has problems."""
    from ..intake.drafts import all_drafts

    found = all_drafts(session.config.content_dir)
    for draft in found:
        marks = [m for m, on in (("trusted", draft.trusted), ("edited", draft.edited and draft.kind == "entry"),
                                 ("has problems", bool(draft.problems))) if on]
        click.echo("\t".join((draft.id, draft.kind, draft.date or "-", draft.title, ", ".join(marks) or "-")))
        for problem in draft.problems:
            click.echo(f"  {problem}", err=True)
    click.echo(f"{len(found)} draft{'s' if len(found) != 1 else ''}", err=True)


@drafts.command("approve")
@click.argument("draft_id", metavar="ID")
@click.option("--into", type=click.Path(path_type=Path, dir_okay=False), help="Timeline file to add an entry to (default: content/timeline/approved.yaml).")
@pass_session
def drafts_approve(session: Session, draft_id: str, into: Path | None) -> None:
    """Publish a draft: it must pass every check, or nothing changes."""
    from ..intake.drafts import approve

    target = approve(session.config.content_dir, draft_id, into)
    click.echo(f"approved {draft_id}: now in {display_path(target)}")


@drafts.command("reject")
@click.argument("draft_id", metavar="ID")
@pass_session
def drafts_reject(session: Session, draft_id: str) -> None:
    """Drop a draft (an entry's sources are remembered so it is not proposed again)."""
    from ..intake.drafts import reject

    reject(session.config.content_dir, draft_id)
    click.echo(f"rejected {draft_id}")


# --- subscribers ---------------------------------------------------------------------------------

@cli.group("export")
def export_group() -> None:
    """Write issues and the timeline as data: STIX 2.1 bundles and a MISP feed."""


tlp_option = click.option(
    "--tlp", type=click.Choice(TLP_LEVELS), default="clear", show_default=True,
    help="Export only what is marked at or below this TLP level; nothing above it leaves.",
)


@export_group.command("stix")
@click.argument("issue_name", metavar="[ISSUE]", required=False)
@click.option("--timeline", is_flag=True, help="The whole timeline (a grouping of events) instead of an issue.")
@click.option("--digest", "digest_name", metavar="NAME", help="The digest whose current issue to export (default: the first).")
@click.option("--as-of", "as_of", type=AsOf(), help="The issue as of this day or moment (default: now).")
@tlp_option
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write here (default: standard output).")
@pass_session
def export_stix(session: Session, issue_name: str | None, timeline: bool, digest_name: str | None,
                as_of: date | datetime | None, tlp: str, output: Path | None) -> None:
    """A STIX 2.1 bundle of an issue (ISSUE as stored, e.g. weekly-2022-W30) or the timeline."""
    from ..usecases import export

    config = session.config
    project = Project.of(config)
    if timeline:
        bundle = export.timeline_bundle(project, tlp)
    elif issue_name:
        with session.store() as store:
            stored = store.issues.by_name(issue_name)
        if stored is None:
            raise UsageError(f"no issue {issue_name} in the store: give one that `send` or `run` made, or none "
                             "for the current issue")
        bundle = export.issue_bundle(project, config.digest(stored.digest), stored.as_of.replace(tzinfo=UTC), tlp)
    else:
        digest = config.selected(digest_name)[0]
        bundle = export.issue_bundle(project, digest, moment(as_of or _now(), digest), tlp)
    _write_out(stix_dumps(bundle), output)
    click.echo(f"{len(bundle['objects'])} STIX objects, at or below {tlp_label(tlp)}"
               + (f": {display_path(output)}" if output else ""), err=True)


@export_group.command("misp")
@tlp_option
@click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False), default=Path("out/misp"),
              show_default=True, help="The feed folder to write.")
@pass_session
def export_misp(session: Session, tlp: str, output: Path) -> None:
    """A MISP feed folder: an event per brief and timeline entry, manifest.json and hashes.csv."""
    from ..usecases import export

    feed = export.misp_feed(Project.of(session.config), tlp, output)
    click.echo(f"{feed.events} MISP events, at or below {tlp_label(tlp)}: {display_path(feed.folder)}")


def _write_out(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(output, text.encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot write {display_path(output)}: {exc.strerror or exc}") from None


@cli.group()
def subscribers() -> None:
    """Add, remove, list, import and export subscribers."""


digest_option = click.option(
    "--digest", "digests", metavar="NAME", multiple=True,
    help="A digest to subscribe to; repeat for several (default: every digest in config.yaml).",
)


class StatusChoice(click.Choice[str]):
    """The subscriber statuses, as the store names them: read from it only when an option is
    shown or parsed, so that commands which never open the store do not import it."""

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        from ..store import SUBSCRIBER_STATUSES

        return SUBSCRIBER_STATUSES

    @choices.setter
    def choices(self, _value: object) -> None:
        pass


status_filter = click.option(
    "--status", "status_name", type=StatusChoice(), help="Only subscribers in this status.",
)
digest_filter = click.option("--digest", "digest_name", metavar="NAME", help="Only active subscribers of this digest.")
resubscribe_option = click.option(
    "--resubscribe", is_flag=True, help="Sign up again people who unsubscribed or bounced.",
)


def _described(subscriber: Subscriber) -> str:
    return (f"{subscriber.address} ({subscriber.status}; {', '.join(subscriber.digests) or 'no digests'}; "
            f"cleared for {tlp_label(subscriber.clearance)})")


@subscribers.command("add")
@click.argument("address")
@click.option("--name", default="", help="The name shown in the To header.")
@digest_option
@resubscribe_option
@click.option("--clearance", type=click.Choice(TLP_LEVELS), default=None,
              help="The highest TLP level they may receive (default: clear for someone new, else unchanged).")
@pass_session
def subscribers_add(session: Session, address: str, name: str, digests: tuple[str, ...], resubscribe: bool,
                    clearance: str | None) -> None:
    """Add ADDRESS as an active subscriber (or update it)."""
    from ..delivery.subscribers import check_digests

    config = session.config
    chosen = check_digests(digests, (d.name for d in config.digests))
    with session.store() as store:
        result = store.subscribers.add(address, name, chosen, resubscribe=resubscribe,
                                       how="added with `newsletter subscribers add`", clearance=clearance)
    subscriber = result.subscriber
    if result.blocked:
        raise UsageError(f"{subscriber.address} is {subscriber.status}; add --resubscribe if they asked to come back")
    verb = "added" if result.created else "updated" if result.changed else "unchanged"
    click.echo(f"{verb}: {_described(subscriber)}")


@subscribers.command("remove")
@click.argument("address")
@click.option("--digest", "digest_name", metavar="NAME", help="Unsubscribe from this digest only.")
@pass_session
def subscribers_remove(session: Session, address: str, digest_name: str | None) -> None:
    """Unsubscribe ADDRESS; the record stays, marked, so no import signs it up again."""
    if digest_name:
        session.config.digest(digest_name)
    with session.store() as store:
        subscriber = store.subscribers.remove(normalize_address(address), digest_name,
                                              how="removed with `newsletter subscribers remove`")
    if subscriber is None:
        raise UsageError(f"{address} is not a subscriber")
    click.echo(f"removed: {_described(subscriber)}")


@subscribers.command("list")
@status_filter
@digest_filter
@pass_session
def subscribers_list(session: Session, status_name: str | None, digest_name: str | None) -> None:
    """List subscribers: address, status, digests and name, one per line."""
    from ..store.subscribers import LEFT

    count = 0
    with session.store() as store:
        page: list[Subscriber] = []

        def flush() -> None:
            reasons = store.history.last([s.id for s in page if s.status in LEFT])
            for subscriber in page:
                row = [subscriber.address, subscriber.status, ",".join(subscriber.digests) or "-", subscriber.name]
                if subscriber.id in reasons:  # why they left, last: a bounce's reply, a complaint, a link
                    event = reasons[subscriber.id]
                    row.append(f"{event.at:%Y-%m-%d} {event.kind}: {event.detail}")
                click.echo("\t".join(row))
            page.clear()

        for subscriber in store.subscribers.iter(status_name, digest_name):
            page.append(subscriber)
            count += 1
            if len(page) >= 500:
                flush()
        flush()
    click.echo(f"{count} subscriber{'s' if count != 1 else ''}", err=True)


@subscribers.command("show")
@click.argument("address")
@pass_session
def subscribers_show(session: Session, address: str) -> None:
    """One subscriber: status, digests, and their history (subscribed, confirmed, each bounce
    and complaint, unsubscribed, and by what)."""
    with session.store() as store:
        subscriber = store.subscribers.get(normalize_address(address))
        if subscriber is None:
            raise UsageError(f"{address} is not a subscriber")
        click.echo(_described(subscriber) + (f", {subscriber.name}" if subscriber.name else ""))
        names = {issue.id: issue.name for issue in store.issues.iter()}
        for event in store.history.of(subscriber.id):
            where = f" [{names.get(event.issue_id, event.issue_id)}]" if event.issue_id else ""
            code = f" {event.code}" if event.code else ""
            origin = f" (from {event.origin})" if event.origin else ""
            click.echo(f"  {event.at:%Y-%m-%d %H:%M:%S} UTC  {event.kind}{code}{where}: {event.detail}{origin}")


@subscribers.command("import")
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(path_type=Path, dir_okay=False))
@digest_option
@resubscribe_option
@pass_session
def subscribers_import(session: Session, csv_file: Path, digests: tuple[str, ...], resubscribe: bool) -> None:
    """Import subscribers from a CSV file with an `email` (or `address`) column and
    optional `name` and `digests` columns. Safe to run again with the same file."""
    from ..delivery.subscribers import import_csv

    config = session.config
    with session.store() as store:
        report = import_csv(store, csv_file, digests, (d.name for d in config.digests), resubscribe)
    click.echo(
        f"{report.created} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.kept_unsubscribed} left unsubscribed, {len(report.rejected)} rejected"
    )
    if report.kept_unsubscribed and not resubscribe:
        click.echo("  (people who unsubscribed or bounced stay so; --resubscribe signs them up again)")
    if report.rejected:
        raise Invalid(report.rejected)


@subscribers.command("export")
@status_filter
@digest_filter
@pass_session
def subscribers_export(session: Session, status_name: str | None, digest_name: str | None) -> None:
    """Write subscribers as CSV to standard output (the import reads it back)."""
    from ..delivery.subscribers import export_csv

    with session.store() as store:
        export_csv(store, sys.stdout, status_name, digest_name)


def main() -> None:
    cli(prog_name="newsletter")
