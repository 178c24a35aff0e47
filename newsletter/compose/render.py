"""Turn an Issue into its finished HTML (CSS inlined once) and plaintext twin."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from markupsafe import Markup

from ..inputs import markup
from ..inputs.config import Digest, Mailbox, Site
from ..inputs.content import FuzzyDate, Source, TimelineEntry
from ..inputs.marking import TLP_COLOURS, label as tlp_label
from .digest import Issue
from ..errors import Invalid, NewsletterError, TemplateError
from .inline import inline_css
from ..inputs.yamlsource import Problems, parse

# Per-subscriber values are left as placeholders in the rendered bodies, so a send
# renders and inlines once and then only substitutes text (see message.py).
UNSUBSCRIBE_URL = "%%unsubscribe_url%%"
PREFERENCES_URL = "%%preferences_url%%"  # the reader's own page: digests, pause, plain text
RECIPIENT = "%%recipient%%"  # who a TLP:RED copy is for, by name
PLACEHOLDERS = (UNSUBSCRIBE_URL, PREFERENCES_URL, RECIPIENT)


def fill(text: str, unsubscribe: str, preferences: str, recipient: str = "") -> str:
    """`text` with the per-reader links in place (previews, archive pages, one-off copies)."""
    return text.replace(UNSUBSCRIBE_URL, unsubscribe).replace(PREFERENCES_URL, preferences).replace(
        RECIPIENT, recipient)

HTML_TEMPLATE = "digest.html"
TEXT_TEMPLATE = "digest.txt"
STYLESHEET = "digest.css"
LABELS = "labels.yaml"
DIGEST_LABELS = (
    "months", "date_day", "date_month", "date_part", "early", "mid", "late", "approximate",
    "issue", "brief", "by", "list_and", "comma", "semicolon", "key_points", "about_authors", "related",
    "timeline", "actors", "sources", "read_brief", "footer", "unsubscribe", "preferences", "archive", "view_online",
    "links", "tlp_rule_clear", "tlp_rule_green", "tlp_rule_amber", "tlp_rule_amber+strict", "tlp_rule_red",
    "tlp_end", "withheld_one", "withheld_many", "confidence_low", "confidence_moderate", "confidence_high",
)
MAIL_LABELS = (
    "confirm_mail_subject", "confirm_mail_kicker", "confirm_mail_heading", "confirm_mail_intro",
    "confirm_mail_action", "confirm_mail_ignore", "confirm_mail_footer", "welcome_subject", "welcome_kicker",
    "welcome_heading", "welcome_intro", "welcome_what", "welcome_what_default", "welcome_when", "welcome_next",
    "welcome_leave", "welcome_leave_text", "welcome_action", "every_daily", "every_weekly", "every_monthly",
    "every_often",
)
WEB_LABELS = (
    "site_name", "skip_to_content", "email_label", "name_label", "subscribe_button", "archive_link",
    "feed_link", "preview_link", "back_home", "check_inbox_title", "check_inbox_text", "confirm_title",
    "confirm_text", "confirm_button", "confirmed_title", "confirmed_text", "already_confirmed_title",
    "already_confirmed_text", "stale_confirm_text", "unsubscribe_title",
    "unsubscribe_text", "unsubscribe_button", "unsubscribed_title", "unsubscribed_text", "test_copy_text",
    "bad_link_title", "preview_of", "preview_views", "preview_tiers", "stix_link", "view_html", "view_text", "view_headers",
    "as_of_label", "as_of_button", "content_problems_title", "content_problems_text", "issues_title",
    "no_issues", "too_many_title", "too_many_text", "too_large_title", "too_large_text", "not_found_title",
    "not_found_text", "method_title", "method_text", "bad_form_title", "subscribe_heading", "open_issue",
    "preferences_title", "preferences_intro", "preferences_digests", "pause_label", "pause_hint", "plain_label",
    "save_button", "saved_text", "paused_text", "bad_pause_text", "suppressed_text", "leave_heading",
    "leave_text", "leave_button", "left_title", "left_text", "login_title", "login_text", "password_label",
    "login_button", "logout_button", "login_failed", "locked_text", "previews_closed_title",
    "previews_closed_text",
)
LABEL_KEYS = DIGEST_LABELS + MAIL_LABELS + WEB_LABELS
TEXT_WIDTH = 72
FREQUENCY = {"daily": "every_daily", "weekly": "every_weekly", "monthly": "every_monthly"}


@dataclass(frozen=True)
class Rendered:
    """A finished issue: everything its messages need, the same for every subscriber but for
    PLACEHOLDERS. It is what the store keeps as the issue's snapshot, so a resumed send takes
    its sender, List-Id and language from here, never from today's config."""

    issue_id: str
    digest: str  # the digest's name
    subject: str
    preheader: str
    html: str
    text: str
    sender: Mailbox
    list_id: str  # RFC 2919: `"Title" <name.domain>`
    language: str
    direction: str  # ltr or rtl
    reply_to: Mailbox | None = None
    tlp: str = "clear"  # the highest TLP level this copy holds


def list_id(digest: Digest, site: Site) -> str:
    """The List-Id header value of a digest (RFC 2919), its title quoted as a phrase."""
    title = digest.title.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{title}" <{digest.name}.{site.domain}>'


class References:
    """Numbered links for the plaintext twin: `text [3]` in the body, `[3] url` at the end."""

    def __init__(self, labels: Labels) -> None:
        self.labels = labels
        self.urls: list[str] = []

    def cite(self, url: str) -> int:
        if url not in self.urls:
            self.urls.append(url)
        return self.urls.index(url) + 1

    def md(self, text: str) -> str:
        return markup.to_inline_text(text, self.cite)

    def sources(self, sources: Iterable[Source]) -> str:
        return self.labels.list(
            (f"{s.publisher}{' ' + s.rating.code if s.rating else ''} [{self.cite(s.url)}]" for s in sources),
            "semicolon")


@dataclass(frozen=True)
class Labels:
    """The words a template prints, in one language."""

    words: dict[str, Any]

    def __getattr__(self, key: str) -> Any:
        try:
            return self.words[key]
        except KeyError:
            raise AttributeError(key) from None

    def join(self, names: Iterable[str]) -> str:
        """`A`, `A and B`, `A, B and C` in this language's words and punctuation."""
        items = list(names)
        if len(items) < 2:
            return "".join(items)
        rest = self.list(items[:-1])
        return str(self.list_and).format(rest=rest, last=items[-1])

    def list(self, items: Iterable[str], separator: str = "comma") -> str:
        """Items separated by this language's comma (or semicolon), each followed by a space."""
        return f"{self.words[separator]} ".join(items)

    def date(self, value: date | FuzzyDate) -> str:
        if isinstance(value, date):
            return str(self.date_day).format(
                day=value.day, month=self.months[value.month - 1], year=value.year
            )
        start = value.start
        month = self.months[start.month - 1]
        if value.precision == "day":
            return self.date(start)
        if value.precision == "year":
            return str(start.year)
        if value.qualifier:
            part = self.words[value.qualifier]
            return str(self.date_part).format(part=part, month=month, year=start.year)
        return str(self.date_month).format(month=month, year=start.year)


def load_labels(path: Path) -> dict[str, Labels]:
    """Read labels.yaml: one mapping of words per language; English fills any gap."""
    problems = Problems(TemplateError)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NewsletterError(f"cannot read {path}: {exc.strerror}") from None
    root = parse(text, path, problems)
    languages = root.mapping([str(k.value) for k, _ in root.node.value]) if root else None
    words: dict[str, dict[str, Any]] = {}
    for language in languages or []:
        value = languages.entries[language] if languages else None
        fields = value.mapping(LABEL_KEYS) if value else None
        if fields is None:
            continue
        words[language] = {}
        for key, item in fields.entries.items():
            found = item.texts() if key == "months" else item.text()
            if key == "months" and found is not None and len(found) != 12:
                item.error(f"list the 12 month names, found {len(found)}")
            words[language][key] = found
    if "en" not in words:
        problems.add(path, 1, "en", "labels.yaml needs an 'en' section")
    else:
        missing = [k for k in LABEL_KEYS if k not in words["en"]]
        if missing:
            problems.add(path, 1, "en", f"missing labels: {', '.join(missing)}")
    if problems:
        raise Invalid(problems.items)
    return {lang: Labels({**words["en"], **w}) for lang, w in words.items()}


class Renderer:
    """Templates, stylesheet and labels loaded once; `render` many issues with them."""

    def __init__(self, templates_dir: Path, site: Site) -> None:
        self.templates_dir = templates_dir
        self.site = site
        self.base_url = site.base_url
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates_dir),
            autoescape=jinja2.select_autoescape(["html", "htm"], default_for_string=True),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["md"] = lambda text: Markup(markup.to_html(text))
        self.env.filters["md_inline"] = lambda text: Markup(markup.to_inline_html(text))
        self.env.globals["wrap"] = markup.wrap
        self.env.globals["tlp_label"] = tlp_label
        self.env.globals["tlp_colours"] = TLP_COLOURS
        self.html_template = self._template(HTML_TEMPLATE)
        self.text_template = self._template(TEXT_TEMPLATE)
        self.css = self._read(STYLESHEET)
        # The stylesheet is a template file, trusted as the templates are; autoescaping it would
        # turn the quotes of 'Times New Roman' into &#39; and the CSS parser would drop the rule.
        self.stylesheet = Markup(self.css)
        self.labels = load_labels(templates_dir / LABELS)
        self.renders = 0  # issues rendered so far (tests check a send renders once per copy, not per reader)

    def _read(self, name: str) -> str:
        try:
            return (self.templates_dir / name).read_text(encoding="utf-8")
        except OSError as exc:
            raise NewsletterError(f"cannot read template {self.templates_dir / name}: {exc.strerror}") from None

    def _template(self, name: str) -> jinja2.Template:
        try:
            return self.env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(Path(exc.filename or name), exc.lineno, "template", exc.message or "syntax error") from None
        except jinja2.TemplateNotFound:
            raise NewsletterError(f"template not found: {self.templates_dir / name}") from None

    def page(self, name: str, context: dict[str, Any]) -> str:
        """A web page or a small message from `templates/` (autoescaped, StrictUndefined)."""
        return self._render(self._template(name), context)

    def confirmation(self, digest: Digest, address: str, link: str, hours: int) -> Rendered:
        """The double opt-in message, designed like the digest, in the digest's language."""
        labels = self.labels_for(digest.language)
        subject = str(labels.confirm_mail_subject).format(title=digest.title)
        context = {**self._mail_context(digest, labels, subject), "address": address, "link": link, "hours": hours}
        return self._mail("confirm", digest, subject, str(labels.confirm_mail_heading), context)

    def welcome(self, digest: Digest, address: str, next_issue: date | None) -> Rendered:
        """The message after a confirmation: what comes, how often, how to leave. Its links to
        the preferences page and to unsubscribe are PLACEHOLDERS, filled per reader."""
        labels = self.labels_for(digest.language)
        subject = str(labels.welcome_subject).format(title=digest.title)
        context = {
            **self._mail_context(digest, labels, subject), "address": address, "next_issue": next_issue,
            "frequency": labels.words[FREQUENCY.get(digest.period, "every_often")],
            "unsubscribe_url": UNSUBSCRIBE_URL, "preferences_url": PREFERENCES_URL,
        }
        return self._mail("welcome", digest, subject, str(labels.welcome_intro).format(title=digest.title, address=address),
                          context)

    def _mail_context(self, digest: Digest, labels: Labels, subject: str) -> dict[str, Any]:
        rtl = digest.direction == "rtl"
        return {
            "digest": digest, "labels": labels, "subject": subject, "preheader": subject, "css": self.stylesheet,
            "lang": digest.language, "dir": digest.direction, "start": "right" if rtl else "left",
            "end": "left" if rtl else "right", "script": "rtl" if rtl else "ltr", "ltr": _isolate if rtl else str,
            "postal_address": self.site.postal_address,
        }

    def _mail(self, name: str, digest: Digest, subject: str, preheader: str, context: dict[str, Any]) -> Rendered:
        html = inline_css(self.page(f"{name}.html", context))
        text = _tidy_text(self.page(f"{name}.txt", context))
        return self._finished(f"{digest.name}-{name}", digest, subject, preheader, html, text)

    def _finished(self, issue_id: str, digest: Digest, subject: str, preheader: str, html: str, text: str,
                  tlp: str = "clear") -> Rendered:
        return Rendered(
            issue_id, digest.name, subject, preheader, html, text, digest.sender, list_id(digest, self.site),
            digest.language, digest.direction, digest.reply_to, tlp,
        )

    def labels_for(self, language: str) -> Labels:
        return self.labels.get(language) or self.labels.get(language.split("-")[0]) or self.labels["en"]

    def render(self, issue: Issue) -> Rendered:
        """One copy of an issue (`Issue.for_clearance`), or the whole issue when it is unmarked."""
        self.renders += 1
        context = self._context(issue)
        html = inline_css(self._render(self.html_template, context))
        text = _tidy_text(self._render(self.text_template, {**context, "refs": References(context["labels"])}))
        return self._finished(issue.id, issue.digest, context["subject"], context["preheader"], html, text, context["tlp"])

    def html_before_inlining(self, issue: Issue) -> str:
        """The HTML as the template writes it, before premailer (for benchmarks and debugging)."""
        return self._render(self.html_template, self._context(issue))

    def _context(self, issue: Issue) -> dict[str, Any]:
        digest = issue.digest
        labels = self.labels_for(digest.language)
        brief = issue.brief
        rtl = digest.direction == "rtl"
        top = issue.top
        marked = top != "clear"  # a copy with anything above CLEAR labels each item
        withheld = (labels.withheld_one if issue.withheld == 1 else labels.withheld_many).format(n=issue.withheld)
        return {
            "issue": issue,
            "tlp": top,
            "marked": marked,
            "tlp_rule": str(labels.words[f"tlp_rule_{top}"]).format(recipient=RECIPIENT),
            "withheld": withheld if issue.withheld else "",
            "tlp_end": tuple(str(labels.tlp_end).split("{label}", 1)) if "{label}" in str(labels.tlp_end)
            else (f"{labels.tlp_end} ", ""),
            "digest": digest,
            "brief": brief,
            "entries": issue.entries,
            "months": timeline_months(issue.entries),
            "labels": labels,
            "css": self.stylesheet,
            "subject": _subject(digest, labels, issue),
            "preheader": brief.dek if brief else issue.entries[0].title if issue.entries else digest.description or digest.title,
            "lang": digest.language,
            "dir": digest.direction,
            "start": "right" if rtl else "left",
            "end": "left" if rtl else "right",
            "script": "rtl" if rtl else "ltr",
            "ltr": _isolate if rtl else str,
            # Only the CLEAR copy is on the web: a marked copy has no "view in browser".
            "archive_url": "" if marked else f"{self.base_url}/issues/{issue.id}",
            "unsubscribe_url": UNSUBSCRIBE_URL,
            "preferences_url": PREFERENCES_URL,
            "postal_address": self.site.postal_address,
        }

    def _render(self, template: jinja2.Template, context: dict[str, Any]) -> str:
        try:
            return template.render(context)
        except jinja2.TemplateError as exc:
            raise _located(exc, sys.exc_info()[2], self.templates_dir / (template.name or "")) from None


def _subject(digest: Digest, labels: Labels, issue: Issue) -> str:
    """The digest's subject pattern, after the copy's TLP label (TLP 2.0 asks for it there)."""
    marking = f"[{tlp_label(issue.top)}]"
    subject = digest.subject.format(
        title=digest.title,
        brief=issue.brief.title if issue.brief else "",
        period=_isolate(issue.period) if digest.direction == "rtl" else issue.period,
        date=labels.date(issue.day),
        entries=len(issue.entries),
    )
    subject = " ".join(subject.split()).strip(" :-|\u2013\u2014")
    return f"{_isolate(marking) if digest.direction == 'rtl' else marking} {subject}"


def _isolate(text: str) -> str:
    """Left-to-right text (an issue id such as 2022-W30) kept whole inside right-to-left text,
    where a header or plaintext has no markup to isolate it (Unicode LRI ... PDI)."""
    return f"\u2066{text}\u2069"


@dataclass(frozen=True)
class Month:
    """The timeline entries of one month (or of one year, for entries known only to the year)."""

    year: int
    month: int  # 0: the entries of `year` known to the year only
    entries: tuple[TimelineEntry, ...]

    def heading(self, labels: Labels) -> str:
        if not self.month:
            return str(self.year)
        return str(labels.date_month).format(month=labels.months[self.month - 1], year=self.year)


def timeline_months(entries: Iterable[TimelineEntry]) -> tuple[Month, ...]:
    """Entries as a reader reads them: newest month first and, within a month, newest first by
    the middle of each entry's span ("late June" near the 26th, "mid June" near the 15th); an
    entry known only to the month comes last in its month, and one known only to the year
    after that year's months. Which entries the issue holds is compose's choice, not this."""
    groups: dict[tuple[int, int], list[TimelineEntry]] = {}
    for entry in entries:
        start = entry.date.start
        groups.setdefault((start.year, start.month if entry.date.precision != "year" else 0), []).append(entry)

    def order(entry: TimelineEntry) -> tuple[int, int, str]:
        fuzzy = entry.date
        whole_month = fuzzy.precision == "month" and not fuzzy.qualifier
        middle = (fuzzy.start.toordinal() + fuzzy.end.toordinal()) // 2
        return (1 if whole_month else 0, -middle, entry.title)

    return tuple(
        Month(year, month, tuple(sorted(groups[(year, month)], key=order)))
        for year, month in sorted(groups, key=lambda key: (-key[0], -key[1] if key[1] else 0))
    )


def _located(exc: jinja2.TemplateError, tb: TracebackType | None, fallback: Path) -> TemplateError:
    """Find the template line in the traceback Jinja rewrote to point at template files."""
    file, line = fallback, 1
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name.endswith((".html", ".txt", ".htm")):
            file, line = Path(name), tb.tb_lineno
        tb = tb.tb_next
    return TemplateError(file, line, "template", exc.message or type(exc).__name__)


def _tidy_text(text: str) -> str:
    """Trailing spaces off, at most one blank line in a row, one final newline."""
    lines = [line.rstrip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n") + "\n"
