"""Briefs and timeline entries as a STIX 2.1 bundle: deterministic ids, TLP 2.0 markings, events.

The brief is a `report` by its authors (`identity`), each key point a `note` on it with its
sources as external references, each timeline entry an `event` of the OASIS Event Extension
(its date's precision in `start_time_fidelity` and `end_time_fidelity`), its actors
`identity` objects it is `related-to`, and the timeline a `grouping`. Every id is a UUIDv5 of
what the object stands for, and every timestamp comes from the content, so exporting the same
content twice gives the same bytes and a platform that loads it again updates, not duplicates.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ..inputs.content import Brief, KeyPoint, Source, TimelineEntry
from .digest import Issue
from ..inputs.marking import (
    CONFIDENCE_SCORES, EVENT_EXTENSION, STIX_TLP_IDS, TLP_EXTENSION, TLP_MARKINGS_CREATED, label, rating_note,
)

NAMESPACE = uuid.UUID("6f6e2a52-7b8e-5d5a-9a43-1c1b6e7a2b10")  # ours: every id derives from it
Json = dict[str, Any]


def stix_id(kind: str, *identity: str) -> str:
    """`kind--UUIDv5` of what the object stands for (a brief's slug, an entry's date and title)."""
    return f"{kind}--{uuid.uuid5(NAMESPACE, chr(0).join((kind, *identity)))}"


def timestamp(day: date) -> str:
    return f"{day.isoformat()}T00:00:00.000Z"


def end_timestamp(day: date) -> str:
    return f"{day.isoformat()}T23:59:59.999Z"


def marking_definition(level: str) -> Json:
    """The OASIS TLP 2.0 marking-definition object of `level` (fixed ids, as published)."""
    return {
        "type": "marking-definition", "spec_version": "2.1", "id": STIX_TLP_IDS[level],
        "created": TLP_MARKINGS_CREATED, "name": label(level),
        "extensions": {TLP_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": level}},
    }


def external_references(sources: Iterable[Source]) -> list[Json]:
    """Our sources; an Admiralty rating rides in the description, as "[Admiralty B2]"."""
    return [
        {"source_name": s.publisher, "url": s.url, "description": s.title + rating_note(s.rating)} for s in sources
    ]


@dataclass
class Bundle:
    """A STIX bundle being assembled: objects once each by id, marking definitions as used."""

    name: str  # what the bundle is of (an issue id, "timeline"): its own id derives from it
    objects: dict[str, Json] = field(default_factory=dict)
    levels: set[str] = field(default_factory=set)

    def add(self, obj: Json, level: str | None = None) -> str:
        if level is not None:
            obj["object_marking_refs"] = [STIX_TLP_IDS[level]]
            self.levels.add(level)
        self.objects.setdefault(obj["id"], obj)
        return str(obj["id"])

    def identity(self, name: str, identity_class: str, day: date) -> str:
        return self.add(_sdo("identity", stix_id("identity", identity_class, name), day, name=name,
                             identity_class=identity_class))

    def as_json(self) -> Json:
        markings = [marking_definition(level) for level in sorted(self.levels, key=list(STIX_TLP_IDS).index)]
        return {
            "type": "bundle", "id": stix_id("bundle", self.name),
            "objects": markings + sorted(self.objects.values(), key=lambda o: (o["type"], o["id"])),
        }


def _sdo(kind: str, identifier: str, day: date, **properties: Any) -> Json:
    stamp = timestamp(day)
    obj: Json = {"type": kind, "spec_version": "2.1", "id": identifier, "created": stamp, "modified": stamp}
    obj.update({key: value for key, value in properties.items() if value not in (None, [], "")})
    return obj


def add_brief(bundle: Bundle, brief: Brief, level: str, points: Iterable[tuple[KeyPoint, str]],
              extra_refs: list[str]) -> str:
    """The brief (at TLP `level`) as a report by its authors, with a note per key point in
    `points` (each with its level), and `extra_refs` (the issue's events) among its objects."""
    authors = [bundle.identity(author.name, "individual", brief.date) for author in brief.authors]
    report = stix_id("report", brief.slug)
    notes = []
    for point, point_level in points:
        notes.append(bundle.add(_sdo(
            "note", stix_id("note", brief.slug, point.text), brief.date, created_by_ref=authors[0],
            content=point.text, authors=[a.name for a in brief.authors], object_refs=[report],
            external_references=external_references(point.sources), lang=brief.language,
            confidence=CONFIDENCE_SCORES.get(point.confidence or ""),
        ), point_level))
    references = [{"source_name": "brief", "url": brief.url}] if brief.url else []
    bundle.add(_sdo(
        "report", report, brief.date, created_by_ref=authors[0], name=brief.title, description=brief.dek,
        published=timestamp(brief.date), report_types=["threat-report"], labels=list(brief.tags),
        object_refs=authors + notes + extra_refs, external_references=references, lang=brief.language,
    ), level)
    return report


def add_entry(bundle: Bundle, entry: TimelineEntry, level: str) -> str:
    """A timeline entry as an event, its actors as identities it is related to."""
    when = entry.date
    event = bundle.add(_sdo(
        "event", stix_id("event", entry.date.iso, entry.title), when.start, name=entry.title,
        description=entry.summary, status="occurred", labels=list(entry.tags),
        # Fidelity is the date's precision: day, month (early/mid/late: the span says which) or year.
        start_time=timestamp(when.start), start_time_fidelity=when.precision,
        end_time=end_timestamp(when.end), end_time_fidelity=when.precision,
        external_references=external_references(entry.sources), lang=entry.language,
        confidence=CONFIDENCE_SCORES.get(entry.confidence or ""),
        extensions={EVENT_EXTENSION: {"extension_type": "new-sdo"}},
    ), level)
    for order, actor in enumerate(entry.actors):
        target = bundle.identity(actor, "unknown", when.start)
        bundle.add(_sdo(
            "relationship", stix_id("relationship", event, actor), when.start, relationship_type="related-to",
            source_ref=event, target_ref=target, description=f"actor {order + 1} of the event",
        ), level)
    return event


def add_timeline(bundle: Bundle, name: str, entries: Iterable[tuple[TimelineEntry, str]], day: date) -> str:
    """The entries (each with its TLP level) as events, gathered in one grouping."""
    listed = list(entries)
    events = [add_entry(bundle, entry, level) for entry, level in listed]
    if not events:
        return ""
    top = max((level for _, level in listed), key=list(STIX_TLP_IDS).index)  # as marked as what it lists
    return bundle.add(_sdo(
        "grouping", stix_id("grouping", name), day, name=name, context="suspicious-activity", object_refs=events,
    ), top)


def issue_bundle(issue: Issue, tlp: str) -> Json:
    """One issue, as a reader cleared to `tlp` may have it (`Issue.for_clearance`: nothing above
    it reaches the mapping), as a STIX bundle."""
    copy = issue.for_clearance(tlp)
    bundle = Bundle(copy.id)
    events = [add_entry(bundle, entry, copy.entry_level(entry)) for entry in copy.entries]
    if copy.brief is not None:
        points = [(point, copy.point_level(point)) for point in copy.brief.key_points]
        add_brief(bundle, copy.brief, copy.brief_level(), points, events)
    return bundle.as_json()


def dumps(data: Json) -> str:
    """Stable JSON text (sorted keys, two-space indent, final newline): the same data, the
    same bytes (bundles, and the MISP feed's files too)."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
