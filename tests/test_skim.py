"""Skimming a timeline file: the entries and fields the parser finds, or nothing when unsure."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from newsletter.errors import ContentError
from newsletter.inputs.content import read_entry
from newsletter.inputs.skim import SKIMMED, Field, Skimmed, skim
from newsletter.inputs.yamlsource import Problems, Value, parse

REPO = Path(__file__).resolve().parent.parent
ENTRY = """\
- date: "2022-06-13"
  title: Israel raises its travel warning
  summary: >-
    Israel told its citizens to leave Istanbul.
  tags: [israel, turkey]
  sources:
    - title: Israel urges its citizens to leave
      publisher: Al Arabiya
      url: https://english.alarabiya.net/example
"""


def parsed(text: str) -> list[tuple[int, dict[str, Field], bool]]:
    """What the parser finds: each entry's line, the skimmed keys' values, and whether it reads."""
    problems = Problems(ContentError)
    root = parse(text, Path("t.yaml"), problems)
    assert root is not None and not problems, [str(p) for p in problems.items]
    found = []
    for item in root.items() or []:
        fields = {}
        for key_node, value_node in item.node.value:
            if key_node.value in SKIMMED:
                value = Value(value_node, item.doc, "")
                fields[key_node.value] = value.text() if isinstance(value_node, yaml.ScalarNode) else value.texts()
        found.append((item.line, fields, read_entry(item, problems) is not None))
    return found


def test_the_shipped_timeline_is_skimmed_as_it_parses() -> None:
    text = (REPO / "content" / "timeline" / "iran-turkey-israel.yaml").read_text(encoding="utf-8")
    skimmed = skim(text)
    assert skimmed is not None
    assert [(entry.line, dict(entry.fields)) for entry in skimmed] == [(line, fields) for line, fields, _ in parsed(text)]
    assert skimmed[0].fields == {"date": "2019", "title": "Turkish tourism earns a record $34.5 billion",
                                 "tags": ("turkey", "tourism", "economy")}


@pytest.mark.parametrize("text", [
    ENTRY.replace("  tags: [israel, turkey]", "\ttags: [israel, turkey]"),
    ENTRY.replace("\n", "\r\n"),
    "---\n" + ENTRY,
    ENTRY.replace('"2022-06-13"', "&day 2022-06-13"),
    ENTRY.replace("Israel told", "*Israel* told"),  # Markdown emphasis looks like an alias
    ENTRY.replace("  title: Israel raises its travel warning", "  title: >-\n    Israel raises its travel warning"),
    ENTRY.replace("travel warning\n", "travel\n    warning\n"),  # a plain title going on below
    ENTRY.replace('- date: "2022-06-13"', '- {date: "2022-06-13"}'),
    ENTRY.replace('- date: "2022-06-13"\n  title:', '-   date: "2022-06-13"\n    title:'),
    ENTRY.replace("    - title: Israel urges", "  - title: Israel urges"),  # a list at the key's indent
    ENTRY.replace("  tags:", " # a comment one space in\n  tags:"),
    ENTRY + '  date: "2022-06-14"\n',  # given twice
    ENTRY.replace("title: Israel raises its travel warning", 'title: "Israel raises its\\ttravel warning"'),
    ENTRY.replace("title: Israel raises its travel warning", "title: ~"),
    ENTRY.replace("  tags: [israel, turkey]", "  tags:\n    - israel"),
    ENTRY.replace("  tags: [israel, turkey]", "  tags: [israel, 'turkey']"),
    ENTRY.replace("  tags: [israel, turkey]", "  tags: [israel, turkey] # where"),
    "title: not a list\n",
    "# a comment\nkey: value\n" + ENTRY,
    ENTRY.replace("  tags: [israel, turkey]", "  tags: [israel"),  # a YAML error: the parser names it
    # A line that looks like an entry's start, inside a quoted value: the entry before it is left
    # open at that line, which libyaml refuses, so the skim cannot take it for two entries.
    ENTRY.replace("title: Israel raises its travel warning", 'title: "Israel raises\n- date: 2099-01-01"'),
])
def test_what_only_the_parser_reads_right_leaves_the_file_to_it(text: str) -> None:
    assert skim(text) is None


@pytest.mark.parametrize(("inside", "seen"), [
    ('  summary: "Israel told its citizens\n  title: to leave."', 'to leave."'),
    ("  actors: [Israel,\n  title: Turkey]", "Turkey]"),
])
def test_a_key_line_inside_a_quoted_or_bracketed_value_is_a_second_key_or_one_the_entry_lacks(
    inside: str, seen: str
) -> None:
    text = ENTRY.replace("  summary: >-\n    Israel told its citizens to leave Istanbul.", inside)
    assert skim(text) is None  # its own title is given too: two title lines
    lacking = text.replace("  title: Israel raises its travel warning\n", "")
    [(_, fields, reads)] = parsed(lacking)
    [entry] = skim(lacking) or []
    assert entry.fields["title"] == seen and "title" not in fields and not reads  # reading it says so


def test_a_skim_the_parser_disagrees_with_stops_the_build(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from newsletter.inputs import content

    def one_line_off(text: str) -> list[Skimmed] | None:
        found = skim(text)
        return None if found is None else [Skimmed(entry.line + 1, entry.fields) for entry in found]

    monkeypatch.setattr(content, "skim", one_line_off)
    with pytest.raises(RuntimeError, match="content/timeline/iran-turkey-israel.yaml was skimmed differently"):
        content.load_library(project / "content", lambda sketches: range(len(sketches)))


def variant(rng: random.Random, n: int) -> str:
    """An entry written one of the ways people write them: mostly plainly, now and then not
    (which the skim must leave to the parser, or read as the parser does)."""

    def pick(plain: list[str], odd: list[str]) -> str:
        return rng.choice(odd if rng.random() < 0.06 else plain)

    date = pick(['"2022-06-13"', "2022-06", "'late 2022-05'", "2021", '"2022-02-30"', "2022-13"],
                ["~", '""', "2022-06 # about", "[2022]", ">-\n    2022-06"])
    title = pick([f"Entry {n}", f'"Entry {n}: quoted"', f"'Entry {n}''s'", f"Entry {n}#{n}", f"<b>Entry {n}</b>",
                  f"Entry {n} \"quoted\" inside", f"Entry {n}  spaced", f"=?utf-8?q?Entry_{n}?="],
                 [f">-\n    Entry {n}", f"Entry\n    {n}", f"Entry {n} # a comment", f"'Entry {n}", "null", "-5"])
    tags = pick(["[israel, turkey]", "israel", "[]", "[Israel]", "[israel, israel]", "'iran'", "[ iran ,turkey ]"],
                ["\n    - israel\n    - iran", "[israel,]", "[israel, 'turkey']", "[~]", "[a: b]"])
    keys = [f"date: {date}", f"title: {title}", f"tags: {tags}",
            "summary: >-\n    A summary." + pick(["", " Q&A.", " 50% of it.", " See: this."], [" With *emphasis*."]),
            f"sources:\n    - title: T\n      publisher: P\n      url: https://e.example/{n}"]
    if rng.random() < 0.3:
        keys.append("language: " + pick(["ar", "en-GB", "'pt-BR'", "english", "EN"], ["null", "[en]"]))
    rng.shuffle(keys)  # any key may come first
    return "- " + "\n  ".join(keys) + pick(["\n", "\n\n", "\n# between\n", "\n  # note\n"], ["\n # one space\n"])


@pytest.mark.parametrize("seed", range(12))
def test_a_skimmed_field_is_the_one_the_parser_reads(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(40):
        text = "".join(variant(rng, n) for n in range(rng.randrange(1, 6)))
        try:
            expected = parsed(text)
        except AssertionError:  # not YAML at all
            assert skim(text) is None
            continue
        skimmed = skim(text)
        if skimmed is None:
            continue
        assert [entry.line for entry in skimmed] == [line for line, _, _ in expected]
        for entry, (_, fields, reads) in zip(skimmed, expected, strict=True):
            assert dict(entry.fields) == fields or not reads, text
