"""Import one article (HTML, Markdown or text; a file or a URL) as a draft brief and draft timeline entries."""

from __future__ import annotations

import json
import re
import unicodedata
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import yaml
from lxml import etree
from lxml import html as lxml_html
from markdown_it import MarkdownIt
from markdown_it.token import Token

from . import drafts
from .content import Author, FuzzyDate, KeyPoint, Source, load_library, parse_fuzzy_date
from .errors import NewsletterError, display_path

USER_AGENT = "threat-brief-newsletter/0.1 (newsletter import)"
MAX_BYTES = 10_000_000
TAGS = ("imported",)
NO_BIO = "Author of the imported article; add a short bio."
KEY_POINTS = (5, 8)  # fewest and most, when the article has enough sentences that cite something
TITLE_WORDS = 12


@dataclass(frozen=True)
class ImportResult:
    brief: Path  # the draft brief file written
    key_points: int
    entries: tuple[Path, ...]  # the timeline draft files written
    skipped: tuple[str, ...]  # dated events not written (e.g. already published or drafted), one line each


# --- the document: paragraphs with their links ----------------------------------------------


@dataclass(frozen=True)
class Link:
    text: str
    url: str  # absolute http(s), or as written when there was no address to resolve it against
    start: int  # where the link's text sits in the paragraph's or sentence's text
    end: int


@dataclass(frozen=True)
class Paragraph:
    text: str  # one line, single spaces
    links: tuple[Link, ...]
    heading: bool = False


@dataclass(frozen=True)
class Document:
    """A file as read: its paragraphs in order, and what its markup says about it."""

    paragraphs: tuple[Paragraph, ...]
    title: str | None = None
    authors: tuple[str, ...] = ()
    published: date | None = None  # from metadata (meta tags, JSON-LD, <time>, front matter)
    url: str | None = None  # its canonical address
    description: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class Sentence:
    text: str
    links: tuple[Link, ...]
    paragraph: int  # index of its paragraph in the article's body


@dataclass(frozen=True)
class Article:
    """The article in a document: its own prose, without bylines, bios and lists of other articles."""

    title: str
    dek: str
    authors: tuple[Author, ...]
    published: date | None
    url: str | None
    language: str | None
    body: tuple[Paragraph, ...]


@dataclass(frozen=True)
class Event:
    """A dated event the article mentions, with the links it attaches to it."""

    date: str  # timeline format: 2022-06-12, 2022-06, late 2022-06 or 2022
    title: str
    summary: str  # Markdown: the sentences that tell it, with their links
    links: tuple[Link, ...]
    sentence: int


# --- fetching ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    text: str
    kind: str  # "html" or "markdown" (Markdown and plain text are read alike)
    url: str | None  # where it was fetched from, for a URL


def fetch(source: str, base: Path, timeout: float) -> Fetched:
    """Read `source`: an http(s) URL, or a path relative to `base`."""
    if urlsplit(source).scheme in ("http", "https"):
        return _fetch_url(source, timeout)
    path = base / source
    if not path.is_file():
        raise NewsletterError(f"cannot import {display_path(path)}: no such file")
    data = path.read_bytes()
    suffix = path.suffix.lower()
    kind = "html" if suffix in (".html", ".htm", ".xhtml") else "markdown" if suffix in (".md", ".markdown", ".txt") else ""
    return Fetched(_text_of(data, None, display_path(path)), kind or _sniff(data, display_path(path)), None)


def _fetch_url(url: str, timeout: float) -> Fetched:
    request = urllib.request.Request(url, headers={
        "User-Agent": USER_AGENT, "Accept": "text/html, application/xhtml+xml, text/markdown, text/plain;q=0.9, */*;q=0.1",
    })
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(MAX_BYTES)
            kind = response.headers.get_content_type()
            charset = response.headers.get_content_charset()
            final = response.geturl()
    except urllib.error.HTTPError as exc:
        raise NewsletterError(f"cannot import {url}: the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            why = f"no answer in {timeout:g} s"
        else:
            why = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
        raise NewsletterError(f"cannot import {url}: unreachable ({why})") from None
    if kind in ("text/html", "application/xhtml+xml"):
        return Fetched(_text_of(data, charset, url), "html", final)
    if kind in ("text/markdown", "text/x-markdown", "text/plain"):
        return Fetched(_text_of(data, charset, url), _sniff(data, url), final)
    raise NewsletterError(f"cannot import {url}: not an article (HTML, Markdown or text) but {kind}")


def _text_of(data: bytes, charset: str | None, name: str) -> str:
    head = data[:2048]
    if b"\x00" in head or head.startswith(b"%PDF"):
        raise NewsletterError(f"cannot import {name}: not an article (HTML, Markdown or text) but binary data")
    declared = charset or _declared_charset(head)
    for encoding in (declared, "utf-8-sig"):
        if encoding:
            try:
                return data.decode(encoding)
            except (UnicodeDecodeError, LookupError):
                continue
    raise NewsletterError(f"cannot import {name}: not an article (HTML, Markdown or text) but undecodable bytes")


def _declared_charset(head: bytes) -> str | None:
    found = re.search(rb"<meta[^>]+charset=[\"']?([\w-]+)", head, re.I)
    return found.group(1).decode("ascii") if found else None


def _sniff(data: bytes, name: str) -> str:
    head = data[:4096].decode("utf-8", "replace").lstrip("\ufeff \t\r\n").lower()
    if head.startswith(("<!doctype html", "<html", "<?xml")) or re.search(r"<(body|article|p|div)[\s>]", head):
        return "html"
    if head.startswith(("{", "[")):
        try:
            json.loads(data)
        except ValueError:
            return "markdown"
        raise NewsletterError(f"cannot import {name}: not an article (HTML, Markdown or text) but JSON")
    return "markdown"


# --- reading HTML and Markdown into paragraphs --------------------------------------------------


class _Line:
    """One paragraph being assembled: whitespace collapsed, with the spans of its links."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.space = False
        self.spans: list[tuple[int, int, str]] = []

    def add(self, text: str) -> None:
        if not text:
            return
        if text[0].isspace():
            self.space = True
        for index, word in enumerate(text.split()):
            if index:
                self.space = True
            if self.space and self.length:
                self.parts.append(" ")
                self.length += 1
            self.space = False
            self.parts.append(word)
            self.length += len(word)
        if text[-1].isspace():
            self.space = True

    def open(self) -> int:
        return self.length + (1 if self.space and self.length else 0)

    def close(self, start: int, url: str | None) -> None:
        if url and self.length > start:
            self.spans.append((start, self.length, url))

    def paragraph(self, heading: bool = False) -> Paragraph | None:
        text = "".join(self.parts)
        if not text.strip():
            return None
        links = [Link(text[s:e], url, s, e) for s, e, url in self.spans]
        return _with_bare_urls(Paragraph(text, tuple(links), heading))


BARE_URL = re.compile(r"https?://[^\s<>\"'\])]+")


def _with_bare_urls(paragraph: Paragraph) -> Paragraph:
    """An address written out in the text is a link too."""
    found = list(paragraph.links)
    for match in BARE_URL.finditer(paragraph.text):
        url = match.group().rstrip(".,;:!?")
        start, end = match.start(), match.start() + len(url)
        if not any(link.start <= start < link.end for link in paragraph.links):
            found.append(Link(url, url, start, end))
    return Paragraph(paragraph.text, tuple(sorted(found, key=lambda link: link.start)), paragraph.heading)


def _resolve_url(href: str | None, base: str | None) -> str | None:
    """`href` resolved against `base` (kept as written when there is no base: still a link, though
    not one to cite); None for anchors and for schemes other than http(s)."""
    href = (href or "").strip()
    if not href or href.startswith("#"):
        return None
    scheme = urlsplit(href).scheme.lower()
    if scheme in ("http", "https"):
        return href
    if scheme:
        return None
    return urljoin(base, href) if base else href


def read_document(text: str, kind: str, url: str | None = None) -> Document:
    """Read HTML, or Markdown and plain text (scraped link forms included), into a Document."""
    return _read_html(text, url) if kind == "html" else _read_markdown(text, url)


SKIPPED_ELEMENTS = frozenset({
    "script", "style", "noscript", "nav", "aside", "footer", "form", "button", "svg", "iframe", "template",
    "select", "figure", "img", "video", "audio", "object", "head",
})
BLOCK_ELEMENTS = frozenset({
    "p", "div", "li", "ul", "ol", "blockquote", "pre", "table", "thead", "tbody", "tr", "td", "th", "section",
    "article", "main", "header", "dl", "dt", "dd", "hr", "address", "details", "summary", "center",
    "h1", "h2", "h3", "h4", "h5", "h6",
})
HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})


def _read_html(text: str, url: str | None) -> Document:
    try:
        root = lxml_html.document_fromstring(text.encode("utf-8"), parser=lxml_html.HTMLParser(encoding="utf-8"))
    except (etree.ParserError, ValueError):
        return Document(())
    meta = _html_meta(root)
    declared = root.find(".//base[@href]")
    canonical = _resolve_url(meta.get("canonical") or meta.get("og:url"), url)
    base = _resolve_url(declared.get("href") if declared is not None else None, url) or url or canonical
    articles = root.findall(".//article")
    main = max(articles, key=lambda a: len(_text(a))) if articles else next(
        (e for e in (root.find(".//main"), root.find(".//*[@role='main']"), root.find(".//body")) if e is not None), root
    )
    paragraphs = [p for p in _html_blocks(main, base) if p is not None]
    ld = _json_ld(root)
    h1 = root.find(".//h1")
    title = meta.get("og:title") or meta.get("twitter:title") or (
        _text(h1) if h1 is not None else None
    ) or _page_title(root)
    authors = _split_names(meta.get("author", "")) or tuple(ld.get("authors", ())) or tuple(
        _text(a) for a in root.iterfind(".//*[@rel='author']")
    )
    published = _iso_day(
        meta.get("article:published_time") or meta.get("datepublished") or meta.get("og:published_time")
        or meta.get("date") or meta.get("pubdate") or meta.get("publishdate") or meta.get("dc.date")
        or meta.get("dc.date.issued") or meta.get("dcterms.created") or str(ld.get("published", ""))
        or _first_time(main) or _first_time(root)
    )
    language = (root.get("lang") or "").strip() or None
    return Document(
        tuple(_joined(paragraphs)), title=title, authors=tuple(a for a in authors if a), published=published,
        url=canonical or url, description=meta.get("description") or meta.get("og:description"), language=language,
    )


def _html_meta(root: lxml_html.HtmlElement) -> dict[str, str]:
    found: dict[str, str] = {}
    for element in root.iter("meta", "link"):
        key = (element.get("property") or element.get("name") or element.get("itemprop") or "").strip().lower()
        value = element.get("content")
        if element.tag == "link" and "canonical" in (element.get("rel") or "").lower().split():
            key, value = "canonical", element.get("href")
        if key and value and key not in found:
            found[key] = " ".join(value.split())
    return found


def _text(element: etree._Element) -> str:
    return " ".join("".join(str(t) for t in element.itertext()).split())


def _iso_day(text: str | None) -> date | None:
    """The day of an ISO timestamp ("2022-07-26T08:00:00Z"), else None."""
    match = re.search(r"((?:19|20)\d\d)-([01]\d)-([0-3]\d)", text or "")
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3))) if match else None
    except ValueError:
        return None


def _page_title(root: lxml_html.HtmlElement) -> str | None:
    title = root.find(".//title")
    text = _text(title) if title is not None else ""
    return re.split(r"\s+[|\u2013\u2014-]\s+", text)[0] or None


def _first_time(root: lxml_html.HtmlElement) -> str | None:
    element = root.find(".//time[@datetime]")
    return element.get("datetime") if element is not None else None


def _json_ld(root: lxml_html.HtmlElement) -> dict[str, Any]:
    """datePublished and author names from JSON-LD, wherever they sit in its graph."""
    found: dict[str, Any] = {"authors": []}

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if "datePublished" in node and "published" not in found:
                found["published"] = str(node["datePublished"])
            if "author" in node and not found["authors"]:
                people = node["author"] if isinstance(node["author"], list) else [node["author"]]
                found["authors"] = [
                    str(p.get("name", "")) if isinstance(p, dict) else str(p) for p in people
                    if isinstance(p, (dict, str))
                ]
            for value in node.values():
                walk(value)

    for script in root.iterfind(".//script[@type='application/ld+json']"):
        try:
            walk(json.loads(script.text or ""))
        except ValueError:
            continue
    return found


def _html_blocks(element: lxml_html.HtmlElement, base: str | None) -> Iterator[Paragraph | None]:
    """The innermost blocks under `element`, each as one paragraph."""
    for child in element:
        if not isinstance(child.tag, str) or child.tag in SKIPPED_ELEMENTS:
            continue
        if child.tag in BLOCK_ELEMENTS and any(
            isinstance(d.tag, str) and d.tag in BLOCK_ELEMENTS for d in child.iterdescendants()
        ):
            yield from _html_blocks(child, base)
        elif child.tag in BLOCK_ELEMENTS:
            line = _Line()
            _html_inline(child, line, base)
            yield line.paragraph(heading=child.tag in HEADINGS)


def _html_inline(element: lxml_html.HtmlElement, line: _Line, base: str | None) -> None:
    line.add(element.text or "")
    for child in element:
        if isinstance(child.tag, str) and child.tag not in SKIPPED_ELEMENTS:
            if child.tag == "br":
                line.space = True
            elif child.tag == "a":
                start = line.open()
                _html_inline(child, line, base)
                line.close(start, _resolve_url(child.get("href"), base))
            else:
                _html_inline(child, line, base)
        line.add(child.tail or "")


FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
# Scraped copies write links as `[word \(url\)](url)`, `**word** (<url>)` or `**word (<url>)**`,
# and may cut a long address over several lines or `[fragment](#)` pieces.
SCRAPED_LINK = re.compile(r"\[([^\[\]\n]*?) ?\\\(([^\s\\\]]+)(\\\))?\]\(([^()\s]*)\)")
URL_FRAGMENT = re.compile(r"\s*\[([^\s\[\]]+?)(\\\))?\]\(#?\)")
URL_TAIL = re.compile(r"\s*([^\s()\[\]<>]+)\)")
BOLD_LINK = re.compile(r"\*\*([^*\n]+?) \(<(https?://[^>\s]+)>\)\*\*|\*\*([^*\n]+?)\*\* \(<(https?://[^>\s]+)>\)")
WORD_LINK = re.compile(r"([^\s()\[\]]+) \(<(https?://[^>\s]+)>\)")
_markdown = MarkdownIt("commonmark", {"html": True})


def _read_markdown(text: str, url: str | None) -> Document:
    front: dict[str, Any] = {}
    matter = FRONT_MATTER.match(text)
    if matter:
        try:
            loaded = yaml.safe_load(matter.group(1))
        except yaml.YAMLError:
            loaded = None
        if isinstance(loaded, dict):
            front, text = loaded, text[matter.end():]
    canonical = _resolve_url(str(front.get("url") or front.get("canonical") or front.get("source") or ""), url)
    base = url or canonical
    paragraphs: list[Paragraph | None] = []
    heading = False
    for token in _markdown.parse(repair_links(text)):
        if token.type.endswith("_open"):
            heading = token.type == "heading_open"
        elif token.type == "inline":
            line = _Line()
            _markdown_inline(token.children or [], line, base)
            paragraphs.append(line.paragraph(heading))
    authors = front.get("authors") or front.get("author") or []
    names = [str(a.get("name", "")) if isinstance(a, dict) else str(a) for a in (authors if isinstance(authors, list) else [authors])]
    published = front.get("date")
    if isinstance(published, datetime):
        published = published.date()
    return Document(
        tuple(_joined([p for p in paragraphs if p is not None])),
        title=str(front["title"]) if front.get("title") else None,
        authors=tuple(n for name in names for n in _split_names(name)),
        published=published if isinstance(published, date) else _iso_day(str(published or "")),
        url=canonical or url,
        description=str(front.get("description") or front.get("dek") or front.get("summary") or "") or None,
        language=str(front["language"]) if front.get("language") else None,
    )


def repair_links(text: str) -> str:
    """Scraped link forms as Markdown links, cut addresses joined again."""
    out: list[str] = []
    position = 0
    for match in SCRAPED_LINK.finditer(text):
        if match.start() < position:
            continue
        label, inner, closed, outer = match.groups()
        url, end = (inner if len(inner) >= len(outer) else outer), match.end()
        while not closed:
            piece = URL_FRAGMENT.match(text, end)
            if piece:
                url, end, closed = url + piece.group(1), piece.end(), piece.group(2)
                continue
            tail = URL_TAIL.match(text, end)
            if tail:
                url, end = url + tail.group(1), tail.end()
            break
        out.append(text[position:match.start()])
        out.append(f"[{label}]({url})")
        position = end
    out.append(text[position:])
    text = "".join(out)
    text = BOLD_LINK.sub(lambda m: f"[{m.group(1) or m.group(3)}]({m.group(2) or m.group(4)})", text)
    return WORD_LINK.sub(r"[\1](\2)", text)


def _markdown_inline(children: Sequence[Token], line: _Line, base: str | None) -> None:
    opened: list[tuple[int, str | None]] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            line.add(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            line.space = True
        elif child.type == "link_open":
            opened.append((line.open(), _resolve_url(str(child.attrs.get("href", "")), base)))
        elif child.type == "link_close" and opened:
            line.close(*opened.pop())


def _joined(paragraphs: Sequence[Paragraph]) -> list[Paragraph]:
    """A paragraph cut in two (mid-sentence, the next part starting in lowercase) made whole."""
    joined: list[Paragraph] = []
    for paragraph in paragraphs:
        last = joined[-1] if joined else None
        if (
            last is not None and not last.heading and not paragraph.heading
            and paragraph.text[:1].islower() and not BYLINE.match(paragraph.text)
            and (last.text.endswith((",", ";", "\u2014", "\u2013")) or len(_words(last.text)) >= 20 and last.text[-1:].isalpha())
        ):
            shift = len(last.text) + 1
            moved = tuple(Link(k.text, k.url, k.start + shift, k.end + shift) for k in paragraph.links)
            joined[-1] = Paragraph(f"{last.text} {paragraph.text}", last.links + moved)
        else:
            joined.append(paragraph)
    return joined


# --- the article in the document: title, byline, date line, body ----------------------------


END_SECTIONS = re.compile(
    r"^(?:(?:recommended|related|read (?:more|next|also)|more (?:on|from|about|in|coverage|stories)|see also|"
    r"further reading|you (?:may|might) also (?:like|enjoy)|most (?:read|popular|viewed|shared)|editor'?s picks|"
    r"subscribe|sign up)\b.*|popular|trending|latest( news)?|comments?|share( this( article)?)?|newsletters?)$", re.I,
)
SKIP_SECTIONS = re.compile(
    r"^(about the authors?|authors?|also available in|topics|tags|footnotes|notes|references|sources|"
    r"table of contents|contents|share|in this article)$", re.I,
)
BYLINE = re.compile(r"^(?:written\s+)?by\s+(.+)$", re.I)
# "ANKARA, Oct 4 (Reuters) - ": where and when the story was filed, not an event in it.
DATELINE = re.compile(
    r"^[A-Z][A-Z.'\u2019 -]{2,}(?:,\s*[A-Z][\w.]+)?(?:,\s*(?P<when>[^,()\u2013\u2014-]{3,20}?(?:,\s*\d{4})?))?"
    r"\s*(?:\([^()]{1,30}\)\s*)?[-\u2013\u2014]+\s+(?=\S)"
)
PROSE_END = re.compile(r"[.!?\"\u201d\u2019)\]]$")


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_][\w'\u2019-]*", text)


def _is_prose(paragraph: Paragraph) -> bool:
    words = len(_words(paragraph.text))
    linked = sum(link.end - link.start for link in paragraph.links)
    if linked >= 0.8 * len(paragraph.text.replace(" ", "")):
        return False
    return words >= 8 and (PROSE_END.search(paragraph.text) is not None or words >= 20)


def _is_heading(paragraph: Paragraph) -> bool:
    if paragraph.heading:
        return True
    linked = sum(link.end - link.start for link in paragraph.links)
    return not linked and len(_words(paragraph.text)) <= 12 and not PROSE_END.search(paragraph.text)


def _split_names(text: str) -> tuple[str, ...]:
    names = []
    for part in re.split(r"\s*(?:,|;|&|\band\b)\s*", text.strip()):
        part = part.strip(" .")
        if part and len(part.split()) <= 5 and part[0].isupper() and not re.search(r"\d|https?:", part):
            names.append(part)
    return tuple(names)


def article_of(document: Document) -> Article:
    """Separate the article's own prose from what surrounds it, and find its title, byline and date."""
    body: list[Paragraph] = []
    title = document.title
    names = list(document.authors)
    published = document.published
    section = "body"
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        if not body:
            byline = BYLINE.match(text)
            if byline and len(text.split()) <= 24 and not PROSE_END.search(text):
                names = names or list(_split_names(byline.group(1)))
                continue
            line_date = date_line(text)
            if line_date is not None:
                published = published or line_date
                continue
            if title is None and (paragraph.heading or not _is_prose(paragraph)) and len(_words(text)) >= 2:
                title = text
                continue
        if _is_heading(paragraph):
            if END_SECTIONS.match(text.rstrip(":")):
                break
            section = "skip" if SKIP_SECTIONS.match(text.rstrip(":")) else "body"
            continue
        if section == "body" and _is_prose(paragraph):
            paragraph, filed = _without_dateline(paragraph)
            published = published or filed
            body.append(Paragraph(_strip_ornaments(paragraph.text), paragraph.links))
    if not body:
        raise NewsletterError("nothing readable (no paragraphs of prose)")
    first = split_sentences(body[:1])[0].text
    dek = _first_sentence(document.description) if document.description else first
    authors = tuple(Author(_plain(n), _plain(_bio(n, document.paragraphs) or NO_BIO)) for n in dict.fromkeys(names))
    return Article(
        title=_plain(title or first), dek=_plain(dek), authors=authors, published=published,
        url=document.url, language=document.language, body=tuple(body),
    )


def _without_dateline(paragraph: Paragraph) -> tuple[Paragraph, date | None]:
    """The paragraph without its dateline, and the dateline's date when it gives a year."""
    match = DATELINE.match(paragraph.text)
    if not match:
        return paragraph, None
    shift = match.end()
    links = tuple(Link(k.text, k.url, k.start - shift, k.end - shift) for k in paragraph.links if k.start >= shift)
    return Paragraph(paragraph.text[shift:], links, paragraph.heading), date_line(match.group("when") or "")


def _strip_ornaments(text: str) -> str:
    """Without the end-of-article sign (such as the last paragraph's fleuron)."""
    while text and unicodedata.category(text[-1]).startswith("S"):
        text = text[:-1].rstrip()
    return text


def _bio(name: str, paragraphs: Iterable[Paragraph]) -> str | None:
    """The first sentence of a paragraph that starts "NAME is ..." (an about-the-author note)."""
    opening = re.compile(rf"^{re.escape(name)}(?:,| is | was | has | teaches | writes | works )")
    for paragraph in paragraphs:
        if opening.match(paragraph.text):
            bio = _first_sentence(paragraph.text)
            if len(bio.split()) <= 60:
                return bio
    return None


def _first_sentence(text: str) -> str:
    return split_sentences([Paragraph(" ".join(text.split()), ())])[0].text


def _plain(text: str) -> str:
    """One line of text that cannot be taken for HTML."""
    return re.sub(r"<(?=[/A-Za-z])", "< ", " ".join(text.split()))


# --- sentences ----------------------------------------------------------------------------------


SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s+[\"'\u201c\u2018(\[]?[A-Z0-9\u00c0-\u00de])")
ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "gen", "col", "lt", "sgt", "capt", "cmdr", "adm", "sen", "rep", "gov", "st",
    "jr", "sr", "inc", "ltd", "co", "corp", "vs", "no", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec", "fig", "approx", "est", "dept", "univ", "mt", "ft",
})


def split_sentences(paragraphs: Sequence[Paragraph]) -> list[Sentence]:
    """Every sentence of every paragraph, each with the links inside it."""
    found: list[Sentence] = []
    for index, paragraph in enumerate(paragraphs):
        start = 0
        for match in SENTENCE_END.finditer(paragraph.text):
            end = match.end()
            word = paragraph.text[:match.start() + 1].rsplit(" ", 1)[-1].rstrip(".").lower()
            if (
                word in ABBREVIATIONS or re.fullmatch(r"(?:[a-z]\.)*[a-z]", word)
                or any(k.start < end < k.end for k in paragraph.links)
            ):
                continue
            found.append(_sentence(paragraph, start, end, index))
            start = end
        if paragraph.text[start:].strip():
            found.append(_sentence(paragraph, start, len(paragraph.text), index))
    return found


def _sentence(paragraph: Paragraph, start: int, end: int, index: int) -> Sentence:
    text = paragraph.text[start:end]
    start += len(text) - len(text.lstrip())
    text = text.strip()
    links = tuple(
        Link(k.text, k.url, k.start - start, k.end - start) for k in paragraph.links
        if k.start >= start and k.end <= start + len(text)
    )
    return Sentence(text, links, index)


# --- dates --------------------------------------------------------------------------------------


MONTH_NAMES = (
    "January|February|March|April|May|June|July|August|September|October|November|December|"
    r"(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?"
)
MONTH = rf"(?P<month>{MONTH_NAMES})(?![a-z])"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
WEEKDAY = "|".join(WEEKDAYS)
YEAR = r"(?P<year>(?:1[89]|20)\d\d)(?!\d)"
NUMBER = r"(?P<n>(?i:a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)|\d{1,2})"
NUMBERS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())}
NUMBERS.update(a=1, an=1)
PART = r"(?:(?P<part>(?i:early|mid|late)[\s-]+|(?i:the\s+)?(?i:beginning|start|middle|end)\s+of\s+))?"
EXCLUDED_LEADS = frozenset({"since", "until", "till", "by", "before", "after", "from", "through", "between", "to", "than"})
YEAR_LEADS = frozenset({
    "in", "during", "of", "the", "its", "their", "his", "her", "our", "this", "that", "a", "an", "for", "around",
    "circa", "throughout", "year", "fiscal", "early", "late", "mid",
})
REPORTED = re.compile(r"\b(?:came|comes|happened|occurred|followed|took\s+place|was|were)\s+(?:only\s+|just\s+|exactly\s+)?$")

PATTERNS: dict[str, re.Pattern[str]] = {
    "day": re.compile(
        rf"(?<![\w-])(?:(?:{WEEKDAY}),?\s+)?{MONTH}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?(?![\d:])(?:,?\s+{YEAR})?"
    ),
    "day-first": re.compile(rf"(?<![\w,.$-])(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{MONTH}(?:,?\s+{YEAR})?"),
    "iso": re.compile(r"(?<![\w/-])(?P<year>(?:1[89]|20)\d\d)-(?P<mm>[01]\d)-(?P<dd>[0-3]\d)(?![\w/])"),
    "month-year": re.compile(rf"(?<![\w-]){PART}{MONTH},?\s+(?:of\s+)?{YEAR}"),
    "month": re.compile(rf"(?<![\w-])(?:(?P<rel>(?i:last|this|earlier\s+this|later\s+this))\s+)?{PART}{MONTH}(?![\s,]+\d)"),
    "year-part": re.compile(
        r"(?<![\w-])(?P<part>(?i:early|mid|late)[\s-]+|(?i:the\s+)?(?i:beginning|start|middle|end|first\s+half|"
        r"second\s+half|spring|summer|autumn|fall|winter)\s+of\s+|(?i:spring|summer|autumn|fall|winter)\s+)" + YEAR
    ),
    "year": re.compile(r"(?<![\w$\u20ac\u00a3.,/#-])" + YEAR + r"(?![\w%]|[.,]\d|[-\u2013/]\d|\s*(?:%|percent\b))"),
    "recent": re.compile(r"(?<![\w-])(?P<rel>(?i:last|this|earlier\s+this|later\s+this))\s+(?P<unit>week|month|year)\b"),
    "yesterday": re.compile(r"(?<![\w-])(?i:yesterday)\b"),
    "weekday": re.compile(rf"(?<![\w-])(?P<rel>(?i:on|last))\s+(?P<weekday>{WEEKDAY})\b(?![\s,]+(?:{MONTH_NAMES}|\d))"),
    "ago": re.compile(rf"(?<![\w-]){NUMBER}\s+(?P<unit>day|week|month|year)s?\s+ago\b"),
    "after": re.compile(rf"(?<![\w-]){NUMBER}\s+(?P<unit>day|week|month|year)s?\s+(?P<dir>later|after|earlier|before)\b"),
    "next": re.compile(r"(?<![\w-])(?i:the)\s+(?P<dir>next|following|previous|preceding)\s+(?P<unit>day|week|month|year)\b"),
    "day-after": re.compile(r"(?<![\w-])(?i:the)\s+(?P<unit>day)\s+(?P<dir>after|before)\b"),
    "same": re.compile(
        r"(?<![\w-])(?:(?i:later|earlier)\s+that|(?i:the)\s+same|(?i:that\s+same))\s+(?P<unit>day|week|month|year)\b"
    ),
}
RELATIVE_TO_EVENT = frozenset({"after", "next", "day-after", "same"})


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    when: FuzzyDate
    reported: bool  # "X came a day after Y": the event is Y, told after the date phrase


def _month_number(name: str) -> int:
    return ("jan feb mar apr may jun jul aug sep oct nov dec".split()).index(name[:3].lower()) + 1


def _qualifier(part: str | None) -> str:
    word = (part or "").lower().split()
    key = next((w for w in word if w not in ("the", "of")), "").strip("-")
    return {"early": "early", "beginning": "early", "start": "early", "mid": "mid", "middle": "mid",
            "late": "late", "end": "late"}.get(key, "")


def _month(year: int, month: int, qualifier: str = "") -> FuzzyDate:
    while month < 1:
        year, month = year - 1, month + 12
    while month > 12:
        year, month = year + 1, month - 12
    return parse_fuzzy_date(f"{qualifier} {year:04d}-{month:02d}".strip())


def _day(day: date) -> FuzzyDate:
    return parse_fuzzy_date(day.isoformat())


def _year(year: int) -> FuzzyDate:
    return parse_fuzzy_date(f"{year:04d}")


def _previous_word(text: str, start: int) -> str:
    found = re.search(r"([^\W\d_]+(?:['\u2019]s)?)[^\w]*$", text[:start])
    return found.group(1).lower() if found else ""


def date_line(text: str) -> date | None:
    """The date of a line that is only a date ("Jul 26, 2022", "Published 2022-07-26"), else None."""
    rest = re.sub(r"^(?i:published|updated|posted|date|on)[:\s]+", "", text.strip())
    for kind in ("day", "day-first", "iso"):
        match = PATTERNS[kind].match(rest)
        if match and match.groupdict().get("year") and len(rest[match.end():].split()) <= 3:
            when = _written_date(match, kind)
            return when.start if when else None
    return None


def _written_date(match: re.Match[str], kind: str, published: date | None = None) -> FuzzyDate | None:
    """A date written out (a day, a month, a year); a missing year is the latest one not after `published`."""
    groups = match.groupdict()
    year = int(groups["year"]) if groups.get("year") else None
    try:
        if kind == "iso":
            return _day(date(int(groups["year"]), int(groups["mm"]), int(groups["dd"])))
        if kind in ("day", "day-first"):
            month, day = _month_number(groups["month"]), int(groups["day"])
            if year is None:
                if published is None:
                    return None
                year = published.year if date(published.year, month, day) <= published else published.year - 1
            return _day(date(year, month, day))
    except ValueError:
        return None
    if kind == "month-year" and year is not None:
        return _month(year, _month_number(groups["month"]), _qualifier(groups.get("part")))
    if kind in ("year", "year-part") and year is not None:
        return _year(year)
    return None


def find_mentions(text: str, published: date, anchor: FuzzyDate | None = None) -> list[Mention]:
    """The dates one sentence mentions, in order, resolved against the publication date and, for
    "two days later" and the like, against the date of the event told before (`anchor`)."""
    candidates = sorted(
        ((m.start(), -m.end(), kind, m) for kind, pattern in PATTERNS.items() for m in pattern.finditer(text)),
        key=lambda c: (c[0], c[1]),
    )
    mentions: list[Mention] = []
    taken = -1
    for start, _, kind, match in candidates:
        if start < taken:
            continue
        mention = _resolve(text, kind, match, published, anchor)
        if mention is None:
            continue
        taken = match.end()
        mentions.append(mention)
        anchor = mention.when
    return mentions


def _resolve(
    text: str, kind: str, match: re.Match[str], published: date, anchor: FuzzyDate | None,
) -> Mention | None:
    groups = match.groupdict()
    lead = _previous_word(text, match.start())
    reported = False
    when: FuzzyDate | None
    if kind in ("day", "day-first", "iso", "month-year", "year-part", "year", "month"):
        if lead in EXCLUDED_LEADS:
            return None
        if kind == "year" and not (lead in YEAR_LEADS or lead.endswith(("'s", "\u2019s"))):
            return None
        if kind == "month":
            when = _month_alone(groups, lead, published)
        else:
            when = _written_date(match, kind, published)
        explicit = bool(groups.get("year"))
        if when is None or (when.start > published and (not explicit or when.precision == "year")):
            return None
    elif kind in RELATIVE_TO_EVENT:
        if anchor is None:
            return None
        amount = 0 if kind == "same" else _count(groups.get("n"))
        direction = (groups.get("dir") or "").lower()
        sign = -1 if direction in ("earlier", "before", "previous", "preceding") else 1
        if direction in ("after", "before") and REPORTED.search(text[:match.start()]):
            sign, reported = -sign, True
        when = _shift(anchor, sign * amount, groups["unit"])
        if when.start > published:
            return None
    else:
        when = _from_publication(kind, groups, published)
        if when is None:
            return None
    return Mention(match.start(), match.end(), when, reported)


def _month_alone(groups: dict[str, str | None], lead: str, published: date) -> FuzzyDate | None:
    """"in May", "in late May", "last May": the latest such month (before this one, for "last")."""
    relative = (groups.get("rel") or "").lower()
    if not (relative or groups.get("part") or lead in ("in", "during")):
        return None
    month = _month_number(groups["month"] or "")
    if relative == "last":
        year = published.year if month < published.month else published.year - 1
    elif relative:
        year = published.year
    else:
        year = published.year if month <= published.month else published.year - 1
    return _month(year, month, _qualifier(groups.get("part")))


def _from_publication(kind: str, groups: dict[str, str | None], published: date) -> FuzzyDate | None:
    """"last month", "this year", "yesterday", "on Monday", "three weeks ago"."""
    unit = groups.get("unit") or ""
    if kind == "recent":
        back = 1 if (groups.get("rel") or "").lower() == "last" else 0
        if unit == "year":
            return _year(published.year - back)
        if unit == "month":
            return _month(published.year, published.month - back)
        week = published - timedelta(days=7 * back)
        return _month(week.year, week.month)
    if kind == "yesterday":
        return _day(published - timedelta(days=1))
    if kind == "weekday":
        wanted = WEEKDAYS.index(groups["weekday"] or "")
        back = (published.weekday() - wanted) % 7
        if back == 0 and (groups.get("rel") or "").lower() == "last":
            back = 7
        return _day(published - timedelta(days=back))
    if kind == "ago":
        amount = _count(groups.get("n"))
        if unit == "day":
            return _day(published - timedelta(days=amount))
        if unit == "week":
            moment = published - timedelta(days=7 * amount)
            return _month(moment.year, moment.month)
        if unit == "month":
            return _month(published.year, published.month - amount)
        return _year(published.year - amount)
    return None


def _count(number: str | None) -> int:
    word = (number or "1").lower()
    return NUMBERS[word] if word in NUMBERS else int(word)


def _shift(anchor: FuzzyDate, amount: int, unit: str) -> FuzzyDate:
    """The anchor moved by `amount` units ("later that week" is 0 weeks), no more precise than the
    anchor itself nor than the unit."""
    start = anchor.start
    if unit == "day" or (unit == "week" and amount):
        if anchor.precision != "day":
            return anchor
        return _day(start + timedelta(days=amount * (7 if unit == "week" else 1)))
    if unit in ("week", "month"):
        return anchor if anchor.precision == "year" else _month(start.year, start.month + amount)
    if amount == 0 or anchor.precision == "year":
        return _year(start.year + amount)
    return _month(start.year + amount, start.month)


# --- events: what each date belongs to, and the links that support it ------------------------


CONTINUES = re.compile(
    r"^(?:This|These|That|Those|Such|It|Its|They|Their|He|His|She|Her|During|Afterwards|Both|"
    r"For\s+(?:his|her|its|their)\s+part|In\s+response|The\s+two)\b"
)
REFERS_BACK = re.compile(r"\b(?:this|these)\s+(?!(?:year|month|week)\b)[a-z]")
NAME = re.compile(r"\b([A-Z][a-z\u00e0-\u00ff]{2,})(?:['\u2019]s)?\b")


def extract_events(sentences: Sequence[Sentence], published: date) -> list[Event]:
    """Every dated event the sentences mention, in the order they are told."""
    names = _names(sentences)
    counts = Counter(name for found in names for name in found)
    rare = {name for name, count in counts.items() if count <= 2}
    events: list[Event] = []
    anchor: FuzzyDate | None = None
    for index, sentence in enumerate(sentences):
        mentions = find_mentions(sentence.text, published, anchor)
        if not mentions:
            continue
        anchor = mentions[-1].when
        following = _continuation(sentences, index, names, rare & names[index], published, anchor)
        by_date: dict[str, list[Mention]] = {}
        for mention in mentions:
            by_date.setdefault(mention.when.iso, []).append(mention)
        for when, same in by_date.items():
            own = _links_near(sentence, same, mentions)
            extra = tuple(k for s in following for k in s.links) if same[-1] is mentions[-1] else ()
            events.append(Event(
                date=when, title=event_title(sentence.text, same[0]),
                summary=" ".join(markdown_of(s) for s in (sentence, *following)),
                links=_unique(own + extra), sentence=index,
            ))
    return events


def _names(sentences: Sequence[Sentence]) -> list[set[str]]:
    """The proper names in each sentence: capitalized words, counting a sentence's first word only
    when it is capitalized elsewhere too, in mid-sentence."""
    found = [[(m.start(), m.group(1)) for m in NAME.finditer(s.text)] for s in sentences]
    proper = {name for names in found for start, name in names if start > 0}
    return [{name for start, name in names if start > 0 or name in proper} for names in found]


def _continuation(
    sentences: Sequence[Sentence], index: int, names: Sequence[set[str]], rare: set[str], published: date,
    anchor: FuzzyDate,
) -> list[Sentence]:
    """The sentences right after an event's that go on telling it (and carry no date of their own):
    "During the visit, ...", "This drone presence ...", or ones naming a rare name of the event's.
    The telling may go on into the next paragraph, from its first sentence."""
    following: list[Sentence] = []
    for position in range(index + 1, len(sentences)):
        sentence = sentences[position]
        if find_mentions(sentence.text, published, anchor):
            break
        if not (CONTINUES.match(sentence.text) or REFERS_BACK.search(sentence.text) or rare & names[position]):
            break
        following.append(sentence)
    return following


CLAUSE_BREAK = re.compile(r"[;:]\s|,\s+(?=(?:although|though|while|whereas|but|and|yet)\b)")


def _links_near(sentence: Sentence, mine: Sequence[Mention], everyone: Sequence[Mention]) -> tuple[Link, ...]:
    """A sentence's links belong to its date. With several dates, a link belongs to the date in its
    clause ("In May, X agreed [link], although in 2021 Y [link]"), else to the nearest one."""
    if len(mine) == len(everyone):
        return sentence.links
    breaks = [0, *(m.end() for m in CLAUSE_BREAK.finditer(sentence.text)), len(sentence.text) + 1]

    def clause(position: int) -> int:
        return next(i for i in range(len(breaks) - 1) if position < breaks[i + 1])

    def distance(link: Link, mention: Mention) -> tuple[int, int]:
        return (clause(link.start) != clause(mention.start), max(mention.start - link.end, link.start - mention.end, 0))

    return tuple(
        link for link in sentence.links
        if min(distance(link, m) for m in mine) <= min(distance(link, m) for m in everyone)
    )


def _unique(links: Iterable[Link]) -> tuple[Link, ...]:
    seen: dict[str, Link] = {}
    for link in links:
        if urlsplit(link.url).scheme in ("http", "https"):
            seen.setdefault(drafts.normalize_url(link.url), link)
    return tuple(seen.values())


LEADING_WORDS = re.compile(
    r"^(?:(?:and|but|while|when|as|which|who|where|that|then|so|moreover|furthermore|likewise|meanwhile|"
    r"following|after|soon|also|however|nevertheless|indeed|on|in|at|during|of)\b[\s,]*)+", re.I,
)
TRAILING_WORDS = re.compile(
    r"(?:[\s,;:\u2014\u2013-]+(?:and|or|but|the|a|an|of|to|in|on|at|by|for|with|from|that|which|who|during|"
    r"its|their|his|her|as|than|into|over|after|before))+$", re.I,
)
ASIDES = re.compile(r"\s*\([^()]*\)|\s*\u2014[^\u2014]*\u2014\s*|\s*\[[^\]]*\]")


def event_title(text: str, mention: Mention) -> str:
    """A short plain title: the clause that holds the date, without the date; what follows the date
    when the date opens its clause; for "X came a day after Y", Y."""
    before = re.sub(r"\b(?:on|in|during|of|at)\s*$", "", text[:mention.start], flags=re.I)
    after = text[mention.end:]
    cut = max(before.rfind(", "), before.rfind("; "), before.rfind(": "))
    head = before[cut + 1:] if cut >= 0 else before
    tail = re.split(r"[;:]\s|,\s+(?:and|but|while|as|which|who)\b", after)[0]
    relative = re.match(r"\s*(?:which|who)\s+", head)
    antecedent = re.search(r"\b(?:the|a|an|its|their)\s+(?:\S+\s+){0,3}\S+$", before[:cut]) if cut >= 0 else None
    if mention.reported or len(_words(LEADING_WORDS.sub("", head.strip(" ,")))) < 3:
        candidate = after
    elif relative and antecedent:
        candidate = f"{antecedent.group()} {head[relative.end():]} {tail}"
    else:
        candidate = f"{head} {tail}"
    phrase = " ".join(ASIDES.sub(" ", candidate).replace("\u2014", " ").split())
    phrase = LEADING_WORDS.sub("", phrase.strip(" ,;:.")).strip(" ,;:")
    words = re.split(r"[,;:]\s", phrase)[0].split()
    if len(words) < 5:
        words = phrase.replace(", ", " ").split()
    if len(words) > TITLE_WORDS + 4:
        words = words[:TITLE_WORDS]
    title = TRAILING_WORDS.sub("", " ".join(words)).strip(" ,;:.\u2014-")
    return _plain(title[:1].upper() + title[1:]) if title else "Dated event"


MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]<>#|])")


def markdown_of(sentence: Sentence) -> str:
    """The sentence as Markdown: its http(s) links kept, everything else literal."""
    out: list[str] = []
    position = 0
    for link in sentence.links:
        if link.start < position:
            continue
        out.append(_escaped(sentence.text[position:link.start]))
        label = _escaped(sentence.text[link.start:link.end])
        if urlsplit(link.url).scheme in ("http", "https"):
            out.append(_markdown_link(label, link.url))
        else:
            out.append(label)
        position = link.end
    out.append(_escaped(sentence.text[position:]))
    text = "".join(out)
    return re.sub(r"^([-+]|\d+[.)])(?=\s)", r"\\\1", text)


def _escaped(text: str) -> str:
    return MARKDOWN_SPECIALS.sub(r"\\\1", text)


def _markdown_link(label: str, url: str) -> str:
    return f"[{label}]({url.replace(' ', '%20').replace('(', '%28').replace(')', '%29')})"


# --- key points -----------------------------------------------------------------------------------


STOPWORDS = frozenset(
    "a an the and or but if of to in on at by for with from as is are was were be been being has have had do does "
    "did this that these those it its they them their he his she her we our you your i not no so than then there "
    "which who whom what when where while also more most such into over under about after before between both "
    "each other some any all only very can could may might will would should must shall one two".split()
)
HEDGES = re.compile(r"\b(?:might|may|could|perhaps|possibly|seems?|apparently|likely)\b", re.I)
DANGLING = re.compile(r"^(?:This|These|That|Those|It|They|He|She|Such|Its|Their|His|Her)\b")
CONNECTIVE = re.compile(
    r"^(?:Moreover|Furthermore|Nevertheless|However|Likewise|Meanwhile|In other words|Indeed|Additionally|Also|"
    r"Still|Yet|Thus|Therefore|Consequently|Ultimately|Finally|Similarly|In addition|For example|For instance|"
    r"For (?:his|her|its|their) part),\s+"
)


def choose_key_points(sentences: Sequence[Sentence], cite: str | None = None, skip: str = "") -> tuple[KeyPoint, ...]:
    """The article's strongest claims, in its own words: sentences that cite a source (or any, when
    the article itself can be cited), scored for how central, specific and well sourced they are."""
    if not sentences:
        return ()
    frequency = Counter(w for s in sentences for w in set(_content_words(s.text)))
    top = max(frequency.values(), default=1)
    last = sentences[-1].paragraph
    scored: list[tuple[float, int]] = []
    for index, sentence in enumerate(sentences):
        words = sentence.text.split()
        links = _unique(sentence.links)
        if (not links and not cite) or not 10 <= len(words) <= 60 or sentence.text == skip or sentence.text.endswith("?"):
            continue
        content = _content_words(sentence.text)
        score = 2 * sum(frequency[w] for w in content) / (top * (len(content) + 4))
        score += 0.4 * min(len(links), 3)
        score += 0.3 * min(len(re.findall(r"\d[\d,.]*", sentence.text)), 2)
        score += 0.1 * min(len(NAME.findall(sentence.text)), 4)
        score -= 0.6 if HEDGES.search(sentence.text) else 0
        score -= 0.8 if DANGLING.match(sentence.text) else 0
        score -= 0.4 if len(re.findall(r"[\"\u201c\u201d]", sentence.text)) >= 2 else 0
        score -= 0.5 if len(words) > 45 else 0
        score += 0.5 if sentence.paragraph == 0 else 0.2 if sentence.paragraph == last else 0
        scored.append((score, index))
    fewest, most = KEY_POINTS
    wanted = max(fewest, min(most, round(len(sentences) / 8)))
    chosen: list[int] = []
    per_paragraph: Counter[int] = Counter()
    for _, index in sorted(scored, key=lambda s: (-s[0], s[1])):
        sentence = sentences[index]
        vocabulary = set(_content_words(sentence.text))
        if per_paragraph[sentence.paragraph] >= 1 or any(
            len(vocabulary & set(_content_words(sentences[i].text))) > 0.5 * len(vocabulary) for i in chosen
        ):
            continue
        chosen.append(index)
        per_paragraph[sentence.paragraph] += 1
        if len(chosen) == wanted:
            break
    points = []
    for index in sorted(chosen):
        sentence = sentences[index]
        text = CONNECTIVE.sub("", sentence.text)
        text = text[:1].upper() + text[1:]
        sources = tuple(source_of(k) for k in _unique(sentence.links)) or (_article_source(cite or ""),)
        points.append(KeyPoint(_escaped(text), sources))
    return tuple(points)


def _content_words(text: str) -> list[str]:
    return [w for w in (w.lower().strip("'\u2019") for w in _words(text)) if len(w) > 2 and w not in STOPWORDS]


# --- sources --------------------------------------------------------------------------------------


PUBLISHERS = {
    "reuters.com": "Reuters", "apnews.com": "Associated Press", "bbc.com": "BBC", "bbc.co.uk": "BBC",
    "nytimes.com": "The New York Times", "washingtonpost.com": "The Washington Post",
    "theguardian.com": "The Guardian", "ft.com": "Financial Times", "wsj.com": "The Wall Street Journal",
    "bloomberg.com": "Bloomberg", "economist.com": "The Economist", "aljazeera.com": "Al Jazeera",
    "alarabiya.net": "Al Arabiya", "al-monitor.com": "Al-Monitor", "almayadeen.net": "Al Mayadeen",
    "haaretz.com": "Haaretz", "timesofisrael.com": "The Times of Israel", "jpost.com": "The Jerusalem Post",
    "ynetnews.com": "Ynet", "dailysabah.com": "Daily Sabah", "hurriyetdailynews.com": "Hürriyet Daily News",
    "aa.com.tr": "Anadolu Agency", "middleeasteye.net": "Middle East Eye",
    "middleeastmonitor.com": "Middle East Monitor", "foreignpolicy.com": "Foreign Policy",
    "foreignaffairs.com": "Foreign Affairs", "thehill.com": "The Hill", "tehrantimes.com": "Tehran Times",
    "presstv.ir": "Press TV", "irna.ir": "IRNA", "kurdistan24.net": "Kurdistan24", "rudaw.net": "Rudaw",
    "thenationalnews.com": "The National", "arabnews.com": "Arab News", "mei.edu": "Middle East Institute",
    "washingtoninstitute.org": "The Washington Institute", "heritage.org": "The Heritage Foundation",
    "brookings.edu": "Brookings", "csis.org": "CSIS", "defense.gov": "U.S. Department of Defense",
    "state.gov": "U.S. Department of State", "un.org": "United Nations", "cespi.it": "CeSPI",
}


def source_of(link: Link) -> Source:
    """A link as a source: its publisher from the host, its title from the address's words or the link text."""
    parts = urlsplit(link.url)
    host = (parts.hostname or "").lower().removeprefix("www.")
    publisher = next(
        (PUBLISHERS[h] for h in _parent_domains(host) if h in PUBLISHERS), host or "Unknown publisher"
    )
    text = _plain(link.text)
    words_in_path = _readable_path(parts.path)
    if len(text.split()) >= 4 or not words_in_path:
        title = text if text and text != link.url else words_in_path or host
    else:
        title = words_in_path
    return Source(_plain(title[:1].upper() + title[1:]) or host, publisher, link.url)


def _article_source(url: str) -> Source:
    return source_of(Link("", url, 0, 0))


def _parent_domains(host: str) -> list[str]:
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


def _readable_path(path: str) -> str:
    """The last segment of a path that reads as words ("israel-urges-its-citizens" -> "israel urges its citizens")."""
    for segment in reversed([unquote(s) for s in path.split("/") if s]):
        segment = re.sub(r"\.(?:html?|php|aspx?|jsp|pdf|cms)$", "", segment, flags=re.I)
        tokens = [t for t in re.split(r"[-_+\s]+", segment) if t]
        wordy = [t for t in tokens if re.fullmatch(r"[^\W\d_]+['\u2019]?[^\W\d_]*", t) and len(t) > 1]
        ids = [t for t in tokens if re.fullmatch(r"[0-9a-f]*\d[0-9a-f]*", t, re.I)]
        if len(wordy) >= 3 and len(ids) * 2 < len(tokens):
            return " ".join(t for t in tokens if t not in ids or t.isdigit() and len(t) <= 4).strip(": ")
    return ""


# --- writing the drafts ----------------------------------------------------------------------------


def brief_text(article: Article, key_points: Sequence[KeyPoint], published: date, origin: str) -> str:
    """A complete brief file: YAML front matter, then a Markdown body for the analyst to write
    (`origin` says, in Markdown, where the article came from)."""
    front: dict[str, Any] = {
        "title": article.title,
        "dek": article.dek,
        "date": published.isoformat(),
        "authors": [{"name": a.name, "bio": a.bio} for a in article.authors] or [
            {"name": "Unknown author", "bio": "The article names no author; add the author's name and a short bio."}
        ],
    }
    if article.language and re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*", article.language):
        front["language"] = article.language
    front["tags"] = list(TAGS)
    if article.url:
        front["url"] = article.url
    front["key_points"] = [
        {"text": p.text, "sources": [{"title": s.title, "publisher": s.publisher, "url": s.url} for s in p.sources]}
        for p in key_points
    ]
    body = (
        f"Imported from {origin}. The key points above are the article's own sentences, chosen as its "
        "strongest claims: rewrite them in our words and write the brief here before you approve it."
    )
    dumped = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=100, default_flow_style=False)
    return f"---\n{dumped}---\n{body}\n"


def slug(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", re.sub(r"['\u2019]", "", title)).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", " ", ascii_title.lower()).split()
    text = ""
    for word in words:
        if len(text) + len(word) + 1 > 60:
            break
        text = f"{text}-{word}" if text else word
    return text or "imported-article"


def entry_of(event: Event, sources: Sequence[Source]) -> dict[str, Any]:
    return {
        "date": event.date, "title": event.title, "summary": event.summary, "actors": [],
        "tags": list(TAGS), "sources": [{"title": s.title, "publisher": s.publisher, "url": s.url} for s in sources],
    }


def import_article(source: str, content: Path, base: Path, today: date, timeout: float = 20.0) -> ImportResult:
    """Read one article and write a draft brief and a draft timeline entry per new dated event."""
    library = load_library(content)
    fetched = fetch(source, base, timeout)
    name = source if fetched.url else display_path(base / source)
    try:
        article = article_of(read_document(fetched.text, fetched.kind, fetched.url))
    except NewsletterError as exc:
        raise NewsletterError(f"cannot import {name}: {exc}") from None
    published = article.published or today
    sentences = split_sentences(article.body)
    cite = article.url
    key_points = choose_key_points(sentences, cite, skip=article.dek)
    if not key_points:
        raise NewsletterError(
            f"cannot import {name}: it links to no source and has no address of its own to cite; import it from its URL"
        )
    known = drafts.known_urls(content, library.timeline)
    written: list[Path] = []
    skipped: list[str] = []
    for event, sources in _merged(extract_events(sentences, published), cite):
        urls = {drafts.normalize_url(s.url) for s in sources}
        if not sources:
            skipped.append(f"{event.date} {event.title}: no link supports it (import the article from its URL to cite it)")
        elif urls <= known:
            skipped.append(f"{event.date} {event.title}: already published or drafted ({sources[0].url})")
        else:
            written.append(drafts.write_entry(content, entry_of(event, sources), origin=f"import {source}").path)
    origin = _markdown_link(_escaped(fetched.url), fetched.url) if fetched.url else _escaped(name)
    text = brief_text(article, key_points, published, origin)
    draft_name = f"{published.isoformat()}-{slug(article.title)}"
    same = content / drafts.BRIEF_DRAFTS / f"{draft_name}.md"
    if same.is_file() and same.read_text(encoding="utf-8") == text:
        brief = same  # imported before and not edited since: one draft is enough
    else:
        brief = drafts.write_brief(content, draft_name, text)
    return ImportResult(brief, len(key_points), tuple(written), tuple(skipped))


def _merged(events: Sequence[Event], cite: str | None) -> list[tuple[Event, tuple[Source, ...]]]:
    """Each event with its sources (the article itself when it has no link of its own); two events
    with the same date and the same sources are one."""
    merged: dict[tuple[str, frozenset[str]], tuple[Event, tuple[Source, ...]]] = {}
    alone: list[tuple[Event, tuple[Source, ...]]] = []
    for event in events:
        sources = tuple(source_of(k) for k in event.links) or ((_article_source(cite),) if cite else ())
        if not sources:
            alone.append((event, ()))
            continue
        merged.setdefault((event.date, frozenset(drafts.normalize_url(s.url) for s in sources)), (event, sources))
    return sorted([*merged.values(), *alone], key=lambda pair: pair[0].sentence)

