"""compose(): which brief and entries make an issue, in what order, and how the issue is named."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from newsletter.inputs.config import Digest
from newsletter.inputs.content import Library, Sketch, TimelineEntry
from newsletter.compose.digest import compose, may_show, moment, period_of
from newsletter.errors import DigestError

from .samples import DIGEST, brief, entry

def at(day: str) -> datetime:
    return moment(date.fromisoformat(day), DIGEST)


LIBRARY = Library(
    Path("content"),
    briefs=(brief(date(2022, 3, 1), "older"), brief(date(2022, 7, 26), "newest"),
            brief(date(2022, 7, 20), "other-topic", tags=("energy",))),
    timeline=tuple(sorted((
        entry("2019", "Tourism record"),
        entry("2022-06-12", "Ring exposed"),
        entry("2022-06", "Joint operations room"),
        entry("late 2022-06", "Taeb dismissed"),
        entry("2022-06-23", "Lapid in Ankara"),
        entry("2022-06-24", "Pipeline talk", tags=("energy",)),
        entry("2022-06-25", "Arabic entry", language="ar"),
        entry("2022-07-30", "After the as-of day"),
    ), key=lambda e: e.key)),
)


def titles(entries: tuple[TimelineEntry, ...]) -> list[str]:
    return [e.title for e in entries]


def test_the_newest_brief_on_or_before_the_day_and_its_latest_entries_newest_first() -> None:
    issue = compose(LIBRARY, DIGEST, at("2022-07-26"))
    assert issue.brief is not None and issue.brief.slug == "newest"
    assert titles(issue.entries) == [
        "Taeb dismissed",  # late June: June 21-30
        "Joint operations room",  # June 2022 may be as late as June 30, so not ranked as June 1
        "Lapid in Ankara",
        "Ring exposed",
        "Tourism record",
    ]
    assert issue.id == "weekly-2022-W30"


def test_nothing_dated_after_the_as_of_day_is_included() -> None:
    issue = compose(LIBRARY, DIGEST, at("2022-06-22"))
    assert issue.brief is not None and issue.brief.slug == "older"
    # late June (21-30) may have happened by the 22nd; it ranks as of the 22nd, not the 30th.
    assert titles(issue.entries) == ["Taeb dismissed", "Joint operations room", "Ring exposed", "Tourism record"]


def test_an_entry_whose_span_has_not_begun_is_left_out() -> None:
    issue = compose(LIBRARY, DIGEST, at("2022-06-15"))
    assert "Taeb dismissed" not in titles(issue.entries)
    assert titles(issue.entries)[:2] == ["Joint operations room", "Ring exposed"]


def test_entry_count_and_lookback_limit_the_issue() -> None:
    short = replace(DIGEST, max_entries=2)
    assert titles(compose(LIBRARY, short, at("2022-07-26")).entries) == ["Taeb dismissed", "Joint operations room"]
    recent = replace(DIGEST, lookback_days=40)
    assert "Tourism record" not in titles(compose(LIBRARY, recent, at("2022-07-26")).entries)


def test_tags_and_language_choose_what_a_digest_covers() -> None:
    energy = replace(DIGEST, tags=("energy",))
    issue = compose(LIBRARY, energy, at("2022-07-26"))
    assert issue.brief is not None and issue.brief.slug == "other-topic"
    assert titles(issue.entries) == ["Pipeline talk"]
    arabic = replace(DIGEST, language="ar")
    assert titles(compose(LIBRARY, arabic, at("2022-07-26")).entries) == ["Arabic entry"]


def test_an_issue_with_nothing_in_it_is_an_error() -> None:
    with pytest.raises(DigestError, match="has nothing to send as of 2018-01-01"):
        compose(LIBRARY, DIGEST, at("2018-01-01"))


def test_a_timeline_only_issue_is_fine_before_the_first_brief() -> None:
    issue = compose(LIBRARY, DIGEST, at("2020-01-01"))
    assert issue.brief is None and titles(issue.entries) == ["Tourism record"]


def test_the_as_of_day_is_taken_in_the_digest_time_zone() -> None:
    late_evening_utc = datetime(2022, 7, 25, 22, 30, tzinfo=timezone.utc)  # 01:30 on the 26th in Istanbul
    assert compose(LIBRARY, DIGEST, late_evening_utc).day == date(2022, 7, 26)


@pytest.mark.parametrize(
    ("period", "when", "expected"),
    [("weekly", "2022-07-26T07:00", "2022-W30"), ("weekly", "2021-01-02T07:00", "2020-W53"),
     ("daily", "2022-07-26T07:00", "2022-07-26"), ("monthly", "2022-07-26T07:00", "2022-07"),
     ("hourly", "2022-07-26T07:59", "2022-07-26T07"), ("minutely", "2022-07-26T07:05:59", "2022-07-26T0705"),
     ("secondly", "2022-07-26T07:05:09", "2022-07-26T070509"),
     ("daily", "2022-07-25T22:30+00:00", "2022-07-26")],  # 01:30 the next day in Istanbul
)
def test_periods_name_issues(period: str, when: str, expected: str) -> None:
    digest = replace(DIGEST, period=period)
    assert period_of(digest, moment(datetime.fromisoformat(when), digest)) == expected


def test_compose_is_deterministic() -> None:
    assert compose(LIBRARY, DIGEST, at("2022-07-26")) == compose(LIBRARY, DIGEST, at("2022-07-26"))


# --- may_show(): the entries `build` reads in full, from a sketch of each -----------------------

def sketch(e: TimelineEntry) -> Sketch:
    return Sketch(e.date, e.title, e.tags, e.language)


@pytest.mark.parametrize("digest", [
    DIGEST, replace(DIGEST, max_entries=2), replace(DIGEST, max_entries=1), replace(DIGEST, lookback_days=40),
    replace(DIGEST, tags=("energy",)), replace(DIGEST, language="ar"), replace(DIGEST, tags=()),
], ids=["weekly", "two", "one", "lookback", "energy", "arabic", "any tag"])
@pytest.mark.parametrize("day", ["2019-06-01", "2022-06-15", "2022-06-24", "2022-07-26", "2022-07-30"])
def test_the_entries_an_issue_may_show_compose_the_same_issue(digest: Digest, day: str) -> None:
    timeline = LIBRARY.timeline + (  # ties on the date, broken by the title
        entry("late 2022-06", "Another late-June entry"), entry("2022-06", "A second June entry"),
    )
    library = replace(LIBRARY, timeline=timeline)
    keep = may_show([sketch(e) for e in timeline], digest, at(day))
    shortlisted = replace(library, timeline=tuple(e for i, e in enumerate(timeline) if i in keep))
    try:
        expected = compose(library, digest, at(day)).entries
    except DigestError:
        expected = ()
    assert len(keep) == len(expected)
    if expected:
        assert compose(shortlisted, digest, at(day)).entries == expected


def test_an_entry_whose_sketch_is_incomplete_may_always_be_shown() -> None:
    sketches = [sketch(e) for e in LIBRARY.timeline] + [
        Sketch(None, "Undated", ("iran",), "en"), Sketch(LIBRARY.timeline[0].date, None, ("iran",), "en"),
    ]
    assert may_show(sketches, replace(DIGEST, max_entries=1), at("2022-07-26")) == {
        titles(LIBRARY.timeline).index("Taeb dismissed"), len(sketches) - 2, len(sketches) - 1,
    }


def test_an_entry_tied_with_the_last_shown_may_be_shown_too() -> None:
    """Two entries with the same date and title are one too many (check reports it): both are read."""
    timeline = (entry("2022-06-12", "Ring exposed"), entry("2022-06-12", "Ring exposed"), entry("2022-06-01", "Older"))
    assert may_show([sketch(e) for e in timeline], replace(DIGEST, max_entries=1), at("2022-07-26")) == {0, 1}
