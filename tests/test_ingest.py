"""`newsletter ingest`: feeds served from local files over loopback HTTP, and the drafts they make."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from newsletter.intake import drafts
from newsletter.usecases.build import Project
from newsletter.inputs.config import Feed, load_config
from newsletter.compose.digest import compose, moment
from newsletter.intake.ingest import ingest, matches
from newsletter.store import Store

from .conftest import Run

FEEDS = Path(__file__).resolve().parent / "data" / "feeds"
LAST_MODIFIED = "Fri, 24 Jun 2022 08:00:00 GMT"


class FeedServer:
    """Serves tests/data/feeds/ with ETag and Last-Modified, answers conditional GETs with 304,
    and has a slow path for timeouts. Files can be replaced while it runs."""

    def __init__(self) -> None:
        self.files = {f"/{p.name}": p.read_bytes() for p in FEEDS.glob("*.xml")}
        self.requests: list[tuple[str, str | None]] = []  # (path, If-None-Match)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                server.requests.append((self.path, self.headers.get("If-None-Match")))
                if self.path == "/slow.xml":
                    time.sleep(2)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                tag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == tag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("ETag", tag)
                self.send_header("Last-Modified", LAST_MODIFIED)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    server = FeedServer()
    server.files["/slow.xml"] = server.files["/wire.xml"]
    yield server
    server.stop()


def configure(project: Path, server: FeedServer, names: tuple[str, ...] = ("regional", "wire"), timeout: float = 5) -> Path:
    rules = {
        "regional": {"url": f"{server.url}/regional.xml", "all": ["iran"], "any": ["intelligence", "plot", "attack", "attacks"],
                     "none": ["football"], "tags": ["iran", "turkey"]},
        "wire": {"url": f"{server.url}/wire.xml", "any": ["iran", "iranian"], "tags": ["iran", "israel"], "trusted": True},
        "broken": {"url": f"{server.url}/broken.xml"},
        "missing": {"url": f"{server.url}/missing.xml"},
        "slow": {"url": f"{server.url}/slow.xml"},
    }
    block = {"ingest": {"timeout": timeout, "feeds": [{"name": name, **rules[name]} for name in names]}}
    path = project / "config.yaml"
    without = re.sub(r"^ingest:\n(?:(?:[ #].*)?\n)*", "", path.read_text(encoding="utf-8"), flags=re.M)
    path.write_text(without + "\n" + yaml.safe_dump(block, sort_keys=False), encoding="utf-8")
    return path


def run_ingest(project: Path) -> list:  # type: ignore[type-arg]
    config = load_config(project / "config.yaml")
    return ingest(config, Store.open(config.store_url), today=date(2022, 6, 25))


def entry_drafts(project: Path) -> list[drafts.Draft]:
    return drafts.entry_drafts(project / "content")


FEED = Feed("f", "https://x.example", None, (), (), (), ("iran",), False)


@pytest.mark.parametrize(
    ("rule", "text", "expected"),
    [
        ({"all_of": ("iran", "turkey")}, "IRAN and Turkey talk", True),
        ({"all_of": ("iran", "turkey")}, "Iran talks", False),
        ({"any_of": ("israel", "turkey")}, "A word from Ankara on TURKEY", True),
        ({"any_of": ("israel",)}, "Israelis travel", False),  # whole words: Israelis is not Israel
        ({"none_of": ("football",)}, "Iran football news", False),
        ({"all_of": ("gas pipeline",)}, "a new Gas  Pipeline", False),
        ({"all_of": ("gas pipeline",)}, "a new gas pipeline", True),
        ({}, "anything", True),
    ],
)
def test_keyword_rules(rule: dict[str, tuple[str, ...]], text: str, expected: bool) -> None:
    assert matches(replace(FEED, **rule), text) is expected


def test_matching_items_become_drafts_and_one_story_from_two_feeds_is_one_draft(project: Path, feeds: FeedServer) -> None:
    configure(project, feeds)
    reports = run_ingest(project)
    assert [(r.feed, r.status, r.items, r.matched) for r in reports] == [("regional", "ok", 4, 1), ("wire", "ok", 3, 3)]
    found = {d.date: d for d in entry_drafts(project)}
    assert sorted(found) == ["2022-06-20", "2022-06-23"]
    story = found["2022-06-23"]
    assert [s["url"] for s in story.data["sources"]] == [
        "https://regional.example.org/2022/06/23/detentions/?utm_source=rss&utm_medium=feed",
        "https://monitor.example.net/news/iran-plot-istanbul",
    ]
    assert [s["publisher"] for s in story.data["sources"]] == ["Regional Security Wire", "Eastern Mediterranean Monitor"]
    assert story.data["summary"].startswith("Turkey's intelligence agency and police detained eight people")
    assert story.problems == () and not story.edited
    assert reports[1].known == 1  # the syndicated copy of the same link
    assert found["2022-06-20"].trusted and not story.trusted  # only the trusted feed's own story


def test_a_second_ingest_uses_a_conditional_get_and_changes_nothing(project: Path, feeds: FeedServer) -> None:
    configure(project, feeds)
    run_ingest(project)
    before = {p: p.read_bytes() for p in (project / "content" / "timeline" / "drafts").glob("*.yaml")}
    reports = run_ingest(project)
    assert [r.status for r in reports] == ["not modified", "not modified"]
    assert feeds.requests[-1][1] is not None  # If-None-Match was sent
    after = {p: p.read_bytes() for p in (project / "content" / "timeline" / "drafts").glob("*.yaml")}
    assert after == before


def test_an_edited_draft_survives_a_second_ingest(project: Path, feeds: FeedServer) -> None:
    configure(project, feeds, names=("regional",))
    run_ingest(project)
    (draft,) = entry_drafts(project)
    edited = draft.path.read_text(encoding="utf-8").replace("summary: Turkey's", "summary: According to officials, Turkey's")
    assert edited != draft.path.read_text(encoding="utf-8")
    draft.path.write_text(edited, encoding="utf-8")
    configure(project, feeds, names=("wire",))  # a second feed brings the same story
    reports = run_ingest(project)
    assert draft.path.read_text(encoding="utf-8") == edited
    assert reports[-1].kept_edits == [draft.id]  # the wire's copy of the story was not merged into it


@pytest.mark.parametrize(("bad", "status"), [
    ("broken", "malformed feed"), ("missing", "HTTP 404 Not Found"), ("slow", "unreachable: timed out"),
])
def test_a_bad_feed_is_reported_and_the_others_still_run(project: Path, feeds: FeedServer, run: Run, bad: str, status: str) -> None:
    configure(project, feeds, names=(bad, "wire"), timeout=0.5)
    result = run("ingest")
    assert result.exit_code == 75  # EX_TEMPFAIL: the feed may answer later
    assert f"{bad}: {status}" in result.stderr
    assert "1 of 2 feeds could not be read" in result.stderr
    assert result.stdout.startswith("wire: ok, 3 items, 3 matched, 3 new drafts")


def test_the_review_flow_from_the_command_line(project: Path, feeds: FeedServer, run: Run) -> None:
    configure(project, feeds)
    assert run("ingest").exit_code == 0
    listed = run("drafts", "list").stdout.splitlines()
    assert len(listed) == 2
    thanks = next(line.split("\t")[0] for line in listed if "Israel thanks Turkey" in line)
    story = next(line.split("\t")[0] for line in listed if "detain" in line)

    approved = run("drafts", "approve", thanks)
    assert approved.exit_code == 0 and approved.stdout == f"approved {thanks}: now in content/timeline/approved.yaml\n"
    assert run("check").exit_code == 0
    library = Project.of(load_config(project / "config.yaml")).library
    assert "Israel thanks Turkey for thwarting attacks" in [e.title for e in library.timeline]

    assert run("drafts", "reject", story).stdout == f"rejected {story}\n"
    assert [line.split("\t")[0] for line in run("drafts", "list").stdout.splitlines()] == []
    feeds.files["/regional.xml"] += b"\n"  # a new ETag: the feeds are read again
    feeds.files["/wire.xml"] += b"\n"
    again = run("ingest")
    assert "0 new drafts" in again.stdout.splitlines()[0] and "0 new drafts" in again.stdout.splitlines()[1]

    missing = run("drafts", "approve", "nonexistent")
    assert missing.exit_code == 2 and missing.stderr.startswith("error: ")


def test_a_draft_that_would_break_the_content_is_not_approved(project: Path, feeds: FeedServer, run: Run) -> None:
    configure(project, feeds, names=("wire",))
    run("ingest")
    draft = next(d for d in entry_drafts(project) if d.date == "2022-06-20")
    draft.path.write_text(draft.path.read_text(encoding="utf-8").replace("date: '2022-06-20'", "date: '2022-02-30'"))
    result = run("drafts", "approve", draft.id)
    assert result.exit_code == 2
    assert f"content/timeline/drafts/{draft.id}.yaml:" in result.stderr and "is not a real date" in result.stderr
    assert not (project / "content" / "timeline" / "approved.yaml").exists()
    assert draft.path.exists()


def test_trusted_drafts_go_out_only_in_digests_that_include_them(project: Path, feeds: FeedServer) -> None:
    configure(project, feeds, names=("wire",))
    run_ingest(project)
    config = project / "config.yaml"

    def titles() -> list[str]:
        loaded = Project.of(load_config(config))
        digest = loaded.config.digest("weekly")
        return [e.title for e in compose(loaded.library, digest, moment(date(2022, 6, 20), digest)).entries]

    assert "Israel thanks Turkey for thwarting attacks" not in titles()
    config.write_text(config.read_text(encoding="utf-8").replace("    when_nothing_new: skip", "    when_nothing_new: skip\n    include_drafts: trusted"))
    assert "Israel thanks Turkey for thwarting attacks" in titles()
