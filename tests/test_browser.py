"""The web app and the messages in a real browser: Debian's chromium, driven by Playwright,
against the app served by uvicorn on loopback, with axe-core checking every page and every
message against WCAG 2.2 A and AA, at 1280 and 375 pixels, in light and in dark mode.
Screenshots go to $NEWSLETTER_SCREENSHOTS, in both schemes (else a temp folder, light only)."""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from newsletter.faces.web import create_app
from newsletter.inputs.config import load_config

from .conftest import Run, add_subscribers
from .web_helpers import delivered_order

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed here (.ci/run installs it)"
)
KEY = "b" * 40
PASSWORD = "correct horse battery staple"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
# Each look checks its pages in both colour schemes: a tab per width, its scheme switched in place.
WIDTHS = [1280, 375]
SCHEMES = ["light", "dark"]

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
axe_base = pytest.importorskip("axe_playwright_python.base")


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("NEWSLETTER_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def serve(project: Path) -> Iterator[str]:
    """`newsletter serve`'s app on a free loopback port; links in mail point back to it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    config = project / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("https://threat-digest.example.org", base).replace(
        "  postal_address: Threat Digest, 100 Example Street, 06000 Ankara, Türkiye\n",
        "  postal_address: Threat Digest, PO Box 12, 1000 Brussels\n"))
    app = create_app(load_config(config), bound_host="127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", proxy_headers=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield base
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def server(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    monkeypatch.setenv("NEWSLETTER_EDITOR_PASSWORD", PASSWORD)
    yield from serve(project)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@dataclass
class Look:
    """A browser tab of one width, that checks what it shows with axe-core in each colour scheme."""

    page: Any
    width: int
    shots: Path

    def check(self, what: str) -> None:
        """No WCAG 2.2 A/AA violation on the page as it is now, light or dark; no sideways scroll."""
        self.page.evaluate(axe_base.AXE_SCRIPT)
        for scheme in SCHEMES:
            self.page.emulate_media(color_scheme=scheme)
            found = self.page.evaluate(
                "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}})).violations"
                ".map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ') + ' ' +"
                " (n.failureSummary || '').replace(/\\s+/g, ' ')).join(' | '))", WCAG)
            assert found == [], f"{what} at {self.width} px, {scheme}: {found}"
        self.page.emulate_media(color_scheme=SCHEMES[0])
        assert self.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), what

    def shot(self, name: str) -> None:
        """A full-page screenshot; in both schemes when someone asked to see them."""
        for scheme in SCHEMES if os.environ.get("NEWSLETTER_SCREENSHOTS") else SCHEMES[:1]:
            self.page.emulate_media(color_scheme=scheme)
            self.page.screenshot(path=self.shots / f"{name}-{self.width}-{scheme}.png", full_page=True)
        self.page.emulate_media(color_scheme=SCHEMES[0])

    def message(self, raw: bytes, what: str) -> Any:
        """Show a message's HTML part as a mail client would, and check it."""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        html = message.get_body(("html",))
        assert html is not None
        self.page.set_content(html.get_content())
        self.check(what)
        return message


@pytest.fixture(params=WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def look(request: pytest.FixtureRequest, browser: Any, screenshots: Path) -> Iterator[Look]:
    width = request.param
    # bypass_csp: our pages allow no script, and axe-core is one.
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=SCHEMES[0], bypass_csp=True)
    yield Look(context.new_page(), width, screenshots)
    context.close()


def mails(project: Path) -> list[bytes]:
    folder = project / "out" / "maildir"
    box = mailbox.Maildir(folder, create=False)
    return [box.get_bytes(key) for key in sorted(box.keys(), key=delivered_order)]


def mail_with(project: Path, subject: str) -> bytes:
    for raw in mails(project):
        if email.message_from_bytes(raw, policy=email.policy.default)["Subject"].startswith(subject):
            return raw
    raise AssertionError(f"no message with subject {subject!r}")


def link_in(message: Any, pattern: str) -> str:
    text = message.get_body(("plain",)).get_content()
    found = re.search(pattern, text)
    assert found, pattern
    return found.group(0)


def test_an_editor_logs_in_and_previews_the_next_issue(look: Look, server: str) -> None:
    page = look.page
    page.goto(f"{server}/preview/weekly?as_of=2022-07-30")
    expect(page.get_by_role("heading", name="Editor login")).to_be_visible()
    look.check("the login page")
    page.get_by_label("Password").fill("a wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("That password is not right.")).to_be_visible()
    look.check("a failed login")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Preview of Iran, Turkey and Israel Weekly")).to_be_visible()
    email_frame = page.frame_locator("iframe.email")
    expect(email_frame.get_by_text("Hossein Taeb removed as IRGC intelligence chief")).to_be_visible()
    look.check("the preview")
    look.shot("preview")
    page.get_by_role("link", name="Plain text").click()
    expect(page.locator("pre.plaintext")).to_be_visible()
    look.check("the plain text preview")
    page.goto(f"{server}/preview/weekly/email?as_of=2022-07-30")
    look.check("the digest")
    look.shot("digest")
    page.goto(f"{server}/preview/weekly")
    page.get_by_role("button", name="Log out").click()
    page.goto(f"{server}/preview/weekly")
    expect(page.get_by_role("heading", name="Editor login")).to_be_visible()


def test_a_reader_subscribes_confirms_chooses_and_leaves(look: Look, server: str, project: Path, run: Run) -> None:
    page = look.page
    page.goto(server + "/")
    look.check("the home page")
    look.shot("home")
    page.get_by_label("Email address").fill("reader@example.org")
    page.get_by_label("Name (optional)").fill("Rea Der")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    look.check("check your inbox")

    confirmation = look.message(mail_with(project, "Confirm"), "the confirmation mail")
    look.shot("confirm-mail")
    expect(page.get_by_role("link", name="Confirm my subscription")).to_be_visible()
    page.goto(link_in(confirmation, r"http://127\.0\.0\.1:\d+/confirm/\S+"))
    expect(page.get_by_role("heading", name="Confirm your subscription")).to_be_visible()
    look.check("the confirmation page")
    page.get_by_role("button", name="Confirm subscription").click()
    expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
    look.check("confirmed")

    welcome = look.message(mail_with(project, "Welcome"), "the welcome mail")
    look.shot("welcome-mail")
    page.goto(link_in(welcome, r"http://127\.0\.0\.1:\d+/p/\S+"))
    expect(page.get_by_role("heading", name="Your preferences")).to_be_visible()
    look.check("the preferences page")
    page.get_by_label("Plain text only (no HTML)").check()
    page.get_by_label("Pause everything until").fill("2099-01-01")
    page.get_by_role("button", name="Save my preferences").click()
    expect(page.get_by_role("alert")).to_be_visible()  # a pause beyond a year is refused, saying why
    look.check("a refused pause")
    page.get_by_label("Pause everything until").fill("")
    page.get_by_label("Plain text only (no HTML)").check()
    page.get_by_role("button", name="Save my preferences").click()
    expect(page.get_by_role("status")).to_be_visible()
    look.check("saved preferences")
    look.shot("preferences")
    page.get_by_label("Plain text only (no HTML)").uncheck()
    page.get_by_role("button", name="Save my preferences").click()

    add_subscribers(project, 1)
    assert run("send", "--as-of", "2022-07-30").exit_code == 0
    digest = look.message(mail_with(project, "[TLP:CLEAR] Iran, Turkey and Israel Weekly 2022-W30"), "the digest as sent")
    look.shot("digest-sent")
    if look.width == 375:  # every source link a finger can hit: at least 24 px tall
        heights = page.evaluate("[...document.querySelectorAll('.sources a')].map(a => a.getBoundingClientRect().height)")
        assert heights and min(heights) >= 24, heights
    page.goto(f"{server}/issues/")
    expect(page.get_by_role("link", name=re.compile("2022-W30"))).to_be_visible()
    look.check("the archive")
    look.shot("archive")
    page.get_by_role("link", name=re.compile("2022-W30")).click()
    expect(page.get_by_role("heading", name="Get the next issue by email")).to_be_visible()
    look.check("an archived issue")

    page.goto(link_in(digest, r"http://127\.0\.0\.1:\d+/u/\S+"))
    look.check("the unsubscribe page")
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    look.check("unsubscribed")


def test_the_keyboard_reaches_the_form_in_order(browser: Any, server: str) -> None:
    page = browser.new_page(viewport={"width": 375, "height": 800})
    page.goto(server + "/")
    focused = []
    for _ in range(5):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
    assert focused == ["Skip to content", "Threat Digest newsletters", "email-weekly", "name-weekly", "Subscribe"]
    page.close()


def test_the_arabic_digest_reads_right_to_left(
    rtl_project: Path, run: Run, browser: Any, screenshots: Path
) -> None:
    assert run("build", "--as-of", "2022-07-30").exit_code == 0
    raw = (rtl_project / "out" / "arabic-2022-W30" / "digest.eml").read_bytes()
    context = browser.new_context(viewport={"width": 375, "height": 900}, bypass_csp=True)
    look = Look(context.new_page(), 375, screenshots)
    look.message(raw, "the Arabic digest")
    assert look.page.locator("html").get_attribute("dir") == "rtl"
    assert look.page.locator(".kicker span[dir=ltr]").inner_text() == "2022-W30"  # isolated: read whole
    look.shot("digest-arabic")
    context.close()


def test_every_tlp_copy_passes_axe_with_its_labels_in_firsts_colours(
    project: Path, run: Run, browser: Any, screenshots: Path,
) -> None:
    assert run("build", "--as-of", "2022-07-30").exit_code == 0
    folder = project / "out" / "weekly-2022-W30"
    context = browser.new_context(viewport={"width": 375, "height": 900}, bypass_csp=True)
    look = Look(context.new_page(), 375, screenshots)
    for copy, name in (("", "clear"), ("tlp-green/", "green"), ("tlp-amber/", "amber")):
        look.message((folder / f"{copy}digest.eml").read_bytes(), f"the TLP:{name.upper()} copy")
        banner = look.page.locator("td.tlp-banner").first
        expect(banner).to_contain_text(f"TLP:{name.upper()}")
        assert banner.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(0, 0, 0)"
        look.shot(f"digest-tlp-{name}")
    amber = look.page.locator("span.tlp-amber").first  # the last copy shown: labels on each item
    assert amber.evaluate("e => getComputedStyle(e).color") == "rgb(255, 192, 0)"
    context.close()
