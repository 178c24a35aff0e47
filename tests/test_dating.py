"""Dates in prose, against a publication date and against the date of the event told before."""

from __future__ import annotations

from datetime import date

import pytest

from newsletter.inputs.content import parse_fuzzy_date
from newsletter.intake.dating import find_mentions

PUBLISHED = date(2022, 7, 26)  # a Tuesday


@pytest.mark.parametrize(("sentence", "dates"), [
    ("On March 9, Israel's president paid a visit to Ankara.", ["2022-03-09"]),
    ("On December 3, the talks began again.", ["2021-12-03"]),  # no year: the last December 3 before publication
    ("On 9 March 2021 two tankers collided.", ["2021-03-09"]),
    ("In February 2022, MIT uncovered a network.", ["2022-02"]),
    ("The plot was foiled in late May.", ["late 2022-05"]),
    ("A report released last May says so.", ["2022-05"]),
    ("Last month, Israel struck the airport.", ["2022-06"]),
    ("Turkey's tourism earned a record in 2019.", ["2019"]),
    ("During its 2020 campaign, Turkey used drones.", ["2020"]),
    ("In mid-2021 the arrangement collapsed.", ["2021"]),
    ("Yesterday, the ministry denied it.", ["2022-07-25"]),
    ("On Monday, the cabinet met in Ankara.", ["2022-07-25"]),
    ("Three weeks ago, the envoy resigned.", ["2022-07"]),
    ("Since then, Ankara has spent more on counterintelligence.", []),
    ("Since 2015, the militia has grown.", []),
    ("It hit 1,200 targets with 5,500 munitions in 408 missions.", []),
    ("The COVID-19 pandemic slowed trade.", []),
    ("The plan aims at full capacity by 2030.", []),
    ("In the last five years, strikes tripled.", []),
    ("Officials may meet again in the subsequent months.", []),
])
def test_date_phrases_against_a_publication_date(sentence: str, dates: list[str]) -> None:
    assert [m.when.iso for m in find_mentions(sentence, PUBLISHED)] == dates


@pytest.mark.parametrize(("sentence", "before", "dates"), [
    ("The warning came a day after Ankara exposed a ring.", "2022-06-13", ["2022-06-12"]),
    ("Two days later, the suspects were charged.", "2022-06-13", ["2022-06-15"]),
    ("The next day, Ankara summoned the envoy.", "2022-06-13", ["2022-06-14"]),
    ("A week later, the minister visited.", "2022-06-13", ["2022-06-20"]),
    ("Two days later, the suspects were charged.", "2022-06", ["2022-06"]),  # no more precise than June
    ("A month later, the minister resigned.", "2022-05-22", ["2022-06"]),
])
def test_relative_dates_count_from_the_event_told_before(sentence: str, before: str, dates: list[str]) -> None:
    assert [m.when.iso for m in find_mentions(sentence, PUBLISHED, parse_fuzzy_date(before))] == dates


def test_a_relative_date_with_no_event_before_it_is_no_date() -> None:
    assert find_mentions("Two days later, the suspects were charged.", PUBLISHED) == []
