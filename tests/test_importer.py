"""Importing an article: the seed (when it is here), the articles in tests/data/importer/, over
loopback HTTP too, and the drafts they make, each of which must load with no problems."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import date
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from newsletter.intake import drafts
from newsletter.intake.article import NO_BIO, article_of, read_document, split_sentences
from newsletter.inputs.content import Brief, read_brief
from newsletter.errors import ContentError, NewsletterError
from newsletter.intake.importer import ImportResult, extract_events, import_article
from newsletter.inputs.yamlsource import Problems
from .ports import free_port

DATA = Path(__file__).resolve().parent / "data"
ARTICLES = DATA / "importer"
TODAY = date(2024, 1, 15)
PUBLISHED = date(2022, 7, 26)  # a Tuesday


def drafted(result: ImportResult, content: Path) -> list[tuple[str, list[str]]]:
    """Each timeline draft written, as (date, source urls), once it is shown to load cleanly."""
    found = []
    for path in result.entries:
        draft = drafts.read_draft(path, content)
        assert draft.problems == ()
        found.append((draft.date, [source["url"] for source in draft.data["sources"]]))
    return found


def brief_of(result: ImportResult) -> Brief:
    problems = Problems(ContentError)
    brief = read_brief(result.brief, problems)
    assert [str(p) for p in problems.items] == []
    assert brief is not None
    return brief


# --- the seed article, against the events listed by hand ---------------------------------------


def test_every_event_listed_by_hand_in_the_seed_is_found_with_its_date_and_links(seed: Path) -> None:
    listed = yaml.safe_load((DATA / "seed_events.yaml").read_text(encoding="utf-8"))
    article = article_of(read_document(seed.read_text(encoding="utf-8"), "markdown"))
    assert article.published == PUBLISHED
    events = extract_events(split_sentences(article.body), PUBLISHED)
    found = [(e.date, sorted(drafts.normalize_url(k.url) for k in e.links)) for e in events]
    for item in listed:
        assert (item["date"], sorted(drafts.normalize_url(u) for u in item["url"])) in found, item["what"]
    assert len(found) == len(listed)


def test_importing_the_seed_into_the_shipped_project_skips_the_events_its_timeline_has(project: Path, seed: Path) -> None:
    result = import_article(str(seed), project / "content", project, TODAY)
    assert result.entries == ()
    assert sum("already published or drafted" in line for line in result.skipped) == 11
    assert [line for line in result.skipped if "no link supports it" in line] == [
        "2022-06 Israel launched a major airstrike attack that crippled Syria's main airport: "
        "no link supports it (import the article from its URL to cite it)"
    ]
    brief = brief_of(result)
    assert result.brief.name == "2022-07-26-irans-efforts-to-undermine-the-turkish-israeli-rapprochement.md"
    assert (brief.date, [a.name for a in brief.authors]) == (PUBLISHED, ["Ali Bakir", "Ömer Özkizilcik"])
    assert 5 <= result.key_points == len(brief.key_points) <= 8
    assert all(point.sources for point in brief.key_points)


# --- articles of our own: Markdown, relative dates, HTML ----------------------------------------


def test_an_article_without_dates_gives_a_brief_with_key_points_and_no_entries(project: Path) -> None:
    result = import_article("no_dates.md", project / "content", ARTICLES, TODAY)
    assert (result.entries, result.skipped) == ((), ())
    brief = brief_of(result)
    assert result.brief.name == "2023-04-18-why-cheap-drones-keep-changing-the-math-of-air-defense.md"
    assert brief.title == "Why Cheap Drones Keep Changing the Math of Air Defense"
    assert brief.dek == "Cheap one-way attack drones have turned air defense into a contest of costs that defenders are losing."
    assert [(a.name, a.bio) for a in brief.authors] == [("Priya Raman", NO_BIO)]
    assert brief.url == "https://www.defense-review.example/analysis/cheap-drones-air-defense-math"
    assert result.key_points == len(brief.key_points) == 5
    first = brief.key_points[0]
    assert first.text.startswith("A single interceptor missile can cost a hundred times more")
    assert [s.url for s in first.sources] == ["https://www.defense-review.example/studies/interceptor-cost-per-kill"]


def test_relative_dates_count_from_the_publication_date_or_from_the_event_told_before(project: Path) -> None:
    result = import_article("relative_dates.md", project / "content", ARTICLES, TODAY)
    assert drafted(result, project / "content") == [
        ("2023-02", ["https://ports.example.ae/statements/vessel-struck-off-fujairah"]),  # "Last month"
        ("2023-02-20", ["https://www.shipping-ledger.example/incidents/near-miss-at-the-fujairah-anchorage"]),
        ("2023-02-22", ["https://coastguard.example.ae/news/patrols-expanded-around-the-anchorage"]),  # "Two days later"
        ("2023-02-23", ["https://www.operator.example/press/fleet-withdrawn-from-the-anchorage"]),  # "The next day"
        ("2022-05", ["https://www.maritime-watch.example/reports/tankers-damaged-near-hormuz"]),  # "last May"
        ("late 2022-05", ["https://www.navy-desk.example/joint-radar-picture-agreement"]),  # "In late May"
        ("2021", ["https://www.navy-desk.example/radar-sharing-arrangement-collapses"]),
    ]
    brief = brief_of(result)
    assert [a.name for a in brief.authors] == ["Dana Whitfield", "Karim Haddad"]
    assert brief.date == date(2023, 3, 14)
    entry = drafts.read_draft(result.entries[2], project / "content").data
    assert entry["title"] == "The coast guard announced extra patrols around the waiting area"
    assert entry["summary"].startswith(
        "Two days later, the coast guard [announced](https://coastguard.example.ae/news/patrols-expanded-around-the-anchorage)"
    )
    assert entry["tags"] == ["imported"]


def test_an_html_article_keeps_to_its_own_text_and_cites_itself_where_it_links_nothing(project: Path) -> None:
    result = import_article("article.html", project / "content", ARTICLES, TODAY)
    canonical = "https://www.security-news.example/analysis/militia-drones-strike-two-bases"
    # Nothing from the menu, the related-articles box or the footer, which have dates of their own.
    assert drafted(result, project / "content") == [
        ("2023-08-28", ["https://www.security-news.example/reports/logistics-base-struck-near-erbil"]),
        ("2023-09-04", ["https://www.wire-service.example/world/second-base-attacked-near-erbil"]),  # "A week later"
        ("early 2023-08", ["https://www.militia-monitor.example/statements/threat-to-widen-campaign"]),
        ("2019", [canonical]),
    ]
    brief = brief_of(result)
    assert (brief.title, brief.date, brief.url, brief.language) == (
        "Militia Drones Strike Two Bases in Northern Iraq", date(2023, 9, 5), canonical, "en",
    )
    assert brief.dek == "A militia has twice hit logistics bases near Erbil with drones, and the attacks show a widening campaign."
    assert [a.name for a in brief.authors] == ["Lena Ortiz"]
    assert result.key_points == 5


# --- from a URL, and what goes wrong --------------------------------------------------------------


class Site:
    """tests/data/importer/ served over loopback HTTP; it remembers each request's User-Agent."""

    def __init__(self, folder: Path) -> None:
        self.agents: list[str] = []
        site = self

        class Handler(SimpleHTTPRequestHandler):
            extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".md": "text/markdown"}

            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                site.agents.append(self.headers.get("User-Agent", ""))
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    folder = tmp_path / "site"
    shutil.copytree(ARTICLES, folder)
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    served = Site(folder)
    thread = threading.Thread(target=served.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()


@pytest.fixture
def closed_port() -> int:
    return free_port()  # free a moment ago, and nothing listens on it


def test_an_article_from_a_url_is_fetched_with_our_user_agent_and_cited_by_its_address(project: Path, site: Site) -> None:
    url = f"{site.url}/relative_dates.md"
    result = import_article(url, project / "content", project, TODAY, timeout=5)
    assert site.agents == ["threat-brief-newsletter/0.1 (newsletter import)"]
    assert [day for day, _ in drafted(result, project / "content")] == [
        "2023-02", "2023-02-20", "2023-02-22", "2023-02-23", "2022-05", "late 2022-05", "2021",
    ]
    assert brief_of(result).url == url
    assert drafts.read_draft(result.entries[0], project / "content").origin == f"import {url}"


NO_LINKS = "# Quiet Week\n\nNothing at all happened on the border this week, and the patrols came home early.\n"

BAD_SOURCES = [
    pytest.param("missing.md", "cannot import missing.md: no such file", id="missing file"),
    pytest.param("menu.html", "cannot import menu.html: nothing readable (no paragraphs of prose)", id="no prose"),
    pytest.param(
        "logo.png", "cannot import logo.png: not an article (HTML, Markdown or text) but binary data", id="binary file",
    ),
    pytest.param("data.json", "cannot import data.json: not an article (HTML, Markdown or text) but JSON", id="json"),
    pytest.param(
        "quiet.md",
        "cannot import quiet.md: it links to no source and has no address of its own to cite; import it from its URL, or give the address a saved file came from with --url URL",
        id="nothing to cite",
    ),
    pytest.param(
        "{site}/gone.html", "cannot import {site}/gone.html: the server answered 404 File not found", id="404",
    ),
    pytest.param(
        "{site}/logo.png", "cannot import {site}/logo.png: not an article (HTML, Markdown or text) but image/png",
        id="image url",
    ),
    pytest.param(
        "http://127.0.0.1:{closed}/article.html",
        "cannot import http://127.0.0.1:{closed}/article.html: unreachable (Connection refused)", id="unreachable",
    ),
]


@pytest.mark.parametrize(("source", "message"), BAD_SOURCES)
def test_a_source_that_is_not_an_article_gives_one_clear_line(
    project: Path, site: Site, closed_port: int, source: str, message: str,
) -> None:
    shutil.copy(ARTICLES / "menu_only.html", project / "menu.html")
    (project / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (project / "data.json").write_text('{"title": "not prose"}', encoding="utf-8")
    (project / "quiet.md").write_text(NO_LINKS, encoding="utf-8")
    with pytest.raises(NewsletterError) as caught:
        import_article(source.format(site=site.url, closed=closed_port), project / "content", project, TODAY, timeout=5)
    assert str(caught.value) == message.format(site=site.url, closed=closed_port)
    assert list((project / "content").glob("*/drafts/*")) == []


def test_importing_the_same_article_twice_drafts_each_event_once(project: Path) -> None:
    content = project / "content"
    first = import_article("relative_dates.md", content, ARTICLES, TODAY)
    again = import_article("relative_dates.md", content, ARTICLES, TODAY)
    assert (len(first.entries), again.entries) == (7, ())
    assert again.skipped[0] == (
        "2023-02 A bulk carrier was struck by a small drone while it waited at anchor off Fujairah: already "
        "published or drafted (https://ports.example.ae/statements/vessel-struck-off-fujairah)"
    )
    assert len(again.skipped) == 7
    assert again.brief == first.brief
    assert len(drafts.entry_drafts(content)) == 7


# --- events, as examples ---------------------------------------------------------------------------


def events_in(markdown: str) -> list[tuple[str, list[str]]]:
    article = article_of(read_document(markdown, "markdown"))
    return [(e.date, [k.url for k in e.links]) for e in extract_events(split_sentences(article.body), PUBLISHED)]


def test_a_sentence_that_goes_on_about_the_event_lends_it_its_links() -> None:
    assert events_in(
        "On June 23, the foreign minister visited Ankara for the first time in years. During the visit, "
        "he [signed an aviation agreement](https://news.example/aviation-deal) with his host.\n"
    ) == [("2022-06-23", ["https://news.example/aviation-deal"])]
    assert events_in(
        "On June 23, the foreign minister visited Ankara for the first time in years. Separately, "
        "rebels [claimed an attack](https://news.example/rebel-claim) on a pipeline far to the east.\n"
    ) == [("2022-06-23", [])]


def test_a_dateline_says_where_the_story_was_filed_and_is_no_event() -> None:
    assert events_in(
        "ANKARA, July 21 (Reuters) - Police [detained 15 people](https://news.example/detentions) on Wednesday "
        "on suspicion of spying for a foreign service.\n"
    ) == [("2022-07-20", ["https://news.example/detentions"])]
