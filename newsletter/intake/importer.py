"""Import one article (HTML, Markdown or text; a file or a URL) as a draft brief and draft timeline entries.

Reading the article is article.py's job and finding its dates dating.py's; this module decides
what an import makes of them: dated events with the links that support them, key points, their
sources, and the drafts written.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from . import drafts
from .article import (
    Article, EmbeddedPost, Link, Sentence, article_of, date_in_url, fetch, one_line, read_document, split_sentences, words_of,
)
from ..inputs.content import FuzzyDate, KeyPoint, Source, load_library, parse_fuzzy_date
from .dating import Mention, Told, find_mentions
from ..errors import NewsletterError, UsageError, display_path

TAGS = ("imported",)
KEY_POINTS = (5, 8)  # fewest and most, when the article has enough sentences that cite something
TITLE_WORDS = 12


@dataclass(frozen=True)
class ImportResult:
    brief: Path  # the draft brief file: written, or an identical one already there
    key_points: int
    entries: tuple[Path, ...]  # the timeline draft files written
    skipped: tuple[str, ...]  # dated events not written (e.g. already published or drafted), one line each


@dataclass(frozen=True)
class Event:
    """A dated event the article mentions, with the links it attaches to it."""

    date: str  # timeline format: 2022-06-12, 2022-06, late 2022-06 or 2022
    title: str
    summary: str  # Markdown: the sentences that tell it, with their links
    links: tuple[Link, ...]
    sentence: int


# --- events: what each date belongs to, and the links that support it ------------------------


CONTINUES = re.compile(
    r"^(?:This|These|That|Those|Such|It|Its|They|Their|He|His|She|Her|During|Afterwards|Both|"
    r"For\s+(?:his|her|its|their)\s+part|In\s+response|The\s+two)\b"
)
TURNS = re.compile(  # a sentence that leaves the event it follows for another
    r"^(?:Separately|Meanwhile|Elsewhere|However|But|Yet|Still|In\s+other|On\s+the\s+other|Unrelated|Earlier|Later|"
    r"Previously|Before\s+that|Since\s+then|Also)\b"
)
REFERS_BACK = re.compile(r"\b(?:this|these)\s+(?!(?:year|month|week)\b)[a-z]")
NAME = re.compile(r"\b([A-Z][a-z\u00e0-\u00ff]{2,})(?:['\u2019]s)?\b")


def extract_events(sentences: Sequence[Sentence], published: date, posts: Sequence[EmbeddedPost] = ()) -> list[Event]:
    """Every dated event the sentences mention, in the order they are told. A sentence with no
    date of its own that introduces an embedded post ("X welcomed it on Twitter") is dated by
    the post's timestamp."""
    names = _names(sentences)
    counts = Counter(name for found in names for name in found)
    rare = {name for name, count in counts.items() if count <= 2}
    events: list[Event] = []
    anchor: FuzzyDate | None = None
    told: list[Told] = []  # the events told so far, which later ones count from ("a week before the visit")
    for index, sentence in enumerate(sentences):
        mentions = find_mentions(sentence.text, published, anchor, told) if complete(sentence) else []
        if not mentions and (complete(sentence) or sentence.text.endswith(":")):  # "... in a post on Twitter:"
            mentions = [
                Mention(0, 0, parse_fuzzy_date(post.posted.isoformat()), False) for post in posts
                if post.after.endswith(sentence.text) and post.posted <= published
            ][:1]
        if not mentions:
            continue
        anchor = mentions[-1].when
        told += [Told(sentence.text, m.when, m.start) for m in mentions]
        following = _continuation(sentences, index, names, rare & names[index], published, anchor)
        by_date: dict[str, list[Mention]] = {}
        for mention in mentions:
            by_date.setdefault(mention.when.iso, []).append(mention)
        for when, same in by_date.items():
            own = _links_near(sentence, same, mentions)
            extra = tuple(k for s in following for k in s.links) if same[-1] is mentions[-1] else ()
            extra += tuple(
                Link(post.url, post.url, 0, 0) for post in posts for s in (sentence, *following)
                if post.url and post.after.endswith(s.text) and (s is not sentence or same[-1] is mentions[-1])
            )
            events.append(Event(
                date=when, title=event_title(sentence.text, same[0], mentions),
                summary=" ".join(markdown_of(s) for s in (sentence, *following)),
                links=_unique(own + extra), sentence=index,
            ))
    return events


SENTENCE_END = re.compile(r"[.!\"\u201d\u2019)\]\u06d4]$")


def complete(sentence: Sentence) -> bool:
    """A sentence that ends as sentences do, or with the link it gives ("... reported at
    https://..."): one cut off ("Subscribe to read ...", a page that stops mid-way) is never an
    event or a key point."""
    text = sentence.text.rstrip()
    return SENTENCE_END.search(text) is not None or any(link.end >= len(text) for link in sentence.links)


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
    the next one in its paragraph unless it turns away ("Separately, ..."), "During the visit, ...",
    "This drone presence ...", or ones naming a rare name of the event's.
    The telling may go on into the next paragraph, from its first sentence."""
    following: list[Sentence] = []
    for position in range(index + 1, len(sentences)):
        sentence = sentences[position]
        if find_mentions(sentence.text, published, anchor):
            break
        next_in_paragraph = position == index + 1 and sentence.paragraph == sentences[index].paragraph
        if not (CONTINUES.match(sentence.text) or REFERS_BACK.search(sentence.text) or rare & names[position]
                or (next_in_paragraph and not TURNS.match(sentence.text))):
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
    r"its|their|his|her|as|than|into|over|after|before|since|until|late|early|last|this|that|who|which))+$", re.I,
)
ASIDES = re.compile(r"\s*\([^()]*\)|\s*\u2014[^\u2014]*\u2014\s*|\s*\[[^\]]*\]")


INTRODUCTORY = re.compile(r"(?:in|on|at|during|after|before|following|according|with|for|by|from|since|as)\b", re.I)
DATE_LEAD = re.compile(r"\s*(?:\b(?:on|in|during|of|at|since|by)|(?<!\w)(?:في|يوم|منذ))?\s*$", re.I)
PHRASE_STARTS = frozenset("for in with as of on at by from after before while which who amid over near".split())
TURKISH_LETTERS = re.compile("[\u011f\u015f\u0131\u0130\u011e\u015e]")


def event_title(text: str, mention: Mention, others: Sequence[Mention] = ()) -> str:
    """A short plain title: the clause that holds the date, without the date (nor any other date);
    what follows the date when the date opens its clause; for "X came a day after Y", Y."""
    spans = [(m.start, m.end) for m in others if m.end <= mention.start or m.start >= mention.end]
    for start, end in sorted(spans + ([mention.written] if mention.written else []), reverse=True):
        lead = DATE_LEAD.search(text[:start])  # other dates out, with their "on"
        start = lead.start() if lead else start
        text = text[:start] + " " * (end - start) + text[end:]
    before = DATE_LEAD.sub("", text[:mention.start])
    after = re.sub(r"^['\u2019][^\W\d_]+", "", text[mention.end:])  # Turkish: "15 Kasım'da", the case ending
    cut = max(before.rfind(", "), before.rfind("; "), before.rfind(": "), before.rfind("\u060c "))
    head = before[cut + 1:] if cut >= 0 else before
    tail = re.split(r"[;:\u061b]\s|[,\u060c]\s+(?:and|but|while|as|which|who)\b", after)[0]
    relative = re.match(r"\s*(?:which|who)\s+", head)
    antecedent = re.search(r"\b(?:the|a|an|its|their)\s+(?:\S+\s+){0,3}\S+$", before[:cut]) if cut >= 0 else None
    head = _with_subject(head, before[:cut]) if cut >= 0 and not relative else head
    opens_clause = not LEADING_WORDS.sub("", head.strip(" ,")).strip()  # "On Thursday, police ...", "In May police ..."
    introduces = re.match(r"\s*[,\u060c]", after) is not None and (  # "In a statement on Monday, the ministry ..."
        INTRODUCTORY.match(head.strip(" ,")) is not None or len(words_of(head)) < 3)
    if mention.reported or opens_clause or introduces:
        candidate = after
    elif relative and antecedent:
        candidate = f"{antecedent.group()} {head[relative.end():]} {tail}"
    else:
        candidate = f"{head} {tail}"
    phrase = re.sub(r"\s+([,\u060c])", r"\1", " ".join(ASIDES.sub(" ", candidate).replace("\u2014", " ").split()))
    phrase = LEADING_WORDS.sub("", phrase.strip(" ,;:.\u060c")).strip(" ,;:\u060c")
    words = re.split(r"[,;:\u060c]\s", phrase)[0].split()
    if len(words) < 4:
        words = phrase.replace(", ", " ").split()
    if len(words) > TITLE_WORDS + 4:  # cut before the last phrase that would not fit whole
        breaks = [i for i in range(8, TITLE_WORDS + 3) if words[i].lower() in PHRASE_STARTS]
        words = words[:breaks[-1] if breaks else TITLE_WORDS]
    title = TRAILING_WORDS.sub("", " ".join(words)).strip(" ,;:.\u2014-")
    if title[:1] == "i" and TURKISH_LETTERS.search(title):
        title = "\u0130" + title[1:]
    return one_line(title[:1].upper() + title[1:]) if title else "Dated event"


SUBJECT = re.compile(r"^(?:(?:the|a|an|its|their|his|her)\s+|[A-Z])[\w'\u2019.-]*(?:\s+[\w'\u2019.-]+){0,5}$")
ATTRIBUTION = re.compile(r"^(?:according|as|in|on|at|during|after|before|last|this|since|when|while|with|for)\b", re.I)


def _with_subject(head: str, earlier: str) -> str:
    """A clause cut out of its sentence without its subject ("began scouting hotels") gets it
    back from an earlier part ("According to police, the suspects, five of whom ..., began"):
    a title says who did what."""
    clause = head.strip(" ,")
    if not clause or not clause[0].islower() or SUBJECT.match(clause):
        return head
    for segment in (s.strip() for s in earlier.split(", ")):
        if SUBJECT.match(segment) and not ATTRIBUTION.match(segment):
            return f"{segment} {clause}"
    return head


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
        if not complete(sentence):
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
    return [w for w in (w.lower().strip("'\u2019") for w in words_of(text)) if len(w) > 2 and w not in STOPWORDS]


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
    text = one_line(link.text)
    words_in_path = _readable_path(parts.path)
    if len(text.split()) >= 4 or not words_in_path:
        title = text if text and text != link.url else words_in_path or host
    else:
        title = words_in_path
    return Source(one_line(title[:1].upper() + title[1:]) or host, publisher, link.url)


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


def import_article(
    source: str, content: Path, base: Path, today: date, timeout: float = 20.0, url: str | None = None,
    published: date | None = None,
) -> ImportResult:
    """Read one article and write a draft brief and a draft timeline entry per new dated event.

    `url` names the source of a saved file; `published` its publication date, when the page's
    metadata, its address and its date lines give none (an import never guesses today)."""
    library = load_library(content)
    fetched = fetch(source, base, timeout)
    name = source if fetched.url else display_path(base / source)
    try:
        article = article_of(read_document(fetched.text, fetched.kind, url or fetched.url))
    except NewsletterError as exc:
        raise NewsletterError(f"cannot import {name}: {exc}") from None
    if url:
        article = replace(article, url=url)
    sentences = split_sentences(article.body)
    cite = article.url
    key_points = choose_key_points(sentences, cite, skip=article.dek)
    if not key_points:
        raise NewsletterError(
            f"cannot import {name}: it links to no source and has no address of its own to cite; import it from "
            "its URL, or give the address a saved file came from with --url URL"
        )
    published = published or article.published or date_in_url(article.url) or article.guessed
    if published is None:
        raise UsageError(
            f"cannot import {name}: no publication date in its metadata, its address or a date line; "
            "give it with --published YYYY-MM-DD"
        )
    if published > today:
        raise UsageError(f"cannot import {name}: its publication date {published.isoformat()} is after today")
    known = drafts.known_urls(content, library.timeline)
    written: list[Path] = []
    skipped: list[str] = []
    for event, sources in _merged(extract_events(sentences, published, article.posts), cite):
        urls = {drafts.normalize_url(s.url) for s in sources}
        if not sources:
            skipped.append(f"{event.date} {event.title}: no link supports it (import the article from its URL to cite it)")
        elif urls <= known:
            skipped.append(f"{event.date} {event.title}: already published or drafted ({sources[0].url})")
        else:
            written.append(drafts.write_entry(content, entry_of(event, sources), origin=f"import {source}").path)
    origin = _markdown_link(_escaped(fetched.url), fetched.url) if fetched.url else _escaped(name)
    text = brief_text(article, key_points, published, origin)
    brief = drafts.write_brief(content, f"{published.isoformat()}-{slug(article.title)}", text)
    return ImportResult(brief, len(key_points), tuple(written), tuple(skipped))


def _merged(events: Sequence[Event], cite: str | None) -> list[tuple[Event, tuple[Source, ...]]]:
    """Each event with its sources (the article itself when it has no link of its own); two events
    with the same date and the same sources are one."""
    merged: dict[tuple[str, frozenset[str]], tuple[Event, tuple[Source, ...]]] = {}
    alone: list[tuple[Event, tuple[Source, ...]]] = []
    for event in events:
        own = tuple(source_of(k) for k in event.links)
        sources = own or ((_article_source(cite),) if cite else ())
        if not own:  # cited to the article alone: two events of one day are two events, not one
            alone.append((event, sources))
            continue
        merged.setdefault((event.date, frozenset(drafts.normalize_url(s.url) for s in sources)), (event, sources))
    return sorted([*merged.values(), *alone], key=lambda pair: pair[0].sentence)
