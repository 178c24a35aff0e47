"""The web app in-process for the web tests: a TestClient on the shipped project, and what a
reader's mailbox (the project's Maildir) holds."""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from newsletter.delivery.tokens import unsubscribe_token
from newsletter.faces.web import create_app
from newsletter.inputs.config import load_config
from newsletter.store import Store

KEY = "w" * 40
BASE = "https://threat-digest.example.org"
LOOPBACK = ("127.0.0.1", 50000)  # a browser on this machine
ELSEWHERE = ("203.0.113.9", 50000)  # a browser anywhere else


@dataclass
class Web:
    client: TestClient
    project: Path

    @property
    def store(self) -> Store:
        return Store.open(load_config(self.project / "config.yaml").store_url)

    def token(self) -> str:
        page = self.client.get("/")
        found = re.search(r'name="form_token" value="([^"]+)"', page.text)
        assert found
        return found.group(1)

    def subscribe(self, address: str, name: str = "", digest: str = "weekly", token: str | None = None) -> object:
        form = {"digest": digest, "email": address, "name": name, "form_token": token or self.token()}
        return self.client.post("/subscribe", data=form)

    def mails(self) -> list[email.message.EmailMessage]:
        folder = self.project / "out" / "maildir"
        if not folder.exists():
            return []
        box = mailbox.Maildir(folder, create=False)
        found = [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in sorted(box.keys(), key=delivered_order)]
        return [m for m in found if isinstance(m, email.message.EmailMessage)]

    def mail(self, address: str, subject: str) -> email.message.EmailMessage:
        """The one message to `address` whose subject starts with `subject`."""
        (found,) = [m for m in self.mails()
                    if m["To"].addresses[0].addr_spec == address and m["Subject"].startswith(subject)]
        return found

    def confirmation_link(self, address: str, which: int = -1) -> str:
        """The link in a confirmation message to `address` (the newest, unless `which` says)."""
        mails = [m for m in self.mails()
                 if m["To"].addresses[0].addr_spec == address and m["Subject"].startswith("Confirm")]
        plain = mails[which].get_body(("plain",))
        assert plain is not None
        found = re.search(r"https?://\S+/confirm/\S+", plain.get_content())
        assert found
        return found.group(0)


def settings(project: Path, extra: str = "") -> None:
    """Append `extra` (YAML) to the project's config.yaml."""
    path = project / "config.yaml"
    path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")


def delivered_order(key: str) -> tuple[int, int, str]:
    """Maildir keys in the order the messages were written: Python's mailbox names them
    SECONDS.M<microseconds>P<pid>Q<count>, the microseconds not zero-padded, so a plain sort
    puts M99999 after M100000 within one second."""
    found = re.match(r"(\d+)\.M(\d+)", key)
    return (int(found.group(1)), int(found.group(2)), key) if found else (0, 0, key)


def client_for(project: Path, bound_host: str | None = "127.0.0.1", client: tuple[str, int] = LOOPBACK) -> TestClient:
    """A browser talking to `serve` bound to `bound_host`, from `client`."""
    return TestClient(create_app(load_config(project / "config.yaml"), bound_host), base_url=BASE, client=client)


@pytest.fixture
def web(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    """`serve` on loopback with no editor password, and a browser on the same machine."""
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    settings(project, "\nweb:\n  subscribe_per_client: 5\n  subscribe_per_address: 2\n  max_body: 4096\n")
    with client_for(project) as client:
        yield Web(client, project)


def path_of(link: str) -> str:
    return "/" + link.split("/", 3)[3]


def subscribed(web: Web, address: str = "ann@example.org", digests: tuple[str, ...] = ("weekly",)) -> str:
    """An active subscriber; returns the path of their unsubscribe link (of their first digest)."""
    store = web.store
    store.subscribers.add(address, "", list(digests))
    subscriber = store.subscribers.get(address)
    assert subscriber is not None
    with store.engine.connect() as conn:
        subscription = conn.exec_driver_sql(
            "SELECT id FROM subscriptions WHERE subscriber_id = ? ORDER BY id", (subscriber.id,)
        ).scalars().first()
    return f"/u/{unsubscribe_token(KEY.encode(), subscription)}"


def form_token_of(html: str) -> str:
    found = re.search(r'name="form_token" value="([^"]+)"', html)
    assert found
    return found.group(1)
