"""Drafts: timeline entries and briefs a machine proposed, waiting for an analyst.

A timeline draft is one file, `content/timeline/drafts/<id>.yaml`: a `draft:` block (where it
came from, when, whether it is trusted, and a fingerprint of the entry as it was generated)
and the `entry:` itself, in the timeline format. A brief draft is a brief file in
`content/briefs/drafts/`. Nothing under `drafts/` is published: `approve` moves a draft into
the content (after the same checks as `newsletter check`), `reject` moves it to
`drafts/rejected/`, where it keeps its sources from being proposed again.

The fingerprint tells a draft a person has edited from one only a machine wrote: tools
(ingest) may rewrite the second and must leave the first alone.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import yaml

from ..inputs.content import TimelineEntry, load_library, read_brief, read_entry
from ..errors import ContentError, Invalid, NewsletterError, display_path
from ..inputs.yamlsource import Problems, hint, parse

ENTRY_DRAFTS = Path("timeline") / "drafts"
BRIEF_DRAFTS = Path("briefs") / "drafts"
REJECTED = "rejected"
APPROVED_FILE = Path("timeline") / "approved.yaml"
DRAFT_KEYS = ("id", "origin", "created", "trusted", "generated")
TRACKING = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|ref|cmpid)$", re.I)
HEADER = (
    "# A draft timeline entry: not published. Edit it freely (tools will then leave it alone);\n"
    "# publish it with `newsletter drafts approve {id}` or drop it with `newsletter drafts reject {id}`.\n"
)


class DraftError(NewsletterError):
    """A draft that cannot be found, read or approved."""


@dataclass(frozen=True)
class Draft:
    id: str
    kind: str  # "entry" or "brief"
    path: Path
    origin: str
    created: str
    trusted: bool
    edited: bool  # a person changed it since a tool wrote it
    title: str
    date: str
    urls: tuple[str, ...]  # normalized source urls
    entry: TimelineEntry | None  # None if it does not pass the checks (or for a brief)
    data: dict[str, Any]  # the entry as written, for tools that merge sources into it
    problems: tuple[str, ...]


def normalize_url(url: str) -> str:
    """One form for the same page: lowercase host, no default port, no fragment, no tracking
    parameters, sorted query, no trailing slash, http and https alike."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().removeprefix("www.")
    port = parts.port
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    query = urlencode(sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not TRACKING.match(k)))
    path = parts.path.rstrip("/") or "/"
    return urlunsplit(("https", netloc, path, query, ""))


def fingerprint(entry: dict[str, Any]) -> str:
    return hashlib.sha256(_dump(entry).encode()).hexdigest()[:16]


def _dump(data: Any) -> str:
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=88, default_flow_style=False))


def draft_id(date: str, title: str) -> str:
    """`20220612-ankara-exposes-an-iranian-ring`: sortable, readable, safe in a file name."""
    day = re.sub(r"[^0-9]", "", date)[:8] or "undated"
    slug = ""
    for word in re.sub(r"[^a-z0-9]+", " ", title.lower()).split():
        if len(slug) + len(word) + 1 > 48:
            break
        slug = f"{slug}-{word}" if slug else word
    return f"{day}-{slug or 'entry'}"


def write_entry(
    content: Path, entry: dict[str, Any], origin: str, trusted: bool = False, draft: Draft | None = None,
) -> Draft:
    """Write a new timeline draft (or rewrite `draft`, which must not be edited by a person).

    `entry` is a timeline entry as a mapping (date, title, summary, actors, tags, sources)."""
    if draft is not None and draft.edited:
        raise DraftError(f"{display_path(draft.path)} was edited by a person; it is left as it is")
    folder = content / ENTRY_DRAFTS
    folder.mkdir(parents=True, exist_ok=True)
    if draft is None:
        base = draft_id(str(entry.get("date", "")), str(entry.get("title", "")))
        taken = {p.stem for p in _entry_paths(content, rejected=True)}
        identifier = base
        number = 2
        while identifier in taken:
            identifier, number = f"{base}-{number}", number + 1
        path, created = folder / f"{identifier}.yaml", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        identifier, path, created = draft.id, draft.path, draft.created
    meta = {"id": identifier, "origin": origin, "created": created, "trusted": trusted, "generated": fingerprint(entry)}
    _write_atomically(path, HEADER.format(id=identifier) + _dump({"draft": meta, "entry": entry}))
    return read_draft(path, content)


def write_brief(content: Path, name: str, text: str) -> Path:
    """Write a brief draft `content/briefs/drafts/NAME.md` (NAME as `YYYY-MM-DD-slug`). A draft
    with the same text is reused; one of that name with other text (perhaps a person's edits)
    is never overwritten: a number is added instead."""
    folder = content / BRIEF_DRAFTS
    folder.mkdir(parents=True, exist_ok=True)
    for existing in sorted(folder.glob(f"{name}*.md")):
        if existing.read_text(encoding="utf-8") == text:
            return existing
    path, number = folder / f"{name}.md", 2
    while path.exists():
        path, number = folder / f"{name}-{number}.md", number + 1
    _write_atomically(path, text)
    return path


def _write_atomically(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def _entry_paths(content: Path, rejected: bool = False) -> Iterator[Path]:
    folder = content / ENTRY_DRAFTS
    yield from sorted(folder.glob("*.yaml"))
    if rejected:
        yield from sorted((folder / REJECTED).glob("*.yaml"))


def read_draft(path: Path, content: Path) -> Draft:
    problems = Problems(ContentError)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DraftError(f"cannot read {display_path(path)}: {exc.strerror}") from None
    root = parse(text, path, problems)
    fields = root.mapping(("draft", "entry"), ("draft", "entry")) if root else None
    meta_value = fields.get("draft") if fields else None
    entry_value = fields.get("entry") if fields else None
    meta = meta_value.mapping(DRAFT_KEYS, ("id",)) if meta_value else None
    entry = read_entry(entry_value, problems) if entry_value else None
    raw: dict[str, Any] = {}
    try:
        loaded = yaml.safe_load(text)
        raw = loaded.get("entry") or {} if isinstance(loaded, dict) else {}
        generated = str((loaded.get("draft") or {}).get("generated", "")) if isinstance(loaded, dict) else ""
    except yaml.YAMLError:
        generated = ""
    info = {key: (meta.text(key) or "") if meta and key in meta else "" for key in DRAFT_KEYS}
    listed = raw.get("sources")
    sources: list[Any] = listed if isinstance(listed, list) else []
    urls = tuple(normalize_url(str(s.get("url", ""))) for s in sources if isinstance(s, dict) and s.get("url"))
    return Draft(
        id=path.stem, kind="entry", path=path, origin=info["origin"], created=info["created"],
        trusted=info["trusted"].lower() == "true", edited=not generated or generated != fingerprint(raw),
        title=str(raw.get("title", "")), date=str(raw.get("date", "")), urls=urls, entry=entry, data=raw,
        problems=tuple(str(p) for p in problems.items),
    )


def entry_drafts(content: Path, rejected: bool = False) -> list[Draft]:
    return [read_draft(path, content) for path in _entry_paths(content, rejected)]


def brief_drafts(content: Path) -> list[Draft]:
    drafts = []
    for path in sorted((content / BRIEF_DRAFTS).glob("*.md")):
        problems = Problems(ContentError)
        brief = read_brief(path, problems)
        drafts.append(Draft(
            id=path.stem, kind="brief", path=path, origin="import", created="", trusted=False, edited=True,
            title=brief.title if brief else path.stem, date=brief.date.isoformat() if brief else "",
            urls=(), entry=None, data={}, problems=tuple(str(p) for p in problems.items),
        ))
    return drafts


def all_drafts(content: Path) -> list[Draft]:
    return brief_drafts(content) + entry_drafts(content)


def find(content: Path, identifier: str) -> Draft:
    for draft in all_drafts(content):
        if draft.id == identifier:
            return draft
    known = [d.id for d in all_drafts(content)]
    raise DraftError(hint(identifier, known, noun="draft") if known else f"no draft named '{identifier}': there are none")


def trusted_entries(content: Path) -> list[TimelineEntry]:
    """Timeline drafts marked `trusted: true` that pass the checks (a digest may include them)."""
    return [d.entry for d in entry_drafts(content) if d.trusted and d.entry is not None]


def approve(content: Path, identifier: str, into: Path | None = None) -> Path:
    """Publish a draft: a brief moves into `content/briefs/`; an entry is appended to a
    timeline file (default `content/timeline/approved.yaml`). The content must still pass
    every check afterwards, or nothing changes. Returns the file it went into."""
    draft = find(content, identifier)
    if draft.problems:
        raise Invalid([_problem(p) for p in draft.problems])
    if draft.kind == "brief":
        target = content / "briefs" / draft.path.name
        if target.exists():
            raise DraftError(f"{display_path(target)} exists already; rename the draft first")
        shutil.move(draft.path, target)
        return _verified(content, target, undo=lambda: shutil.move(target, draft.path))
    target = into or content / APPROVED_FILE
    before = target.read_text(encoding="utf-8") if target.exists() else None
    block = _dump([draft.data])
    text = (before.rstrip("\n") + "\n\n" if before else "# Timeline entries approved from drafts.\n\n") + block
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(target, text)

    def undo() -> None:
        if before is None:
            target.unlink()
        else:
            _write_atomically(target, before)

    _verified(content, target, undo)
    draft.path.unlink()
    return target


def _verified(content: Path, target: Path, undo: Any) -> Path:
    try:
        load_library(content)
    except Invalid:
        undo()
        raise
    return target


def _problem(text: str) -> ContentError:
    """Rebuild a `file:line: field: message` line as an error (it was recorded as text)."""
    place, field, message = (text.split(": ", 2) + ["", ""])[:3]
    file, _, line = place.rpartition(":")
    return ContentError(Path(file), int(line) if line.isdigit() else 1, field, message)


def reject(content: Path, identifier: str) -> Path:
    """Drop a draft. Entry drafts are kept in `drafts/rejected/`, so that their sources are
    not proposed again; brief drafts are deleted."""
    draft = find(content, identifier)
    if draft.kind == "brief":
        draft.path.unlink()
        return draft.path
    folder = content / ENTRY_DRAFTS / REJECTED
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / draft.path.name
    shutil.move(draft.path, target)
    return target


def known_urls(content: Path, entries: Iterable[TimelineEntry]) -> set[str]:
    """Sources already published, drafted or rejected: ingest proposes none of them again."""
    urls = {normalize_url(s.url) for entry in entries for s in entry.sources}
    for draft in entry_drafts(content, rejected=True):
        urls.update(draft.urls)
    return urls
