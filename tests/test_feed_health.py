"""Feed health: a feed that keeps failing or goes quiet is reported by `ingest`, by
`status --feeds` and by the runner, with feeds served over loopback HTTP and a real store."""

from __future__ import annotations

import logging
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from newsletter.faces.schedule import Runner
from newsletter.inputs.config import load_config
from newsletter.intake.health import problem
from newsletter.intake.ingest import ingest
from newsletter.store import SCHEMA_VERSION, Store, migrate

from .conftest import Run
from .test_ingest import FeedServer, feeds
from .test_store import db_url, new_url

__all__ = ["db_url", "feeds", "new_url"]  # fixtures: feeds over loopback HTTP; SQLite and PostgreSQL

DATE = r"\d{4}-\d\d-\d\d \d\d:\d\d UTC"


def with_feeds(project: Path, server: FeedServer, *listed: dict[str, Any], every: str | None = None) -> Path:
    """The shipped config with these feeds (each served by `server` as NAME.xml unless it names
    a url) in place of its `ingest:` block, and `ingest: every:` when given."""
    block: dict[str, Any] = {"timeout": 5, "feeds": [{"url": f"{server.url}/{f['name']}.xml", **f} for f in listed]}
    if every:
        block["every"] = every
    path = project / "config.yaml"
    without = re.sub(r"^ingest:\n(?:(?:[ #].*)?\n)*", "", path.read_text(encoding="utf-8"), flags=re.M)
    path.write_text(without + "\n" + yaml.safe_dump({"ingest": block}, sort_keys=False), encoding="utf-8")
    return path


WIRE = {"name": "wire", "any": ["iran", "iranian"], "tags": ["iran"]}
MISSING = {"name": "missing"}  # the server answers 404


def ingest_as_of(project: Path, now: datetime) -> None:
    """One ingest, recorded as of `now`: a run days ago, without waiting days."""
    config = load_config(project / "config.yaml")
    with Store.open(config.store_url) as store:
        ingest(config, store, now=now)


def status_lines(run: Run) -> dict[str, str]:
    result = run("status", "--feeds")
    assert result.exit_code == 0, result.output
    return {line.split("\t")[0]: line for line in result.stdout.splitlines()}


def test_a_feed_that_fails_three_runs_in_a_row_is_reported_until_it_answers_again(
    project: Path, feeds: FeedServer, run: Run,
) -> None:
    with_feeds(project, feeds, MISSING, WIRE)
    for _ in range(2):  # one or two failures may be a bad hour
        early = run("ingest")
        assert early.exit_code == 75 and "warning" not in early.stderr
    third = run("ingest")
    assert third.exit_code == 75
    assert third.stderr.splitlines() == [
        "missing: HTTP 404 Not Found",
        "warning: feed missing: failed its last 3 runs: HTTP 404 Not Found",
        "error: 1 of 2 feeds could not be read; run `newsletter ingest` again later",
    ]

    lines = status_lines(run)
    assert re.fullmatch(
        rf"missing\trss\tlast ok never\tlast failure {DATE} \(HTTP 404 Not Found\)\t3 failures in a row\t"
        r"last new item never\tfailed its last 3 runs: HTTP 404 Not Found", lines["missing"],
    ), lines["missing"]
    assert re.fullmatch(
        rf"wire\trss\tlast ok {DATE}\tlast failure never\t0 failures in a row\tlast new item {DATE}\thealthy",
        lines["wire"],
    ), lines["wire"]

    feeds.files["/missing.xml"] = feeds.files["/wire.xml"]  # it answers again
    fourth = run("ingest")
    assert fourth.exit_code == 0 and "warning" not in fourth.stderr
    recovered = status_lines(run)["missing"]
    assert "\t0 failures in a row\t" in recovered and recovered.endswith("\thealthy")
    assert "(HTTP 404 Not Found)" in recovered  # the last failure is still shown, with its reason


def test_a_feed_quiet_for_longer_than_its_quiet_after_is_reported(project: Path, feeds: FeedServer, run: Run) -> None:
    with_feeds(project, feeds, {**WIRE, "quiet_after": "36h"})
    now = datetime.now(UTC)
    ingest_as_of(project, now - timedelta(days=2))  # it brought three drafts then
    result = run("ingest")  # nothing changed since: a 304, nothing new
    assert result.exit_code == 0
    assert result.stdout.startswith("wire: not modified, 0 items")
    (warning,) = result.stderr.splitlines()
    assert re.fullmatch(rf"warning: feed wire: nothing new for 2d, since {DATE} \(quiet_after 36h\)", warning), warning
    assert status_lines(run)["wire"].endswith(warning.removeprefix("warning: feed wire: "))


def test_quiet_is_counted_from_the_last_new_item_or_else_the_first_good_run(project: Path, feeds: FeedServer) -> None:
    never_matches = {"name": "regional", "all": ["nowhere-to-be-found"]}
    config = load_config(with_feeds(project, feeds, WIRE, never_matches))
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    ingest_as_of(project, start)  # the wire brings drafts; the other never matches
    ingest_as_of(project, start + timedelta(days=1))  # not modified: new for neither
    with Store.open(config.store_url) as store:
        records = store.feeds.records(f.url for f in config.ingest.feeds)
    wire, regional = config.ingest.feeds
    week = timedelta(days=7)
    assert problem(wire, records[wire.url], start + week) is None  # 7 days is not longer than 7 days
    assert problem(wire, records[wire.url], start + week + timedelta(seconds=1)) == (
        "nothing new for 7d, since 2026-03-01 09:00 UTC (quiet_after 7d)"
    )
    assert problem(regional, records[regional.url], start + timedelta(days=8)) == (
        "nothing new for 8d, since its first good run on 2026-03-01 09:00 UTC (quiet_after 7d)"
    )
    assert problem(wire, None, start + timedelta(days=99)) is None  # a feed never run is not judged


def test_a_feed_that_brings_news_says_healthy_and_one_never_run_says_so(project: Path, feeds: FeedServer, run: Run) -> None:
    with_feeds(project, feeds, WIRE, {"name": "regional"})
    assert status_lines(run)["wire"] == (
        "wire\trss\tlast ok never\tlast failure never\t0 failures in a row\tlast new item never\tnot run yet"
    )
    result = run("ingest", "--feed", "wire")
    assert result.exit_code == 0 and result.stderr == ""
    lines = status_lines(run)
    assert lines["wire"].endswith("\thealthy") and "last new item never" not in lines["wire"]
    assert lines["regional"].endswith("\tnot run yet")
    assert run("status", "--feeds").stderr == "2 feeds, 0 unhealthy\n"


@pytest.mark.parametrize(("key", "value", "message"), [
    ("quiet_after", "soon", "ingest.feeds[0].quiet_after: expected seconds or a duration such as 90, 15m, 4h or 3d, found 'soon'"),
    ("quiet_after", "0", "ingest.feeds[0].quiet_after: must be at least 1 seconds, found 0"),
])
def test_a_bad_quiet_after_is_a_check_error_at_its_line(
    project: Path, feeds: FeedServer, run: Run, key: str, value: str, message: str,
) -> None:
    path = with_feeds(project, feeds, {**WIRE, key: value})
    line = next(n for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if f"{key}:" in text)
    result = run("check")
    assert result.exit_code == 2
    assert f"config.yaml:{line}: {message}" in result.stdout.splitlines()


def test_a_bad_ingest_every_is_a_check_error_at_its_line(project: Path, feeds: FeedServer, run: Run) -> None:
    path = with_feeds(project, feeds, WIRE, every="hourly")
    line = next(n for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if "every: hourly" in text)
    result = run("check")
    assert result.exit_code == 2
    assert (f"config.yaml:{line}: ingest.every: expected seconds or a duration such as 90, 15m, 4h or 3d, "
            "found 'hourly'") in result.stdout.splitlines()
    assert load_config(with_feeds(project, feeds, WIRE)).ingest.every is None  # absent: the runner does not ingest


def test_the_upgrade_to_version_12_keeps_feed_rows_and_misp_event_rows(db_url: str) -> None:
    if db_url.startswith("sqlite:///"):
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(db_url)
    migrate(engine, target=11)
    feed, event = "https://cti.example/feed.xml", "https://misp.example/feed/5f1c.json"
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO feeds (url, etag, last_modified, checked_at, status) VALUES "
            "(:feed, '\"abc\"', 'Fri, 24 Jun 2022 08:00:00 GMT', '2022-06-24 08:00:00', 'ok'), "
            "(:event, '1656057600', NULL, '2022-06-24 08:00:00', 'ok')"
        ), {"feed": feed, "event": event})
    engine.dispose()

    store = Store.open(db_url)
    assert store.version == SCHEMA_VERSION == 12
    assert store.feeds.validators(feed) == ('"abc"', "Fri, 24 Jun 2022 08:00:00 GMT")
    assert store.feeds.validators(event) == ("1656057600", None)
    kept = store.feeds.records([feed])[feed]
    assert (kept.status, kept.checked_at, kept.ever_ran) == ("ok", datetime(2022, 6, 24, 8), False)

    store.feeds.ran(feed, "HTTP 503 Service Unavailable", ok=False, at=datetime(2022, 6, 25, 8, tzinfo=UTC))
    store.feeds.record(event, "ok", "1656144000", None)  # a MISP event's timestamp, as ingest keeps it
    after = store.feeds.records([feed, event])
    assert (after[feed].failures_in_row, after[feed].failure, after[feed].failed_at) == (
        1, "HTTP 503 Service Unavailable", datetime(2022, 6, 25, 8),
    )
    assert store.feeds.validators(feed) == ('"abc"', "Fri, 24 Jun 2022 08:00:00 GMT")  # kept through a failure
    assert store.feeds.validators(event) == ("1656144000", None) and not after[event].ever_ran
    store.close()


def test_the_runner_ingests_on_its_interval_and_warns_of_unhealthy_feeds(
    project: Path, feeds: FeedServer, caplog: pytest.LogCaptureFixture,
) -> None:
    config = with_feeds(project, feeds, MISSING, WIRE, every="1h")
    for _ in range(2):
        ingest_as_of(project, datetime.now(UTC))
    warned = threading.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno == logging.WARNING and record.getMessage().startswith("feed missing: "):
                warned.set()

    caplog.set_level(logging.INFO, logger="newsletter.run")
    watch = Watch()
    logging.getLogger("newsletter.run").addHandler(watch)
    stop = threading.Event()
    runner = Runner(load_config(config), stop)
    thread = threading.Thread(target=runner.run_forever)
    thread.start()
    try:
        assert warned.wait(60), "no warning within 60 s"  # the first ingest runs at start, not after an hour
    finally:
        stop.set()
        thread.join(60)
        logging.getLogger("newsletter.run").removeHandler(watch)
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "newsletter.run"]
    assert ("INFO", "ingest: 0 new drafts, 0 merged, from 2 feeds (1 could not be read)") in messages
    assert ("WARNING", "feed missing: failed its last 3 runs: HTTP 404 Not Found") in messages
    assert not any(m.startswith("feed wire") for _, m in messages)
