"""STIX 2.1 bundles and MISP feeds read into timeline entries (as mappings, for drafts).

A STIX `event` (OASIS Event Extension), `report` or `note`, or a MISP event, becomes one
entry: its date at the precision the data gives (`start_time_fidelity`, a report's
`published` day, a MISP event's date or our own `threat-brief:date` tag), its title,
summary, sources (external references or `link` attributes, with Admiralty ratings), actors,
tags, TLP level and confidence. Anything that is not what it claims to be (not JSON, not a
bundle, an object the stix2 library refuses) is a problem for the feed, never an exception.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

import stix2
import stix2.exceptions

from ..inputs.content import fuzzy_from_span
from ..inputs.marking import (
    CREDIBILITY, RELIABILITY, STIX_TLP1_IDS, STIX_TLP_IDS, TLP_EXTENSION, TLP_LEVELS, confidence_of_score,
    split_rating_note,
)

Json = dict[str, Any]
TLP_BY_ID = {identifier: level for level, identifier in STIX_TLP_IDS.items()} | STIX_TLP1_IDS
MACHINE_TAG = re.compile(r'^(?P<namespace>[\w-]+):(?P<predicate>[\w-]+)="(?P<value>.*)"$')
TITLE_LIMIT = 200


class ExchangeError(ValueError):
    """What is wrong with a bundle or a feed, in a few words."""


@dataclass(frozen=True)
class Found:
    """An entry read from the data, and the identity its source gave it (to tell it again)."""

    key: str
    entry: Json


def _text(value: Any) -> str:
    return " ".join(str(value or "").split())


def _day(stamp: Any) -> date | None:
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _entry(when: str, title: str, summary: str, sources: list[Json], **more: Any) -> Json:
    entry: Json = {"date": when, "title": _text(title)[:TITLE_LIMIT], "summary": summary.strip() or _text(title)}
    entry.update({key: value for key, value in more.items() if value not in (None, [], "")})
    entry["sources"] = sources
    return entry


# --- STIX ----------------------------------------------------------------------------------

def stix_entries(body: bytes) -> list[Found]:
    """The events, reports and notes of a STIX 2.1 bundle as entries."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExchangeError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("type") != "bundle" or not isinstance(data.get("objects"), list):
        raise ExchangeError("not a STIX bundle (no type 'bundle' with a list of objects)")
    try:  # the library checks every object it knows; others (the Event extension's) come back as mappings
        stix2.parse(data, allow_custom=True)
    except (stix2.exceptions.STIXError, ValueError, TypeError) as exc:
        raise ExchangeError(f"not valid STIX 2.1: {' '.join(str(exc).split())[:200]}") from None
    objects = {o.get("id"): o for o in data["objects"] if isinstance(o, dict)}
    levels = _stix_levels(objects)
    actors = _stix_actors(objects)
    found = []
    for obj in objects.values():
        entry = _stix_entry(obj, levels, actors.get(str(obj.get("id")), []))
        if entry is not None:
            found.append(Found(str(obj["id"]), entry))
    return found


def _stix_levels(objects: dict[Any, Json]) -> dict[str, str]:
    """Marking-definition ids to TLP levels: the standard ones, and any TLP 2.0 definition in the bundle."""
    levels = dict(TLP_BY_ID)
    for obj in objects.values():
        extension = (obj.get("extensions") or {}).get(TLP_EXTENSION) if obj.get("type") == "marking-definition" else None
        if isinstance(extension, dict) and extension.get("tlp_2_0") in TLP_LEVELS:
            levels[str(obj["id"])] = extension["tlp_2_0"]
    return levels


def _stix_actors(objects: dict[Any, Json]) -> dict[str, list[str]]:
    """Per object, the names of the identities it is related to, in their order (ours say "actor N")."""
    pairs: dict[str, list[tuple[int, str]]] = {}
    for obj in objects.values():
        if obj.get("type") == "relationship" and obj.get("relationship_type") == "related-to":
            target = objects.get(obj.get("target_ref"))
            if target is not None and target.get("type") == "identity" and target.get("name"):
                pairs.setdefault(str(obj.get("source_ref")), []).append((_order(obj), _text(target["name"])))
    return {key: [name for _, name in sorted(found)] for key, found in pairs.items()}


def _order(relationship: Json) -> int:
    found = re.match(r"actor (\d+) ", str(relationship.get("description", "")))
    return int(found.group(1)) if found else 10_000


def _stix_entry(obj: Json, levels: dict[str, str], actors: list[str]) -> Json | None:
    kind = obj.get("type")
    if kind == "event":
        start = _day(obj.get("start_time"))
        if start is None:
            return None
        when = fuzzy_from_span(start, _day(obj.get("end_time")), str(obj.get("start_time_fidelity", "day"))).iso
        title, summary = str(obj.get("name") or obj.get("description") or ""), str(obj.get("description") or "")
    elif kind == "report":
        published = _day(obj.get("published"))
        if published is None:
            return None
        when, title, summary = published.isoformat(), str(obj.get("name", "")), str(obj.get("description") or "")
    elif kind == "note":
        created = _day(obj.get("created"))
        if created is None:
            return None
        content = _text(obj.get("content"))
        when, title, summary = created.isoformat(), str(obj.get("abstract") or content[:120]), content
    else:
        return None
    sources = [_stix_source(ref) for ref in obj.get("external_references") or [] if _is_link(ref)]
    if not sources or not _text(title):
        return None
    marking = next((levels[m] for m in obj.get("object_marking_refs") or [] if m in levels), None)
    score = obj.get("confidence")
    return _entry(
        when, title, summary, sources, language=obj.get("lang") if obj.get("lang") != "en" else None,
        actors=actors, tags=[tag for tag in obj.get("labels") or [] if isinstance(tag, str)],
        tlp=marking, confidence=confidence_of_score(score) if isinstance(score, int) else None,
    )


def _is_link(reference: Any) -> bool:
    return isinstance(reference, dict) and urlsplit(str(reference.get("url", ""))).scheme in ("http", "https")


def _stix_source(reference: Json) -> Json:
    title, rating = split_rating_note(_text(reference.get("description")))
    publisher = _text(reference.get("source_name")) or urlsplit(reference["url"]).hostname or "source"
    source: Json = {"title": title or publisher, "publisher": publisher, "url": reference["url"]}
    if rating is not None:
        source.update(reliability=rating.reliability, credibility=rating.credibility)
    return source


# --- MISP ----------------------------------------------------------------------------------

def misp_manifest(body: bytes) -> dict[str, int]:
    """A MISP feed's manifest.json: each event's uuid and its timestamp."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExchangeError(f"not a MISP manifest (not JSON: {exc})") from None
    if not isinstance(data, dict):
        raise ExchangeError("not a MISP manifest (not a mapping of event uuids)")
    found = {}
    for identity, meta in data.items():
        if re.fullmatch(r"[0-9a-f-]{36}", str(identity)) and isinstance(meta, dict):
            try:
                found[str(identity)] = int(meta.get("timestamp", 0))
            except (TypeError, ValueError):
                found[str(identity)] = 0
    return found


def misp_entry(body: bytes) -> Found | None:
    """One MISP event file as an entry (None for an event with no link to a source)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExchangeError(f"not a MISP event (not JSON: {exc})") from None
    event = data.get("Event") if isinstance(data, dict) else None
    if not isinstance(event, dict):
        raise ExchangeError("not a MISP event (no 'Event')")
    ours: dict[str, list[str]] = {}
    level = confidence = None
    for tag in event.get("Tag") or []:
        name = str(tag.get("name", "")) if isinstance(tag, dict) else ""
        if name.startswith("tlp:") and name[4:].lower() in TLP_LEVELS + ("white",):
            level = "clear" if name[4:].lower() == "white" else name[4:].lower()
        found = MACHINE_TAG.match(name)
        if found and found["namespace"] == "threat-brief":
            ours.setdefault(found["predicate"], []).append(found["value"])
        elif found and found["predicate"] == "confidence-in-analytic-judgment":
            confidence = found["value"] if found["value"] in ("low", "moderate", "high") else None
    attributes = [a for a in event.get("Attribute") or [] if isinstance(a, dict)]
    sources = [_misp_source(a) for a in attributes if a.get("type") == "link" and _is_link({"url": a.get("value")})]
    summary = next((str(a.get("value", "")) for a in attributes if a.get("type") == "text" and a.get("comment") == "summary"), "")
    if not summary:
        report = next(iter(event.get("EventReport") or []), None)
        summary = _text(report.get("content")) if isinstance(report, dict) else ""
    day = str(event.get("date", ""))
    if not sources or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
        return None
    when = ours.get("date", [day])[0]
    language = ours.get("language", ["en"])[0]
    return Found(str(event.get("uuid", "")), _entry(
        when, str(event.get("info", "")), summary or str(event.get("info", "")), sources,
        language=language if language != "en" else None, actors=ours.get("actor", []), tags=ours.get("tag", []),
        tlp=level, confidence=confidence,
    ))


def _misp_source(attribute: Json) -> Json:
    url = str(attribute["value"])
    comment = _text(attribute.get("comment"))
    publisher, _, title = comment.partition(": ")
    if not title:
        publisher, title = urlsplit(url).hostname or "source", comment or url
    source: Json = {"title": title, "publisher": publisher, "url": url}
    rating = {}
    for tag in attribute.get("Tag") or []:
        found = MACHINE_TAG.match(str(tag.get("name", ""))) if isinstance(tag, dict) else None
        if found and found["namespace"] == "admiralty-scale":
            rating[found["predicate"]] = found["value"]
    reliability = rating.get("source-reliability", "").upper()
    credibility = rating.get("information-credibility", "")
    if reliability in RELIABILITY and credibility in CREDIBILITY:
        source.update(reliability=reliability, credibility=credibility)
    return source
