"""STIX 2.1 and MISP: what we export validates and never holds more than its TLP level, and
what we export comes back through `ingest` as the same timeline entries."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymisp import MISPEvent
from starlette.testclient import TestClient
from stix2validator import ValidationOptions, validate_instance

from newsletter.faces.web import create_app
from newsletter.inputs.config import load_config
from newsletter.inputs.content import TimelineEntry, load_library
from newsletter.intake import drafts

from .conftest import Run

AMBER_TEXT = "criminal intermediaries"  # the seed's TLP:AMBER key point
GREEN_TITLE = "Iran sponsors a joint YPG-militia operations room in northern Syria"  # TLP:GREEN


def bundle_of(run: Run, *args: str) -> dict[str, Any]:
    result = run("export", "stix", *args)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def warnings_but_the_deliberate_two(bundle: dict[str, Any]) -> tuple[bool, list[str]]:
    """Strict validation with only UUIDv4 ids (103: ours are UUIDv5 on purpose) and hashes of
    linked pages (302: not to be had offline) let through."""
    strict = validate_instance(bundle, ValidationOptions(strict=True, disabled=["103", "302"]))
    relaxed = validate_instance(bundle, ValidationOptions(strict=False))
    codes = {re.search(r"\{(\d+)\}", warning).group(1) for warning in relaxed.warnings}  # type: ignore[union-attr]
    return strict.is_valid and relaxed.is_valid, sorted(codes)


def test_an_issue_exports_as_a_valid_deterministic_bundle(project: Path, run: Run) -> None:
    bundle = bundle_of(run, "--as-of", "2022-07-30")
    valid, codes = warnings_but_the_deliberate_two(bundle)
    assert valid and codes == ["103", "302"]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for obj in bundle["objects"]:
        by_type.setdefault(obj["type"], []).append(obj)
    (report,) = by_type["report"]
    assert report["published"] == "2022-07-26T00:00:00.000Z" and report["name"].startswith("Iran's Efforts")
    authors = {o["id"]: o["name"] for o in by_type["identity"] if o["identity_class"] == "individual"}
    assert report["created_by_ref"] in authors and set(authors.values()) == {"Ali Bakir", "Ömer Özkizilcik"}
    referenced = set(report["object_refs"])
    assert {n["id"] for n in by_type["note"]} <= referenced and {e["id"] for e in by_type["event"]} <= referenced
    assert all(n["object_refs"] == [report["id"]] and n["external_references"] for n in by_type["note"])
    assert [n.get("confidence") for n in by_type["note"]].count(85) == 1  # "high": ICD 203 to STIX's 0-100
    karish = next(e for e in by_type["event"] if "Karish" in e["name"])
    assert (karish["start_time"], karish["start_time_fidelity"]) == ("2022-07-02T00:00:00.000Z", "day")
    taeb = next(e for e in by_type["event"] if "Taeb" in e["name"])
    assert (taeb["start_time"][:10], taeb["end_time"][:10], taeb["start_time_fidelity"]) == (
        "2022-06-21", "2022-06-30", "month")  # "late June": a month, its last days
    assert taeb["extensions"] == {"extension-definition--4ca6de00-5b0d-45ef-a1dc-ea7279ea910e": {"extension_type": "new-sdo"}}
    (clear,) = by_type["marking-definition"]
    assert clear["id"] == "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487" and clear["name"] == "TLP:CLEAR"
    assert all(o.get("object_marking_refs") == [clear["id"]] for o in bundle["objects"] if o["type"] in ("note", "event"))
    again = run("export", "stix", "--as-of", "2022-07-30")
    assert again.stdout == json.dumps(bundle, indent=2, sort_keys=True, ensure_ascii=False) + "\n"  # the same bytes


def test_nothing_above_the_tlp_asked_for_leaves(project: Path, run: Run) -> None:
    clear = json.dumps(bundle_of(run, "--as-of", "2022-07-30"))
    assert AMBER_TEXT not in clear and GREEN_TITLE not in clear and "TLP:GREEN" not in clear
    amber = bundle_of(run, "--as-of", "2022-07-30", "--tlp", "amber")
    assert AMBER_TEXT in json.dumps(amber) and GREEN_TITLE in json.dumps(amber)
    assert {o["name"] for o in amber["objects"] if o["type"] == "marking-definition"} == {
        "TLP:CLEAR", "TLP:GREEN", "TLP:AMBER"}
    assert warnings_but_the_deliberate_two(amber)[0]
    timeline = json.dumps(bundle_of(run, "--timeline"))
    assert GREEN_TITLE not in timeline and "Turkish police and MIT arrest eight" not in timeline
    assert run("export", "misp", "-o", "misp").exit_code == 0
    misp = " ".join(path.read_text(encoding="utf-8") for path in (project / "misp").iterdir())
    assert AMBER_TEXT not in misp and GREEN_TITLE not in misp and "tlp:green" not in misp


def entries_of(timeline: tuple[TimelineEntry, ...]) -> list[tuple[Any, ...]]:
    """What an entry says, without where it was read from."""
    return sorted(
        (e.date.iso, e.title, " ".join(e.summary.split()), e.actors, e.tags, e.sources, e.language, e.tlp or "clear",
         e.confidence)
        for e in timeline
    )


def feeds(project: Path, *feeds: dict[str, Any]) -> None:
    path = project / "config.yaml"
    without = re.sub(r"^ingest:\n(?:(?:[ #].*)?\n)*", "", path.read_text(encoding="utf-8"), flags=re.M)
    path.write_text(without + "\n" + yaml.safe_dump({"ingest": {"feeds": list(feeds)}}, sort_keys=False), encoding="utf-8")


def empty_timeline(project: Path) -> tuple[TimelineEntry, ...]:
    """Take the timeline away (the entries as they were, for comparison)."""
    original = load_library(project / "content").timeline
    for path in (project / "content" / "timeline").glob("*.yaml"):
        path.unlink()
    return original


def drafted(project: Path) -> tuple[TimelineEntry, ...]:
    found = drafts.entry_drafts(project / "content")
    assert all(not d.problems for d in found), [d.problems for d in found if d.problems]
    return tuple(d.entry for d in found if d.entry is not None)


@pytest.mark.parametrize("kind", ["stix", "misp"])
def test_export_then_ingest_into_an_empty_timeline_gives_back_the_same_entries(project: Path, run: Run, kind: str) -> None:
    if kind == "stix":
        assert run("export", "stix", "--timeline", "--tlp", "red", "-o", "exchange/timeline.json").exit_code == 0
        url = f"file:{project / 'exchange' / 'timeline.json'}"
    else:
        assert run("export", "misp", "--tlp", "red", "-o", "exchange/misp").exit_code == 0
        url = f"file:{project / 'exchange' / 'misp'}"
    original = empty_timeline(project)
    feeds(project, {"name": "partner", "url": url, "kind": kind})
    result = run("ingest")
    assert result.exit_code == 0, result.output
    back = [e for e in drafted(project)]
    if kind == "misp":  # the brief's event comes in too, as an entry dated the brief's day
        back = [e for e in back if e.title != load_library(project / "content").briefs[0].title]
    assert entries_of(tuple(back)) == entries_of(original)
    again = run("ingest")  # nothing is proposed twice
    assert again.exit_code == 0 and len(drafts.entry_drafts(project / "content")) == len(drafted(project))


def test_the_misp_feed_loads_in_pymisp(project: Path, run: Run) -> None:
    result = run("export", "misp", "--tlp", "amber", "-o", "misp")
    assert result.exit_code == 0 and result.stdout.startswith("21 MISP events, at or below TLP:AMBER")
    folder = project / "misp"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    events = []
    for identity in manifest:
        event = MISPEvent()
        event.load_file(str(folder / f"{identity}.json"))
        events.append(event)
    assert len(events) == 21
    by_info = {e.info: e for e in events}
    report = by_info["Iran sponsors a joint YPG-militia operations room in northern Syria"]
    tags = {t.name for t in report.tags}
    assert "tlp:green" in tags and 'estimative-language:confidence-in-analytic-judgment="moderate"' in tags
    (link,) = [a for a in report.attributes if a.type == "link"]
    assert {t.name for t in link.tags} == {'admiralty-scale:source-reliability="b"', 'admiralty-scale:information-credibility="4"'}
    brief = next(e for e in events if e.info.startswith("Iran's Efforts"))
    assert AMBER_TEXT in brief.event_reports[0].content
    hashes = (folder / "hashes.csv").read_text(encoding="utf-8").split()
    assert len(hashes) == sum(len(e.attributes) for e in events)


@pytest.mark.parametrize("body, problem", [
    (b"not json", "not JSON"),
    (b'{"type": "bundle", "id": "bundle--1", "objects": [{"type": "report", "id": "report--x"}]}', "not valid STIX 2.1"),
    (b'{"hello": "world"}', "not a STIX bundle"),
])
def test_a_bad_bundle_is_reported_and_drafts_nothing(project: Path, run: Run, body: bytes, problem: str) -> None:
    (project / "bad.json").write_bytes(body)
    feeds(project, {"name": "partner", "url": f"file:{project / 'bad.json'}", "kind": "stix"})
    result = run("ingest")
    assert problem in result.output
    assert "Traceback" not in result.output and drafts.entry_drafts(project / "content") == []


def test_build_writes_a_bundle_per_copy_and_the_archive_links_the_public_one(
    project: Path, run: Run, monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert run("build", "--as-of", "2022-07-30").exit_code == 0
    folder = project / "out" / "weekly-2022-W30"
    assert AMBER_TEXT not in (folder / "digest.stix.json").read_text(encoding="utf-8")
    assert AMBER_TEXT in (folder / "tlp-amber" / "digest.stix.json").read_text(encoding="utf-8")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "k" * 40)
    assert run("subscribers", "add", "ann@example.org").exit_code == 0
    assert run("subscribers", "add", "amber@example.org", "--clearance", "amber").exit_code == 0
    assert run("send", "--as-of", "2022-07-30").exit_code == 0
    with TestClient(create_app(load_config(project / "config.yaml"), "127.0.0.1")) as client:
        page = client.get("/issues/weekly-2022-W30").text
        assert 'href="/issues/weekly-2022-W30.stix.json"' in page
        answer = client.get("/issues/weekly-2022-W30.stix.json")
        assert client.get("/issues/weekly-2099-W01.stix.json").status_code == 404
    assert answer.headers["content-type"].startswith("application/stix+json")
    bundle = answer.json()
    assert warnings_but_the_deliberate_two(bundle)[0]
    assert AMBER_TEXT not in answer.text and GREEN_TITLE not in answer.text
