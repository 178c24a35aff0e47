"""Markdown in content: the checks it must pass, sanitized HTML, and plaintext with numbered links."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
ALLOWED_TAGS = frozenset(
    {"a", "p", "em", "strong", "code", "br", "ul", "ol", "li", "blockquote", "pre", "hr", "h3", "h4"}
)
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}

# Rendering never lets raw HTML through (it is escaped), and nh3 cleans the result as a
# second wall. The checking parser is the opposite: it recognises raw HTML and every
# link, whatever its scheme, so that `newsletter check` can name what it found.
_renderer = MarkdownIt("commonmark", {"html": False})
_checker = MarkdownIt("commonmark", {"html": True})
_checker.validateLink = lambda url: True  # type: ignore[method-assign]


@dataclass(frozen=True)
class MarkdownProblem:
    """Something content Markdown must not contain, with text to find its line by."""

    snippet: str
    message: str


def check(text: str) -> list[MarkdownProblem]:
    """Raw HTML, images and links that are not http(s) or mailto are refused."""
    found: list[MarkdownProblem] = []
    for token in _walk(_checker.parse(text)):
        if token.type in ("html_block", "html_inline"):
            tag = token.content.strip().splitlines()[0][:40]
            if tag.startswith("</"):
                continue  # its opening tag is reported already
            found.append(MarkdownProblem(tag, f"raw HTML is not allowed in Markdown: {tag}"))
        elif token.type == "image":
            src = str(token.attrs.get("src", ""))
            found.append(MarkdownProblem(src, f"images are not supported in digests: {src}"))
        elif token.type == "link_open":
            href = str(token.attrs.get("href", ""))
            if urlsplit(href).scheme.lower() not in SAFE_SCHEMES:
                found.append(
                    MarkdownProblem(href, f"link must be an http(s) or mailto address: {href}")
                )
    return found


def _walk(tokens: Sequence[Token]) -> list[Token]:
    flat: list[Token] = []
    for token in tokens:
        flat.append(token)
        if token.children:
            flat.extend(_walk(token.children))
    return flat


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


def to_html(text: str) -> str:
    """Block Markdown (paragraphs, lists) to sanitized HTML."""
    return sanitize(_renderer.render(text))


def to_inline_html(text: str) -> str:
    """One line of Markdown (emphasis, code, links) to sanitized HTML, with no <p>."""
    return sanitize(_renderer.renderInline(text))


Cite = Callable[[str], int]


def to_text(text: str, cite: Cite) -> list[str]:
    """Markdown to plain paragraphs; each link becomes `text [n]` where n = cite(url)."""
    paragraphs: list[str] = []
    prefix = ""
    for token in _renderer.parse(text):
        if token.type == "list_item_open":
            prefix = "- "
        elif token.type == "inline":
            paragraphs.append(prefix + _inline_text(token.children or [], cite))
            prefix = ""
    return paragraphs


def to_inline_text(text: str, cite: Cite) -> str:
    return " ".join(to_text(text, cite))


def _inline_text(children: Sequence[Token], cite: Cite) -> str:
    out: list[str] = []
    href = ""
    for child in children:
        if child.type in ("text", "code_inline"):
            out.append(child.content)
        elif child.type == "softbreak":
            out.append(" ")
        elif child.type == "hardbreak":
            out.append("\n")
        elif child.type == "link_open":
            href = str(child.attrs.get("href", ""))
        elif child.type == "link_close" and href:
            out.append(f" [{cite(href)}]")
            href = ""
    return "".join(out)


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
