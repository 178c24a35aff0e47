"""Loading briefs and the timeline: the seed content, date precision, and exact errors for bad input."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest

from newsletter.inputs.content import Sketch, load_library, parse_fuzzy_date
from newsletter.errors import Invalid, NewsletterError

ENTRY = """\
- date: 2022-06-13
  title: Israel raises its travel warning
  summary: Israel told its citizens to leave Istanbul.
  tags: [israel]
  sources:
    - title: Israel urges its citizens to leave
      publisher: Al Arabiya
      url: https://english.alarabiya.net/example
"""

BRIEF = """\
---
title: A test brief
dek: One sentence that sums it up.
date: 2022-07-01
authors:
  - name: A. Writer
    bio: Writes about the region.
tags: [iran]
key_points:
  - text: A claim worth making.
    sources:
      - title: Report
        publisher: Daily Sabah
        url: https://example.org/report
---
Body text with [a link to the report](https://example.org/report).
"""

TIMELINE = "content/timeline/bad.yaml"
BRIEF_FILE = "content/briefs/2022-07-01-test.md"


def problems_after_writing(project: Path, path: str, text: str | bytes) -> list[str]:
    target = project / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        target.write_bytes(text)
    else:
        target.write_text(text, encoding="utf-8")
    try:
        load_library(project / "content")
    except Invalid as exc:
        return [str(p) for p in exc.problems]
    return []


BAD_INPUT = [
    pytest.param(
        TIMELINE, ENTRY.replace("2022-06-13", "2022-02-30"),
        "content/timeline/bad.yaml:1: [0].date: '2022-02-30' is not a real date: February 2022 has 28 days",
        id="impossible day",
    ),
    pytest.param(
        TIMELINE, ENTRY.replace("2022-06-13", "2022-13"),
        "content/timeline/bad.yaml:1: [0].date: '2022-13' is not a real date: there is no month 13",
        id="impossible month",
    ),
    pytest.param(
        TIMELINE, ENTRY.replace("2022-06-13", "June 13, 2022"),
        "content/timeline/bad.yaml:1: [0].date: 'June 13, 2022' is not a date: use YYYY-MM-DD, YYYY-MM, "
        "early/mid/late YYYY-MM or YYYY",
        id="date in prose",
    ),
    pytest.param(
        TIMELINE, ENTRY.replace("2022-06-13", "early 2022-06-03"),
        "content/timeline/bad.yaml:1: [0].date: 'early 2022-06-03': early/mid/late applies to a month, not to a day",
        id="qualifier on a day",
    ),
    pytest.param(
        TIMELINE, ENTRY.replace("  title:", "  titel:"),
        "content/timeline/bad.yaml:2: [0].titel: unknown key 'titel' (did you mean 'title'?)",
        id="unknown key with hint",
    ),
    pytest.param(
        TIMELINE, ENTRY.replace("  title: Israel raises its travel warning\n", ""),
        "content/timeline/bad.yaml:1: [0].title: is required but missing",
        id="missing title",
    ),
    pytest.param(
        TIMELINE, ENTRY.split("  sources:")[0] + "  sources: []\n",
        "content/timeline/bad.yaml:5: [0].sources: give at least one source (title, publisher, url)",
        id="no source",
    ),
    pytest.param(
        TIMELINE, ENTRY.replace("      publisher: Al Arabiya\n", ""),
        "content/timeline/bad.yaml:6: [0].sources[0].publisher: is required but missing",
        id="source without publisher",
    ),
    pytest.param(
        TIMELINE, ENTRY.replace("https://english.alarabiya.net/example", "ftp://example.org/x"),
        "content/timeline/bad.yaml:8: [0].sources[0].url: 'ftp://example.org/x' is not an http(s) address",
        id="non-http url",
    ),
    pytest.param(
        TIMELINE, ENTRY.replace("  tags: [israel]", "  tags: [israel"),
        "content/timeline/bad.yaml:5: yaml: invalid YAML: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence that starts on line 4)",
        id="invalid YAML",
    ),
    pytest.param(
        TIMELINE, ENTRY + ENTRY,
        "content/timeline/bad.yaml:9: title: duplicate entry: same date and title as bad.yaml:1",
        id="duplicate entry",
    ),
    pytest.param(
        TIMELINE, ENTRY.replace("to leave Istanbul.", "to <script>alert(1)</script> leave."),
        "content/timeline/bad.yaml:3: [0].summary: raw HTML is not allowed in Markdown: <script>",
        id="script in Markdown",
    ),
    pytest.param(
        TIMELINE, ENTRY.replace("Israel told its citizens to leave Istanbul.", '"[Read](javascript:alert(1))"'),
        "content/timeline/bad.yaml:3: [0].summary: link must be an http(s) or mailto address: javascript:alert(1)",
        id="javascript link",
    ),
    pytest.param(
        TIMELINE, ENTRY.replace("  summary: Israel told its citizens to leave Istanbul.",
                                "  summary: |\n    First paragraph.\n\n    Second paragraph."),
        "content/timeline/bad.yaml:3: [0].summary: write one paragraph (no blank lines)",
        id="summary of two paragraphs",
    ),
    pytest.param(
        TIMELINE, ENTRY.replace("[israel]", "[Israel, 'two words']"),
        "content/timeline/bad.yaml:4: [0].tags: tags are lowercase words joined by '-': Israel, two words",
        id="bad tags",
    ),
    pytest.param(
        TIMELINE, ENTRY.replace("  title:", "  language: English\n  title:"),
        "content/timeline/bad.yaml:2: [0].language: 'English' is not a language code such as en, ar or pt-BR",
        id="bad language",
    ),
    pytest.param(
        TIMELINE, ENTRY.replace("Israel raises", "Israel <b>raises</b>"),
        "content/timeline/bad.yaml:2: [0].title: HTML is not allowed here: Israel <b>raises</b> its travel warning",
        id="HTML in a title",
    ),
    pytest.param(
        TIMELINE, "- date: 2022-06-13\n  title: caf\xe9\n".encode("latin-1"),
        "content/timeline/bad.yaml:2: encoding: the file is not UTF-8 text",
        id="not UTF-8",
    ),
    pytest.param(
        TIMELINE, "date: 2022-06-13\n",
        "content/timeline/bad.yaml:1: (top): expected a list, found a mapping",
        id="timeline not a list",
    ),
    pytest.param(
        BRIEF_FILE, BRIEF.replace("date: 2022-07-01", "date: 2022-07-02"),
        "content/briefs/2022-07-01-test.md:4: date: 2022-07-02 does not match the date in the file name (2022-07-01)",
        id="brief date differs from file name",
    ),
    pytest.param(
        BRIEF_FILE, BRIEF.replace("dek: One sentence that sums it up.\n", ""),
        "content/briefs/2022-07-01-test.md:2: dek: is required but missing",
        id="brief without dek",
    ),
    pytest.param(
        BRIEF_FILE, BRIEF.split("key_points:")[0] + "key_points: []\n---\nBody.\n",
        "content/briefs/2022-07-01-test.md:9: key_points: a brief needs at least one key point",
        id="empty key points",
    ),
    pytest.param(
        BRIEF_FILE, BRIEF.replace("    sources:\n", "    source:\n"),
        "content/briefs/2022-07-01-test.md:11: key_points[0].source: unknown key 'source' (did you mean 'sources'?)",
        id="key point with misspelt sources",
    ),
    pytest.param(
        BRIEF_FILE, BRIEF.replace("Body text", 'Body\n\n<div onclick="steal()">text</div>\n\nmore'),
        'content/briefs/2022-07-01-test.md:18: body: raw HTML is not allowed in Markdown: <div onclick="steal()">text</div>',
        id="raw HTML in the body",
    ),
    pytest.param(
        BRIEF_FILE, BRIEF.replace("---\nBody", "related: [tset]\n---\nBody"),
        "content/briefs/2022-07-01-test.md:15: related[0]: unknown brief 'tset' (did you mean 'test'?)",
        id="unknown related brief",
    ),
    pytest.param(
        BRIEF_FILE, BRIEF.replace("---\nBody", "Body"),
        "content/briefs/2022-07-01-test.md:1: front matter: no closing '---' line after the front matter",
        id="unclosed front matter",
    ),
    pytest.param(
        "content/briefs/notes.md", BRIEF,
        "content/briefs/notes.md:1: filename: name a brief YYYY-MM-DD-slug.md (lowercase slug)",
        id="brief file name",
    ),
    pytest.param(
        BRIEF_FILE, BRIEF.replace("title: A test brief\n", "title: A test brief\ntitle: Again\n"),
        "content/briefs/2022-07-01-test.md:3: title: repeated key (first given on line 2)",
        id="repeated key",
    ),
    # What ends up in a header (the subject, the preheader) must pass the header rule.
    pytest.param(
        BRIEF_FILE, BRIEF.replace("title: A test brief", 'title: "A test\\0 brief"'),
        "content/briefs/2022-07-01-test.md:2: title: contains a line break or control character",
        id="brief title with NUL",
    ),
    pytest.param(
        BRIEF_FILE, BRIEF.replace("dek: One sentence", "dek: =?UTF-8?Q?One=0ABcc:_x@y?= sentence"),
        "content/briefs/2022-07-01-test.md:3: dek: contains an encoded header word (=?...?=)",
        id="dek as encoded word",
    ),
    pytest.param(
        TIMELINE, ENTRY.replace("title: Israel raises its travel warning", 'title: "Israel \\e[1mraises"'),
        "content/timeline/bad.yaml:2: [0].title: contains a line break or control character",
        id="entry title with ESC",
    ),
]


@pytest.mark.parametrize(("path", "text", "expected"), BAD_INPUT)
def test_bad_input_is_reported_at_its_file_line_and_field(
    project: Path, path: str, text: str | bytes, expected: str
) -> None:
    assert expected in problems_after_writing(project, path, text)


def test_every_problem_is_reported_not_just_the_first(project: Path) -> None:
    problems_after_writing(project, TIMELINE, ENTRY.replace("2022-06-13", "2022-02-30"))
    found = problems_after_writing(
        project, BRIEF_FILE, BRIEF.replace("https://example.org/report\n", "mailto:x@example.org\n")
    )
    assert found == [
        "content/briefs/2022-07-01-test.md:14: key_points[0].sources[0].url: "
        "'mailto:x@example.org' is not an http(s) address",
        "content/timeline/bad.yaml:1: [0].date: '2022-02-30' is not a real date: February 2022 has 28 days",
    ]


@pytest.mark.parametrize(("url", "problem"), [
    ("https://example.org/a?b=c#d", None),
    ("HTTP://EXAMPLE.ORG", None),
    ("http://127.0.0.1:8080/x", None),
    ("https://例え.jp/パス", None),
    ('"https://[2001:db8::1]/x"', None),
    ("https:///no-host", "'https:///no-host' is not an http(s) address"),
    ("httpſ://example.org", "'httpſ://example.org' is not an http(s) address"),
    ("https://example.org/a b", "an address cannot contain spaces or control characters"),
    ('"https://example.org/a\\u00a0b"', "an address cannot contain spaces or control characters"),
])
def test_a_source_address_is_http_or_https_with_a_host_and_no_space(
    project: Path, url: str, problem: str | None
) -> None:
    found = problems_after_writing(project, TIMELINE, ENTRY.replace("https://english.alarabiya.net/example", url))
    assert found == ([] if problem is None else [f"content/timeline/bad.yaml:8: [0].sources[0].url: {problem}"])


def test_valid_files_load_into_typed_records(project: Path) -> None:
    assert problems_after_writing(project, TIMELINE, ENTRY) == []
    assert problems_after_writing(project, BRIEF_FILE, BRIEF) == []
    library = load_library(project / "content")
    brief = next(b for b in library.briefs if b.slug == "test")
    assert (brief.date, brief.language, brief.tags) == (date(2022, 7, 1), "en", ("iran",))
    assert brief.key_points[0].sources[0].publisher == "Daily Sabah"
    assert brief.body.startswith("Body text")
    entry = next(e for e in library.timeline if e.path.name == "bad.yaml")
    assert (entry.date.iso, entry.line, entry.actors) == ("2022-06-13", 1, ())


def test_missing_content_folder_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NewsletterError, match="content folder not found"):
        load_library(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("raw", "start", "end", "iso"),
    [
        ("2022-06-12", date(2022, 6, 12), date(2022, 6, 12), "2022-06-12"),
        ("2022-06", date(2022, 6, 1), date(2022, 6, 30), "2022-06"),
        ("early 2022-02", date(2022, 2, 1), date(2022, 2, 10), "early 2022-02"),
        ("mid 2022-06", date(2022, 6, 11), date(2022, 6, 20), "mid 2022-06"),
        ("late 2022-02", date(2022, 2, 21), date(2022, 2, 28), "late 2022-02"),
        ("2019", date(2019, 1, 1), date(2019, 12, 31), "2019"),
    ],
)
def test_a_fuzzy_date_spans_what_its_precision_allows(raw: str, start: date, end: date, iso: str) -> None:
    parsed = parse_fuzzy_date(raw)
    assert (parsed.start, parsed.end, parsed.iso) == (start, end, iso)


def test_a_month_sorts_after_the_days_it_may_include() -> None:
    assert parse_fuzzy_date("2022-06-12") < parse_fuzzy_date("2022-06") < parse_fuzzy_date("2022-07-01")
    assert parse_fuzzy_date("late 2022-05") < parse_fuzzy_date("2022-06-01")


def test_the_seed_content_carries_the_brief_and_its_timeline() -> None:
    library = load_library(Path(__file__).resolve().parent.parent / "content")
    brief = library.briefs[-1]
    assert brief.date == date(2022, 7, 26)
    assert len(brief.key_points) >= 6
    assert all(point.sources for point in brief.key_points)
    assert len(library.timeline) >= 15
    years = {entry.date.start.year for entry in library.timeline}
    assert min(years) == 2019 and max(years) == 2022
    assert {e.date.precision for e in library.timeline} == {"day", "month", "year"}
    titles = " ".join(e.title for e in library.timeline).lower()
    for fact in ("herzog", "lapid", "taeb", "khodai", "istanbul"):
        assert fact in titles


# --- a shortlist: what `build` reads of a timeline of years ---------------------------------------

OLD_BROKEN = ENTRY.replace("2022-06-13", "2001-05-01").replace("Israel told its citizens", "<b>Israel</b> told its citizens")


def test_with_a_shortlist_only_the_entries_it_keeps_are_read_and_checked(project: Path) -> None:
    (project / "content" / "timeline" / "old.yaml").write_text(OLD_BROKEN, encoding="utf-8")
    seen: list[Sketch] = []

    def recent(sketches: Sequence[Sketch]) -> set[int]:
        seen[:] = sketches
        return {i for i, s in enumerate(sketches) if s.date is not None and s.date.start.year == 2022}

    library = load_library(project / "content", recent)
    assert library.timeline and all(e.date.start.year == 2022 for e in library.timeline)
    assert Sketch(parse_fuzzy_date("2001-05-01"), "Israel raises its travel warning", ("israel",), "en") in seen
    with pytest.raises(Invalid) as raised:
        load_library(project / "content", lambda sketches: range(len(sketches)))
    assert [str(p) for p in raised.value.problems] == [
        "content/timeline/old.yaml:3: [0].summary: raw HTML is not allowed in Markdown: <b>",
    ]


def test_a_sketch_leaves_out_what_does_not_read_cleanly(project: Path) -> None:
    broken = "- title: No date\n  tags: [Iran]\n  language: english\n- date: 2022-06-14\n  title: [a list]\n"
    (project / "content" / "timeline" / "old.yaml").write_text(broken, encoding="utf-8")
    seen: list[Sketch] = []

    def none(sketches: Sequence[Sketch]) -> set[int]:
        seen[:] = sketches
        return set()

    assert load_library(project / "content", none).timeline == ()
    assert seen[-2:] == [Sketch(None, "No date", None, None), Sketch(parse_fuzzy_date("2022-06-14"), None, None, "en")]


def test_an_entry_kept_for_a_while_then_dropped_leaves_no_problem_behind(project: Path) -> None:
    """Files are read in name order, and a shortlist is asked after each: what is reported does not
    depend on that order, only on what is kept in the end."""
    timeline = project / "content" / "timeline"
    (timeline / "a.yaml").write_text(OLD_BROKEN.replace("2001-05-01", "2030-01-01"), encoding="utf-8")
    (timeline / "b.yaml").write_text(ENTRY.replace("2022-06-13", "2031-01-01"), encoding="utf-8")

    def newest(sketches: Sequence[Sketch]) -> set[int]:
        return {max(range(len(sketches)), key=lambda i: (sketches[i].date or parse_fuzzy_date("1900")).end)}

    assert [e.date.iso for e in load_library(project / "content", newest).timeline] == ["2031-01-01"]


def test_a_bad_entry_among_thousands_is_reported_at_its_file_and_line(project: Path) -> None:
    entries = [ENTRY.replace("2022-06-13", f"20{n % 20:02d}-0{1 + n % 9}-1{n % 10}").replace(
        "Israel raises its travel warning", f"Entry {n}") for n in range(3000)]
    entries[1717] = entries[1717].replace("  summary: Israel", "  summary: <b>Israel</b>")
    problems = problems_after_writing(project, TIMELINE, "".join(entries))
    line = 1 + sum(e.count("\n") for e in entries[:1717]) + 2
    assert problems == [f"content/timeline/bad.yaml:{line}: [1717].summary: raw HTML is not allowed in Markdown: <b>"]
