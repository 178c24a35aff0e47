"""Content models (briefs, key points, timeline entries, sources) and loading them with exact errors."""

from __future__ import annotations

import calendar
import re
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import NoReturn, TypeVar
from urllib.parse import urlsplit

from . import markup
from .headers import header_problem
from .marking import Rating, parse_confidence, parse_rating, parse_tlp, rank
from .skim import Skimmed, skim
from ..errors import ContentError, Invalid, NewsletterError, display_path
from .yamlsource import Mapping, Problems, Value, collector_paused, hint, parse

BRIEF_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})-([a-z0-9][a-z0-9-]*)\.md$")
TAG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
FUZZY_DATE = re.compile(r"^(?:(early|mid|late)\s+)?(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
QUALIFIER_DAYS = {"early": (1, 10), "mid": (11, 20), "late": (21, 31)}
SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f]")  # what str.isspace() finds, and C0 controls
# An address that is plainly fine: http(s), an ASCII host, then no space or control character.
# urlsplit() finds its scheme and host too (it refuses no such address), in a tenth of the time.
PLAIN_WEB_ADDRESS = re.compile(r"(?:https?|HTTPS?)://[A-Za-z0-9.\-]+(?::[0-9]+)?(?:[/?#][^\s\x00-\x1f]*)?\Z")


@dataclass(frozen=True, slots=True)
class Source:
    title: str
    publisher: str
    url: str
    rating: Rating | None = None  # the Admiralty code (B2), when the analyst gave one


@dataclass(frozen=True, slots=True)
class KeyPoint:
    text: str  # one line of Markdown
    sources: tuple[Source, ...]
    tlp: str | None = None  # its own TLP level; None: its brief's
    confidence: str | None = None  # ICD 203: low, moderate or high
    line: int = 0  # in its brief's file: its `tlp:` line, else its `text:` line


@dataclass(frozen=True, slots=True)
class Author:
    name: str
    bio: str


@dataclass(frozen=True, slots=True)
class Related:
    """Another brief worth reading: one of ours (by slug) or elsewhere (by url)."""

    title: str
    url: str | None = None
    slug: str | None = None


@dataclass(frozen=True, slots=True)
class Brief:
    slug: str
    path: Path
    title: str
    dek: str
    date: date
    authors: tuple[Author, ...]
    language: str
    tags: tuple[str, ...]
    key_points: tuple[KeyPoint, ...]
    related: tuple[Related, ...]
    body: str  # Markdown
    url: str | None = None
    tlp: str | None = None  # its TLP level, and its key points' unless they set their own; None: the digest's default
    tlp_line: int = 0

    def point_level(self, point: KeyPoint, default: str) -> str:
        """The TLP level a key point is shared at: its own, else its brief's, else `default`."""
        return point.tlp or self.tlp or default


@dataclass(frozen=True, order=True, slots=True)
class FuzzyDate:
    """A date known to the day, the month (maybe its early/mid/late part) or the year.

    It stands for the span [start, end]. Ordering uses the end first: an entry
    dated "June 2022" may be as late as June 30, so it is never shown or sorted
    as if it were June 1.
    """

    end: date
    start: date
    precision: str  # "day", "month" or "year"
    qualifier: str = ""  # "early", "mid" or "late" (month precision only)

    @property
    def iso(self) -> str:
        if self.precision == "day":
            return self.start.isoformat()
        if self.precision == "year":
            return str(self.start.year)
        month = f"{self.start.year:04d}-{self.start.month:02d}"
        return f"{self.qualifier} {month}" if self.qualifier else month


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    date: FuzzyDate
    title: str
    summary: str  # one paragraph of Markdown
    actors: tuple[str, ...]
    tags: tuple[str, ...]
    sources: tuple[Source, ...]
    language: str
    path: Path
    line: int
    tlp: str | None = None  # its TLP level; None: the digest's default
    confidence: str | None = None  # ICD 203: low, moderate or high

    @property
    def key(self) -> tuple[FuzzyDate, str]:
        return (self.date, self.title)


@dataclass(frozen=True, slots=True)
class Sketch:
    """A timeline entry as a first, cheap pass reads it: what choosing an issue's entries needs.

    Each field is read by the same rule as in full; it is None when it does not read cleanly
    (reading the entry in full then says what is wrong).
    """

    date: FuzzyDate | None
    title: str | None
    tags: tuple[str, ...] | None
    language: str | None


# Given sketches of timeline entries, the positions of those that may be needed in full.
Shortlist = Callable[[Sequence[Sketch]], Collection[int]]


@dataclass(frozen=True, slots=True)
class Library:
    """Everything in content/: briefs oldest first, timeline entries in date order."""

    root: Path
    briefs: tuple[Brief, ...]
    timeline: tuple[TimelineEntry, ...]
    trusted_drafts: tuple[TimelineEntry, ...] = ()  # for digests with `include_drafts: trusted`


@lru_cache(maxsize=4096)  # a timeline of years has a few thousand distinct dates, each read once
def parse_fuzzy_date(raw: str) -> FuzzyDate:
    """`2022-06-12`, `2022-06`, `late 2022-06` or `2022`; ValueError says what is wrong."""
    match = FUZZY_DATE.match(raw.strip())
    if not match:
        raise ValueError(
            f"'{raw}' is not a date: use YYYY-MM-DD, YYYY-MM, early/mid/late YYYY-MM or YYYY"
        )
    qualifier, year_s, month_s, day_s = match.groups()
    year = int(year_s)
    if month_s is None:
        if qualifier:
            raise ValueError(f"'{raw}': early/mid/late needs a month (e.g. '{qualifier} {year}-06')")
        return FuzzyDate(date(year, 12, 31), date(year, 1, 1), "year")
    month = int(month_s)
    if not 1 <= month <= 12:
        raise ValueError(f"'{raw}' is not a real date: there is no month {month}")
    last = calendar.monthrange(year, month)[1]
    if day_s is None:
        first_day, last_day = QUALIFIER_DAYS.get(qualifier or "", (1, last))
        return FuzzyDate(
            date(year, month, min(last_day, last)), date(year, month, first_day),
            "month", qualifier or "",
        )
    if qualifier:
        raise ValueError(f"'{raw}': early/mid/late applies to a month, not to a day")
    try:
        day = date(year, month, int(day_s))
    except ValueError:
        raise ValueError(f"'{raw}' is not a real date: {calendar.month_name[month]} {year} has {last} days") from None
    return FuzzyDate(day, day, "day")


def fuzzy_from_span(start: date, end: date | None, precision: str) -> FuzzyDate:
    """The date a span stands for, at `precision` (day, month or year; finer ones count as a
    day): a month's first ten days, middle ten or last days are its early, mid or late part."""
    if precision == "year":
        return parse_fuzzy_date(str(start.year))
    if precision != "month":
        return parse_fuzzy_date(start.isoformat())
    month = f"{start.year:04d}-{start.month:02d}"
    last = calendar.monthrange(start.year, start.month)[1]
    span = (start.day, end.day if end is not None and (end.year, end.month) == (start.year, start.month) else last)
    for qualifier, (first, final) in QUALIFIER_DAYS.items():
        if span == (first, min(final, last)) and span != (1, last):
            return parse_fuzzy_date(f"{qualifier} {month}")
    return parse_fuzzy_date(month)


# --- loading -------------------------------------------------------------------------------

BRIEF_KEYS = ("title", "dek", "date", "authors", "language", "tags", "key_points", "related", "url", "tlp")
BRIEF_REQUIRED = ("title", "dek", "date", "authors", "tags", "key_points")
ENTRY_KEYS = ("date", "language", "title", "summary", "actors", "tags", "sources", "tlp", "confidence")
ENTRY_REQUIRED = ("date", "title", "summary", "tags", "sources")
SOURCE_KEYS = ("title", "publisher", "url", "reliability", "credibility")
SOURCE_REQUIRED = ("title", "publisher", "url")
KEY_POINT_KEYS = ("text", "sources", "tlp", "confidence")
KEY_POINT_REQUIRED = ("text", "sources")

T = TypeVar("T")


def load_library(root: Path, shortlist: Shortlist | None = None) -> Library:
    """Load and check every brief and timeline file; raise Invalid listing every problem.

    With `shortlist`, every timeline file is still parsed and each entry sketched (its date,
    title, tags and language), but only the entries `shortlist` keeps are read and checked in
    full, and only their problems reported: what an issue needs of a timeline of years (`build`).
    """
    if not root.is_dir():
        raise NewsletterError(f"content folder not found: {root}")
    problems = Problems(ContentError)
    briefs = [
        brief
        for path in sorted((root / "briefs").glob("*.md"))
        if (brief := _load_brief(path, problems)) is not None
    ]
    paths = sorted((root / "timeline").glob("*.y*ml"))
    with collector_paused():
        if shortlist is None:
            timeline = [entry for path in paths for entry in _load_timeline(path, problems)]
        else:
            timeline = _load_shortlisted(paths, shortlist, problems)
    _check_related(briefs, problems)
    _check_duplicates(timeline, problems)
    if problems:
        raise Invalid(problems.items)
    return Library(
        root,
        tuple(sorted(briefs, key=lambda b: (b.date, b.slug))),
        tuple(sorted(timeline, key=_date_order)),
    )


def _date_order(entry: TimelineEntry) -> tuple[date, date, str, str, str]:
    """`entry.key` as plain values, which compare in C: FuzzyDate's generated comparisons are
    Python calls, and sorting a large timeline makes a million of them."""
    when = entry.date
    return (when.end, when.start, when.precision, when.qualifier, entry.title)


def _split_front_matter(path: Path, text: str, problems: Problems) -> tuple[str, str, int] | None:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        problems.add(path, 1, "front matter", "a brief starts with a '---' line, then YAML, then '---'")
        return None
    for index in range(1, len(lines)):
        if lines[index].strip() in ("---", "..."):
            return "\n".join(lines[1:index]), "\n".join(lines[index + 1:]), index + 2
    problems.add(path, 1, "front matter", "no closing '---' line after the front matter")
    return None


def _load_brief(path: Path, problems: Problems) -> Brief | None:
    name = BRIEF_NAME.match(path.name)
    if not name:
        problems.add(path, 1, "filename", "name a brief YYYY-MM-DD-slug.md (lowercase slug)")
        return None
    text = _read(path, problems)
    if text is None:
        return None
    parts = _split_front_matter(path, text, problems)
    if parts is None:
        return None
    front, body, body_line = parts
    root = parse(front, path, problems, first_line=2)
    fields = root.mapping(BRIEF_KEYS, BRIEF_REQUIRED) if root else None
    if fields is None:
        return None
    before = len(problems.items)
    brief_date = _plain_date(fields.get("date"))
    if brief_date is not None and brief_date.isoformat() != name.group(1):
        assert fields.get("date") is not None
        fields.entries["date"].error(
            f"{brief_date.isoformat()} does not match the date in the file name ({name.group(1)})"
        )
    title = _plain(fields, "title", header=True)  # the subject
    dek = _plain(fields, "dek", header=True)  # the preheader
    authors = _authors(fields.get("authors"))
    language = _language(fields.get("language"))
    tags = _tags(fields.get("tags"))
    key_points = _key_points(fields.get("key_points"))
    related = _related(fields.get("related"))
    url = _url(fields.get("url")) if "url" in fields else None
    tlp = _choice(fields.get("tlp"), parse_tlp)
    if tlp is not None and key_points:
        for index, point in enumerate(key_points):
            if point.tlp is not None and rank(point.tlp) < rank(tlp):
                problems.add(path, point.line, f"key_points[{index}].tlp",
                             f"TLP:{point.tlp.upper()} is below its brief's TLP:{tlp.upper()}: a key point "
                             "shares at least its brief's marking (mark the brief lower, or the point higher)")
    for problem in markup.check(body):
        line = _find_line(text, problem.snippet, body_line)
        problems.add(path, line, "body", problem.message)
    if len(problems.items) > before or not fields.ok:
        return None
    assert title and dek and brief_date and authors is not None and tags is not None
    assert key_points is not None and related is not None and language
    return Brief(
        slug=name.group(2), path=path, title=title, dek=dek, date=brief_date,
        authors=authors, language=language, tags=tags, key_points=key_points,
        related=related, body=body.strip(), url=url, tlp=tlp,
        tlp_line=fields.entries["tlp"].line if "tlp" in fields else 0,
    )


def _load_timeline(path: Path, problems: Problems) -> list[TimelineEntry]:
    text = _read(path, problems)
    items = _items(text, path, problems) if text is not None else []
    return [entry for value in items if (entry := read_entry(value, problems)) is not None]


def _load_shortlisted(paths: list[Path], shortlist: Shortlist, problems: Problems) -> list[TimelineEntry]:
    """Sketch every entry of every file, then read in full, file by file, those `shortlist`
    keeps. A file laid out plainly is sketched from its text (skim.py) and composed only if it
    holds one of them; any other is composed to be sketched, one file's nodes at a time."""
    texts: dict[Path, str] = {}
    skimmed: dict[Path, list[int]] = {}  # the first line of each entry, as the skim found them
    found: list[tuple[Path, int, Sketch]] = []
    for path in paths:
        text = _read(path, problems)
        if text is None:
            continue
        texts[path] = text
        entries = skim(text)
        if entries is not None:
            skimmed[path] = [entry.line for entry in entries]
            sketches = [_skimmed_sketch(entry) for entry in entries]
        else:
            sketches = [_sketch(item) for item in _scratch(_items(text, path, problems))]
        found.extend((path, index, sketch) for index, sketch in enumerate(sketches))
    wanted: dict[Path, dict[int, Sketch]] = {}
    for position in sorted(set(shortlist([sketch for _, _, sketch in found]))):
        path, index, sketch = found[position]
        wanted.setdefault(path, {})[index] = sketch
    timeline: list[TimelineEntry] = []
    for path, sketched in wanted.items():
        items = _items(texts[path], path, problems)
        if path in skimmed and [item.line for item in items] != skimmed[path]:
            _misread(path)
        for index, sketch in sketched.items():
            entry = read_entry(items[index], problems)
            if entry is None:
                continue
            if path in skimmed and Sketch(entry.date, entry.title, entry.tags, entry.language) != sketch:
                _misread(path)
            timeline.append(entry)
    return timeline


def _misread(path: Path) -> NoReturn:
    """A skim that found entries where the parser does not, or read a valid entry otherwise, is
    a bug: the issue might be wrong, so nothing is built (the command reports an internal error)."""
    raise RuntimeError(f"{display_path(path)} was skimmed differently from how it parses")


def _items(text: str, path: Path, problems: Problems) -> list[Value]:
    root = parse(text, path, problems)
    return (root.items() if root else None) or []


def _scratch(items: list[Value]) -> list[Value]:
    """The same values, their problems recorded nowhere: reading an entry in full finds them again."""
    scratch = replace(items[0].doc, problems=Problems(ContentError)) if items else None
    return [Value(item.node, scratch, item.path) for item in items if scratch is not None]


def _skimmed_sketch(entry: Skimmed) -> Sketch:
    """A skimmed entry's sketch, by the rules of reading it in full."""
    given = entry.fields
    date, title, tags, language = given.get("date"), given.get("title"), given.get("tags"), given.get("language", "en")
    return Sketch(
        _or_none(parse_fuzzy_date, date) if isinstance(date, str) else None,
        _or_none(_one_line, title, True) if isinstance(title, str) else None,
        None if tags is None else _or_none(_tag_list, (tags,) if isinstance(tags, str) else tags),
        _or_none(_language_code, language) if isinstance(language, str) else None,
    )


def _or_none(rule: Callable[..., T], *args: object) -> T | None:
    try:
        return rule(*args)
    except ValueError:
        return None


SKETCHED = ("date", "title", "tags", "language")
UNSURE = Sketch(None, None, None, None)


def _sketch(value: Value) -> Sketch:
    fields = value.some(SKETCHED)
    if fields is None:
        return UNSURE
    return Sketch(
        _fuzzy(fields.get("date")), _plain_value(fields.get("title"), header=True), _tags(fields.get("tags")),
        _language(fields.get("language")),
    )


def read_entry(value: Value, problems: Problems) -> TimelineEntry | None:
    """One timeline entry (a mapping), checked; None after recording its problems."""
    before = len(problems.items)
    fields = value.mapping(ENTRY_KEYS, ENTRY_REQUIRED)
    if fields is None:
        return None
    fuzzy = _fuzzy(fields.get("date"))
    title = _plain(fields, "title", header=True)  # the preheader of an issue without a brief
    summary = _markdown(fields.get("summary"), one_paragraph=True)
    actors = fields.texts("actors")
    tags = _tags(fields.get("tags"))
    sources = _sources(fields.get("sources"))
    language = _language(fields.get("language"))
    tlp = _choice(fields.get("tlp"), parse_tlp)
    confidence = _choice(fields.get("confidence"), parse_confidence)
    if len(problems.items) > before or not fields.ok:
        return None
    assert fuzzy and title and summary and actors is not None and tags is not None
    assert sources is not None and language
    return TimelineEntry(
        fuzzy, title, summary, _shared(actors), _shared(tags), sources, sys.intern(language), value.file, value.line,
        tlp, confidence,
    )


def _shared(texts: tuple[str, ...]) -> tuple[str, ...]:
    """The same few actors and tags recur in thousands of entries: one copy of each is kept."""
    return tuple(map(sys.intern, texts))


def read_brief(path: Path, problems: Problems) -> Brief | None:
    """One brief file, checked (its related briefs are resolved only within a library)."""
    return _load_brief(path, problems)


def _read(path: Path, problems: Problems) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        problems.add(path, line, "encoding", "the file is not UTF-8 text")
    except OSError as exc:
        problems.add(path, 1, "file", f"cannot read: {exc.strerror}")
    return None


def _find_line(text: str, snippet: str, first: int) -> int:
    for number, line in enumerate(text.splitlines()[first - 1:], start=first):
        if snippet in line:
            return number
    return first


def _plain(fields: Mapping, key: str, header: bool = False) -> str | None:
    """A one-line text field (title, dek): no Markdown, no HTML, line breaks folded to spaces.
    With `header`, it may end up in a mail header (a subject, a preheader), so it must also
    pass the header rule: no control characters, no encoded words."""
    return _plain_value(fields.get(key), header)


def _plain_value(value: Value | None, header: bool = False) -> str | None:
    text = value.text() if value is not None else None
    return None if value is None or text is None else _checked(value, lambda: _one_line(text, header))


def _one_line(text: str, header: bool) -> str:
    """The rule of `_plain`, on the text; ValueError says what is wrong."""
    if "<" in text and re.search(r"</?[a-zA-Z]", text):
        raise ValueError(f"HTML is not allowed here: {text[:60]}")
    folded = " ".join(text.split())
    problem = header_problem(folded) if header else None
    if problem is not None:
        raise ValueError(problem)
    return folded


def _checked(value: Value, rule: Callable[[], T]) -> T | None:
    """What `rule` gives, or None after its ValueError is recorded at `value`."""
    try:
        return rule()
    except ValueError as exc:
        value.error(str(exc))
        return None


def _markdown(value: Value | None, one_paragraph: bool = False) -> str | None:
    if value is None:
        return None
    text = value.text()
    if text is None:
        return None
    ok = True
    for problem in markup.check(text):
        value.error(problem.message, value.line_of(problem.snippet))
        ok = False
    if one_paragraph and "\n\n" in text.strip():
        value.error("write one paragraph (no blank lines)")
        ok = False
    return text if ok else None


def _plain_date(value: Value | None) -> date | None:
    fuzzy = _fuzzy(value)
    if value is None or fuzzy is None:
        return None
    if fuzzy.precision != "day":
        value.error(f"'{fuzzy.iso}' must be a full date (YYYY-MM-DD)")
        return None
    return fuzzy.start


def _fuzzy(value: Value | None) -> FuzzyDate | None:
    if value is None:
        return None
    raw = value.text()
    if raw is None:
        return None
    try:
        return parse_fuzzy_date(raw)
    except ValueError as exc:
        value.error(str(exc))
        return None


def _language(value: Value | None) -> str | None:
    if value is None:
        return "en"
    raw = value.text()
    return None if raw is None else _checked(value, lambda: _language_code(raw))


def _language_code(raw: str) -> str:
    if not LANGUAGE.match(raw):
        raise ValueError(f"'{raw}' is not a language code such as en, ar or pt-BR")
    return raw


def _tags(value: Value | None) -> tuple[str, ...] | None:
    tags = value.texts() if value is not None else None
    return None if value is None or tags is None else _checked(value, lambda: _tag_list(tags))


def _tag_list(tags: tuple[str, ...]) -> tuple[str, ...]:
    if not tags:
        raise ValueError("give at least one tag")
    bad = [t for t in tags if not TAG.match(t)]
    if bad:
        raise ValueError(f"tags are lowercase words joined by '-': {', '.join(bad)}")
    return tuple(dict.fromkeys(tags))


def _url(value: Value | None) -> str | None:
    if value is None:
        return None
    raw = value.text()
    if raw is None:
        return None
    if PLAIN_WEB_ADDRESS.match(raw):
        return raw
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        value.error(f"'{raw}' is not an http(s) address")
        return None
    if SPACE_OR_CONTROL.search(raw):
        value.error("an address cannot contain spaces or control characters")
        return None
    return raw


def _choice(value: Value | None, parse: Callable[[str], str]) -> str | None:
    """A marking (TLP level, confidence): None when absent, else parsed, its error at its line."""
    raw = value.text() if value is not None else None
    if value is None or raw is None:
        return None
    try:
        return parse(raw)
    except ValueError as exc:
        value.error(str(exc))
        return None


def _records(
    value: Value | None, keys: tuple[str, ...], read: Callable[[Mapping], T | None], empty: str,
    required: tuple[str, ...] | None = None,
) -> tuple[T, ...] | None:
    """A non-empty list of mappings with `keys` (all of them, unless `required` names fewer),
    each read into a record.

    Every item is read even after a bad one, so that one check reports every problem.
    """
    items = value.items() if value else None
    if value is None or items is None:
        return None
    if not items:
        value.error(empty)
        return None
    records: list[T] = []
    for item in items:
        fields = item.mapping(keys, keys if required is None else required)
        record = read(fields) if fields is not None else None
        if fields is not None and fields.ok and record is not None:
            records.append(record)
    return tuple(records) if len(records) == len(items) else None


def _source(fields: Mapping) -> Source | None:
    title, publisher, url = _plain(fields, "title"), _plain(fields, "publisher"), _url(fields.get("url"))
    halves = [fields.get(key) for key in ("reliability", "credibility")]
    texts = [str(value.node.value) if value is not None else None for value in halves]
    try:
        rating = parse_rating(*texts)
    except ValueError as exc:
        target = next((v for v in halves if v is not None), None)
        assert target is not None
        target.error(str(exc))
        return None
    return Source(title, sys.intern(publisher), url, rating) if title and publisher and url else None


def _author(fields: Mapping) -> Author | None:
    name, bio = _plain(fields, "name"), _plain(fields, "bio")
    return Author(name, bio) if name and bio else None


def _key_point(fields: Mapping) -> KeyPoint | None:
    text = _markdown(fields.get("text"), one_paragraph=True)
    sources = _sources(fields.get("sources"))
    tlp = _choice(fields.get("tlp"), parse_tlp)
    confidence = _choice(fields.get("confidence"), parse_confidence)
    where = "tlp" if "tlp" in fields else "text"  # where a `check` error about its marking points
    line = fields.entries[where].line if where in fields else 0
    return KeyPoint(" ".join(text.split()), sources, tlp, confidence, line) if text and sources else None


def _sources(value: Value | None) -> tuple[Source, ...] | None:
    return _records(value, SOURCE_KEYS, _source, "give at least one source (title, publisher, url)", SOURCE_REQUIRED)


def _authors(value: Value | None) -> tuple[Author, ...] | None:
    return _records(value, ("name", "bio"), _author, "give at least one author (name, bio)")


def _key_points(value: Value | None) -> tuple[KeyPoint, ...] | None:
    return _records(value, KEY_POINT_KEYS, _key_point, "a brief needs at least one key point", KEY_POINT_REQUIRED)


def _related(value: Value | None) -> tuple[Related, ...] | None:
    if value is None:
        return ()
    items = value.items()
    if items is None:
        return None
    related: list[Related] = []
    for item in items:
        if isinstance(item.node.value, str):
            slug = item.text()
            if slug:
                related.append(Related(title="", slug=slug))
            continue
        fields = item.mapping(("title", "url"), ("title", "url"))
        if fields is None:
            continue
        title, url = _plain(fields, "title"), _url(fields.get("url"))
        if title and url and fields.ok:
            related.append(Related(title, url=url))
    return tuple(related) if len(related) == len(items) else None


def _check_related(briefs: list[Brief], problems: Problems) -> None:
    """Resolve related briefs given by slug to their titles, or report unknown slugs."""
    by_slug = {b.slug: b for b in briefs}
    for index, brief in enumerate(briefs):
        resolved: list[Related] = []
        for position, item in enumerate(brief.related):
            if item.slug is None:
                resolved.append(item)
            elif item.slug in by_slug:
                target = by_slug[item.slug]
                resolved.append(Related(target.title, url=target.url, slug=item.slug))
            else:
                text = brief.path.read_text(encoding="utf-8")
                line = _find_line(text, item.slug, 1)
                message = hint(item.slug, sorted(by_slug), noun="brief")
                problems.add(brief.path, line, f"related[{position}]", message)
        briefs[index] = replace(brief, related=tuple(resolved))


def _check_duplicates(entries: list[TimelineEntry], problems: Problems) -> None:
    seen: dict[tuple[str, str], TimelineEntry] = {}
    for entry in sorted(entries, key=lambda e: (str(e.path), e.line)):
        key = (entry.date.iso, entry.title.casefold())
        first = seen.setdefault(key, entry)
        if first is not entry:
            problems.add(
                entry.path, entry.line, "title",
                f"duplicate entry: same date and title as {first.path.name}:{first.line}",
            )
