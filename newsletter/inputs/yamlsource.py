"""Read YAML into checked values that remember their file, line and field path.

Config and content are both YAML a person edits, and every problem must point at
`file:line: field`. PyYAML's composed node tree keeps line marks that its plain
`safe_load` throws away, so values are read from nodes. Scalars stay the text
the author wrote (no YAML 1.1 guessing: `no` is a language code, not False) and
each reader converts them to the type the schema asks for.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import SourceError

NULL_TAG = "tag:yaml.org,2002:null"
# libyaml composes the same nodes with the same marks about ten times faster.
FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
            node = yaml.compose(text, Loader=FAST_LOADER)
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
        values = self.items()
        if values is None:
            return None
        texts = [v.text() for v in values]
        if any(t is None for t in texts):
            return None
        return tuple(t for t in texts if t is not None)

    def mapping(self, allowed: Sequence[str], required: Sequence[str] = ()) -> Mapping | None:
        """Check keys: unknown ones get a did-you-mean hint, repeats and missing ones an error."""
        if not isinstance(self.node, yaml.MappingNode):
            self.error("expected keys and values, found a " + _kind(self.node))
            return None
        entries: dict[str, Value] = {}
        key_lines: dict[str, int] = {}
        misspelt: set[str] = set()  # required keys a hint already pointed at
        ok = True
        for key_node, value_node in self.node.value:
            key = str(key_node.value)
            key_path = f"{self.path}.{key}" if self.path else key
            key_line = int(key_node.start_mark.line) + self.doc.first_line
            if key not in allowed:
                self.doc.problems.add(self.doc.file, key_line, key_path, hint(key, allowed))
                misspelt.add(closest(key, allowed) or "")
                ok = False
            elif key in entries:
                self.doc.problems.add(
                    self.doc.file, key_line, key_path,
                    f"repeated key (first given on line {entries[key].line})",
                )
                ok = False
            else:
                entries[key] = Value(value_node, self.doc, key_path)
                key_lines[key] = key_line
        for key in required:
            if key not in entries and key not in misspelt:
                missing_path = f"{self.path}.{key}" if self.path else key
                self.doc.problems.add(self.doc.file, self.line, missing_path, "is required but missing")
                ok = False
        return Mapping(self, entries, key_lines, ok)


@dataclass(frozen=True)
class Mapping:
    """The checked keys of a YAML mapping; `ok` is False if any key was wrong."""

    value: Value
    entries: dict[str, Value]
    key_lines: dict[str, int]  # where each key is written (a value may start lines below)
    ok: bool

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
