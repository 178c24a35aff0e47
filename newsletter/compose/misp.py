"""Briefs and timeline entries as a MISP feed: one event each, a manifest, and the hashes file.

An entry's event carries its sources as `link` attributes (each with its Admiralty tags), its
summary as a `text` attribute, and its TLP level and confidence as tags from MISP's own
taxonomies (`tlp:amber`, `estimative-language:confidence-in-analytic-judgment="moderate"`,
`admiralty-scale:source-reliability="b"`). What MISP has no taxonomy for (our tags, actors and
the date's precision) rides in `threat-brief:` machine tags, so an import gives back the entry.
A brief's event holds its key points as an event report in Markdown. Ids are UUIDv5 and
timestamps come from the content, so the same content gives the same files.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, time
from typing import Any

from ..inputs.content import Brief, KeyPoint, Source, TimelineEntry
from .stix import NAMESPACE

Json = dict[str, Any]
OUR_TAG = "threat-brief"  # the namespace of the machine tags only we read back
ANALYSIS_COMPLETE = "2"
THREAT_LEVEL_UNDEFINED = "4"


def misp_uuid(*identity: str) -> str:
    return str(uuid.uuid5(NAMESPACE, chr(0).join(("misp", *identity))))


def machine_tag(namespace: str, predicate: str, value: str) -> Json:
    quoted = value.replace('"', "'")
    return {"name": f'{namespace}:{predicate}="{quoted}"'}


def _tags(level: str, confidence: str | None) -> list[Json]:
    tags = [{"name": f"tlp:{level}"}]
    if confidence:
        tags.append(machine_tag("estimative-language", "confidence-in-analytic-judgment", confidence))
    return tags


def _link(source: Source, event: str, order: int) -> Json:
    tags = []
    if source.rating:
        tags = [
            machine_tag("admiralty-scale", "source-reliability", source.rating.reliability.lower()),
            machine_tag("admiralty-scale", "information-credibility", source.rating.credibility),
        ]
    return {
        "uuid": misp_uuid(event, "link", str(order), source.url), "type": "link", "category": "External analysis",
        "value": source.url, "comment": f"{source.publisher}: {source.title}", "to_ids": False, "Tag": tags,
    }


def _event(identity: str, info: str, day: Any, tags: list[Json], attributes: list[Json], org: Json) -> Json:
    stamp = str(int(datetime.combine(day, time(0), tzinfo=UTC).timestamp()))
    return {"Event": {
        "uuid": identity, "info": info, "date": day.isoformat(), "analysis": ANALYSIS_COMPLETE,
        "threat_level_id": THREAT_LEVEL_UNDEFINED, "published": True, "timestamp": stamp,
        "publish_timestamp": stamp, "Orgc": org, "Tag": tags, "Attribute": attributes,
    }}


def entry_event(entry: TimelineEntry, level: str, org: Json) -> Json:
    identity = misp_uuid("entry", entry.date.iso, entry.title)
    tags = _tags(level, entry.confidence) + [machine_tag(OUR_TAG, "date", entry.date.iso)]
    tags += [machine_tag(OUR_TAG, "tag", tag) for tag in entry.tags]
    tags += [machine_tag(OUR_TAG, "actor", actor) for actor in entry.actors]
    tags.append(machine_tag(OUR_TAG, "language", entry.language))
    attributes = [_link(source, identity, n) for n, source in enumerate(entry.sources)]
    attributes.append({
        "uuid": misp_uuid(identity, "summary"), "type": "text", "category": "Other", "value": entry.summary,
        "comment": "summary", "to_ids": False, "Tag": [],
    })
    return _event(identity, entry.title, entry.date.start, tags, attributes, org)


def brief_event(brief: Brief, level: str, points: Iterable[tuple[KeyPoint, str]], org: Json) -> Json:
    identity = misp_uuid("brief", brief.slug)
    chosen = list(points)
    lines = [f"# {brief.title}", "", brief.dek, "", "## Key points", ""]
    for point, point_level in chosen:
        confidence = f" ({point.confidence} confidence)" if point.confidence else ""
        sources = "; ".join(f"[{s.publisher}]({s.url})" for s in point.sources)
        lines.append(f"- **TLP:{point_level.upper()}** {point.text}{confidence} ({sources})")
    event = _event(identity, brief.title, brief.date, _tags(level, None) + [
        machine_tag(OUR_TAG, "tag", tag) for tag in brief.tags], [
        _link(source, identity, n) for n, source in enumerate(
            s for point, _ in chosen for s in point.sources)], org)
    event["Event"]["EventReport"] = [{
        "uuid": misp_uuid(identity, "key points"), "name": "Key points", "content": "\n".join(lines) + "\n",
        "distribution": "5",
    }]
    return event


def manifest_entry(event: Json) -> Json:
    body = event["Event"]
    return {key: body[key] for key in ("info", "date", "analysis", "threat_level_id", "timestamp", "Orgc", "Tag")}


def hashes(events: Iterable[Json]) -> list[str]:
    """hashes.csv lines: the MD5 of each attribute's value, and its event's uuid."""
    return [
        f"{hashlib.md5(attribute['value'].encode(), usedforsecurity=False).hexdigest()},{event['Event']['uuid']}"
        for event in events for attribute in event["Event"]["Attribute"]
    ]
