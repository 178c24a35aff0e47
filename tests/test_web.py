"""The web app in-process: every route, and every bad token, body and method."""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import feedparser
import pytest
from starlette.testclient import TestClient

from newsletter.inputs.config import load_config
from newsletter.store import Store
from newsletter.delivery.tokens import confirm_token, form_token, unsubscribe_token
from newsletter.faces.web import create_app

from .conftest import Run

KEY = "w" * 40


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
        found = [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in sorted(box.keys())]
        return [m for m in found if isinstance(m, email.message.EmailMessage)]

    def confirmation_link(self, address: str) -> str:
        (mail,) = [m for m in self.mails() if m["To"].addresses[0].addr_spec == address]
        plain = mail.get_body(("plain",))
        assert plain is not None
        found = re.search(r"https?://\S+/confirm/\S+", plain.get_content())
        assert found
        return found.group(0)


def settings(project: Path, extra: str = "") -> None:
    path = project / "config.yaml"
    path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")


@pytest.fixture
def web(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Web]:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    settings(project, "\nweb:\n  subscribe_per_client: 5\n  subscribe_per_address: 2\n  max_body: 4096\n")
    with TestClient(create_app(load_config(project / "config.yaml")), base_url="https://threat-digest.example.org") as client:
        yield Web(client, project)


def path_of(link: str) -> str:
    return "/" + link.split("/", 3)[3]


def test_the_home_page_offers_a_form_per_digest_with_strict_headers(web: Web) -> None:
    page = web.client.get("/")
    assert page.status_code == 200
    assert '<label for="email-weekly">Email address</label>' in page.text
    assert '<input id="email-weekly" name="email" type="email"' in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'; style-src 'self'")
    assert "script-src" not in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" in cookie
    assert web.client.get("/static/site.css").headers["content-type"].startswith("text/css")


def test_subscribing_sends_a_confirmation_and_changes_nothing_until_it_is_followed(web: Web) -> None:
    answer = web.subscribe("Ann@Example.org", "Ann")
    assert answer.status_code == 200  # type: ignore[attr-defined]
    assert "Check your inbox" in answer.text  # type: ignore[attr-defined]
    subscriber = web.store.subscribers.get("ann@example.org")
    assert subscriber is not None and (subscriber.status, subscriber.digests) == ("pending", ())
    (mail,) = web.mails()
    assert mail["Subject"] == "Confirm your subscription to Iran, Turkey and Israel Weekly"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    assert mail["Date"] and mail["Message-ID"]
    link = web.confirmation_link("ann@example.org")
    assert link.startswith("https://threat-digest.example.org/confirm/")

    shown = web.client.get(path_of(link))  # a mail scanner's prefetch confirms nothing
    assert shown.status_code == 200 and "Confirm subscription</button>" in shown.text
    subscriber = web.store.subscribers.get("ann@example.org")
    assert subscriber is not None and subscriber.status == "pending"

    done = web.client.post(path_of(link))
    assert done.status_code == 200 and "You are subscribed" in done.text
    subscriber = web.store.subscribers.get("ann@example.org")
    assert subscriber is not None and (subscriber.status, subscriber.digests) == ("active", ("weekly",))


def test_the_answer_never_says_whether_an_address_was_known(web: Web) -> None:
    web.store.subscribers.add("known@example.org", "", ["weekly"])
    web.store.subscribers.add("left@example.org", "", ["weekly"])
    web.store.subscribers.remove("left@example.org")
    answers = [web.subscribe(address) for address in ("new@example.org", "known@example.org", "left@example.org")]
    bodies = {a.text.replace(address, "ADDRESS") for a, address in zip(  # type: ignore[attr-defined]
        answers, ("new@example.org", "known@example.org", "left@example.org"), strict=True)}
    assert {a.status_code for a in answers} == {200} and len(bodies) == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "this link is not complete"),
        ("forged", "this link is not complete"),
        (form_token(b"x" * 32, "someone-else", int(time.time())), "not valid"),
    ],
)
def test_a_form_without_our_token_is_refused(web: Web, token: str, message: str) -> None:
    web.client.get("/")
    answer = web.client.post("/subscribe", data={"digest": "weekly", "email": "a@example.org", "form_token": token or ""})
    assert answer.status_code == 403 and message in answer.text


def test_a_form_from_another_browser_or_too_old_is_refused(web: Web) -> None:
    web.client.get("/")
    stolen = form_token(KEY.encode(), "not-this-browser", int(time.time()))
    assert "not sent from this browser" in web.subscribe("a@example.org", token=stolen).text  # type: ignore[attr-defined]
    nonce = web.client.cookies["newsletter_nonce"]
    old = form_token(KEY.encode(), nonce, int(time.time()) - 3 * 3600)
    answer = web.subscribe("a@example.org", token=old)
    assert answer.status_code == 403 and "too old" in answer.text  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("address", "name", "message"),
    [
        ("not-an-address", "", "is not a valid address"),
        ("a@example.org\r\nBcc: x@example.org", "", "line break or control character"),
        ("a@example.org", "Eve\r\nBcc: x@example.org", "line break or control character"),
    ],
)
def test_a_bad_address_or_name_is_refused_at_the_door(web: Web, address: str, name: str, message: str) -> None:
    answer = web.subscribe(address, name)
    assert answer.status_code == 400 and message in answer.text  # type: ignore[attr-defined]
    assert web.mails() == []


def test_an_unknown_digest_is_not_found(web: Web) -> None:
    assert web.subscribe("a@example.org", digest="nope").status_code == 404  # type: ignore[attr-defined]


def test_subscribing_is_rate_limited_per_address_and_per_client(web: Web) -> None:
    assert [web.subscribe("same@example.org").status_code for _ in range(3)] == [200, 200, 429]  # type: ignore[attr-defined]
    assert [web.subscribe(f"r{n}@example.org").status_code for n in range(3)] == [200, 200, 429]  # type: ignore[attr-defined]
    limited = web.subscribe("another@example.org")
    assert limited.headers["retry-after"] == "3600"  # type: ignore[attr-defined]


def test_a_large_body_is_refused(web: Web) -> None:
    big = {"digest": "weekly", "email": "a@example.org", "name": "x" * 5000, "form_token": web.token()}
    assert web.client.post("/subscribe", data=big).status_code == 413
    streamed = web.client.post("/subscribe", content=(b"x" * 1024 for _ in range(8)),
                               headers={"content-type": "application/x-www-form-urlencoded"})
    assert streamed.status_code == 413


@pytest.mark.parametrize(
    ("make", "status", "message"),
    [
        (lambda: confirm_token(KEY.encode(), 1, int(time.time()) - 49 * 3600), 410, "has expired"),
        (lambda: confirm_token(b"f" * 32, 1, int(time.time())), 400, "not valid"),
        (lambda: confirm_token(KEY.encode(), 1, int(time.time())).replace("1.", "2.", 1), 400, "not valid"),
        (lambda: confirm_token(KEY.encode(), 999, int(time.time())), 400, "not valid"),
        (lambda: "<script>", 400, "not complete"),
    ],
)
def test_a_bad_confirmation_link_gets_a_clear_page(web: Web, make: object, status: int, message: str) -> None:
    web.subscribe("ann@example.org")
    for method in ("GET", "POST"):
        answer = web.client.request(method, f"/confirm/{make()}")  # type: ignore[operator]
        assert answer.status_code == status and message in answer.text
        assert "This link does not work" in answer.text and "Traceback" not in answer.text
    subscriber = web.store.subscribers.get("ann@example.org")
    assert subscriber is not None and subscriber.status == "pending"


def subscribed(web: Web, address: str = "ann@example.org") -> str:
    """An active subscriber; returns the path of their unsubscribe link."""
    web.store.subscribers.add(address, "", ["weekly"])
    store = web.store
    subscriber = store.subscribers.get(address)
    assert subscriber is not None
    with store.engine.connect() as conn:
        (subscription,) = conn.exec_driver_sql(
            "SELECT id FROM subscriptions WHERE subscriber_id = ?", (subscriber.id,)
        ).scalars().all()
    return f"/u/{unsubscribe_token(KEY.encode(), subscription)}"


def test_a_get_never_unsubscribes_and_the_page_button_does(web: Web) -> None:
    path = subscribed(web)
    page = web.client.get(path)
    assert page.status_code == 200 and "Unsubscribe</button>" in page.text
    assert web.store.subscribers.get("ann@example.org").status == "active"  # type: ignore[union-attr]
    done = web.client.post(path)
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert web.store.subscribers.get("ann@example.org").status == "unsubscribed"  # type: ignore[union-attr]
    assert "You are unsubscribed" in web.client.get(path).text


@pytest.mark.parametrize("encoding", ["form", "multipart"])
def test_one_click_unsubscribe_needs_no_cookie_and_no_page(web: Web, encoding: str) -> None:
    path = subscribed(web)
    web.client.cookies.clear()
    if encoding == "form":
        answer = web.client.post(path, data={"List-Unsubscribe": "One-Click"})
    else:
        answer = web.client.post(path, files={"List-Unsubscribe": (None, "One-Click")})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert web.store.subscribers.get("ann@example.org").status == "unsubscribed"  # type: ignore[union-attr]


def test_one_click_works_on_a_message_from_newsletter_send(web: Web, run: Run) -> None:
    web.store.subscribers.add("ann@example.org", "", ["weekly"])
    assert run("send", "--as-of", "2022-07-30").exit_code == 0
    (message,) = web.mails()
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https = message["List-Unsubscribe"].split(",")[0].strip(" <>")
    answer = web.client.post(path_of(https), content=b"List-Unsubscribe=One-Click",
                             headers={"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200
    assert web.store.subscribers.get("ann@example.org").status == "unsubscribed"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (unsubscribe_token(b"f" * 32, 1), "not valid"),
        ("1.aaaaaaaaaaaaaaaaaaaaaaaa", "not valid"),
        ("1", "not complete"),
        ("%3Cscript%3E", "not complete"),
        (unsubscribe_token(KEY.encode(), 424242), "not valid"),
    ],
)
def test_a_bad_unsubscribe_link_gets_a_clear_page(web: Web, token: str, message: str) -> None:
    for method, data in (("GET", None), ("POST", None), ("POST", {"List-Unsubscribe": "One-Click"})):
        answer = web.client.request(method, f"/u/{token}", data=data)
        assert answer.status_code == 400 and message in answer.text


def test_the_link_of_a_test_copy_unsubscribes_no_one(web: Web) -> None:
    answer = web.client.post(f"/u/{unsubscribe_token(KEY.encode(), 0)}", data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200 and "test copy" in answer.text


@pytest.mark.parametrize(("method", "path"), [("PUT", "/u/x.y"), ("DELETE", "/"), ("GET", "/subscribe"), ("POST", "/issues/")])
def test_a_wrong_method_gets_a_405_page(web: Web, method: str, path: str) -> None:
    answer = web.client.request(method, path)
    assert answer.status_code == 405 and "Not allowed" in answer.text


def test_an_unknown_page_gets_a_404_page(web: Web) -> None:
    for path in ("/nope", "/issues/weekly-1999-W01", "/preview/nope", "/feed.xml?digest=nope"):
        answer = web.client.get(path)
        assert answer.status_code == 404 and "Page not found" in answer.text


def test_the_preview_renders_the_content_as_it_is_now(web: Web) -> None:
    page = web.client.get("/preview/weekly?as_of=2022-07-30")
    assert page.status_code == 200 and "weekly-2022-W30" in page.text
    assert '<iframe class="email"' in page.text and 'src="/preview/weekly/email?as_of=2022-07-30"' in page.text
    email_page = web.client.get("/preview/weekly/email?as_of=2022-07-30")
    assert email_page.headers["content-security-policy"].startswith("default-src 'none'; style-src 'unsafe-inline'")
    assert email_page.headers["x-frame-options"] == "SAMEORIGIN"
    assert "Hossein Taeb removed as IRGC intelligence chief" in email_page.text

    timeline = next((web.project / "content" / "timeline").glob("*.yaml"))
    text = timeline.read_text(encoding="utf-8")
    timeline.write_text(text.replace("Hossein Taeb removed", "Hossein Taeb dismissed"), encoding="utf-8")
    again = web.client.get("/preview/weekly/email?as_of=2022-07-30")  # no restart
    assert "Hossein Taeb dismissed as IRGC intelligence chief" in again.text


def test_the_preview_switches_to_plaintext_and_headers(web: Web) -> None:
    text = web.client.get("/preview/weekly?as_of=2022-07-30&view=text")
    assert '<pre class="plaintext"' in text.text and "LATEST ON THE TIMELINE" in text.text
    headers = web.client.get("/preview/weekly?as_of=2022-07-30&view=headers").text
    for name in ("From:", "To:", "Subject:", "Date:", "Message-ID:", "List-Id:", "List-Unsubscribe:",
                 "List-Unsubscribe-Post: List-Unsubscribe=One-Click"):
        assert name in headers


def test_a_content_error_shows_on_the_preview_page_not_a_500(web: Web) -> None:
    timeline = next((web.project / "content" / "timeline").glob("*.yaml"))
    text = timeline.read_text(encoding="utf-8")
    timeline.write_text(text.replace('date: "2019"', 'date: "2019-02-30"', 1), encoding="utf-8")
    page = web.client.get("/preview/weekly")
    assert page.status_code == 422
    line = next(n for n, row in enumerate(timeline.read_text(encoding="utf-8").splitlines(), 1) if "2019-02-30" in row)
    assert (f"<code>content/timeline/{timeline.name}:{line}: [0].date: &#39;2019-02-30&#39; is not a real date: "
            "February 2019 has 28 days</code>") in page.text
    assert web.client.get("/preview/weekly?as_of=30/07/2022").status_code == 422


def test_the_archive_and_the_feed_list_sent_issues(web: Web, run: Run) -> None:
    assert "No issue has been published yet." in web.client.get("/issues/").text
    for day in ("2022-07-23", "2022-07-30"):
        assert run("send", "--as-of", day).exit_code == 0
    archive = web.client.get("/issues/")
    assert archive.text.index("weekly-2022-W30") < archive.text.index("weekly-2022-W29")
    issue = web.client.get("/issues/weekly-2022-W30")
    assert issue.status_code == 200 and "%%" not in issue.text
    assert issue.headers["content-security-policy"].startswith("default-src 'none'; style-src 'unsafe-inline'")
    feed_response = web.client.get("/feed.xml?digest=weekly")
    assert feed_response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(feed_response.content)
    assert (feed.version, feed.bozo) == ("atom10", 0)
    assert feed.feed.title == "Iran, Turkey and Israel Weekly"
    assert [e.link for e in feed.entries] == [
        "https://threat-digest.example.org/issues/weekly-2022-W30",
        "https://threat-digest.example.org/issues/weekly-2022-W29",
    ]
    assert all(e.id.startswith("tag:threat-digest.example.org,2022:weekly-") and e.updated for e in feed.entries)


def test_pages_of_a_right_to_left_digest_read_right_to_left(rtl_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    with TestClient(create_app(load_config(rtl_project / "config.yaml"))) as client:
        home = client.get("/")
        assert '<section class="digest" lang="ar" dir="rtl"' in home.text
        assert "\u0627\u0634\u062a\u0631\u0643" in home.text  # the Arabic "subscribe" button
        token = re.search(r'name="form_token" value="([^"]+)"', home.text)
        assert token
        answer = client.post("/subscribe", data={"digest": "arabic", "email": "a@example.org", "form_token": token.group(1)})
        assert '<html lang="ar" dir="rtl">' in answer.text


def test_a_moment_out_of_range_is_a_clear_page_with_the_security_headers(web: Web) -> None:
    page = web.client.get("/preview/weekly", params={"as_of": "0001-01-01T00:00+14:00"})
    assert page.status_code == 422
    assert "is outside the dates this tool can handle" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["x-content-type-options"] == "nosniff"


def test_a_crash_in_a_route_is_a_500_page_that_keeps_the_security_headers(
    web: Web, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from newsletter.store.issues import Issues

    def broken(self: Issues) -> object:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(Issues, "iter", broken)
    page = web.client.get("/issues/")
    assert page.status_code == 500
    assert "Something went wrong on our side" in page.text and "fire" not in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert [r.getMessage() for r in caplog.records if r.name == "newsletter.web"] == [
        "internal error: GET /issues/: RuntimeError: the disk is on fire"
    ]
