"""What the public may see: the issues that went out, dated in their digest's time zone, and
the Atom feed of them with each issue's full HTML.

Nothing here reads content/ or composes: an issue is public once a copy of it was delivered
(store.issues.published), so no page shows what readers have not been sent.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, date, datetime

from ..compose.render import fill
from ..inputs.config import Config, Digest
from ..store import Store, StoredIssue

FEED_ENTRIES = 50
BODY = re.compile(r"<body[^>]*>(.*)</body>", re.DOTALL | re.IGNORECASE)
PREHEADER = re.compile(r'<div class="preheader"[^>]*>.*?</div>', re.DOTALL)


@dataclass(frozen=True)
class Published:
    """An issue that went out, with the digest it belongs to (None: no longer configured)."""

    stored: StoredIssue
    digest: Digest | None

    @property
    def day(self) -> date:
        """The issue's day where its readers are: the digest's time zone (UTC without one)."""
        moment = self.stored.as_of.replace(tzinfo=UTC)
        return moment.astimezone(self.digest.zone).date() if self.digest else moment.date()


def published(config: Config, store: Store, digest: str | None = None) -> list[Published]:
    """Issues that went out, newest first, of one digest or of all."""
    return [Published(s, _digest(config, s.digest)) for s in store.issues.published(digest)]


def find(config: Config, store: Store, name: str) -> Published | None:
    """One issue that went out, by name (weekly-2022-W30); None if there is none by that name
    or it never went out."""
    found = store.issues.published(name=name, limit=1)
    return Published(found[0], _digest(config, found[0].digest)) if found else None


def public_html(config: Config, stored: StoredIssue) -> str:
    """The issue's HTML as the public sees it: the per-reader links lead to the home page,
    where anyone can subscribe (no subscriber stands behind a public copy)."""
    home = f"{config.site.base_url}/"
    return fill(stored.html, home, home)


def atom_feed(config: Config, digest: Digest, issues: list[Published]) -> bytes:
    """An Atom 1.0 feed (RFC 4287) of a digest's issues that went out, newest first, each
    with its full HTML as the entry's content."""
    atom = "http://www.w3.org/2005/Atom"
    ET.register_namespace("", atom)
    base = config.site.base_url

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{atom}}}{tag}", attributes)
        element.text = text
        return element

    def stamp(moment: datetime) -> str:
        return moment.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    feed = ET.Element(f"{{{atom}}}feed", {"xml:lang": digest.language})
    sub(feed, "id", f"tag:{config.site.domain},2022:{digest.name}")
    sub(feed, "title", digest.title)
    if digest.description:
        sub(feed, "subtitle", digest.description)
    sub(feed, "updated", stamp(max((i.stored.created_at for i in issues), default=datetime(2022, 1, 1))))
    sub(feed, "link", rel="self", href=f"{base}/feed.xml?digest={digest.name}")
    sub(feed, "link", rel="alternate", type="text/html", href=f"{base}/issues/?digest={digest.name}")
    author = sub(feed, "author")
    sub(author, "name", digest.sender.name)
    for published_issue in issues[:FEED_ENTRIES]:
        stored = published_issue.stored
        entry = sub(feed, "entry")
        sub(entry, "id", f"tag:{config.site.domain},2022:{stored.name}")
        sub(entry, "title", stored.subject)
        sub(entry, "updated", stamp(stored.created_at))
        sub(entry, "published", stamp(stored.as_of))
        sub(entry, "link", rel="alternate", type="text/html", href=f"{base}/issues/{stored.name}")
        sub(entry, "summary", stored.preheader)
        sub(entry, "content", _feed_body(public_html(config, stored)), type="html")
    return bytes(ET.tostring(feed, encoding="utf-8", xml_declaration=True))


def _feed_body(html: str) -> str:
    """The part of a message's HTML a feed reader shows: its body, without the preheader (text
    hidden for inbox previews, which a feed reader would show)."""
    found = BODY.search(html)
    return PREHEADER.sub("", found.group(1) if found else html).strip()


def _digest(config: Config, name: str) -> Digest | None:
    return next((d for d in config.digests if d.name == name), None)
