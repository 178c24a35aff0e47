"""The `newsletter` command: parse options, call the core, print results and exit statuses."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import IO, Any

import click

from ..usecases import sending
from ..usecases.build import Project, clip_warning, write_preview
from ..usecases.check import check_project
from ..inputs.config import Config, Digest, Mailbox, load_config
from ..compose.digest import moment, parse_as_of
from ..errors import Invalid, NewsletterError, SourceError, display_path
from ..store import SUBSCRIBER_STATUSES, Store, StoredIssue, Subscriber
from .schedule import Runner, upcoming
from ..delivery.subscribers import check_digests, check_name, export_csv, import_csv, normalize_address

EXIT_PROBLEM = 2


class Failure(click.ClickException):
    """An expected error: its lines go to stderr as they are, exit status 2, no traceback."""

    exit_code = EXIT_PROBLEM

    def show(self, file: IO[Any] | None = None) -> None:
        for line in self.message.splitlines():
            click.echo(line, err=True)


@contextmanager
def expected_errors() -> Iterator[None]:
    try:
        yield
    except Invalid as exc:
        raise Failure("\n".join(str(p) for p in exc.problems)) from None
    except SourceError as exc:
        raise Failure(str(exc)) from None
    except NewsletterError as exc:
        raise Failure(f"error: {exc}") from None


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


def _human_size(size: int) -> str:
    return f"{size / 1024:.1f} KB" if size >= 1024 else f"{size} B"


@click.group()
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), default=Path("config.yaml"),
    envvar="NEWSLETTER_CONFIG", show_default=True, help="The config file to use.",
)
@click.version_option(package_name="threat-brief-newsletter")
@click.pass_context
def cli(ctx: click.Context, config_path: Path) -> None:
    """Turn threat briefs and an incident timeline into an email newsletter."""
    ctx.obj = config_path


@cli.command()
@click.option("--digest", "digest_name", metavar="NAME", help="Build only this digest (default: all).")
@click.option("--as-of", "as_of", type=AsOf(), help="Compose the issue as of this day or moment (default: now).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), help="Write under this folder (default: `out` in config.yaml).")
@click.pass_obj
def build(config_path: Path, digest_name: str | None, as_of: date | datetime | None, out_dir: Path | None) -> None:
    """Write an issue's digest.html, digest.txt and a sample digest.eml."""
    now = datetime.now(timezone.utc)
    with expected_errors():
        project = Project.load(config_path)
        for digest in project.config.selected(digest_name):
            preview = write_preview(
                project, digest, moment(as_of or now, digest), out_dir or project.config.out_dir
            )
            click.echo(f"{preview.issue.id}: {preview.rendered.subject}")
            for written in preview.files:
                click.echo(f"  {display_path(written.path)}  {_human_size(written.size)}")
            warning = clip_warning(preview.html_bytes)
            if warning:
                click.echo(f"warning: {warning}", err=True)


@cli.command()
@click.option("--as-of", "as_of", type=AsOf(), help="Render digests as of this day (default: their newest content).")
@click.pass_obj
def check(config_path: Path, as_of: date | datetime | None) -> None:
    """Validate config, content and templates; print every problem as file:line: field: message."""
    report = check_project(config_path, as_of)
    for note in report.notes:
        click.echo(note)
    for warning in report.warnings:
        click.echo(f"warning: {warning}")
    for problem in report.problems:
        click.echo(problem)
    if report.problems:
        count = len(report.problems)
        click.echo(f"{count} problem{'s' if count != 1 else ''} found", err=True)
        sys.exit(EXIT_PROBLEM)
    click.echo("ok")



# --- sending -------------------------------------------------------------------------------------

def _open_store(config: Config) -> Store:
    return Store.open(config.store_url)


@contextmanager
def stop_on_signals(announce: bool = True) -> Iterator[threading.Event]:
    """SIGTERM and SIGINT ask the send to stop after the message on the wire; a second one
    stops at once."""
    stop = threading.Event()

    def ask(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        if announce:
            click.echo(f"\n{signal.Signals(signum).name}: finishing the message in flight, then stopping", err=True)
        stop.set()

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
@click.pass_obj
def send(
    config_path: Path, digest_name: str | None, as_of: date | datetime | None, dry_run: bool,
    to_address: str | None, transport_url: str | None, queue_only: bool, workers: int | None,
) -> None:
    """Send an issue to every active subscriber, once; run again to resume."""
    now = datetime.now(timezone.utc)
    with expected_errors():
        project = Project.load(config_path)
        config = project.config
        settings = sending.transport_settings(config, transport_url)
        _, warning = sending.signing_key(config, settings)
        if warning and not dry_run:
            click.echo(f"warning: {warning}", err=True)
        queued_issues: list[StoredIssue] = []
        for digest in config.selected(digest_name):
            when = moment(as_of or now, digest)
            if to_address is not None:
                recipient = Mailbox("", normalize_address(to_address))
                store = _open_store(config)
                subject, via = sending.send_test_copy(project, store, digest, when, recipient, transport_url)
                click.echo(f"test copy of {digest.name} sent to {recipient.address} via {via}: {subject}")
            elif dry_run:
                _dry_run(project, digest, when, settings.url)
            elif queue_only or workers:
                store = _open_store(config)
                in_store = sending.issue_in_store(project, store, digest, when)
                queued = store.queue(in_store.stored)
                queued_issues.append(in_store.stored)
                click.echo(f"{in_store.stored.name}: {in_store.stored.subject}")
                click.echo(f"  {queued} deliveries queued, {store.pending(in_store.stored.id)} to send")
            else:
                _send(project, digest, when, transport_url)
        if workers:
            _run_workers(config_path, workers, transport_url, queued_issues)
        elif queue_only:
            click.echo("start `newsletter worker` processes to send them")


def _run_workers(config_path: Path, count: int, transport_url: str | None, issues: list[StoredIssue]) -> None:
    """N `newsletter worker --until-idle` processes, waited for; then what they sent."""
    command = [sys.executable, "-m", "newsletter", "--config", str(config_path), "worker", "--until-idle"]
    if transport_url:
        command += ["--transport", transport_url]
    started = time.monotonic()
    processes = [subprocess.Popen(command) for _ in range(count)]
    with stop_on_signals() as stop:
        while any(p.poll() is None for p in processes):
            if stop.is_set():
                for process in processes:
                    if process.poll() is None:
                        process.send_signal(signal.SIGTERM)
            stop.wait(0.5)
    seconds = time.monotonic() - started
    store = _open_store(load_config(config_path))
    for stored in issues:
        counts = store.counts(stored.id)
        sent = counts["sent"]
        click.echo(f"  {stored.name}: {sent} sent, {counts['failed']} failed, "
                   f"{counts['queued'] + counts['deferred']} left, by {count} workers in {seconds:.1f} s")
    failed = [p.returncode for p in processes if p.returncode]
    if failed:
        raise Failure(f"{len(failed)} of {count} workers failed (exit statuses {failed})")


def _dry_run(project: Project, digest: Digest, when: datetime, url: str) -> None:
    store = _open_store(project.config)
    issue, rendered = project.issue(digest, when)
    stored = store.issue(digest.name, issue.period)
    if stored is not None and stored.queued_at is not None:
        count, what = store.pending(stored.id), "deliveries still to send"
    else:
        count, what = store.count_recipients(digest.name), "active subscribers would receive it"
    click.echo(f"{issue.id}: {rendered.subject}")
    click.echo(f"  {count} {what}, via {url}; nothing was sent or recorded (dry run)")


def _send(project: Project, digest: Digest, when: datetime, transport_url: str | None) -> None:
    store = _open_store(project.config)
    lock = threading.Lock()
    with ExitStack() as cleanup:
        bars: list[Any] = []

        def started(in_store: sending.IssueInStore, pending: int) -> None:
            stored = in_store.stored
            note = "" if in_store.created else " (resuming the stored issue)"
            if in_store.changed_since:
                note += "; content changed since it was built, the stored version is sent"
            click.echo(f"{stored.name}: {stored.subject}{note}")
            if sys.stdout.isatty() and pending:
                bar = click.progressbar(length=pending, label="sending", show_pos=True, show_eta=True)
                bars.append(cleanup.enter_context(bar))

        def progress(count: int) -> None:
            with lock:
                for bar in bars:
                    bar.update(count)

        stop = cleanup.enter_context(stop_on_signals())
        report = sending.send_issue(project, store, digest, when, transport_url, progress, stop, started)
    rate = f" ({report.sent / report.seconds:.0f}/s)" if report.seconds and report.sent else ""
    click.echo(
        f"  {report.sent} sent, {report.failed} failed, {report.deferred} deferred, "
        f"{report.remaining} left{rate}" + (f", {report.bounced} addresses marked bounced" if report.bounced else "")
    )
    for error in report.errors[:10]:
        click.echo(f"  {error}", err=True)
    if len(report.errors) > 10:
        click.echo(f"  ... and {len(report.errors) - 10} more: see `newsletter status {report.issue}`", err=True)
    if report.stopped:
        click.echo(f"  stopped; run `newsletter send` again to finish {report.issue}", err=True)
    elif report.remaining:
        click.echo(f"  {report.remaining} not finished (deferred or held by another sender); run again later", err=True)


@cli.command()
@click.argument("issue_name", metavar="[ISSUE]", required=False)
@click.pass_obj
def status(config_path: Path, issue_name: str | None) -> None:
    """Show deliveries per status and the last errors of an issue (default: the latest)."""
    with expected_errors():
        store = _open_store(load_config(config_path))
        stored = store.issue_by_name(issue_name) if issue_name else store.latest_issue()
        if stored is None:
            raise NewsletterError(f"no issue named {issue_name}" if issue_name else "no issue has been sent yet")
        counts = store.counts(stored.id)
        state = "finished" if stored.finished_at else "in progress" if stored.queued_at else "not queued"
        click.echo(f"{stored.name}: {stored.subject} ({state})")
        click.echo("  " + "  ".join(f"{name} {count}" for name, count in counts.items()))
        workers = store.progress(stored.id)
        if workers:
            total = sum(w.rate for w in workers)
            click.echo(f"  senders ({total:.0f} messages/s together, within the last minute):")
            for worker in workers:
                click.echo(f"    {worker.worker}: {worker.sent} sent, {worker.rate:.0f}/s, holding {worker.holding}")
        errors = store.last_errors(stored.id)
        if errors:
            click.echo("  last errors:")
            for address, delivery_status, error in errors:
                click.echo(f"    {address} ({delivery_status}): {error}")


# --- workers -------------------------------------------------------------------------------------

@cli.command()
@click.option("--transport", "transport_url", metavar="URL", help="Send through this transport instead of config.yaml's.")
@click.option("--batch", default=50, show_default=True, type=click.IntRange(1, 10000), help="Deliveries claimed at a time.")
@click.option("--until-idle", is_flag=True, help="Exit once no queued issue has deliveries left (default: keep waiting for work).")
@click.pass_obj
def worker(config_path: Path, transport_url: str | None, batch: int, until_idle: bool) -> None:
    """Send queued deliveries, side by side with any number of other workers on the same store."""
    from .worker import work

    with expected_errors():
        config = load_config(config_path)
        _configure_logging(config.run.log_level)
        with stop_on_signals(announce=False) as stop:
            report = work(config_path, stop, transport_url, batch, until_idle)
    logging.getLogger("newsletter.worker").info(
        "worker done: %d sent, %d failed, %d deferred", report.sent, report.failed, report.deferred
    )


# --- the scheduler -------------------------------------------------------------------------------

def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr, force=True)
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLevelName(level)))


@cli.command("run")
@click.option("--once", is_flag=True, help="Do what is due now (resume sends, make up a fire missed within the grace) and exit.")
@click.option("--transport", "transport_url", metavar="URL", help="Send through this transport instead of config.yaml's.")
@click.pass_obj
def run_command(config_path: Path, once: bool, transport_url: str | None) -> None:
    """Fire each digest on its schedule until SIGTERM or Ctrl-C (or once, for cron or a timer)."""
    with expected_errors():
        config = load_config(config_path)
        _configure_logging(config.run.log_level)
        with stop_on_signals(announce=False) as stop:  # the runner logs it
            runner = Runner(config_path, stop, transport_url)
            if once:
                runner.start_up()
            else:
                runner.run_forever()


@cli.command("schedule")
@click.pass_obj
def schedule_command(config_path: Path) -> None:
    """List each scheduled digest's next three runs, in its own time zone and in UTC."""
    with expected_errors():
        config = load_config(config_path)
        listed = upcoming(config, datetime.now(timezone.utc))
        for digest in config.digests:
            if not digest.schedule:
                click.echo(f"{digest.name}: no schedule (add `schedule:` to run it with `newsletter run`)")
        for digest, fires in listed:
            click.echo(f"{digest.name}: {digest.schedule} ({digest.timezone}), {digest.on_schedule} on schedule")
            for fire in fires:
                local = fire.astimezone(digest.zone)
                utc = fire.astimezone(timezone.utc)
                click.echo(f"  {local:%a %Y-%m-%d %H:%M:%S %z}   {utc:%Y-%m-%d %H:%M:%S} UTC")


# --- the web app ---------------------------------------------------------------------------------

@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback unless told otherwise).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.pass_obj
def serve(config_path: Path, host: str, port: int) -> None:
    """Serve subscribe, confirm and unsubscribe pages, the preview, the archive and the feed."""
    import uvicorn

    from .web import create_app

    with expected_errors():
        app = create_app(config_path)
    site = app.state.site
    if site.key_warning:
        click.echo(f"warning: {site.key_warning}", err=True)
    click.echo(f"serving http://{host}:{port}/ (links in messages point to {site.config.site.base_url})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)


# --- fresh content: feeds, imports, drafts --------------------------------------------------------

@cli.command()
@click.option("--feed", "feed_names", metavar="NAME", multiple=True, help="Read only this feed; repeat for several.")
@click.pass_obj
def ingest(config_path: Path, feed_names: tuple[str, ...]) -> None:
    """Read the feeds in config.yaml and draft a timeline entry for each new matching item."""
    from ..intake.ingest import ingest as run_ingest

    with expected_errors():
        config = load_config(config_path)
        feeds = config.ingest.feeds
        if not feeds:
            raise NewsletterError(f"no feeds under `ingest: feeds:` in {display_path(config_path)}")
        unknown = [n for n in feed_names if n not in {f.name for f in feeds}]
        if unknown:
            raise NewsletterError(f"unknown feed {', '.join(unknown)} (known: {', '.join(f.name for f in feeds)})")
        chosen = [f for f in feeds if not feed_names or f.name in feed_names]
        reports = run_ingest(config, _open_store(config), chosen)
    failed = 0
    for report in reports:
        if report.status not in ("ok", "not modified"):
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
    if failed:
        raise Failure(f"{failed} of {len(reports)} feeds could not be read")


@cli.command("import")
@click.argument("source", metavar="FILE_OR_URL")
@click.pass_obj
def import_command(config_path: Path, source: str) -> None:
    """Draft a brief and dated timeline entries from one article (HTML, Markdown or text)."""
    from ..intake.importer import import_article

    with expected_errors():
        config = load_config(config_path)
        result = import_article(source, config.content_dir, Path.cwd(), date.today(), timeout=config.ingest.timeout)
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
@click.pass_obj
def drafts_list(config_path: Path) -> None:
    """Every draft: id, kind, date, title, and whether it is trusted, edited or has problems."""
    from ..intake.drafts import all_drafts

    with expected_errors():
        found = all_drafts(load_config(config_path).content_dir)
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
@click.pass_obj
def drafts_approve(config_path: Path, draft_id: str, into: Path | None) -> None:
    """Publish a draft: it must pass every check, or nothing changes."""
    from ..intake.drafts import approve

    with expected_errors():
        target = approve(load_config(config_path).content_dir, draft_id, into)
    click.echo(f"approved {draft_id}: now in {display_path(target)}")


@drafts.command("reject")
@click.argument("draft_id", metavar="ID")
@click.pass_obj
def drafts_reject(config_path: Path, draft_id: str) -> None:
    """Drop a draft (an entry's sources are remembered so it is not proposed again)."""
    from ..intake.drafts import reject

    with expected_errors():
        reject(load_config(config_path).content_dir, draft_id)
    click.echo(f"rejected {draft_id}")


# --- subscribers ---------------------------------------------------------------------------------

@cli.group()
def subscribers() -> None:
    """Add, remove, list, import and export subscribers."""


digest_option = click.option(
    "--digest", "digests", metavar="NAME", multiple=True,
    help="A digest to subscribe to; repeat for several (default: every digest in config.yaml).",
)
status_filter = click.option(
    "--status", "status_name", type=click.Choice(SUBSCRIBER_STATUSES), help="Only subscribers in this status.",
)
digest_filter = click.option("--digest", "digest_name", metavar="NAME", help="Only active subscribers of this digest.")
resubscribe_option = click.option(
    "--resubscribe", is_flag=True, help="Sign up again people who unsubscribed or bounced.",
)


def _described(subscriber: Subscriber) -> str:
    return f"{subscriber.address} ({subscriber.status}; {', '.join(subscriber.digests) or 'no digests'})"


@subscribers.command("add")
@click.argument("address")
@click.option("--name", default="", help="The name shown in the To header.")
@digest_option
@resubscribe_option
@click.pass_obj
def subscribers_add(config_path: Path, address: str, name: str, digests: tuple[str, ...], resubscribe: bool) -> None:
    """Add ADDRESS as an active subscriber (or update it)."""
    with expected_errors():
        config = load_config(config_path)
        chosen = check_digests(digests, (d.name for d in config.digests))
        result = _open_store(config).add_subscriber(
            normalize_address(address), check_name(name), chosen, resubscribe=resubscribe
        )
        subscriber = result.subscriber
        if result.blocked:
            raise NewsletterError(
                f"{subscriber.address} is {subscriber.status}; add --resubscribe if they asked to come back"
            )
        verb = "added" if result.created else "updated" if result.changed else "unchanged"
        click.echo(f"{verb}: {_described(subscriber)}")


@subscribers.command("remove")
@click.argument("address")
@click.option("--digest", "digest_name", metavar="NAME", help="Unsubscribe from this digest only.")
@click.pass_obj
def subscribers_remove(config_path: Path, address: str, digest_name: str | None) -> None:
    """Unsubscribe ADDRESS; the record stays, marked, so no import signs it up again."""
    with expected_errors():
        config = load_config(config_path)
        if digest_name:
            config.digest(digest_name)
        subscriber = _open_store(config).remove_subscriber(normalize_address(address), digest_name)
        if subscriber is None:
            raise NewsletterError(f"{address} is not a subscriber")
        click.echo(f"removed: {_described(subscriber)}")


@subscribers.command("list")
@status_filter
@digest_filter
@click.pass_obj
def subscribers_list(config_path: Path, status_name: str | None, digest_name: str | None) -> None:
    """List subscribers: address, status, digests and name, one per line."""
    with expected_errors():
        count = 0
        for subscriber in _open_store(load_config(config_path)).iter_subscribers(status_name, digest_name):
            click.echo("\t".join((subscriber.address, subscriber.status, ",".join(subscriber.digests) or "-", subscriber.name)))
            count += 1
        click.echo(f"{count} subscriber{'s' if count != 1 else ''}", err=True)


@subscribers.command("import")
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(path_type=Path, dir_okay=False))
@digest_option
@resubscribe_option
@click.pass_obj
def subscribers_import(config_path: Path, csv_file: Path, digests: tuple[str, ...], resubscribe: bool) -> None:
    """Import subscribers from a CSV file with an `email` (or `address`) column and
    optional `name` and `digests` columns. Safe to run again with the same file."""
    with expected_errors():
        config = load_config(config_path)
        report = import_csv(_open_store(config), csv_file, digests, (d.name for d in config.digests), resubscribe)
    click.echo(
        f"{report.created} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.kept_unsubscribed} left unsubscribed, {len(report.rejected)} rejected"
    )
    if report.kept_unsubscribed and not resubscribe:
        click.echo("  (people who unsubscribed or bounced stay so; --resubscribe signs them up again)")
    if report.rejected:
        raise Failure("\n".join(report.rejected))


@subscribers.command("export")
@status_filter
@digest_filter
@click.pass_obj
def subscribers_export(config_path: Path, status_name: str | None, digest_name: str | None) -> None:
    """Write subscribers as CSV to standard output (the import reads it back)."""
    with expected_errors():
        export_csv(_open_store(load_config(config_path)), sys.stdout, status_name, digest_name)


def main() -> None:
    cli(prog_name="newsletter")
