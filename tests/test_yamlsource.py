"""Reading YAML into checked values: text as written, null as empty, every problem at its line."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from newsletter.errors import ContentError
from newsletter.inputs.yamlsource import Problems, Value, parse

FILE = Path("content/timeline/example.yaml")


def read(text: str) -> tuple[Value, Problems]:
    problems = Problems(ContentError)
    value = parse(text, FILE, problems)
    assert value is not None, [str(p) for p in problems.items]
    return value, problems


@pytest.mark.parametrize("written", ["~", "null", "Null", "NULL", "", '""', "''"])
def test_null_and_empty_values_are_empty(written: str) -> None:
    value, problems = read(f"title: {written}\n")
    fields = value.mapping(("title",))
    assert fields is not None and fields.text("title") is None
    assert [str(p) for p in problems.items] == ["content/timeline/example.yaml:1: title: is empty"]


@pytest.mark.parametrize(("written", "text"), [
    ('"null"', "null"), ("'~'", "~"), ("no", "no"), ("2022-06-12", "2022-06-12"), ("1e3", "1e3"), ("nullable", "nullable"),
])
def test_other_scalars_stay_the_text_the_author_wrote(written: str, text: str) -> None:
    value, problems = read(f"language: {written}\n")
    fields = value.mapping(("language",))
    assert fields is not None and fields.text("language") == text
    assert not problems


def test_a_list_of_texts_reports_each_bad_item_at_its_line() -> None:
    good, _ = read("tags: [iran, ' israel ']\n")
    fields = good.mapping(("tags",))
    assert fields is not None and fields.texts("tags") == ("iran", "israel")

    bad, problems = read("tags:\n  - iran\n  - ~\n  - [nested]\n")
    fields = bad.mapping(("tags",))
    assert fields is not None and fields.texts("tags") is None
    assert [str(p) for p in problems.items] == [
        "content/timeline/example.yaml:3: tags[1]: is empty",
        "content/timeline/example.yaml:4: tags[2]: expected text, found a list",
    ]


def test_keys_are_checked_and_remember_their_lines() -> None:
    value, problems = read("title: A\nsummary:\n  B\ntitel: C\ntitle: D\n")
    fields = value.mapping(("title", "summary", "date"), ("title", "date"))
    assert fields is not None and not fields.ok
    assert fields.key_lines == {"title": 1, "summary": 2}
    assert [str(p) for p in problems.items] == [
        "content/timeline/example.yaml:4: titel: unknown key 'titel' (did you mean 'title'?)",
        "content/timeline/example.yaml:5: title: repeated key (first given on line 1)",
        "content/timeline/example.yaml:1: date: is required but missing",
    ]


@pytest.mark.parametrize("was_on", [True, False])
def test_composing_leaves_the_cycle_collector_as_it_found_it(was_on: bool) -> None:
    """It is paused while a tree is built (a tree has no cycles to collect), never left off."""
    (gc.enable if was_on else gc.disable)()
    try:
        read("- a\n- b\n")
        assert gc.isenabled() is was_on
    finally:
        gc.enable()
