"""A timeline file skimmed without composing its YAML: each entry's first line, date, title, tags and language.

Composing a file's nodes is most of what reading a large timeline costs, and `build` needs of
most entries only these four fields, to know that its issue does not show them. When a file is
laid out as timeline files are written (a list at the margin, each entry's keys two spaces in,
these four on one line each, in forms YAML keeps as written), they are read here from the text,
and libyaml parses each entry in C, building nothing, to prove that it is one whole entry.
Anything else, in any entry, leaves the whole file to the parser (`skim` returns None).

Why a field read here is the one the parser reads, when the entry gives it: an entry starts at a
line with a dash at the margin, and only a quoted or bracketed value could carry such a line
inside it, but it would then be left open at the end of the entry before, which libyaml refuses.
Within an entry every line two spaces in must be a plain `key:` (a block value's lines are
further in, a plain value cannot go on at two spaces), so each key the parser reads is on such a
line. A line like that which the parser reads as the inside of a quoted or bracketed value is
then either a second line for the same key (left to the parser) or stands for a key the entry
lacks: reading that entry in full says it is missing.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from dataclasses import dataclass

import yaml

try:
    from yaml._yaml import CParser
except ImportError:  # a PyYAML built without libyaml: every file is left to the parser
    CParser = None  # type: ignore[assignment, misc]

SKIMMED = ("date", "title", "tags", "language")
# Only the parser reads these right: line breaks other than LF, tabs, a byte-order mark,
# document markers and directives, anchors and aliases (and what may be one: *emphasis*).
UNPLAIN_CHARACTERS = ("\r", "\t", "\x85", "\u2028", "\u2029", "\ufeff")
DIRECTIVE_OR_MARKER = re.compile(r"\n(?:---|\.\.\.|%)")
ANCHOR_OR_ALIAS = re.compile(r"(?<![^\s\[{,])[&*][^\s\[\]{},]")
# Every pattern below reads the text with a line break put first, so each line starts with one.
ENTRY_START = re.compile(r"\n-(?= |\n|\Z)")
NOT_A_COMMENT = re.compile(r"\n(?! *(?:#|\n|\Z))")
ODD_LINE = re.compile(r"\n(?!- [a-z_]+:(?: |\n|\Z)|  [a-z_]+:(?: |\n|\Z)|   | *(?:\n|\Z)|#|  #)")
KEY_LINE = re.compile(r"\n(?:- |  )(date|title|tags|language):(?: ([^\n]*))?(?=(?:\n *(?=\n|\Z))*(\n   )?)")
PLAIN = re.compile(r"[^\s\-?:,\[\]{}#&*!|>'\"%@`](?:(?!: | #).)*(?<!:)\Z")  # no indicator first, no comment
DOUBLE_QUOTED = re.compile(r'"([^"\\]*)"\s*\Z')
SINGLE_QUOTED = re.compile(r"'((?:[^']|'')*)'\s*\Z")
FLOW_LIST = re.compile(r"\[([^\[\]{}\"'#:]*)\]\s*\Z")
NULLS = frozenset({"~", "null", "Null", "NULL"})

Field = str | tuple[str, ...]  # a text, or a list of texts


@dataclass(frozen=True, slots=True)
class Skimmed:
    """One entry: its first line, and those of `SKIMMED` it gives (a key it lacks is absent)."""

    line: int
    fields: Mapping[str, Field]


class _NotPlain(Exception):
    """Something only the parser reads right."""


def skim(text: str) -> list[Skimmed] | None:
    """The entries of a timeline file, in order; None when its text is not laid out plainly
    enough to read them without composing it (or libyaml is not there)."""
    if CParser is None or any(c in text for c in UNPLAIN_CHARACTERS):
        return None
    text = "\n" + text
    if DIRECTIVE_OR_MARKER.search(text) or (("&" in text or "*" in text) and ANCHOR_OR_ALIAS.search(text)):
        return None
    starts = [match.start() + 1 for match in ENTRY_START.finditer(text)]
    if not starts or NOT_A_COMMENT.search(text, 0, starts[0] - 1) or ODD_LINE.search(text, starts[0] - 1):
        return None  # not a list at the margin, something before it, or a line only the parser reads
    fields: list[dict[str, Field]] = [{} for _ in starts]
    try:
        for start, end in zip(starts, starts[1:] + [len(text)]):
            CParser(text[start:end]).raw_parse()  # one whole entry, or an error the parser will name
        for match in KEY_LINE.finditer(text):
            given = fields[bisect.bisect_right(starts, match.start() + 1) - 1]
            if match.group(1) in given or match.group(3) is not None:
                raise _NotPlain  # given twice, or it goes on below
            given[match.group(1)] = _value((match.group(2) or "").strip())
    except (yaml.YAMLError, _NotPlain):
        return None
    skimmed, line, before = [], 0, 0
    for start, given in zip(starts, fields):
        line += text.count("\n", before, start)  # the break put first makes this the line's number
        skimmed.append(Skimmed(line, given))
        before = start
    return skimmed


def _value(raw: str) -> Field:
    """A value written in a form YAML keeps as written: plain, quoted without escapes, or a
    flow list of plain words."""
    first = raw[:1]
    if first == "[" and (flow := FLOW_LIST.match(raw)) is not None:
        items = tuple(item.strip() for item in flow.group(1).split(","))
        return () if items == ("",) else tuple(_plain(item) for item in items)
    if first == '"' and (quoted := DOUBLE_QUOTED.match(raw)) is not None:
        return _given(quoted.group(1).strip())
    if first == "'" and (quoted := SINGLE_QUOTED.match(raw)) is not None:
        return _given(quoted.group(1).replace("''", "'").strip())
    return _plain(raw)


def _plain(raw: str) -> str:
    if not PLAIN.match(raw) or raw in NULLS:
        raise _NotPlain
    return raw


def _given(text: str) -> str:
    if not text:
        raise _NotPlain  # empty: the parser says so
    return text
