"""Reading an article: the seed's title, byline, date and bios (when the seed is here), and the
link forms of scraped copies made Markdown links."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.intake.article import article_of, read_document, repair_links


def test_the_seed_is_read_with_its_title_byline_date_and_the_authors_own_bios(seed: Path) -> None:
    article = article_of(read_document(seed.read_text(encoding="utf-8"), "markdown"))
    assert article.title == "Iran's Efforts to Undermine the Turkish-Israeli Rapprochement Are Backfiring"
    assert article.dek == "Iran's efforts to target Israeli citizens on Turkish soil has brought Turkey and Israel closer together."
    assert [a.name for a in article.authors] == ["Ali Bakir", "Ömer Özkizilcik"]
    assert article.authors[1].bio == "Ömer Özkizilcik is an independent foreign policy and security analyst based in Ankara."
    assert not any("RECOMMENDED" in p.text or "Jul 25, 2022" in p.text for p in article.body)


@pytest.mark.parametrize(("scraped", "markdown"), [
    (r"Israel [conducted \(https://a.example/strikes\)](https://a.example/strikes) raids",
     "Israel [conducted](https://a.example/strikes) raids"),
    ("was **framed (<https://a.example/framed>)** as personal", "was [framed](https://a.example/framed) as personal"),
    ("Turkey **uncovered** (<https://a.example/cells>) that", "Turkey [uncovered](https://a.example/cells) that"),
    ("Turkey uncovered (<https://a.example/cells>) that", "Turkey [uncovered](https://a.example/cells) that"),
    (r"Ankara [exposed \(https://a.example/plot/0181-](https://a.example/plot/0181-)" "\n\ndce7) a ring",
     "Ankara [exposed](https://a.example/plot/0181-dce7) a ring"),
    (r"had [promised \(https://a.example/%D8-](https://a.example/%D8-)" "\n\n[%D9-](#)\n\n" r"[%DA\)](#) earlier",
     "had [promised](https://a.example/%D8-%D9-%DA) earlier"),
])
def test_scraped_link_forms_become_markdown_links(scraped: str, markdown: str) -> None:
    assert repair_links(scraped) == markdown
