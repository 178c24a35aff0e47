"""`newsletter run`: a real APScheduler, a real store and short schedules."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.inputs.cron import trigger
from newsletter.faces.schedule import Runner, on_start
from newsletter.inputs.config import load_config
from newsletter.store import utcnow

from .conftest import Run, add_subscribers, store_of
from .smtp_server import SmtpServer

KEY = "k" * 40


def configure(project: Path, schedule: str, period: str, on_schedule: str = "write",
              when_nothing_new: str = "send", grace: int = 3600) -> Path:
    """The shipped config with another schedule, period and policy."""
    path = project / "config.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace('schedule: "0 7 * * MON"', f'schedule: "{schedule}"')
    text = re.sub(r"    period: weekly .*", f"    period: {period}", text)
    text = re.sub(r"    on_schedule: \w+", f"    on_schedule: {on_schedule}", text)
    text = re.sub(r"    when_nothing_new: \w+", f"    when_nothing_new: {when_nothing_new}", text)
    text = re.sub(r"misfire_grace: \d+", f"misfire_grace: {grace}", text)
    path.write_text(text, encoding="utf-8")
    return path



def periods(project: Path) -> list[str]:
    return sorted(issue.period for issue in store_of(project).issues.iter())


def run_until(config: Path, done: Callable[[], bool], timeout: float = 120) -> None:
    """A runner in a thread until `done()` holds (looked at every 50 ms), then stopped."""
    stop = threading.Event()
    runner = Runner(load_config(config), stop)
    thread = threading.Thread(target=runner.run_forever)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not done():
            assert time.monotonic() < deadline, f"not done within {timeout} s"
            assert thread.is_alive(), "the runner stopped on its own"
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()


def logged(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records)


def test_a_two_second_schedule_makes_an_issue_per_fire(project: Path) -> None:
    config = configure(project, "*/2 * * * * *", "secondly")
    run_until(config, lambda: len(periods(project)) >= 2)
    found = periods(project)
    moments = [datetime.strptime(p, "%Y-%m-%dT%H%M%S") for p in found]
    # Each on the schedule's even seconds, in order (a fire a loaded machine missed coalesces).
    assert all(m.second % 2 == 0 for m in moments) and moments == sorted(set(moments))
    for period in found:  # each written out once, in its own folder
        assert (project / "out" / f"weekly-{period}" / "digest.html").exists()


def test_a_restart_inside_a_period_makes_no_second_issue(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = configure(project, "* * * * * *", "monthly")  # fires every second, one issue a month
    caplog.set_level(logging.INFO, logger="newsletter.run")
    run_until(config, lambda: logged(caplog, "built already") >= 1)
    first = periods(project)
    run_until(config, lambda: logged(caplog, "built already") >= 3)  # a restart, and more fires
    assert periods(project) == first and len(first) == 1


def test_nothing_new_is_skipped_by_default(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = configure(project, "*/2 * * * * *", "secondly", when_nothing_new="skip")
    caplog.set_level(logging.INFO, logger="newsletter.run")
    run_until(config, lambda: logged(caplog, "nothing new since weekly-") >= 1)
    assert len(periods(project)) == 1  # the content did not change between fires


def test_on_start_makes_up_a_missed_fire_within_the_grace_and_skips_it_beyond() -> None:
    schedule = trigger("0 7 * * MON", "Europe/Istanbul")
    monday = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 07:00 in Istanbul
    never_built = lambda fire: False  # noqa: E731
    assert on_start(schedule, monday + timedelta(minutes=50), timedelta(hours=1), never_built).action == "catch-up"
    late = on_start(schedule, monday + timedelta(hours=3), timedelta(hours=1), never_built)
    assert (late.action, late.fire) == ("skip", monday)
    assert on_start(schedule, monday + timedelta(minutes=5), timedelta(hours=1), lambda fire: True).action == "done"


def test_a_runner_started_after_a_missed_fire(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="newsletter.run")
    now = datetime.now(UTC)
    # A yearly schedule: its last fire was months ago, unless today is 1 January.
    config = configure(project, "0 0 1 1 *", "monthly", grace=400 * 86400)
    Runner(load_config(config), threading.Event()).start_up(now)
    assert periods(project) == [f"{now.year if now.month > 1 or now.day > 1 else now.year - 1}-01"]
    assert any(r.message.startswith("catching up weekly: its ") for r in caplog.records)

    caplog.clear()
    config = configure(project, "0 0 1 1 *", "monthly", grace=3600)
    config.write_text(config.read_text(encoding="utf-8").replace(".state/newsletter.db", ".state/other.db"))
    Runner(load_config(config), threading.Event()).start_up(now)
    assert list(store_of(project).issues.iter()) == []  # the other database: nothing made up
    assert any(re.match(r"skipped weekly-\d{4}-01: its .* run was missed by .*, beyond the grace of 60m", r.message)
               for r in caplog.records)



class Started:
    """`newsletter run` in a process of its own, its log lines collected as they come."""

    def __init__(self, project: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "run", *args], cwd=project,
            env={**os.environ, "NEWSLETTER_SECRET_KEY": KEY}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()

    def wait_for(self, text: str, count: int = 1, timeout: float = 120) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: sum(text in line for line in self.lines) >= count, timeout):
                raise AssertionError(f"{text!r} not logged {count} times within {timeout} s: {self.lines}")

    def stop(self, timeout: float = 60) -> tuple[int, str]:
        """SIGTERM, then its exit status and its whole log."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout)
        self.reader.join(timeout)
        return self.process.returncode, "".join(self.lines)


@pytest.mark.parametrize("smtp_server", [True], ids=["pipelining"], indirect=True)  # slow: one server mode
def test_two_runners_on_one_database_make_one_issue_and_one_delivery_each(
    project: Path, smtp_server: SmtpServer
) -> None:
    configure(project, "* * * * * *", "monthly", on_schedule="send")
    addresses = add_subscribers(project, 60)
    store_of(project)  # the schema exists before both start
    runners = [Started(project, "--transport", smtp_server.url) for _ in range(2)]
    smtp_server.wait_for(60, timeout=120)
    for runner in runners:
        runner.wait_for("fired weekly", count=2)  # each fired after the issue existed, too
    ended = [runner.stop() for runner in runners]
    logs = [log for _, log in ended]
    assert [status for status, _ in ended] == [0, 0], logs
    assert len(periods(project)) == 1
    assert Counter(smtp_server.recipients()) == Counter(addresses)
    assert sum(log.count(" INFO built weekly-") for log in logs) == 1


@pytest.mark.parametrize("smtp_server", [True], ids=["pipelining"], indirect=True)  # slow: one server mode
def test_sigterm_during_a_send_stops_cleanly_and_a_restart_finishes_it(
    project: Path, smtp_server: SmtpServer
) -> None:
    configure(project, "* * * * * *", "monthly", on_schedule="send")
    addresses = add_subscribers(project, 200)
    smtp_server.data_delay = 0.01
    runner = Started(project, "--transport", smtp_server.url)
    smtp_server.wait_for(20, timeout=120)
    status, log = runner.stop()  # within the minute: the message in flight, not the 180 left
    assert status == 0, log
    assert "stopped" in log
    store = store_of(project)
    (issue,) = store.issues.iter()
    counts = store.status.counts(issue.id)
    assert counts["sent"] == len(smtp_server.recipients()) < 200  # every message out is recorded

    done = subprocess.run(
        [sys.executable, "-m", "newsletter", "run", "--once", "--transport", smtp_server.url], cwd=project,
        env={**os.environ, "NEWSLETTER_SECRET_KEY": KEY}, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f"resuming {issue.name}: {200 - counts['sent']} deliveries left" in done.stderr
    assert Counter(smtp_server.recipients()) == Counter(addresses)  # each exactly once


def test_the_schedule_command_lists_the_next_three_runs(project: Path, run: Run) -> None:
    result = run("schedule")
    lines = result.stdout.splitlines()
    assert lines[0] == "weekly: 0 7 * * MON (Europe/Istanbul), send on schedule"
    assert len(lines) == 4
    for line in lines[1:]:
        assert re.fullmatch(r"  Mon \d{4}-\d\d-\d\d 07:00:00 \+0300   \d{4}-\d\d-\d\d 04:00:00 UTC", line)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('schedule: "0 7 * * MON"', 'schedule: "0 7 * *"',
         "digests.weekly.schedule: '0 7 * *' has 4 fields; write MINUTE HOUR DAY MONTH WEEKDAY "
         "(or SECOND first, six fields), e.g. '0 7 * * MON'"),
        ('schedule: "0 7 * * MON"', 'schedule: "0 31 * * MON"',
         "digests.weekly.schedule: '0 31 * * MON': Error validating expression '31': the last value (31) "
         "is higher than the maximum value (23)"),
        ("timezone: Europe/Istanbul", "timezone: Europe/Ankara",
         "digests.weekly.timezone: 'Europe/Ankara' is not an IANA time zone such as Europe/Istanbul"),
        ("on_schedule: send", "on_schedule: mail", "digests.weekly.on_schedule: 'mail' is not one of write, send, queue"),
    ],
)
def test_check_reports_a_bad_schedule_at_its_line(project: Path, run: Run, old: str, new: str, message: str) -> None:
    path = project / "config.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    line = next(n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if new in line)
    result = run("check")
    assert result.exit_code == 2
    assert f"config.yaml:{line}: {message}" in result.stdout.splitlines()


def test_on_schedule_queue_leaves_the_sending_to_workers(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from newsletter.faces.worker import work

    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    config = configure(project, "0 7 * * MON", "weekly", on_schedule="queue")
    add_subscribers(project, 3)
    Runner(load_config(config), threading.Event()).fire("weekly", datetime(2022, 7, 25, 4, 0, tzinfo=UTC))
    (issue,) = store_of(project).issues.iter()
    assert store_of(project).status.counts(issue.id) == {"queued": 3, "deferred": 0, "uncertain": 0, "sent": 0, "failed": 0,
                                                        "withdrawn": 0}
    report = work(load_config(config), threading.Event(), until_idle=True)
    assert report.sent == 3 and store_of(project).status.counts(issue.id)["sent"] == 3


@pytest.mark.parametrize("smtp_server", [True], ids=["pipelining"], indirect=True)  # slow: one server mode
def test_the_runner_sends_deferred_deliveries_as_they_come_due(
    project: Path, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody has to run `send` again: the runner looks every `run.retry_every` seconds."""
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    config = configure(project, "0 0 1 1 *", "weekly")  # no fire during the test
    text = config.read_text(encoding="utf-8").replace("retry_after: 60 ", "retry_after: 3600 ")
    text = text.replace("  retry_every: 60 ", "  retry_every: 1 ").replace("transport: file:out/maildir", f"transport: {smtp_server.url}")
    config.write_text(text, encoding="utf-8")
    addresses = add_subscribers(project, 3)
    smtp_server.reply_for = lambda recipient, attempt: "451 4.3.0 busy" if recipient == addresses[0] and attempt == 1 else None
    from click.testing import CliRunner

    from newsletter.faces.cli import cli

    first = CliRunner().invoke(cli, ["send", "--as-of", "2022-07-30"])
    assert first.exit_code == 75, first.output  # one deferred, for an hour
    with store_of(project).db.engine.begin() as conn:  # ... make that a second
        conn.execute(sa.text("UPDATE deliveries SET next_attempt_at = :soon WHERE status = 'deferred'"),
                     {"soon": utcnow() + timedelta(seconds=1)})
    caplog.set_level(logging.INFO, logger="newsletter.run")
    run_until(config, lambda: Counter(smtp_server.recipients()) == Counter(addresses))
    assert any(r.getMessage().startswith("retrying weekly-2022-W30: 1 deliveries due") for r in caplog.records)
    assert store_of(project).status.counts(store_of(project).issues.latest().id)["sent"] == 3  # type: ignore[union-attr]
