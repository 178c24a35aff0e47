"""issues.preview() (`newsletter build`): the seed digest at a fixed moment, golden, and byte-identical between builds."""

from __future__ import annotations

import email
import email.policy
import random
from datetime import date
from pathlib import Path

from lxml import html as lxml_html

from newsletter.inputs.config import load_config
from newsletter.usecases.build import Project, preview as write_preview
from newsletter.compose.digest import compose, moment

from .conftest import Run

# The seed digest as of 30 July 2022: the newest eight timeline entries (entries known only to
# the month count as late as the month's last day, capped at the as-of day), shown as a reader
# reads them: by month, newest first, by the middle of each entry's span, and entries known only
# to the month at the end of it.
EXPECTED_MONTHS = ["July 2022", "June 2022"]
EXPECTED_ENTRIES = [
    "Israel downs three Hezbollah drones over the Karish gas field",  # 2022-07-02
    "Hossein Taeb removed as IRGC intelligence chief",  # late 2022-06
    "Lapid visits Ankara and praises security cooperation",  # 2022-06-23
    "Bennett thanks Turkey for helping thwart attacks",  # 2022-06-20
    "Iran's foreign ministry calls the charges baseless",  # mid 2022-06
    "Herzog and Lapid thank Ankara",  # 2022-06
    "Iran sponsors a joint YPG-militia operations room in northern Syria",  # 2022-06
    "Turkish police and MIT arrest eight over a plot against Israel's ex-consul in Istanbul",  # 2022-06
]


def build_seed(project: Path, out: Path, copy: str = "") -> dict[str, bytes]:
    """The files `build` writes for the seed digest: the CLEAR copy's, or those of `copy`
    (`tlp-amber`, the seed's highest: every key point and entry)."""
    loaded = Project.of(load_config(project / "config.yaml"))
    digest = loaded.config.digest("weekly")
    preview = write_preview(loaded, digest, moment(date(2022, 7, 30), digest), out)
    assert preview.issue.id == "weekly-2022-W30"
    folder = out / "weekly-2022-W30" / copy
    return {written.path.name: written.path.read_bytes() for written in preview.files if written.path.parent == folder}


def test_the_seed_digest_has_every_key_point_and_the_latest_entries_in_order(project: Path) -> None:
    files = build_seed(project, project / "out", "tlp-amber")
    library = Project.of(load_config(project / "config.yaml")).library
    brief = library.briefs[-1]
    doc = lxml_html.document_fromstring(files["digest.html"].decode())
    points = [  # each after its TLP label
        " ".join(td.text_content().split()).split(" ", 1)[1]
        for td in doc.xpath("//td[contains(@class, 'point') and not(contains(@class, 'point-number'))]")
    ]
    assert len(points) == len(brief.key_points) >= 6
    for point, key_point in zip(points, brief.key_points, strict=True):
        assert point.startswith(key_point.text.replace("*", ""))
        for source in key_point.sources:
            assert source.publisher in point
    titles = [p.text_content() for p in doc.xpath("//p[contains(@class, 'entry-title')]")]
    assert titles == EXPECTED_ENTRIES
    assert [h.text_content() for h in doc.xpath("//h3[contains(@class, 'month-title')]")] == EXPECTED_MONTHS
    marked = [" ".join(p.text_content().split()) for p in doc.xpath("//p[contains(@class, 'entry-date')]")]
    assert marked[1:3] == ["TLP:CLEAR Late June 2022 \u00b7 date approximate", "TLP:CLEAR 23 June 2022"]
    text = files["digest.txt"].decode()
    timeline = " ".join(text[text.index("LATEST ON THE TIMELINE"):].split())
    positions = [timeline.index(" ".join(title.split()[:4])) for title in EXPECTED_ENTRIES]
    assert positions == sorted(positions)
    assert "Hassan Sayad Khodai is assassinated" not in text  # ninth newest: beyond `entries: 8`


def test_two_builds_are_byte_identical(project: Path, tmp_path: Path) -> None:
    first = build_seed(project, tmp_path / "one")
    second = build_seed(project, tmp_path / "two")
    assert first == second
    assert sorted(first) == ["digest.eml", "digest.html", "digest.stix.json", "digest.txt"]


def test_the_sample_eml_is_addressed_to_the_sample_subscriber(project: Path) -> None:
    raw = build_seed(project, project / "out")["digest.eml"]
    assert b"\r\n." not in raw  # the inlined HTML has CSS lines starting with a dot: encoded =2E
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["To"] == "Sample Reader <reader@example.org>"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Message-ID"].endswith("@threat-digest.example.org>")
    plain, html = (part.get_content() for part in message.iter_parts())
    assert 'href="https://threat-digest.example.org/u/preview"' in html
    assert "https://threat-digest.example.org/u/preview" in plain


def test_an_arabic_digest_builds_right_to_left(rtl_project: Path, run: Run) -> None:
    assert run("check").exit_code == 0
    result = run("build", "--as-of", "2022-07-30")
    assert result.exit_code == 0, result.output
    html = (rtl_project / "out" / "arabic-2022-W30" / "digest.html").read_text(encoding="utf-8")
    doc = lxml_html.document_fromstring(html)
    assert (doc.get("lang"), doc.get("dir")) == ("ar", "rtl")
    assert "\u0627\u0644\u0646\u0642\u0627\u0637 \u0627\u0644\u0631\u0626\u064a\u0633\u064a\u0629" in html  # key points
    text = (rtl_project / "out" / "arabic-2022-W30" / "digest.txt").read_text(encoding="utf-8")
    assert "\u060c " in text or "\u061b " in text  # Arabic comma or semicolon between items


def test_the_issue_id_stays_whole_in_every_right_to_left_place(rtl_project: Path, run: Run) -> None:
    assert run("build", "--as-of", "2022-07-30").exit_code == 0
    folder = rtl_project / "out" / "arabic-2022-W30"
    doc = lxml_html.document_fromstring((folder / "digest.html").read_text(encoding="utf-8"))
    (kicker,) = doc.xpath("//p[contains(@class, 'kicker')]")
    assert [(s.get("dir"), s.text) for s in kicker.xpath("./span")] == [("ltr", "2022-W30")]
    assert "rtl" in doc.xpath("//h1")[0].get("class")  # a font with Arabic glyphs, not Georgia
    assert "Tahoma" in doc.xpath("//h1")[0].get("style")
    text = (folder / "digest.txt").read_text(encoding="utf-8")
    assert "\u20662022-W30\u2069" in text  # isolated where there is no markup: LRI ... PDI
    message = email.message_from_bytes((folder / "digest.eml").read_bytes(), policy=email.policy.default)
    assert "\u20662022-W30\u2069" in message["Subject"]


def test_view_in_browser_comes_first_and_the_footer_has_the_readers_links(project: Path) -> None:
    config = project / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        "  postal_address: Threat Digest, 100 Example Street, 06000 Ankara, Türkiye\n",
        "  postal_address: Threat Digest, PO Box 12, 1000 Brussels\n"))
    files = build_seed(project, project / "out")
    doc = lxml_html.document_fromstring(files["digest.html"].decode())
    links = doc.xpath("//body//a")
    assert (links[0].text_content(), links[0].get("href")) == (
        "View in your browser", "https://threat-digest.example.org/issues/weekly-2022-W30")
    (footer,) = doc.xpath("//td[contains(@class, 'footer')]")
    assert [a.text_content() for a in footer.xpath(".//a")] == ["Your preferences", "Unsubscribe", "Read this issue online"]
    assert footer.xpath(".//a/@href")[:2] == [
        "https://threat-digest.example.org/p/preview", "https://threat-digest.example.org/u/preview"]
    assert "Threat Digest, PO Box 12, 1000 Brussels" in footer.text_content()
    text = files["digest.txt"].decode()
    assert text.startswith("TLP:CLEAR: Recipients may share this freely: it is public.\n"
                           "3 items above your clearance were withheld.\n\n"
                           "View in your browser: https://threat-digest.example.org/issues/weekly-2022-W30\n")
    assert "Threat Digest, PO Box 12, 1000 Brussels" in text[text.index("\n--\n"):]


def years_of_entries(project: Path, count: int) -> None:
    """`count` more timeline entries over three files, dated to the day, the month or the year
    (so many share a date), as a team that keeps a timeline for years would have them; one file
    writes its tags in a layout the skim leaves to the parser."""
    rng = random.Random(17)
    files: dict[int, list[str]] = {}
    for n in range(count):
        year, month, day = 2020 + n % 3, 1 + rng.randrange(12), 1 + rng.randrange(28)
        when = rng.choice((f"{year}-{month:02d}-{day:02d}", f"{year}-{month:02d}", f"late {year}-{month:02d}", f"{year}"))
        tags = rng.choice(("[iran]", "[turkey, israel]", "[energy]"))
        if year == 2021:  # a list written as a block: this file is left to the parser, the others skimmed
            tags = "\n    - " + tags.strip("[]").replace(", ", "\n    - ")
        language = rng.choice(("en", "en", "en", "ar"))
        files.setdefault(year, []).append(
            f'- date: "{when}"\n  title: Entry {n * 7919 % count:04d}\n  summary: Entry number {n}.\n  tags: {tags}\n'
            f"  language: {language}\n  sources:\n    - title: Report {n}\n      publisher: Outlet\n"
            f"      url: https://outlet.example/{n}\n"
        )
    for year, entries in files.items():
        (project / "content" / "timeline" / f"{year}.yaml").write_text("".join(entries), encoding="utf-8")


def test_a_build_reads_in_full_only_what_its_issue_may_show_and_builds_the_same_bytes(project: Path) -> None:
    years_of_entries(project, 600)
    config = load_config(project / "config.yaml")
    digest = config.digest("weekly")
    whole = Project.of(config)
    days = [date(2020, 3, 1), date(2021, 6, 30), date(2022, 7, 30), date(2023, 1, 1)]
    for day in days:
        when = moment(day, digest)
        shortlisted = Project.for_issues(config, [(digest, when)])
        issue = compose(whole.library, digest, when)
        assert compose(shortlisted.library, digest, when) == issue
        assert set(shortlisted.library.timeline) == set(issue.entries)  # of 620 entries, those 8
    when = moment(days[2], digest)
    one = write_preview(whole, digest, when, project / "one")
    two = write_preview(Project.for_issues(config, [(digest, when)]), digest, when, project / "two")
    assert [f.path.read_bytes() for f in one.files] == [f.path.read_bytes() for f in two.files]


def test_build_leaves_out_a_broken_entry_its_issue_does_not_show_and_check_reports_it(project: Path, run: Run) -> None:
    old = (
        '- date: "2001"\n  title: An old entry\n  summary: Written with <b>raw HTML</b>.\n  tags: [iran]\n'
        "  sources:\n    - title: T\n      publisher: P\n      url: https://example.org/old\n"
    )
    (project / "content" / "timeline" / "old.yaml").write_text(old, encoding="utf-8")
    assert run("build", "--as-of", "2022-07-30").exit_code == 0
    result = run("check", "--as-of", "2022-07-30")
    assert result.exit_code == 2
    assert "content/timeline/old.yaml:3: [0].summary: raw HTML is not allowed in Markdown: <b>" in result.stdout

    result = run("build", "--as-of", "2001-12-31")  # the entry is the issue's newest: it is read, and refused
    assert result.exit_code == 2
    assert "content/timeline/old.yaml:3: [0].summary: raw HTML is not allowed in Markdown: <b>" in result.stderr
