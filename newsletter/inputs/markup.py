"""Markdown in content: the checks it must pass, sanitized HTML, and plaintext with numbered links."""

from __future__ import annotations

import html
import re
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element

import markdown
import nh3
from markdown.treeprocessors import Treeprocessor
from markdown.util import AMP_SUBSTITUTE, HTML_PLACEHOLDER_RE

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
ALLOWED_TAGS = frozenset(
    {"a", "p", "em", "strong", "code", "br", "ul", "ol", "li", "blockquote", "pre", "hr", "h3", "h4"}
)
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}

# The elements Python-Markdown's core builds that hold paragraphs rather than run inside one.
_BLOCK_TAGS = frozenset(
    {"div", "p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "hr"}
)
# Only complete references (with their `;`): the serializer escapes any other `&`, so this
# decodes an attribute or text to what a browser would read, and a stray `&lt` stays as typed.
_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z0-9]+);")

# Python-Markdown's block processors but "paragraph".
_BLOCK_PROCESSORS = (
    "empty", "indent", "code", "hashheader", "setextheader", "hr", "olist", "ulist", "quote", "reference",
)


class _KeepRoot(Treeprocessor):
    """Registered last, so the tree it keeps has inline Markdown parsed and escapes undone."""

    root: Element | None = None

    def run(self, root: Element) -> None:
        self.root = root


class _Parser:
    """One Markdown instance and the lock that lets one thread at a time use it.

    Python-Markdown keeps each conversion's state (the HTML stash, references, the tree)
    on the instance, and the web app renders from a thread pool. The lock costs nothing
    worth having back: conversion is pure Python and holds the GIL anyway.
    """

    def __init__(self, raw_html: bool, inline_only: bool = False) -> None:
        self.md = markdown.Markdown(output_format="html")
        if not raw_html:
            # Python-Markdown has no switch for raw HTML; without these two it is plain
            # text, which the serializer escapes (`&lt;script&gt;`).
            self.md.preprocessors.deregister("html_block")
            self.md.inlinePatterns.deregister("html")
        if inline_only:
            # Every line is paragraph text: `1. ` or `# ` at the start stays as typed.
            for name in _BLOCK_PROCESSORS:
                self.md.parser.blockprocessors.deregister(name)
        self._keeper = _KeepRoot(self.md)
        self.md.treeprocessors.register(self._keeper, "keep_root", -100)
        self._lock = threading.Lock()

    def html(self, text: str) -> str:
        with self._lock:
            return self.md.reset().convert(text)

    def tree(self, text: str) -> tuple[Element, list[str]]:
        """The finished element tree and the stash its HTML placeholders point into."""
        with self._lock:
            self._keeper.root = None
            self.md.reset().convert(text)
            root = self._keeper.root
            stash = [str(item) for item in self.md.htmlStash.rawHtmlBlocks]
        # convert() returns early, before any treeprocessor, when the text is blank.
        return (root if root is not None else Element("div")), stash


# Rendering never lets raw HTML through (it is escaped), and nh3 cleans the result as a
# second wall. The checking parser is the opposite: it recognises raw HTML, and Python-
# Markdown keeps every link's href whatever its scheme, so `newsletter check` can name
# what it found.
_renderer = _Parser(raw_html=False)
_inline_renderer = _Parser(raw_html=False, inline_only=True)
_checker = _Parser(raw_html=True)


@dataclass(frozen=True)
class MarkdownProblem:
    """Something content Markdown must not contain, with text to find its line by."""

    snippet: str
    message: str


def check(text: str) -> list[MarkdownProblem]:
    """Raw HTML, images and links that are not http(s) or mailto are refused."""
    # Everything refused starts with one of two characters: raw HTML and autolinks with `<`,
    # links, images and their references with `[`. Most summaries have neither, and parsing
    # each of a large timeline's is most of the time `check` takes.
    if "<" not in text and "[" not in text:
        return []
    return _parsed_problems(text)


def _parsed_problems(text: str) -> list[MarkdownProblem]:
    found: list[MarkdownProblem] = []
    root, stash = _checker.tree(text)
    for node in _in_order(root):
        if isinstance(node, str):
            for match in HTML_PLACEHOLDER_RE.finditer(node):
                raw = stash[int(match.group(1))]
                if not raw.lstrip().startswith("<"):
                    continue  # an entity such as `&amp;`, stashed the same way
                tag = raw.strip().splitlines()[0][:40]
                if tag.startswith("</"):
                    continue  # its opening tag is reported already
                found.append(MarkdownProblem(_findable(tag, text), f"raw HTML is not allowed in Markdown: {tag}"))
        elif node.tag == "img":
            src = node.get("src", "")
            found.append(MarkdownProblem(_findable(src, text), f"images are not supported in digests: {src}"))
        elif node.tag == "a":
            href = node.get("href", "")
            if urlsplit(_decode(href)).scheme.lower() not in SAFE_SCHEMES:
                found.append(
                    MarkdownProblem(_findable(href, text), f"link must be an http(s) or mailto address: {href}")
                )
    return found


def _in_order(element: Element) -> Iterator[Element | str]:
    """Elements and their text in source order: text, then each child and the text after it."""
    yield element
    if element.text:
        yield element.text
    for child in element:
        yield from _in_order(child)
        if child.tail:
            yield child.tail


def _findable(snippet: str, text: str) -> str:
    """`snippet`, or its longest start that is in `text` (a backslash escape hides the rest)."""
    for end in range(len(snippet), 0, -1):
        if snippet[:end] in text:
            return snippet[:end]
    return snippet


def _decode(value: str) -> str:
    """Text or an attribute from the tree, with Python-Markdown's entity stand-ins resolved."""
    return _ENTITY.sub(lambda m: html.unescape(m.group(0)), value.replace(AMP_SUBSTITUTE, "&"))


def _kept(href: str) -> bool:
    """Whether sanitize() keeps this href: a safe scheme, or none (a relative link)."""
    scheme = urlsplit(href).scheme.lower()
    return not scheme or scheme in SAFE_SCHEMES


def sanitize(html: str) -> str:
    return str(
        nh3.clean(
            html,
            tags=set(ALLOWED_TAGS),
            attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
            url_schemes=set(SAFE_SCHEMES),
            link_rel="noopener noreferrer",
        )
    )


# Conversions are pure functions of the text, and the same key points and entries are rendered
# issue after issue (each digest, each tier, each scheduled fire, each preview reload): kept
# here, each costs Python-Markdown once. Bounded, so a long-running process stays small.
_CACHE = 4096


@lru_cache(maxsize=_CACHE)
def to_html(text: str) -> str:
    """Block Markdown (paragraphs, lists) to sanitized HTML."""
    return sanitize(_renderer.html(text))


@lru_cache(maxsize=_CACHE)
def to_inline_html(text: str) -> str:
    """One line of Markdown (emphasis, code, links) to sanitized HTML, with no <p>."""
    # A blank line would start a second paragraph; one line of Markdown has none.
    rendered = _inline_renderer.html(re.sub(r"\n\s*\n", "\n", text))
    if rendered.startswith("<p>") and rendered.endswith("</p>"):
        rendered = rendered[len("<p>"):-len("</p>")]
    return sanitize(rendered)


Cite = Callable[[str], int]


def to_text(text: str, cite: Cite) -> list[str]:
    """Markdown to plain paragraphs; each link becomes `text [n]` where n = cite(url)."""
    root, stash = _parsed(text)
    return _Plain(cite, list(stash)).paragraphs(root)


@lru_cache(maxsize=_CACHE)
def _parsed(text: str) -> tuple[Element, tuple[str, ...]]:
    """The rendering parser's tree of `text` (only ever read, so it may be shared)."""
    root, stash = _renderer.tree(text)
    return root, tuple(stash)


def to_inline_text(text: str, cite: Cite) -> str:
    return " ".join(to_text(text, cite))


class _Plain:
    """One element tree to plaintext paragraphs, citing links as it meets them."""

    def __init__(self, cite: Cite, stash: list[str]) -> None:
        self.cite = cite
        self.stash = stash
        self.out: list[str] = []
        self.prefix = ""

    def paragraphs(self, root: Element) -> list[str]:
        self._block(root)
        return self.out

    def _block(self, element: Element) -> None:
        if element.tag == "li":
            self.prefix = "- "  # for the item's first paragraph, like its bullet
        if element.tag == "pre":
            self._emit("".join(element.itertext()).strip("\n"), code=True)
            return
        # Inline content runs until a block child; a block's tail (a tight list item's
        # text after a heading) starts the next run.
        run: list[str] = [self._text(element.text)]
        for child in element:
            if child.tag in _BLOCK_TAGS:
                self._emit("".join(run))
                self._block(child)
                run = []
            else:
                run.append(self._inline(child))
            run.append(self._text(child.tail, after_break=child.tag == "br"))
        self._emit("".join(run))

    def _emit(self, paragraph: str, code: bool = False) -> None:
        paragraph = _decode(paragraph) if code else paragraph.strip()
        if paragraph:
            self.out.append(self.prefix + paragraph)
            self.prefix = ""

    def _inline(self, element: Element) -> str:
        if element.tag == "br":
            return "\n"
        if element.tag == "img":
            return ""
        if element.tag == "code":
            return _decode(element.text or "")
        parts = [self._text(element.text)]
        for child in element:
            parts.append(self._inline(child))
            parts.append(self._text(child.tail, after_break=child.tag == "br"))
        if element.tag == "a" and (href := _decode(element.get("href", ""))) and _kept(href):
            parts.append(f" [{self.cite(href)}]")
        return "".join(parts)

    def _text(self, text: str | None, after_break: bool = False) -> str:
        if not text:
            return ""
        if after_break:
            text = text.lstrip()  # the serializer's newline after <br>, and the next line's indent
        text = HTML_PLACEHOLDER_RE.sub(lambda m: self.stash[int(m.group(1))], text)
        # A line break in the source is a space in the paragraph, as in the HTML.
        return re.sub(r"[ \t]*\n[ \t]*", " ", _decode(text))


def wrap(text: str, width: int = 72, indent: str = "", hanging: str | None = None) -> str:
    """Wrap to `width` columns; long words (URLs) are never broken."""
    lines: list[str] = []
    for part in text.split("\n"):
        lines.extend(
            textwrap.wrap(
                part,
                width=width,
                initial_indent=indent if not lines else (hanging if hanging is not None else indent),
                subsequent_indent=hanging if hanging is not None else indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
            or [""]
        )
    return "\n".join(lines)
