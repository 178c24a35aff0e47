"""Issues and the timeline as data: STIX 2.1 bundles and a MISP feed, never above a TLP level.

What leaves is chosen first (`Issue.for_clearance`, or the timeline's entries at or below the
level), then mapped (compose/stix.py, compose/misp.py): nothing above `tlp` is ever handed to
the mapping, so no marked text can leak into a bundle by a mistake there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..compose import misp, stix
from ..compose.digest import compose
from ..inputs.config import Config, Digest
from ..inputs.content import Library, TimelineEntry
from ..inputs.marking import rank
from .build import Project, write_atomically

Json = dict[str, Any]


def issue_bundle(project: Project, digest: Digest, when: datetime, tlp: str) -> Json:
    """The digest's issue as of `when` (an issue stored already: its own moment), as a STIX
    bundle of what a reader cleared to `tlp` may have."""
    return stix.issue_bundle(compose(project.library, digest, when), tlp)


def default_level(config: Config) -> str:
    """The level of content that sets none, outside any one digest: the strictest digest's."""
    return max((d.tlp_default for d in config.digests), key=rank, default="clear")


def timeline_entries(library: Library, config: Config, tlp: str) -> list[tuple[TimelineEntry, str]]:
    """Every timeline entry at or below `tlp`, with its level, in date order."""
    default = default_level(config)
    marked = [(entry, entry.tlp or default) for entry in library.timeline]
    return [(entry, level) for entry, level in marked if rank(level) <= rank(tlp)]


def timeline_bundle(project: Project, tlp: str) -> Json:
    """The whole timeline at or below `tlp`, as events in one grouping."""
    entries = timeline_entries(project.library, project.config, tlp)
    bundle = stix.Bundle("timeline")
    newest = max((entry.date.start for entry, _ in entries), default=date(1970, 1, 1))
    stix.add_timeline(bundle, "Timeline", entries, newest)
    return bundle.as_json()


@dataclass(frozen=True)
class MispFeed:
    folder: Path
    events: int


def misp_feed(project: Project, tlp: str, folder: Path) -> MispFeed:
    """A MISP feed directory: an event per brief and per timeline entry at or below `tlp`,
    `manifest.json` and `hashes.csv` (what MISP's feed reader fetches)."""
    config, library = project.config, project.library
    org = {"name": config.digests[0].sender.name if config.digests else config.site.domain,
           "uuid": misp.misp_uuid("org", config.site.domain)}
    default = default_level(config)
    events: list[Json] = []
    for brief in library.briefs:
        level = brief.tlp or default
        if rank(level) > rank(tlp):
            continue
        points = [(p, brief.point_level(p, default)) for p in brief.key_points]
        events.append(misp.brief_event(brief, level, [(p, lv) for p, lv in points if rank(lv) <= rank(tlp)], org))
    events += [misp.entry_event(entry, level, org) for entry, level in timeline_entries(library, config, tlp)]
    folder.mkdir(parents=True, exist_ok=True)
    for event in events:
        write_atomically(folder / f"{event['Event']['uuid']}.json", stix.dumps(event).encode())
    manifest = {event["Event"]["uuid"]: misp.manifest_entry(event) for event in events}
    write_atomically(folder / "manifest.json", stix.dumps(manifest).encode())
    write_atomically(folder / "hashes.csv", "".join(f"{line}\n" for line in misp.hashes(events)).encode())
    return MispFeed(folder, len(events))

