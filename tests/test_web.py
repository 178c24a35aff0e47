"""The web app in-process: the public pages, subscribing and unsubscribing, proxies, and
every bad token, body and method. Readers' links are in test_readerpages.py, the editors'
login and preview in test_editors.py."""

from __future__ import annotations

import re
import time
from pathlib import Path

import feedparser
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from newsletter.delivery.tokens import form_token, unsubscribe_token
from newsletter.faces.web import create_app
from newsletter.inputs.config import load_config

from .conftest import Run, store_of
from .web_helpers import ELSEWHERE, KEY, LOOPBACK, Web, client_for, form_token_of, path_of, settings, subscribed, web

__all__ = ["web"]  # the fixture


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
    # Named, not shown: the signed token changes with the clock, and parallel workers must
    # collect the same test ids.
    ids=["empty", "forged", "signed-for-someone-else"],
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


def test_the_archive_and_the_feed_list_only_issues_that_went_out(web: Web, run: Run) -> None:
    assert "No issue has been published yet." in web.client.get("/issues/").text
    subscribed(web)
    for day in ("2022-07-16", "2022-07-23", "2022-07-30"):
        assert run("send", "--as-of", day).exit_code == 0
    assert run("send", "--queue-only", "--as-of", "2022-08-06").exit_code == 0  # queued, nothing sent
    store = store_of(web.project)
    with store.engine.begin() as conn:  # W29: 0 sent, 1 failed
        conn.execute(sa.text("UPDATE deliveries SET status = 'failed' WHERE issue_id = "
                             "(SELECT id FROM issues WHERE period = '2022-W29')"))
    archive = web.client.get("/issues/?digest=weekly").text
    assert archive.index("weekly-2022-W30") < archive.index("weekly-2022-W28")
    assert "weekly-2022-W29" not in archive and "weekly-2022-W31" not in archive
    # Dated where the readers are: as of 30 July, 00:00 in Istanbul, is 29 July in UTC.
    assert '<time datetime="2022-07-30">30 July 2022</time>' in archive
    for name in ("weekly-2022-W29", "weekly-2022-W31"):
        assert web.client.get(f"/issues/{name}").status_code == 404
        assert web.client.get(f"/issues/{name}/email").status_code == 404

    feed_response = web.client.get("/feed.xml?digest=weekly")
    assert feed_response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(feed_response.content)
    assert (feed.version, feed.bozo) == ("atom10", 0)
    assert feed.feed.title == "Iran, Turkey and Israel Weekly"
    assert [e.link for e in feed.entries] == [
        "https://threat-digest.example.org/issues/weekly-2022-W30",
        "https://threat-digest.example.org/issues/weekly-2022-W28",
    ]
    assert all(e.id.startswith("tag:threat-digest.example.org,2022:weekly-") and e.updated for e in feed.entries)
    content = feed.entries[0].content[0]
    assert content.type == "text/html" and "Hossein Taeb removed as IRGC intelligence chief" in content.value
    assert "Key points" in content.value and "%%" not in content.value and "<body" not in content.value


def test_an_archived_issue_has_its_page_and_a_subscribe_form(web: Web, run: Run) -> None:
    subscribed(web)
    assert run("send", "--as-of", "2022-07-30").exit_code == 0
    page = web.client.get("/issues/weekly-2022-W30")
    assert page.status_code == 200 and '<iframe class="email"' in page.text
    assert 'src="/issues/weekly-2022-W30/email"' in page.text
    assert "Get the next issue by email" in page.text and 'action="/subscribe"' in page.text
    answer = web.client.post("/subscribe", data={"digest": "weekly", "email": "new@example.org",
                                                 "form_token": form_token_of(page.text)})
    assert "Check your inbox" in answer.text
    email_page = web.client.get("/issues/weekly-2022-W30/email")
    assert email_page.status_code == 200 and "%%" not in email_page.text
    assert email_page.headers["content-security-policy"].startswith("default-src 'none'; style-src 'unsafe-inline'")
    assert "/u/" not in email_page.text and "/p/" not in email_page.text  # no reader behind a public copy


def test_forwarded_headers_count_only_from_a_trusted_proxy(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    settings(project, "\nweb:\n  subscribe_per_client: 5\n  subscribe_per_address: 100\n")

    def attempts(client: TestClient, forwarded: list[str]) -> list[int]:
        codes = []
        for n, address in enumerate(forwarded):
            token = form_token_of(client.get("/").text)
            codes.append(client.post("/subscribe", headers={"X-Forwarded-For": address}, data={
                "digest": "weekly", "email": f"r{n}@example.org", "form_token": token}).status_code)
        return codes

    with client_for(project, "0.0.0.0", ELSEWHERE) as untrusted:  # no proxy trusted: the header is ignored
        assert attempts(untrusted, [f"198.51.100.{n}" for n in range(14)]).count(200) == 5
    config = project / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8") + "  trusted_proxies: [127.0.0.1]\n", encoding="utf-8")
    with client_for(project, "0.0.0.0", ELSEWHERE) as bypass:  # not the proxy: ignored still
        assert attempts(bypass, [f"198.51.100.{n}" for n in range(14)]).count(200) == 5
    with client_for(project, "127.0.0.1", LOOPBACK) as proxied:  # the proxy: each client counted apart
        assert attempts(proxied, [f"198.51.100.{n}" for n in range(14)]) == [200] * 14
        assert attempts(proxied, ["198.51.100.99"] * 6) == [200] * 5 + [429]
    with TestClient(create_app(load_config(config), "127.0.0.1"), base_url="http://127.0.0.1:8000",
                    client=LOOPBACK) as plain:
        cookie = plain.get("/", headers={"X-Forwarded-Proto": "https"}).headers["set-cookie"]
        assert "Secure" in cookie  # the proxy says the browser spoke https


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


def test_a_crash_in_a_route_is_a_500_page_that_keeps_the_security_headers(
    web: Web, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from newsletter.store.issues import Issues

    def broken(self: Issues, *args: object, **kwargs: object) -> object:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(Issues, "published", broken)
    page = web.client.get("/issues/")
    assert page.status_code == 500
    assert "Something went wrong on our side" in page.text and "fire" not in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert [r.getMessage() for r in caplog.records if r.name == "newsletter.web"] == [
        "internal error: GET /issues/: RuntimeError: the disk is on fire"
    ]
