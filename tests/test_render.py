"""render(): the HTML email and its plaintext twin, from a hand-built issue."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from lxml import html as lxml_html

import newsletter.compose.render as render_module
from newsletter.inputs.content import Author, KeyPoint, Library, Related, Source
from newsletter.compose.digest import Issue, compose, moment
from newsletter.errors import TemplateError
from newsletter.compose.render import PREFERENCES_URL, UNSUBSCRIBE_URL, Renderer

from .samples import DIGEST, SITE, SOURCE, brief, entry

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
GEO = Source("Fight for Syria's skies", "Middle East Institute", "https://www.mei.edu/drones")
TOI = Source("Cell arrested", "The Times of Israel", "https://www.timesofisrael.com/cell")

BRIEF = brief(
    date(2022, 7, 26), "backfire", title="Tom & Jerry <script>alert(1)</script>",
    url="https://example.org/brief",
    key_points=(
        KeyPoint("Turkey *never* criticized the strikes.", (GEO,)),
        KeyPoint("Eight suspects were [arrested](https://www.dailysabah.com/arrests).", (TOI, GEO)),
    ),
    authors=(Author("Ali Bakir", "Teaches at Qatar University."), Author("Omer Ozkizilcik", "Analyst in Ankara.")),
    related=(Related("Drones and Resets", url="https://example.org/drones"),),
)
LIBRARY = Library(
    Path("content"),
    briefs=(BRIEF,),
    timeline=(
        entry("2022-06-12", "Ring exposed", summary="Ankara exposed a ring. See [report](https://haaretz.example/x)."),
        entry("late 2022-06", "Taeb dismissed", actors=("IRGC", "Hossein Taeb"), sources=(TOI,)),
    ),
)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(TEMPLATES, SITE)


def issue_of(library: Library = LIBRARY, **changes: object) -> Issue:
    digest = replace(DIGEST, **changes)  # type: ignore[arg-type]
    return compose(library, digest, moment(date(2022, 7, 26), digest))


def test_html_is_a_600px_table_email_with_the_meta_mail_clients_need(renderer: Renderer) -> None:
    html = renderer.render(issue_of()).html
    assert html.startswith("<!doctype html>")
    doc = lxml_html.document_fromstring(html)
    assert (doc.get("lang"), doc.get("dir")) == ("en", "ltr")
    metas = {m.get("name"): m.get("content") for m in doc.iter("meta") if m.get("name")}
    assert metas["color-scheme"] == "light dark"
    assert metas["supported-color-schemes"] == "light dark"
    assert "width=device-width" in metas["viewport"]
    assert doc.xpath("//meta[@charset='utf-8']")
    container = doc.xpath("//table[contains(@class, 'container')]")[0]
    assert container.get("width") == "600" and "max-width:600px" in container.get("style").replace(" ", "")
    assert all(t.get("role") == "presentation" for t in doc.iter("table"))
    for tag in ("script", "form", "iframe", "link", "img"):
        assert not list(doc.iter(tag)), tag


def test_the_preheader_is_hidden_and_comes_right_after_body(renderer: Renderer) -> None:
    doc = lxml_html.document_fromstring(renderer.render(issue_of()).html)
    first = doc.body[0]
    assert "preheader" in first.get("class")
    assert "display:none" in first.get("style").replace(" ", "")
    assert first.text_content().startswith("Dek.")


def test_css_is_inlined_once_and_the_dark_and_mobile_rules_survive(
    renderer: Renderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    inline = render_module.inline_css
    monkeypatch.setattr(render_module, "inline_css", lambda html: calls.append(1) or inline(html))
    html = renderer.render(issue_of()).html
    assert len(calls) == 1
    doc = lxml_html.document_fromstring(html)
    card = doc.xpath("//td[contains(@class, 'card')]")[0]
    assert "background-color:#fff" in card.get("style").replace(" ", "")
    styles = " ".join(s.text_content() for s in doc.iter("style"))
    assert "@media (prefers-color-scheme: dark)" in styles
    assert "@media screen and (max-width: 620px)" in styles
    assert "!important" in styles
    for heading in doc.xpath("//h1 | //h2 | //h3"):  # each names its font: clients restyle headings
        assert "font-family:" in heading.get("style", ""), heading.text_content()
    assert "Times New Roman" in doc.xpath("//h1")[0].get("style")  # the stylesheet is not escaped: quotes work


def test_text_is_escaped_and_markdown_is_rendered_then_sanitized(renderer: Renderer) -> None:
    html = renderer.render(issue_of()).html
    assert "<script>alert(1)</script>" not in html
    assert "Tom &amp; Jerry &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Turkey <em>never</em> criticized" in html
    assert '<a href="https://www.dailysabah.com/arrests" rel="noopener noreferrer"' in html


def test_every_source_is_a_link_beside_its_claim(renderer: Renderer) -> None:
    doc = lxml_html.document_fromstring(renderer.render(issue_of()).html)
    points = doc.xpath("//td[contains(@class, 'point') and not(contains(@class, 'point-number'))]")
    assert [p.text_content().split("(")[0].strip() for p in points] == [
        "Turkey never criticized the strikes.", "Eight suspects were arrested."
    ]
    links = [[a.get("href") for a in p.xpath(".//span[contains(@class, 'sources')]//a")] for p in points]
    assert links == [[GEO.url], [TOI.url, GEO.url]]
    entries = doc.xpath("//td[contains(@class, 'entry')]")
    assert [e.xpath(".//p[contains(@class, 'sources')]//a/@href") for e in entries] == [[TOI.url], [SOURCE.url]]


def test_authors_related_briefs_and_the_footer_are_there(renderer: Renderer) -> None:
    html = renderer.render(issue_of()).html
    doc = lxml_html.document_fromstring(html)
    authors = [p.text_content() for p in doc.xpath("//p[contains(@class, 'author')]")]
    assert authors == ["Ali Bakir \u2014 Teaches at Qatar University.", "Omer Ozkizilcik \u2014 Analyst in Ankara."]
    assert "By Ali Bakir and Omer Ozkizilcik" in doc.text_content()
    assert doc.xpath("//p[contains(@class, 'related')]/a/@href") == ["https://example.org/drones"]
    footer = doc.xpath("//td[contains(@class, 'footer')]")[0]
    assert footer.xpath(".//a/@href") == [PREFERENCES_URL, UNSUBSCRIBE_URL, f"{SITE.base_url}/issues/weekly-2022-W30"]


def test_entries_show_their_date_at_its_precision(renderer: Renderer) -> None:
    doc = lxml_html.document_fromstring(renderer.render(issue_of()).html)
    dates = [t.text_content() for t in doc.xpath("//p[contains(@class, 'entry-date')]/time")]
    assert dates == ["Late June 2022", "12 June 2022"]


def test_a_right_to_left_digest_renders_rtl(renderer: Renderer) -> None:
    arabic = Library(
        Path("content"),
        briefs=(brief(date(2022, 7, 26), "ar", title="\u0645\u0648\u062c\u0632", language="ar"),),
        timeline=(entry("late 2022-06", "\u0625\u0642\u0627\u0644\u0629 \u0637\u0627\u0626\u0628", language="ar"),),
    )
    rendered = renderer.render(issue_of(arabic, language="ar"))
    doc = lxml_html.document_fromstring(rendered.html)
    assert (doc.get("lang"), doc.get("dir")) == ("ar", "rtl")
    assert doc.xpath("//table[contains(@class, 'container')]/@dir") == ["rtl"]
    assert set(doc.xpath("//td[contains(@class, 'card')]/@align")) == {"right"}
    assert "\u0623\u0648\u0627\u062e\u0631 \u064a\u0648\u0646\u064a\u0648 2022" in doc.text_content()  # late June


def test_plaintext_is_wrapped_and_lists_numbered_links_at_the_end(renderer: Renderer) -> None:
    text = renderer.render(issue_of()).text
    body, _, links = text.partition("\nLINKS\n-----\n\n")
    numbered = dict(re.findall(r"^\[(\d+)\] (\S+)$", links, flags=re.M))
    assert numbered["1"] == "https://example.org/brief"
    for url in (GEO.url, TOI.url, "https://www.dailysabah.com/arrests", "https://haaretz.example/x"):
        number = next(n for n, u in numbered.items() if u == url)
        assert f"[{number}]" in body
    assert "Turkey never criticized the strikes. (Middle East Institute [2])" in body
    assert all(len(line) <= 72 for line in text.splitlines() if not line.startswith(("[", "%%")))
    assert UNSUBSCRIBE_URL in body
    assert "By Ali Bakir and Omer Ozkizilcik" in body
    assert "<em>" not in text and "*never*" not in text and "Turkey never criticized" in text


def test_the_subject_follows_the_digest_pattern(renderer: Renderer) -> None:
    rendered = renderer.render(issue_of(subject="{title} {period}: {brief} ({entries} entries, {date})"))
    assert rendered.subject == "[TLP:CLEAR] Weekly 2022-W30: Tom & Jerry <script>alert(1)</script> (2 entries, 26 July 2022)"


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    return Path(shutil.copytree(TEMPLATES, tmp_path / "templates"))


def edit(path: Path, old: str, new: str) -> int:
    text = path.read_text(encoding="utf-8")
    assert old in text
    text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    return next(n for n, line in enumerate(text.splitlines(), 1) if new in line)


def test_a_missing_template_variable_names_the_template_line(templates: Path) -> None:
    line = edit(templates / "mail.html", "{{ digest.title }}</h1>", "{{ digest.titel }}</h1>")
    with pytest.raises(TemplateError) as raised:
        Renderer(templates, SITE).render(issue_of())
    assert (raised.value.file.name, raised.value.line, raised.value.field) == ("mail.html", line, "template")
    assert "has no attribute 'titel'" in raised.value.message


def test_a_template_syntax_error_names_the_template_line(templates: Path) -> None:
    line = edit(templates / "digest.txt", "{% if brief %}", "{% if brief %}{% endfor %}")
    with pytest.raises(TemplateError) as raised:
        Renderer(templates, SITE)
    assert (raised.value.file.name, raised.value.line) == ("digest.txt", line)
