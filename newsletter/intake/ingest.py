"""Read news feeds and draft a timeline entry for each new item that matches a feed's rule.

Each feed is fetched with a conditional GET (the ETag and Last-Modified it sent last time
are kept in the store), parsed with feedparser, and filtered by its keyword rule. An item
whose link is already published, drafted or rejected is not proposed again; items from
several feeds that are the same story (the same link once normalized, or nearly the same
title on the same day) become one draft with several sources. A draft a person has edited
is never rewritten. One broken or unreachable feed is reported; the others still run.
"""

from __future__ import annotations

import calendar
import difflib
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
from lxml import html as lxml_html

from . import drafts
from .exchange import ExchangeError, Found, misp_entry, misp_manifest, stix_entries
from ..inputs.config import Config, Feed
from ..inputs.content import load_library
from ..store import Store

USER_AGENT = "threat-brief-newsletter/0.1 (newsletter ingest)"
SUMMARY_LIMIT = 600
SAME_TITLE = 0.9  # difflib ratio of two normalized titles, the same day, for one story
MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]<>#|])")


@dataclass(frozen=True)
class Fetched:
    status: int  # 200, or 304 (not modified)
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None


class FetchError(Exception):
    """A feed could not be fetched; the message says why, in a few words."""


Fetcher = Callable[[str, str | None, str | None, float], Fetched]


def fetch(url: str, etag: str | None, last_modified: str | None, timeout: float) -> Fetched:
    """GET `url`, conditionally: a 304 means nothing changed since the validators were sent."""
    if url.startswith("file:"):
        try:
            return Fetched(200, Path(url.removeprefix("file:")).read_bytes())
        except OSError as exc:
            raise FetchError(f"cannot read {url}: {exc.strerror}") from None
    headers = {"User-Agent": USER_AGENT, "Accept": "application/atom+xml, application/rss+xml, application/xml;q=0.9, */*;q=0.5"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
            return Fetched(response.status, response.read(), response.headers.get("ETag"),
                           response.headers.get("Last-Modified"))
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return Fetched(304, etag=etag, last_modified=last_modified)
        raise FetchError(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"unreachable: {'timed out' if isinstance(reason, TimeoutError) else reason}") from None


@dataclass
class FeedReport:
    feed: str
    status: str = "ok"
    items: int = 0
    matched: int = 0
    drafted: list[str] = field(default_factory=list)  # new draft ids
    merged: list[str] = field(default_factory=list)  # drafts that gained a source
    known: int = 0  # already published, drafted or rejected
    kept_edits: list[str] = field(default_factory=list)  # edited drafts left alone

    @property
    def ok(self) -> bool:
        """Whether the feed was read (a 304 is read: nothing changed)."""
        return self.status in ("ok", "not modified")

    @property
    def brought_new(self) -> bool:
        """Whether it brought a new item: a new draft, or a new source for one."""
        return bool(self.drafted or self.merged)


@dataclass(frozen=True)
class Item:
    """A feed item that passed its feed's rule, as the entry it would become."""

    feed: Feed
    day: date
    title: str
    summary: str
    url: str
    publisher: str

    @property
    def source(self) -> dict[str, str]:
        return {"title": self.title, "publisher": self.publisher, "url": self.url}

    def entry(self) -> dict[str, Any]:
        return {
            "date": self.day.isoformat(), "title": self.title, "summary": self.summary, "actors": [],
            "tags": list(self.feed.tags or ("ingested",)), "sources": [self.source],
        }


def matches(feed: Feed, text: str) -> bool:
    """The feed's rule: all of `all_of`, one of `any_of` (if any), none of `none_of`;
    whole words or phrases, case-insensitive."""
    def found(word: str) -> bool:
        return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE) is not None

    return (
        all(found(w) for w in feed.all_of)
        and (not feed.any_of or any(found(w) for w in feed.any_of))
        and not any(found(w) for w in feed.none_of)
    )


def plain(markup: str) -> str:
    """Feed HTML (already sanitized by feedparser) as one line of text."""
    if "<" in markup:
        try:
            markup = str(lxml_html.fragment_fromstring(markup, create_parent="div").text_content())
        except (ValueError, lxml_html.etree.ParserError):
            markup = re.sub(r"<[^>]+>", " ", markup)
    return " ".join(markup.split())


def _markdown_text(text: str) -> str:
    """Plain text made safe to read as Markdown (no accidental emphasis, links or HTML)."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", text)


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "\u2026"


def _title_key(title: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", title.lower()).split())


def items_of(feed: Feed, body: bytes, today: date) -> tuple[list[Item], int, str | None]:
    """Parse a feed: (items that pass its rule, how many items there were, a problem if any)."""
    parsed = feedparser.parse(body)
    if parsed.bozo and not parsed.entries:
        return [], 0, f"malformed feed: {parsed.get('bozo_exception', 'unreadable')}"
    publisher = feed.publisher or plain(parsed.feed.get("title", "")) or urlsplit(feed.url).hostname or feed.name
    found: list[Item] = []
    for raw in parsed.entries:
        title = plain(raw.get("title", ""))
        link = raw.get("link", "")
        if not title or urlsplit(link).scheme not in ("http", "https"):
            continue
        summary = plain(raw.get("summary", "") or raw.get("description", ""))
        if not matches(feed, f"{title}\n{summary}"):
            continue
        stamp = raw.get("published_parsed") or raw.get("updated_parsed")
        day = datetime.fromtimestamp(calendar.timegm(stamp), UTC).date() if stamp else today
        text = _markdown_text(_shorten(summary or title, SUMMARY_LIMIT))
        found.append(Item(feed, day, _shorten(title, 200), text, link, publisher))
    return found, len(parsed.entries), None


def ingest(
    config: Config, store: Store, feeds: Iterable[Feed] | None = None, today: date | None = None,
    fetcher: Fetcher = fetch, now: datetime | None = None,
) -> list[FeedReport]:
    """Fetch every feed (or `feeds`) and write or update drafts; one report per feed. Each
    feed's run is recorded as of `now` (aware; default now): its validators and its health
    (intake/health.py). `today` dates items that carry no date (default: `now`'s day, UTC)."""
    now = now or datetime.now(UTC)
    content = config.content_dir
    library = load_library(content)
    batch = _Batch(
        config, store, fetcher, today or now.astimezone(UTC).date(),
        drafts.known_urls(content, library.timeline), {d.id: d for d in drafts.entry_drafts(content)},
    )
    reports = []
    for feed in feeds if feeds is not None else config.ingest.feeds:
        report = FeedReport(feed.name)
        reports.append(report)
        etag, modified = _read(feed, report, batch)
        store.feeds.ran(feed.url, report.status, ok=report.ok, new=report.brought_new, etag=etag,
                        last_modified=modified, at=now)
    return reports


@dataclass(frozen=True)
class _Batch:
    """What every feed of one ingest shares: where drafts go, and what is known already
    (`known` and `open_drafts` grow as feeds are read, so one story from two feeds is one draft)."""

    config: Config
    store: Store
    fetcher: Fetcher
    today: date
    known: set[str]
    open_drafts: dict[str, drafts.Draft]


def _read(feed: Feed, report: FeedReport, batch: _Batch) -> tuple[str | None, str | None]:
    """Fetch one feed and draft its items into `report`; the validators it sent, to keep for
    the next conditional GET ((None, None): keep the old ones). What went wrong is its status."""
    try:
        fetched = batch.fetcher(first_url(feed), *batch.store.feeds.validators(feed.url), batch.config.ingest.timeout)
        if fetched.status == 304:
            report.status = "not modified"
            return None, None
        problem = (_draft_items if feed.kind == "rss" else _draft_exchanged)(feed, fetched.body, report, batch)
    except (ExchangeError, FetchError) as exc:
        report.status = str(exc)
        return None, None
    if problem:
        report.status = problem
        return None, None
    return fetched.etag, fetched.last_modified


def _draft_items(feed: Feed, body: bytes, report: FeedReport, batch: _Batch) -> str | None:
    """An RSS or Atom feed's matching items as drafts; what is wrong with the feed, if anything."""
    items, report.items, problem = items_of(feed, body, batch.today)
    if problem:
        return problem
    report.matched = len(items)
    for item in items:
        _take(batch.config.content_dir, item, batch.known, batch.open_drafts, report)
    return None


def _draft_exchanged(feed: Feed, body: bytes, report: FeedReport, batch: _Batch) -> str | None:
    """A STIX bundle's or MISP feed's entries as drafts (ExchangeError or FetchError if unreadable)."""
    found = _exchanged(feed, body, batch.store, batch.fetcher, batch.config.ingest.timeout)
    report.items = report.matched = len(found)
    for structured in found:
        _take_structured(batch.config.content_dir, feed, structured, batch.known, report)
    return None


def first_url(feed: Feed) -> str:
    """What to fetch first: the feed itself, or a MISP feed's manifest.json."""
    if feed.kind == "misp" and not feed.url.endswith("manifest.json"):
        return feed.url.rstrip("/") + "/manifest.json"
    return feed.url


def _exchanged(feed: Feed, body: bytes, store: Store, fetcher: Fetcher, timeout: float) -> list[Found]:
    """The entries a STIX bundle holds, or a MISP feed's events that changed since the last run
    (each event's timestamp is kept in the store, as a feed's validators are)."""
    if feed.kind == "stix":
        return stix_entries(body)
    base = feed.url.removesuffix("manifest.json").rstrip("/")
    found = []
    for identity, stamp in sorted(misp_manifest(body).items()):
        url = f"{base}/{identity}.json"
        seen, _ = store.feeds.validators(url)
        if seen == str(stamp):
            continue
        event = misp_entry(fetcher(url, None, None, timeout).body)
        if event is not None:
            found.append(event)
        store.feeds.record(url, "ok", str(stamp), None)
    return found


def _take_structured(content: Path, feed: Feed, item: Found, known: set[str], report: FeedReport) -> None:
    """A STIX or MISP item as a draft, unless one of its sources is published, drafted or rejected."""
    entry = dict(item.entry)
    urls = [drafts.normalize_url(source["url"]) for source in entry["sources"]]
    if any(url in known for url in urls):
        report.known += 1
        return
    entry["tags"] = list(dict.fromkeys(list(entry.get("tags", [])) + list(feed.tags))) or ["ingested"]
    draft = drafts.write_entry(content, entry, origin=f"feed {feed.name} ({item.key})", trusted=feed.trusted)
    report.drafted.append(draft.id)
    known.update(urls)


def _take(content: Path, item: Item, known: set[str], open_drafts: dict[str, drafts.Draft], report: FeedReport) -> None:
    url = drafts.normalize_url(item.url)
    if url in known:
        report.known += 1
        return
    same_story = next((d for d in open_drafts.values() if _same_story(d, item)), None)
    if same_story is None:
        draft = drafts.write_entry(content, item.entry(), origin=f"feed {item.feed.name}", trusted=item.feed.trusted)
        report.drafted.append(draft.id)
    elif same_story.edited:
        report.kept_edits.append(same_story.id)
        return
    else:
        merged = dict(same_story.data)
        merged["sources"] = list(same_story.data.get("sources", [])) + [item.source]
        merged["tags"] = list(dict.fromkeys(list(same_story.data.get("tags", [])) + list(item.feed.tags)))
        draft = drafts.write_entry(
            content, merged, origin=same_story.origin, trusted=same_story.trusted and item.feed.trusted, draft=same_story,
        )
        report.merged.append(draft.id)
    open_drafts[draft.id] = draft
    known.add(url)


def _same_story(draft: drafts.Draft, item: Item) -> bool:
    if drafts.normalize_url(item.url) in draft.urls:
        return True
    if draft.date != item.day.isoformat():
        return False
    return difflib.SequenceMatcher(None, _title_key(draft.title), _title_key(item.title)).ratio() >= SAME_TITLE

