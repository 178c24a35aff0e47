"""Read YAML into checked values that remember their file, line and field path.

Config and content are both YAML a person edits, and every problem must point at
`file:line: field`. PyYAML's composed node tree keeps line marks that its plain
`safe_load` throws away, so values are read from nodes. Scalars stay the text
the author wrote (no YAML 1.1 guessing: `no` is a language code, not False) and
each reader converts them to the type the schema asks for.
"""

from __future__ import annotations

import difflib
import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import SourceError

NULL_TAG = "tag:yaml.org,2002:null"
STR_TAG = "tag:yaml.org,2002:str"
NULLS = frozenset({"", "~", "null", "Null", "NULL"})  # what YAML 1.1 reads as null, written plain


class _Lean:
    """Tags as readers here need them: null or not.

    Scalars stay the text the author wrote, so the only tag a reader looks at is null's. The
    full resolver tries YAML 1.1's patterns (bools, ints, floats, timestamps) on every plain
    scalar, in Python even under libyaml: a fifth of composing a large timeline.
    """

    def resolve(self, kind: type[yaml.Node], value: str, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            return NULL_TAG if implicit[0] and value in NULLS else STR_TAG
        return "tag:yaml.org,2002:seq" if kind is yaml.SequenceNode else "tag:yaml.org,2002:map"


try:  # libyaml composes the same nodes with the same marks about ten times faster
    from yaml import CSafeLoader as _Loader
except ImportError:  # a PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


class FastLoader(_Lean, _Loader):
    """libyaml when PyYAML has it, with the lean resolver."""


@dataclass
class Problems:
    """Collects every problem of one kind, so a check can report them all at once."""

    kind: type[SourceError]
    items: list[SourceError] = field(default_factory=list)

    def add(self, file: Path, line: int, field: str, message: str) -> None:
        self.items.append(self.kind(file, line, field, message))

    def __bool__(self) -> bool:
        return bool(self.items)


@dataclass(frozen=True)
class Document:
    """One YAML text and where it sits in its file (front matter starts below line 1)."""

    file: Path
    lines: tuple[str, ...]
    first_line: int
    problems: Problems


def parse(text: str, file: Path, problems: Problems, first_line: int = 1) -> Value | None:
    """Compose `text`; on a syntax error record it and return None."""
    doc = Document(file, tuple(text.splitlines()), first_line, problems)
    try:
        try:
            with collector_paused():
                node = yaml.compose(text, Loader=FastLoader)
        except yaml.YAMLError:
            # Parse again with the pure-Python loader: its messages are the ones we document.
            node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = (mark.line if mark else 0) + first_line
        message = str(exc.problem or exc.context)
        if exc.context and exc.context_mark and exc.problem:
            message += f" ({exc.context} that starts on line {exc.context_mark.line + first_line})"
        problems.add(file, line, "yaml", f"invalid YAML: {message}")
        return None
    except yaml.YAMLError as exc:
        problems.add(file, first_line, "yaml", f"invalid YAML: {exc}")
        return None
    if node is None:
        problems.add(file, first_line, "yaml", "the file is empty")
        return None
    return Value(node, doc, "")


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cycle collection while a large tree of objects is built.

    A node tree (and what is read from it) holds no reference cycles, so a collection while it
    grows frees nothing, yet each one walks every object built so far: with the collector
    running, composing and reading a timeline of thousands of entries takes two to three times
    as long. The collector is process-wide: it is switched back on after, unless it was off
    before (a thread loading at the same moment finds it off and leaves it to the first one).
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def closest(name: str, allowed: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    return close[0] if close else None


def hint(name: str, allowed: Sequence[str], noun: str = "key") -> str:
    """`unknown key 'titel' (did you mean 'title'?)`, or the allowed names when none is close."""
    close = closest(name, allowed)
    if close:
        return f"unknown {noun} '{name}' (did you mean '{close}'?)"
    return f"unknown {noun} '{name}' (known: {', '.join(allowed) or 'none'})"


@dataclass(frozen=True)
class Value:
    """A YAML node with its place; readers return None after recording a problem."""

    node: yaml.Node
    doc: Document
    path: str

    @property
    def line(self) -> int:
        return int(self.node.start_mark.line) + self.doc.first_line

    @property
    def file(self) -> Path:
        return self.doc.file

    def error(self, message: str, line: int | None = None) -> None:
        self.doc.problems.add(self.doc.file, line or self.line, self.path or "(top)", message)

    def line_of(self, snippet: str) -> int:
        """The file line inside this value's span that holds `snippet` (its first line if none)."""
        start = int(self.node.start_mark.line)
        end = int(self.node.end_mark.line)
        for index in range(start, min(end + 1, len(self.doc.lines))):
            if snippet in self.doc.lines[index]:
                return index + self.doc.first_line
        return self.line

    def _child(self, node: yaml.Node, suffix: str) -> Value:
        return Value(node, self.doc, f"{self.path}{suffix}")

    def text(self) -> str | None:
        node = self.node
        if not isinstance(node, yaml.ScalarNode):
            self.error("expected text, found a " + _kind(node))
            return None
        value = "" if node.tag == NULL_TAG else str(node.value).strip()
        if not value:
            self.error("is empty")
            return None
        return value

    def integer(self, minimum: int = 0) -> int | None:
        number = self._number(int, "a whole number", minimum)
        return None if number is None else int(number)

    def decimal(self, minimum: float = 0) -> float | None:
        return self._number(float, "a number", minimum)

    def _number(self, kind: type[int] | type[float], noun: str, minimum: float) -> float | None:
        raw = self.text()
        if raw is None:
            return None
        try:
            number = kind(raw)
        except ValueError:
            self.error(f"expected {noun}, found '{raw}'")
            return None
        if number < minimum or number != number:
            self.error(f"must be at least {minimum}, found {raw}")
            return None
        return number

    def boolean(self) -> bool | None:
        raw = self.text()
        if raw is None:
            return None
        lowered = raw.lower()
        if lowered in ("true", "yes", "on"):
            return True
        if lowered in ("false", "no", "off"):
            return False
        self.error(f"expected true or false, found '{raw}'")
        return None

    def items(self) -> list[Value] | None:
        if not isinstance(self.node, yaml.SequenceNode):
            self.error("expected a list, found a " + _kind(self.node))
            return None
        return [self._child(node, f"[{i}]") for i, node in enumerate(self.node.value)]

    def texts(self) -> tuple[str, ...] | None:
        """A list of texts; a single text is taken as a list of one."""
        if isinstance(self.node, yaml.ScalarNode):
            one = self.text()
            return None if one is None else (one,)
        if isinstance(self.node, yaml.SequenceNode):  # most lists are plain texts: read without a Value each
            plain = [str(n.value).strip() for n in self.node.value if type(n) is yaml.ScalarNode and n.tag != NULL_TAG]
            if len(plain) == len(self.node.value) and all(plain):
                return tuple(plain)
        values = self.items()
        if values is None:
            return None
        texts = [v.text() for v in values]
        if any(t is None for t in texts):
            return None
        return tuple(t for t in texts if t is not None)

    def some(self, keys: Sequence[str]) -> dict[str, Value] | None:
        """The values of these keys, the others not looked at: a first, cheap look, with no
        problem recorded. None unless this is a mapping that gives each of them at most once."""
        if not isinstance(self.node, yaml.MappingNode):
            return None
        prefix = f"{self.path}." if self.path else ""
        found: dict[str, Value] = {}
        for key_node, value_node in self.node.value:
            key = key_node.value
            if key in keys:
                if key in found:
                    return None
                found[key] = Value(value_node, self.doc, prefix + key)
        return found

    def mapping(self, allowed: Sequence[str], required: Sequence[str] = ()) -> Mapping | None:
        """Check keys: unknown ones get a did-you-mean hint, repeats and missing ones an error."""
        if not isinstance(self.node, yaml.MappingNode):
            self.error("expected keys and values, found a " + _kind(self.node))
            return None
        doc, path = self.doc, self.path
        prefix = f"{path}." if path else ""
        entries: dict[str, Value] = {}
        keys: dict[str, yaml.Node] = {}
        misspelt: set[str] = set()  # required keys a hint already pointed at
        ok = True
        for key_node, value_node in self.node.value:
            key = str(key_node.value)
            if key in allowed and key not in entries:
                entries[key] = Value(value_node, doc, prefix + key)
                keys[key] = key_node
                continue
            key_line = int(key_node.start_mark.line) + doc.first_line
            if key not in allowed:
                doc.problems.add(doc.file, key_line, prefix + key, hint(key, allowed))
                misspelt.add(closest(key, allowed) or "")
            else:
                doc.problems.add(
                    doc.file, key_line, prefix + key, f"repeated key (first given on line {entries[key].line})",
                )
            ok = False
        for key in required:
            if key not in entries and key not in misspelt:
                doc.problems.add(doc.file, self.line, prefix + key, "is required but missing")
                ok = False
        return Mapping(self, entries, keys, ok)


@dataclass(frozen=True)
class Mapping:
    """The checked keys of a YAML mapping; `ok` is False if any key was wrong."""

    value: Value
    entries: dict[str, Value]
    keys: dict[str, yaml.Node]  # each key's own node
    ok: bool

    @property
    def key_lines(self) -> dict[str, int]:
        """Where each key is written (a value may start lines below)."""
        first = self.value.doc.first_line
        return {key: int(node.start_mark.line) + first for key, node in self.keys.items()}

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def get(self, key: str) -> Value | None:
        return self.entries.get(key)

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.entries.get(key)
        return default if value is None else value.text()

    def texts(self, key: str) -> tuple[str, ...] | None:
        value = self.entries.get(key)
        return () if value is None else value.texts()


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "mapping"
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return f"text ('{node.value}')"
