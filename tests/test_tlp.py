"""TLP 2.0 end to end: markings in content, readers' clearance, one copy per tier, and nothing
above a reader's clearance in the bytes they get, nor on the public pages."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import feedparser
import pytest
from starlette.testclient import TestClient

from newsletter.compose.digest import moment
from newsletter.faces.web import create_app
from newsletter.inputs.config import load_config
from newsletter.inputs.marking import TLP_LEVELS, likelihood_with_confidence
from newsletter.usecases import issues
from newsletter.usecases.build import Project

from .conftest import Run, store_of
from .smtp_server import MakeServer, SmtpServer

KEY = "k" * 40
# Text that only cleared readers may see, from the seed content (in our own words there).
AMBER_TEXT = "criminal intermediaries"  # the analysts' assessment, a TLP:AMBER key point
GREEN_TEXTS = (  # unattributed reports in the timeline, TLP:GREEN
    "Iran sponsors a joint YPG-militia operations room",
    "Turkish police and MIT arrest eight",
)
CLEAR_TEXT = "Israel downs three Hezbollah drones over the Karish gas field"
READERS = {"clear": "clara@example.org", "green": "greta@example.org", "amber": "amber@example.org"}


@pytest.fixture
def cleared(project: Path, monkeypatch: pytest.MonkeyPatch, run: Run) -> Path:
    """The shipped project with a signing key and one reader per tier the seed content has."""
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    for level, address in READERS.items():
        assert run("subscribers", "add", address, "--name", level.title(), "--clearance", level).exit_code == 0
    return project


def parts(raw: bytes) -> tuple[EmailMessage, str, str]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    plain, html = (part.get_content().replace("\r\n", "\n") for part in message.iter_parts())
    return message, plain, html


def by_reader(server: SmtpServer) -> dict[str, bytes]:
    return {received.recipient: received.data for received in server.messages()}


def test_each_reader_gets_nothing_above_their_clearance(cleared: Path, run: Run, smtp_server: SmtpServer) -> None:
    result = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert result.exit_code == 0, result.output
    got = by_reader(smtp_server)
    assert sorted(got) == sorted(READERS.values())
    for level, address in READERS.items():
        raw = got[address]
        message, plain, html = parts(raw)
        preheader = html.split('class="preheader"', 1)[1].split("</div>", 1)[0]
        every_place = (message["Subject"], plain, html, preheader, raw.decode("ascii"))
        visible = {"clear": (), "green": GREEN_TEXTS, "amber": (*GREEN_TEXTS, AMBER_TEXT)}[level]
        hidden = [text for text in (*GREEN_TEXTS, AMBER_TEXT) if text not in visible]
        for text in hidden:
            assert not any(text in place for place in every_place), (level, text)
        for text in (CLEAR_TEXT, *visible):
            assert text in " ".join(plain.split()) and text in " ".join(html.split()), (level, text)
    clear_plain = parts(got[READERS["clear"]])[1]
    assert "3 items above your clearance were withheld." in clear_plain  # and nothing else about them
    assert "1 item above your clearance was withheld." in parts(got[READERS["green"]])[1]
    assert "withheld" not in parts(got[READERS["amber"]])[1]


def test_tlp_labels_stand_where_tlp_2_asks(cleared: Path, run: Run, smtp_server: SmtpServer) -> None:
    assert run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url).exit_code == 0
    got = by_reader(smtp_server)
    for level, address in READERS.items():
        message, plain, html = parts(got[address])
        label = f"TLP:{level.upper()}"
        assert message["Subject"].startswith(f"[{label}] Iran, Turkey and Israel Weekly 2022-W30")
        # A banner first and an end marker last, in both parts, each with the sharing rule.
        assert plain.startswith(f"{label}: Recipients may share this")
        assert f"End of {label} information." in plain[plain.index("LATEST ON THE TIMELINE"):plain.index("\n--\n")]
        banners = html.split('class="tlp-banner')
        assert len(banners) == 3 and "Recipients may share" in banners[1] and "End of" in banners[2]
        assert "background-color:#000;" in banners[1].replace(" ", "")
    amber_plain, amber_html = parts(got[READERS["amber"]])[1:]
    # In a copy that mixes levels, each item carries its own label, in FIRST's colours on black.
    assert "[TLP:AMBER] Our assessment" in " ".join(amber_plain.split())
    assert "[TLP:GREEN] June 2022 (date approximate): Iran sponsors" in " ".join(amber_plain.split())
    assert "[TLP:CLEAR] 2 July 2022: Israel downs" in " ".join(amber_plain.split())
    assert amber_html.count(">TLP:GREEN</span>") == 2 and "color:#FFC000" in amber_html.replace(" ", "")
    assert "(moderate confidence)" in amber_plain and "Al-Monitor B4" in amber_plain  # ICD 203, Admiralty
    assert 'title="fairly reliable source; possibly true"' in amber_html


def test_three_tiers_render_three_times_not_once_per_reader(cleared: Path) -> None:
    store = store_of(cleared)
    for n in range(30):  # many readers per tier
        store.subscribers.add(f"extra{n}@example.org", "", ["weekly"], clearance=TLP_LEVELS[n % 3])
    config = load_config(cleared / "config.yaml")
    project = Project.of(config)
    digest = config.digest("weekly")
    outcome = issues.send(config, lambda: project, store, digest, moment(date(2022, 7, 30), digest))
    assert outcome.report is not None and outcome.report.sent == 33
    assert project.renderer.renders == 3
    stored = outcome.opened.stored  # type: ignore[union-attr]
    assert [copy.tlp for copy in store.issues.copies(stored.id)] == ["green", "amber"]


def test_only_the_copies_readers_need_are_rendered(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    store = store_of(project)
    store.subscribers.add("clara@example.org", "", ["weekly"])
    config = load_config(project / "config.yaml")
    project_ = Project.of(config)
    digest = config.digest("weekly")
    issues.send(config, lambda: project_, store, digest, moment(date(2022, 7, 30), digest))
    assert project_.renderer.renders == 1  # CLEAR readers only: the CLEAR copy alone


def test_the_archive_and_the_feed_show_only_clear_items(cleared: Path, run: Run, smtp_server: SmtpServer) -> None:
    assert run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url).exit_code == 0
    with TestClient(create_app(load_config(cleared / "config.yaml"), "127.0.0.1")) as client:
        pages = [client.get(path).text for path in (
            "/", "/issues/", "/issues/weekly-2022-W30", "/issues/weekly-2022-W30/email", "/feed.xml?digest=weekly")]
    feed = feedparser.parse(pages[-1])
    pages.append(feed.entries[0].content[0].value)
    assert CLEAR_TEXT in " ".join(pages[3].split())
    for page in pages:
        flat = " ".join(page.split())
        assert "TLP:GREEN" not in flat and "TLP:AMBER" not in flat and "TLP:RED" not in flat
        for text in (*GREEN_TEXTS, AMBER_TEXT):
            assert text not in flat


def test_the_editor_preview_shows_each_tier(cleared: Path) -> None:
    with TestClient(create_app(load_config(cleared / "config.yaml"), "127.0.0.1"),
                    client=("127.0.0.1", 50000)) as client:
        page = client.get("/preview/weekly?as_of=2022-07-30").text
        assert "TLP:CLEAR" in page and "?view=html&amp;tlp=amber" in page
        clear = client.get("/preview/weekly/email?as_of=2022-07-30&tlp=clear").text
        amber = client.get("/preview/weekly/email?as_of=2022-07-30&tlp=amber").text
        red = client.get("/preview/weekly/email?as_of=2022-07-30&tlp=red").text
    assert AMBER_TEXT not in clear and AMBER_TEXT in amber and red == amber  # nothing is marked RED


def test_red_goes_only_to_its_reader_by_name_and_only_over_tls(
    cleared: Path, run: Run, make_smtp_server: MakeServer,
) -> None:
    timeline = cleared / "content" / "timeline" / "iran-turkey-israel.yaml"
    text = timeline.read_text(encoding="utf-8")
    timeline.write_text(text.replace(
        "  title: Israel downs three Hezbollah drones over the Karish gas field\n",
        "  title: Israel downs three Hezbollah drones over the Karish gas field\n  tlp: red\n"), encoding="utf-8")
    config_path = cleared / "config.yaml"
    config_path.write_text(config_path.read_text(encoding="utf-8").replace(
        "    max_tlp: amber\n", "    max_tlp: red\n", 1), encoding="utf-8")
    assert run("subscribers", "add", "rita@example.org", "--name", "Rita Red", "--clearance", "red").exit_code == 0

    plain_server = make_smtp_server()
    held = run("send", "--as-of", "2022-07-30", "--transport", plain_server.url)
    assert held.exit_code == 75, held.output
    assert "1 TLP:RED deliveries of weekly-2022-W30 wait: TLP:RED goes only over TLS" in held.stderr
    assert "rita@example.org" not in plain_server.recipients() and len(plain_server.recipients()) == 3
    for received in plain_server.messages():  # the RED entry reached nobody else
        assert "Israel downs three Hezbollah drones" not in " ".join(parts(received.data)[1].split())

    tls_server = make_smtp_server(tls="ssl")
    config = load_config(config_path).with_transport(tls_server.url)
    config = replace(config, delivery=replace(config.delivery, transport=replace(
        config.delivery.transport, cafile=tls_server.cafile)))
    stored = store_of(cleared).issues.by_name("weekly-2022-W30")
    assert stored is not None
    report = issues.deliver(config, store_of(cleared), stored)
    assert report.sent == 1 and report.remaining == 0
    (received,) = tls_server.messages()
    assert received.recipient == "rita@example.org" and received.tls
    message, plain, html = parts(received.data)
    assert message["Subject"].startswith("[TLP:RED] ")
    assert plain.startswith("TLP:RED: For Rita Red only: do not share it")
    assert "For Rita Red only" in html and "Israel downs three Hezbollah drones" in " ".join(plain.split())


def test_clearance_is_set_by_the_operator_only(cleared: Path, run: Run) -> None:
    shown = run("subscribers", "show", "amber@example.org")
    assert "cleared for TLP:AMBER" in shown.stdout.splitlines()[0]
    assert "clearance: cleared for TLP:AMBER" in shown.stdout
    exported = run("subscribers", "export").stdout.splitlines()
    assert exported[0] == "address,name,status,digests,clearance,created_at"
    assert any(line.startswith("greta@example.org,Green,active,weekly,green,") for line in exported)
    (cleared / "people.csv").write_text(
        "email,clearance\nnew@example.org,amber+strict\nbad@example.org,WHITE\nclara@example.org,\n", encoding="utf-8")
    imported = run("subscribers", "import", "people.csv")
    assert imported.exit_code == 2
    assert "people.csv:3: clearance: 'white' is TLP 1.0: TLP 2.0 calls it 'clear'" in imported.stderr
    store = store_of(cleared)
    assert store.subscribers.get("new@example.org").clearance == "amber+strict"  # type: ignore[union-attr]
    assert store.subscribers.get("clara@example.org").clearance == "clear"  # type: ignore[union-attr]
    # The web form subscribes at CLEAR whatever it is sent.
    with TestClient(create_app(load_config(cleared / "config.yaml"), "127.0.0.1")) as client:
        token = client.get("/").text.split('name="form_token" value="', 1)[1].split('"', 1)[0]
        client.post("/subscribe", data={"digest": "weekly", "email": "web@example.org", "clearance": "red",
                                        "form_token": token})
    assert store.subscribers.get("web@example.org").clearance == "clear"  # type: ignore[union-attr]


def test_status_counts_per_tier(cleared: Path, run: Run, smtp_server: SmtpServer) -> None:
    assert run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url).exit_code == 0
    lines = run("status").stdout.splitlines()
    assert "  TLP:CLEAR: sent 1" in lines and "  TLP:GREEN: sent 1" in lines and "  TLP:AMBER: sent 1" in lines


def test_build_writes_one_preview_per_tier(project: Path, run: Run) -> None:
    result = run("build", "--as-of", "2022-07-30")
    assert result.exit_code == 0, result.output
    folder = project / "out" / "weekly-2022-W30"
    for copy, label in (("", "CLEAR"), ("tlp-green", "GREEN"), ("tlp-amber", "AMBER")):
        raw = (folder / copy / "digest.eml").read_bytes()
        assert parts(raw)[0]["Subject"].startswith(f"[TLP:{label}] ")
        assert (folder / copy / "digest.html").exists() and (folder / copy / "digest.txt").exists()
    assert "tlp-amber/digest.html" in result.stdout


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_check_names_each_bad_marking_with_its_file_line_and_field(project: Path, run: Run) -> None:
    brief = next((project / "content" / "briefs").glob("*.md"))
    edit(brief, "language: en\n", "language: en\ntlp: green\n")
    edit(brief, "  - confidence: high\n    text: >-\n", "  - confidence: sure\n    tlp: clear\n    text: >-\n")
    timeline = project / "content" / "timeline" / "iran-turkey-israel.yaml"
    edit(timeline, "  tlp: green\n", "  tlp: white\n")
    result = run("check")
    assert result.exit_code == 2
    assert f"{brief.name}:15: key_points[0].confidence: 'sure' is not a confidence level" in result.output
    assert "iran-turkey-israel.yaml:37: [2].tlp: 'white' is TLP 1.0: TLP 2.0 calls it 'clear'" in result.output

    edit(brief, "  - confidence: sure\n", "  - confidence: high\n")
    result = run("check")
    assert f"{brief.name}:16: key_points[0].tlp: TLP:CLEAR is below its brief's TLP:GREEN" in result.output

    edit(brief, "    tlp: clear\n", "    tlp: red\n")
    edit(timeline, "  tlp: white\n", "  tlp: green\n")
    result = run("check")
    assert result.exit_code == 2
    assert f"{brief.name}:16: key_points[0].tlp: TLP:RED is above digest 'weekly''s max_tlp, TLP:AMBER" in result.output
    built = run("build", "--as-of", "2022-07-30")  # and the same rule stops a build
    assert built.exit_code == 2 and "TLP:RED is above digest 'weekly''s max_tlp" in built.stderr


def test_check_warns_when_a_sentence_says_both_how_likely_and_how_sure(project: Path, run: Run) -> None:
    timeline = project / "content" / "timeline" / "iran-turkey-israel.yaml"
    edit(timeline, "    According to several reports, Iran sponsored",
         "    We assess with moderate confidence that Iran very likely sponsored")
    result = run("check")
    assert result.exit_code == 0
    assert "pairs a likelihood term with a confidence level" in result.output
    assert likelihood_with_confidence("It is likely. We have high confidence.") == []  # apart: fine
    assert likelihood_with_confidence("Almost certainly, with high confidence, it was Iran.") != []
