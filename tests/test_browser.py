"""The web app in a real browser: Debian's chromium, driven by Playwright, against the app
served by uvicorn on loopback. Screenshots go to $NEWSLETTER_SCREENSHOTS (or a temp folder)."""

from __future__ import annotations

import mailbox
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from newsletter.inputs.config import load_config
from newsletter.store import Store
from newsletter.delivery.tokens import unsubscribe_token
from newsletter.faces.web import create_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed here (.ci/run installs it)"
)
KEY = "b" * 40
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("NEWSLETTER_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def server(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`newsletter serve`'s app on a free loopback port; links in mail point back to it."""
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    config = project / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("https://threat-digest.example.org", base))
    server = uvicorn.Server(uvicorn.Config(create_app(load_config(config)), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield base
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def confirmation_link(project: Path) -> str:
    box = mailbox.Maildir(project / "out" / "maildir", create=False)
    (key,) = box.keys()
    found = re.search(rb"http://127\.0\.0\.1:\d+/confirm/[a-z0-9.]+", box.get_bytes(key).replace(b"=\n", b""))
    assert found
    return found.group(0).decode()


def test_a_reader_subscribes_confirms_and_unsubscribes(
    browser: object, server: str, project: Path, screenshots: Path
) -> None:
    page = browser.new_page(viewport={"width": 375, "height": 800})  # type: ignore[attr-defined]
    page.goto(server + "/")
    page.screenshot(path=screenshots / "home-375.png", full_page=True)
    focused = []
    for _ in range(5):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
    assert focused == ["Skip to content", "Threat Digest newsletters", "email-weekly", "name-weekly", "Subscribe"]

    page.get_by_label("Email address").fill("reader@example.org")
    page.get_by_label("Name (optional)").fill("Rea Der")
    page.get_by_role("button", name="Subscribe").click()
    assert page.get_by_role("heading", name="Check your inbox").is_visible()

    page.goto(confirmation_link(project))
    assert page.get_by_role("heading", name="Confirm your subscription").is_visible()
    page.get_by_role("button", name="Confirm subscription").click()
    assert page.get_by_role("heading", name="You are subscribed").is_visible()
    page.screenshot(path=screenshots / "confirmed-375.png", full_page=True)
    store = Store.open(load_config(project / "config.yaml").store_url)
    subscriber = store.subscribers.get("reader@example.org")
    assert subscriber is not None and (subscriber.status, subscriber.name) == ("active", "Rea Der")

    with store.engine.connect() as conn:
        (subscription,) = conn.exec_driver_sql("SELECT id FROM subscriptions").scalars().all()
    page.goto(f"{server}/u/{unsubscribe_token(KEY.encode(), subscription)}")
    page.get_by_role("button", name="Unsubscribe").click()
    assert page.get_by_role("heading", name="You are unsubscribed").is_visible()
    assert store.subscribers.get("reader@example.org").status == "unsubscribed"  # type: ignore[union-attr]


@pytest.mark.parametrize("width", [600, 375])
def test_the_preview_reads_well_at_600_and_375_pixels(browser: object, server: str, screenshots: Path, width: int) -> None:
    page = browser.new_page(viewport={"width": width, "height": 900})  # type: ignore[attr-defined]
    page.goto(f"{server}/preview/weekly?as_of=2022-07-30")
    email = page.frame_locator("iframe.email")
    assert email.get_by_text("Hossein Taeb removed as IRGC intelligence chief").is_visible()
    page.screenshot(path=screenshots / f"preview-{width}.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll
    frame = next(f for f in page.frames if f.url.endswith("/email?as_of=2022-07-30"))
    assert frame.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    inner = browser.new_page(viewport={"width": width, "height": 900})  # type: ignore[attr-defined]
    inner.goto(f"{server}/preview/weekly/email?as_of=2022-07-30")
    inner.screenshot(path=screenshots / f"email-{width}.png", full_page=True)
    assert inner.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.get_by_role("link", name="Plain text").click()
    assert page.locator("pre.plaintext").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
