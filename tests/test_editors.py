"""The editors' side in-process: who may see the preview (a login with NEWSLETTER_EDITOR_PASSWORD,
or this machine only when `serve` is on loopback), sessions, CSRF, lock-outs, and the
preview itself, rendered once per change of the files."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from newsletter.faces.editors import FAILURES_PER_CLIENT, SESSION_COOKIE, Editors

from .web_helpers import ELSEWHERE, KEY, LOOPBACK, Web, client_for, form_token_of, settings, web

__all__ = ["web"]  # the fixture
PASSWORD = "correct horse battery staple"
FUTURE = "/preview/weekly?as_of=2099-01-01"


@pytest.fixture
def guarded(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """`serve` on a public address with an editor password; a browser somewhere else."""
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    monkeypatch.setenv("NEWSLETTER_EDITOR_PASSWORD", PASSWORD)
    with client_for(project, "0.0.0.0", ELSEWHERE) as client:
        yield client


def log_in(client: TestClient, password: str = PASSWORD, target: str = "/preview/weekly") -> object:
    page = client.get(f"/editor/login?next={target}")
    return client.post("/editor/login", data={"form_token": form_token_of(page.text), "password": password,
                                              "next": target}, follow_redirects=False)


def test_the_preview_needs_a_login_and_shows_nothing_unreleased_before_it(guarded: TestClient) -> None:
    for path in (FUTURE, "/preview/weekly/email?as_of=2099-01-01", "/preview/weekly?view=text"):
        answer = guarded.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/editor/login?next=/preview/")
    assert "Preview the next issue" not in guarded.get("/").text
    login = guarded.get(FUTURE)  # followed: the login page, nothing of the issue
    assert "Editor login" in login.text and "Key points" not in login.text and "weekly-" not in login.text


def test_an_editor_logs_in_sees_the_preview_and_logs_out(guarded: TestClient) -> None:
    answer = log_in(guarded)
    assert answer.status_code == 303 and answer.headers["location"] == "/preview/weekly"  # type: ignore[attr-defined]
    cookie = answer.headers["set-cookie"]  # type: ignore[attr-defined]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" in cookie
    page = guarded.get("/preview/weekly?as_of=2022-07-30")
    assert page.status_code == 200 and "weekly-2022-W30" in page.text and "Log out" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "Preview the next issue" in guarded.get("/").text
    out = guarded.post("/editor/logout", data={"form_token": form_token_of(page.text)}, follow_redirects=False)
    assert out.status_code == 303
    assert guarded.get(FUTURE, follow_redirects=False).status_code == 303


def test_a_wrong_password_a_forged_form_or_a_forged_session_lets_no_one_in(guarded: TestClient) -> None:
    wrong = log_in(guarded, "not the password at all")
    assert wrong.status_code == 401 and "That password is not right." in wrong.text  # type: ignore[attr-defined]
    page = guarded.get("/editor/login")
    guarded.cookies.clear()  # the form's nonce cookie gone: a cross-site post
    forged = guarded.post("/editor/login", data={"form_token": form_token_of(page.text), "password": PASSWORD})
    assert forged.status_code == 403 and SESSION_COOKIE not in forged.headers.get("set-cookie", "")
    guarded.cookies.set(SESSION_COOKIE, "5f5e100.abcd.aaaaaaaaaaaaaaaaaaaaaaaa")
    assert guarded.get(FUTURE, follow_redirects=False).status_code == 303
    logout = guarded.post("/editor/logout", data={"form_token": "x"})
    assert logout.status_code == 403


def test_repeated_failures_lock_the_client_out_even_with_the_right_password(project: Path, guarded: TestClient) -> None:
    for _ in range(FAILURES_PER_CLIENT):
        log_in(guarded, "guess number something")
    locked = log_in(guarded)
    assert locked.status_code == 429 and "Too many failed logins" in locked.text  # type: ignore[attr-defined]
    assert locked.headers["retry-after"] == "900"  # type: ignore[attr-defined]
    assert SESSION_COOKIE not in locked.headers.get("set-cookie", "")  # type: ignore[attr-defined]


def test_the_lock_out_is_per_client(monkeypatch: pytest.MonkeyPatch) -> None:
    editors = Editors(b"k" * 32, PASSWORD, "0.0.0.0", ())
    for _ in range(FAILURES_PER_CLIENT):
        assert editors.login("198.51.100.1", "wrong password here").session is None
    assert editors.login("198.51.100.1", PASSWORD).wait > 0
    assert editors.login("198.51.100.2", PASSWORD).session  # another client is not locked out


def test_a_login_goes_back_only_to_a_page_of_this_site(guarded: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        answer = log_in(guarded, target=target)
        assert answer.headers["location"] == "/"  # type: ignore[attr-defined]


def test_without_a_password_the_preview_is_for_this_machine_on_loopback_only(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    with client_for(project, "127.0.0.1", LOOPBACK) as local:
        assert local.get("/preview/weekly?as_of=2022-07-30").status_code == 200
        proxied = local.get(FUTURE, headers={"X-Forwarded-For": "203.0.113.7"})  # a proxy in front
        assert proxied.status_code == 403 and "The preview is off" in proxied.text
    with client_for(project, "127.0.0.1", ELSEWHERE) as remote:
        assert remote.get(FUTURE).status_code == 403
    with client_for(project, "0.0.0.0", LOOPBACK) as public:  # serve --host 0.0.0.0
        answer = public.get(FUTURE)
        assert answer.status_code == 403 and "Key points" not in answer.text
        assert public.get("/editor/login").status_code == 403
    settings(project, "\nweb:\n  trusted_proxies: [127.0.0.1]\n")  # behind a proxy: public
    with client_for(project, "127.0.0.1", LOOPBACK) as behind:
        assert behind.get(FUTURE).status_code == 403


def test_serve_says_at_start_what_the_preview_is_open_to() -> None:
    key = b"k" * 32
    assert "log in" in Editors(key, PASSWORD, "0.0.0.0", ()).notice()
    assert "this machine only" in Editors(key, None, "127.0.0.1", ()).notice()
    assert "off" in Editors(key, None, "0.0.0.0", ()).notice()
    assert "off" in Editors(key, None, "127.0.0.1", ("10.0.0.0/8",)).notice()


def settled(folder: Path) -> None:
    """Every file under `folder` last changed a minute ago (a change just now is "racy": the
    preview does not keep what it rendered from it, see usecases/previews.py)."""
    past = time.time() - 60
    for path in folder.rglob("*"):
        os.utime(path, (past, past))


def test_repeated_previews_render_once_until_a_file_changes(web: Web) -> None:
    for folder in ("content", "templates"):
        settled(web.project / folder)
    for _ in range(10):
        assert web.client.get("/preview/weekly/email?as_of=2022-07-30").status_code == 200
        assert web.client.get("/preview/weekly?as_of=2022-07-30&view=text").status_code == 200
    pages = next(r.endpoint.__self__ for r in web.client.app.routes if r.path == "/preview/{digest}")  # type: ignore[attr-defined]
    assert pages.previews.renders == 1
    labels = web.project / "templates" / "labels.yaml"
    labels.write_text(labels.read_text(encoding="utf-8").replace("Latest on the", "Newest on the"), encoding="utf-8")
    assert "NEWEST ON THE TIMELINE" in web.client.get("/preview/weekly?as_of=2022-07-30&view=text").text
    assert pages.previews.renders == 2
    labels.write_text(labels.read_text(encoding="utf-8").replace("Newest on the", "Latest on the"), encoding="utf-8")
    # Same size, likely the same clock tick: seen all the same, since a racy state is not kept.
    assert "LATEST ON THE TIMELINE" in web.client.get("/preview/weekly?as_of=2022-07-30&view=text").text


def test_the_preview_renders_the_content_as_it_is_now(web: Web) -> None:
    page = web.client.get("/preview/weekly?as_of=2022-07-30")
    assert page.status_code == 200 and "weekly-2022-W30" in page.text
    assert '<iframe class="email"' in page.text and 'src="/preview/weekly/email?tlp=clear&amp;as_of=2022-07-30"' in page.text
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


def test_a_moment_out_of_range_is_a_clear_page_with_the_security_headers(web: Web) -> None:
    page = web.client.get("/preview/weekly", params={"as_of": "0001-01-01T00:00+14:00"})
    assert page.status_code == 422
    assert "is outside the dates this tool can handle" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["x-content-type-options"] == "nosniff"


