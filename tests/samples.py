"""Small hand-built content for tests that need exact control over one brief or entry."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from datetime import UTC, datetime

from newsletter.inputs.config import Digest, Mailbox, Site
from newsletter.store import Snapshot, Store, StoredIssue
from newsletter.inputs.content import Author, Brief, KeyPoint, Related, Source, TimelineEntry, parse_fuzzy_date

SOURCE = Source("Report", "Daily Sabah", "https://example.org/report")
SITE = Site("https://news.example.org", "news.example.org")
DIGEST = Digest(
    name="weekly", title="Weekly", description="", tags=("iran",), language="en", period="weekly",
    timezone="Europe/Istanbul", max_entries=8, lookback_days=None,
    sender=Mailbox("Digest", "digest@example.org"), subject="{title}: {brief}",
)


def entry(
    when: str, title: str, tags: tuple[str, ...] = ("iran",), language: str = "en",
    summary: str = "Summary.", sources: tuple[Source, ...] = (SOURCE,), actors: tuple[str, ...] = (),
) -> TimelineEntry:
    return TimelineEntry(
        parse_fuzzy_date(when), title, summary, actors, tags, sources, language, Path("t.yaml"), 1
    )


def brief(
    day: date, slug: str, tags: tuple[str, ...] = ("iran",), title: str | None = None,
    key_points: tuple[KeyPoint, ...] = (KeyPoint("Point.", (SOURCE,)),),
    authors: tuple[Author, ...] = (), related: tuple[Related, ...] = (), language: str = "en",
    url: str | None = None,
) -> Brief:
    return Brief(
        slug=slug, path=Path(f"{day}-{slug}.md"), title=title or slug.title(), dek="Dek.", date=day,
        authors=authors, language=language, tags=tags, key_points=key_points, related=related,
        body="", url=url,
    )


def stored_issue(
    store: Store, period: str = "2022-W30", subject: str = "Subject", content_hash: str = "hash",
    as_of: datetime = datetime(2022, 7, 30, tzinfo=UTC), digest: str = "weekly",
) -> tuple[StoredIssue, bool]:
    """Save a small snapshot of `digest`'s issue for `period`: (the stored issue, whether written)."""
    return store.issues.save(Snapshot(
        digest=digest, period=period, subject=subject, preheader="Pre", html="<p>html</p>", text="text",
        sender_name="Digest", sender_address="digest@example.org", reply_to_name=None, reply_to_address=None,
        list_id=f'"Weekly" <{digest}.news.example.org>', language="en", direction="ltr", content_hash=content_hash,
        as_of=as_of, contents=(),
    ))
