"""Read one article (a file or a URL; HTML, Markdown or text) into its metadata, prose and sentences.

Links travel with their spans from the markup down to each sentence, because what an import
cites for a sentence is the links inside it.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import htmldate
import trafilatura
import yaml
from lxml import etree
from lxml import html as lxml_html
from markdown_it import MarkdownIt
from markdown_it.token import Token

from ..inputs.content import Author
from .dating import date_line
from ..errors import NewsletterError, display_path

logging.getLogger("trafilatura").setLevel(logging.CRITICAL)  # its notes on odd pages are not ours to print
logging.getLogger("htmldate").setLevel(logging.CRITICAL)

USER_AGENT = "threat-brief-newsletter/0.1 (newsletter import)"
MAX_BYTES = 10_000_000
NO_BIO = "Author of the imported article; add a short bio."


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
class EmbeddedPost:
    """A social-media post embedded in the page, which is someone else's words and not read as
    prose; its timestamp may still date the sentence that introduces it ("X welcomed it on Twitter")."""

    after: str  # the text of the paragraph it follows
    posted: date
    url: str | None  # the post's own address, a source for what that paragraph tells


@dataclass(frozen=True)
class Document:
    """A file as read: its paragraphs in order, and what its markup says about it."""

    paragraphs: tuple[Paragraph, ...]
    title: str | None = None
    authors: tuple[str, ...] = ()
    published: date | None = None  # from metadata (meta tags, JSON-LD, <time>, front matter)
    guessed: date | None = None  # htmldate's reading of the rest of the markup: after a dateline or the address
    url: str | None = None  # its canonical address
    description: str | None = None
    language: str | None = None
    posts: tuple[EmbeddedPost, ...] = ()


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
    guessed: date | None  # from markup that does not say it is the publication date (htmldate)
    url: str | None
    language: str | None
    body: tuple[Paragraph, ...]
    posts: tuple[EmbeddedPost, ...] = ()


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
    extracted = _main_text(root, url)
    paragraphs = [p for p in _html_blocks(extracted if extracted is not None else main, base) if p is not None]
    ld = _json_ld(root)
    h1 = root.find(".//h1")
    title = meta.get("og:title") or meta.get("twitter:title") or (
        _text(h1) if h1 is not None else None
    ) or _page_title(root)
    authors = _split_names(meta.get("author", "")) or tuple(ld.get("authors", ())) or tuple(
        _text(a) for a in root.iterfind(".//*[@rel='author']")
    ) or _byline(main)
    published = _iso_day(
        meta.get("article:published_time") or meta.get("datepublished") or meta.get("og:published_time")
        or meta.get("date") or meta.get("pubdate") or meta.get("publishdate") or meta.get("dc.date")
        or meta.get("dc.date.issued") or meta.get("dcterms.created") or meta.get("parsely-pub-date")
        or meta.get("sailthru.date") or meta.get("article.published") or meta.get("publish-date")
        or str(ld.get("published", ""))
        or _first_time(main) or _first_time(root)
    )
    language = (root.get("lang") or "").strip() or None
    return Document(
        tuple(_joined(paragraphs)), title=title, authors=tuple(a for a in authors if a), published=published,
        guessed=None if published else _iso_day(_marked_up_date(_without_listings(root), url)), url=canonical or url, description=meta.get("description") or meta.get("og:description"), language=language,
        posts=tuple(_embedded_posts(root, base)),
    )


EMBEDS = (  # posts embedded from social networks: someone else's words, not the article's
    "twitter-tweet", "twitter-video", "instagram-media", "tiktok-embed", "fb-post", "reddit-embed-bq", "bluesky-embed",
)


def _embedded_posts(root: lxml_html.HtmlElement, base: str | None) -> Iterator[EmbeddedPost]:
    """Each embedded post with a timestamp (its last dated link, or a <time>), beside the text of
    the paragraph before it."""
    for element in root.iter():
        if not set((element.get("class") or "").split()) & set(EMBEDS):
            continue
        before = next((e for e in element.itersiblings(preceding=True) if isinstance(e.tag, str) and e.tag == "p"), None)
        post = _post_after(" ".join(_text(before).split()), element, base) if before is not None else None
        if post is not None:
            yield post


def _post_after(text: str, element: lxml_html.HtmlElement, base: str | None) -> EmbeddedPost | None:
    """The embedded post `element` as following the paragraph `text`, if it says when it was posted."""
    stamped = [(date_line(_text(a)), a.get("href")) for a in element.iterfind(".//a")] + [
        (_iso_day(t.get("datetime")), None) for t in element.iterfind(".//time")]
    posted, url = next(((d, u) for d, u in reversed(stamped) if d is not None), (None, None))
    return EmbeddedPost(text, posted, _resolve_url(url, base)) if posted is not None else None


def _main_text(root: lxml_html.HtmlElement, url: str | None) -> lxml_html.HtmlElement | None:
    """The article's main text as trafilatura finds it (navigation, captions, credits, bylines,
    related links and footers left out; links kept), without embedded social posts; None when
    it finds too little, and the page's own <article> is read instead."""
    page = copy.deepcopy(root)
    for element in list(page.iter()):
        classes = set((element.get("class") or "").split())
        if classes & set(EMBEDS) and element.getparent() is not None:
            element.drop_tree()
    try:
        extracted = trafilatura.extract(
            lxml_html.tostring(page, encoding="unicode"), url=url, output_format="html", include_links=True,
            include_images=False, include_tables=False, include_comments=False, deduplicate=True,
        )
    except Exception:  # trafilatura on a page it cannot read: fall back on our own reading
        return None
    if not extracted or len(extracted) < 200:
        return None
    return lxml_html.document_fromstring(extracted).find(".//body")


def _byline(main: lxml_html.HtmlElement) -> tuple[str, ...]:
    """The names in a byline element ("By Jane Doe, Istanbul": Jane Doe), which main-text
    extraction rightly leaves out of the prose."""
    for element in main.iter():
        classes = (element.get("class") or "").lower()
        if isinstance(element.tag, str) and ("byline" in classes or "author" in classes):
            found = BYLINE.match(_text(element).strip())
            if found:
                return _split_names(found.group(1).split(",")[0])
    return ()


def _marked_up_date(page: lxml_html.HtmlElement, url: str | None) -> str | None:
    """The publication date htmldate finds in the page's markup and address only: never a date
    read from the prose, which would date the article by one of its events."""
    try:
        return htmldate.find_date(page, url=url, extensive_search=False, original_date=True)
    except Exception:  # htmldate on a page it cannot parse
        return None


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


LISTINGS = ("li", "aside", "nav", "footer")  # where other articles' dates are ("Related: ... Jul 12, 2023")


def _first_time(root: lxml_html.HtmlElement) -> str | None:
    """The first <time datetime> that is not in a list, an aside, navigation or a footer."""
    for element in root.iterfind(".//time[@datetime]"):
        if not any(a.tag in LISTINGS for a in element.iterancestors()):
            return str(element.get("datetime"))
    return None


def _without_listings(root: lxml_html.HtmlElement) -> lxml_html.HtmlElement:
    """A copy of the page without its lists, asides, navigation and footers, for htmldate: a
    Related box's "2023-05-29" is another article's date."""
    page = copy.deepcopy(root)
    for element in list(page.iter(*LISTINGS)):
        if element.getparent() is not None:
            element.drop_tree()
    return page


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


ADDRESS_LINE = re.compile(r"\A\ufeff?\s*(https?://[^\s<>\"]+)[ \t]*\r?\n")  # a saved text: its address first
URL_DATE = re.compile(r"/((?:19|20)\d\d)[/-]?(0[1-9]|1[0-2])[/-]?(0[1-9]|[12]\d|3[01])(?=[/._-]|$)")


def date_in_url(url: str | None) -> date | None:
    """The day an address gives (`/2022/06/23/`, `/2022-06-23-`, `/20220623/`), as news sites write them."""
    found = URL_DATE.search(urlsplit(url or "").path)
    if found is None:
        return None
    try:
        return date(int(found.group(1)), int(found.group(2)), int(found.group(3)))
    except ValueError:
        return None


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
    address = ADDRESS_LINE.match(text) if not front else None
    if address is not None:  # a text saved with its address on the first line
        front, text = {"url": address.group(1)}, text[address.end():]
    canonical = _resolve_url(str(front.get("url") or front.get("canonical") or front.get("source") or ""), url)
    base = url or canonical
    paragraphs: list[Paragraph | None] = []
    posts: list[EmbeddedPost] = []
    heading = False
    for token in _markdown.parse(repair_links(text)):
        if token.type.endswith("_open"):
            heading = token.type == "heading_open"
        elif token.type == "html_block" and paragraphs and paragraphs[-1] is not None:  # a post pasted as HTML
            try:
                block = lxml_html.fragment_fromstring(token.content, create_parent="div")
            except (etree.ParserError, ValueError):
                continue
            for element in block.iter():
                if set((element.get("class") or "").split()) & set(EMBEDS):
                    post = _post_after(paragraphs[-1].text, element, base)
                    posts += [post] if post is not None else []
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
        language=str(front["language"]) if front.get("language") else None, posts=tuple(posts),
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
            and (last.text.endswith((",", ";", "\u2014", "\u2013")) or len(words_of(last.text)) >= 20 and last.text[-1:].isalpha())
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
# "ANKARA, Oct 4 (Reuters) - ", "ERBIL, Kurdistan Region (Kurdistan24) – June 20, 2023 – ": where
# and when the story was filed, not an event in it.
DATELINE = re.compile(
    r"^[A-Z][A-Z.'\u2019/ -]{2,}(?:,\s*[A-Z][\w.]+(?:\s+[A-Z][\w.]+){0,2})?"
    r"(?:,\s*(?P<when>[^,()\u2013\u2014-]{3,20}?(?:,\s*\d{4})?))?"
    r"\s*(?:\([^()]{1,30}\)\s*)?[-\u2013\u2014]+\s+"
    r"(?:(?P<filed>(?:[A-Z][a-z]{2,8}\.?\s+\d{1,2},?|\d{1,2}\s+[A-Z][a-z]{2,8})\s+\d{4}|\d{1,2}\.\d{1,2}\.\d{4})"
    r"\s*[-\u2013\u2014]+\s+)?(?=\S)"
)
PROSE_END = re.compile(r"[.!?\"\u201d\u2019)\]\u061f\u06d4]$")
# Not the article's prose, whatever its length: prompts, credits, captions, embedded posts.
BOILERPLATE = re.compile(
    r"^(?:sign up|subscribe|read (?:more|next|also)|related|follow us|share (?:this|on)|advertisement|"
    r"(?:photo|image|picture|video)(?:\s+credit)?s?\s*:|credit\s*:|copyright|\u00a9|all rights reserved|"
    r"اقرأ أيضا|اقرأ أيضاً|ذات صلة|ilgili haber|bunları da okuyun|קראו גם)"
    r"|\(@\w{1,15}\)|\bpic\.twitter\.com/|\b(?:taken|pictured|photographed) on\b",
    re.I,
)
EDITORS_NOTE = re.compile(r"^\[[^\[\]]{20,}\]$")  # "[Editor's note: ...]", set apart from the story
# "Why it matters:", "The big picture:": a section label run into its paragraph, not part of it.
SECTION_LABEL = re.compile(r"^(?:[A-Z][\w'\u2019]*(?:\s+[\w'\u2019]+){0,4})\s*:\s+(?=[A-Z\u0600-\u06ff\u0590-\u05ff])")


def words_of(text: str) -> list[str]:
    return re.findall(r"[^\W\d_][\w'\u2019-]*", text)


def _is_prose(paragraph: Paragraph) -> bool:
    words = len(words_of(paragraph.text))
    linked = sum(link.end - link.start for link in paragraph.links)
    if linked >= 0.8 * len(paragraph.text.replace(" ", "")):
        return False
    return words >= 8 and (PROSE_END.search(paragraph.text) is not None or words >= 20)


def _is_heading(paragraph: Paragraph) -> bool:
    if paragraph.heading:
        return True
    linked = sum(link.end - link.start for link in paragraph.links)
    return not linked and len(words_of(paragraph.text)) <= 12 and not PROSE_END.search(paragraph.text)


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
            if title is None and (paragraph.heading or not _is_prose(paragraph)) and len(words_of(text)) >= 2:
                title = text
                continue
        if len(body) < 3 and published is None and (line_date := date_line(text)) is not None:
            published = line_date  # a date line after an editor's note or a standfirst
            continue
        if EDITORS_NOTE.match(text):
            continue
        introduces_post = text.endswith(":") and any(post.after == text for post in document.posts)
        if _is_heading(paragraph) and not introduces_post:
            if END_SECTIONS.match(text.rstrip(":")):
                break
            section = "skip" if SKIP_SECTIONS.match(text.rstrip(":")) else "body"
            continue
        if section == "body" and (_is_prose(paragraph) or introduces_post) and not BOILERPLATE.search(text):
            paragraph = _without_label(paragraph)
            paragraph, filed = _without_dateline(paragraph)
            published = published or filed
            body.append(Paragraph(_strip_ornaments(paragraph.text), paragraph.links))
    if not body:
        raise NewsletterError("nothing readable (no paragraphs of prose)")
    first = split_sentences(body[:1])[0].text
    dek = _first_sentence(document.description) if document.description else first
    authors = tuple(Author(one_line(n), one_line(_bio(n, document.paragraphs) or NO_BIO)) for n in dict.fromkeys(names))
    return Article(
        title=one_line(title or first), dek=one_line(dek), authors=authors, published=published, guessed=document.guessed,
        url=document.url, language=document.language, body=tuple(body), posts=document.posts,
    )


def _without_label(paragraph: Paragraph) -> Paragraph:
    """The paragraph without a section label run into it ("Why it matters: ...")."""
    match = SECTION_LABEL.match(paragraph.text)
    if not match or len(match.group().split()) > 5:
        return paragraph
    shift = match.end()
    links = tuple(Link(k.text, k.url, k.start - shift, k.end - shift) for k in paragraph.links if k.start >= shift)
    return Paragraph(paragraph.text[shift:], links, paragraph.heading)


def _without_dateline(paragraph: Paragraph) -> tuple[Paragraph, date | None]:
    """The paragraph without its dateline, and the dateline's date when it gives a year."""
    match = DATELINE.match(paragraph.text)
    if not match:
        return paragraph, None
    shift = match.end()
    links = tuple(Link(k.text, k.url, k.start - shift, k.end - shift) for k in paragraph.links if k.start >= shift)
    when = match.group("when") or match.group("filed") or ""
    return Paragraph(paragraph.text[shift:], links, paragraph.heading), date_line(when)


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


def one_line(text: str) -> str:
    """One line of text that cannot be taken for HTML."""
    return re.sub(r"<(?=[/A-Za-z])", "< ", " ".join(text.split()))


# --- sentences ----------------------------------------------------------------------------------


SENTENCE_END = re.compile(  # then a capital (Turkish ones too) or a letter of a script without case (Arabic, Hebrew)
    r"[.!?\u2026\u061f\u06d4]+[\"'\u201d\u2019\u00bb)\]]*"
    r"(?=\s+[\"'\u201c\u2018\u00ab(\[]?[A-Z0-9\u00c0-\u00de\u0130\u015e\u011e\u0590-\u05ff\u0600-\u06ff])"
)
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
