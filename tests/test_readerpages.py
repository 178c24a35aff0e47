"""Readers' links in-process: confirmations bound to the request they answer, the welcome
message, and the preferences page linked from every message."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from lxml import html as lxml_html

from newsletter.delivery.tokens import confirm_token, preferences_token, unsubscribe_token

from .conftest import Run, store_of
from .web_helpers import KEY, Web, client_for, form_token_of, path_of, subscribed, web

__all__ = ["web"]  # the fixture


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


def test_the_confirmation_mail_looks_like_the_digest_with_one_button(web: Web) -> None:
    web.subscribe("ann@example.org")
    mail = web.mail("ann@example.org", "Confirm")
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Someone, we hope you" not in html
    (title,) = lxml_html.document_fromstring(html).xpath("//h1")
    assert "font-family:Georgia" in title.get("style")  # the heading names its font, as in the digest
    buttons = re.findall(r'<a class="button" href="([^"]+)"', html)
    assert len(buttons) == 1 and "/confirm/" in buttons[0]
    assert "Please confirm your subscription" in html and "ann@example.org" in html
    plain = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Confirm my subscription:\n" + path_of(buttons[0].replace("&amp;", "&")) in plain.replace(
        "https://threat-digest.example.org", "")


@pytest.mark.parametrize(
    ("make", "status", "message"),
    [
        (lambda: confirm_token(KEY.encode(), 1, "0" * 16, int(time.time()) - 49 * 3600), 410, "has expired"),
        (lambda: confirm_token(b"f" * 32, 1, "0" * 16, int(time.time())), 400, "not valid"),
        (lambda: confirm_token(KEY.encode(), 1, "0" * 16, int(time.time())).replace("1.", "2.", 1), 400, "not valid"),
        (lambda: confirm_token(KEY.encode(), 999, "0" * 16, int(time.time())), 400, "not valid"),
        (lambda: confirm_token(KEY.encode(), 1, "0" * 16, int(time.time())), 410, "no longer works"),  # not its code
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


def test_a_used_confirmation_link_says_already_confirmed_and_sends_one_welcome(web: Web) -> None:
    web.subscribe("ann@example.org")
    link = path_of(web.confirmation_link("ann@example.org"))
    assert "You are subscribed" in web.client.post(link).text
    for method in ("GET", "POST"):
        again = web.client.request(method, link)
        assert again.status_code == 200 and "Already confirmed" in again.text
        assert "Confirm subscription</button>" not in again.text
    assert len([m for m in web.mails() if m["Subject"].startswith("Welcome")]) == 1


def test_an_old_confirmation_link_replayed_after_an_unsubscribe_does_nothing(web: Web) -> None:
    web.subscribe("ann@example.org")
    link = path_of(web.confirmation_link("ann@example.org"))
    web.client.post(link)
    subscription = web.store.subscribers.get("ann@example.org")
    assert subscription is not None
    unsubscribe = web.mail("ann@example.org", "Welcome")["List-Unsubscribe"].split(",")[0].strip(" <>")
    web.client.post(path_of(unsubscribe))
    assert web.store.subscribers.get("ann@example.org").status == "unsubscribed"  # type: ignore[union-attr]
    for method in ("GET", "POST"):  # within its 48 hours, replayed
        replay = web.client.request(method, link)
        assert replay.status_code == 410 and "no longer works" in replay.text
    assert web.store.subscribers.get("ann@example.org").status == "unsubscribed"  # type: ignore[union-attr]

    web.subscribe("ann@example.org")  # she asks again: only the new link works
    assert web.client.post(link).status_code == 410
    fresh = path_of(web.confirmation_link("ann@example.org"))
    assert fresh != link and "You are subscribed" in web.client.post(fresh).text


def test_asking_twice_while_pending_keeps_both_links_working(web: Web) -> None:
    web.subscribe("ann@example.org")
    web.subscribe("ann@example.org")
    first, second = (path_of(web.confirmation_link("ann@example.org", n)) for n in (0, 1))
    assert "You are subscribed" in web.client.post(first).text
    assert "Already confirmed" in web.client.post(second).text


def test_the_welcome_message_says_what_comes_how_often_and_how_to_leave(web: Web) -> None:
    web.subscribe("ann@example.org", "Ann")
    web.client.post(path_of(web.confirmation_link("ann@example.org")))
    welcome = web.mail("ann@example.org", "Welcome")
    assert welcome["Subject"] == "Welcome to Iran, Turkey and Israel Weekly"
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [p.get_content_type() for p in welcome.iter_parts()] == ["text/plain", "text/html"]
    plain = welcome.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "An issue every week." in plain and "The next issue is due on" in plain
    assert "key points and the latest incidents" in plain  # the digest's description
    assert re.search(r"https://threat-digest\.example\.org/p/[a-z0-9.]+", plain)
    assert re.search(r"https://threat-digest\.example\.org/u/[a-z0-9.]+", plain)
    html = welcome.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert len(re.findall(r'<a class="button" href="[^"]+/p/', html)) == 1
    history = [e.kind for e in web.store.history.of(web.store.subscribers.get("ann@example.org").id)]  # type: ignore[union-attr]
    assert history == ["added", "requested", "confirmed"] or history == ["requested", "confirmed"]


def preferences_of(web: Web, address: str = "ann@example.org") -> str:
    subscriber = web.store.subscribers.get(address)
    assert subscriber is not None
    return f"/p/{preferences_token(KEY.encode(), subscriber.id)}"


def save(web: Web, path: str, **form: object) -> object:
    page = web.client.get(path)
    return web.client.post(path, data={"form_token": form_token_of(page.text), "action": "save", **form})


def two_digests(web: Web) -> None:
    """A second digest, `monthly`, beside the shipped `weekly`; the app restarted to read it."""
    config = web.project / "config.yaml"
    text = config.read_text(encoding="utf-8")
    start = text.index("  weekly:")
    end = text.index("\nweb:", start)  # the section the fixture appended after the digests
    monthly = text[start:end].replace("  weekly:", "  monthly:", 1).replace("Israel Weekly", "Israel Monthly")
    config.write_text(text[:end] + "\n" + monthly.replace("period: weekly", "period: monthly") + text[end:],
                      encoding="utf-8")
    web.client = client_for(web.project)


def test_every_message_links_to_the_readers_preferences_page(web: Web, run: Run) -> None:
    subscribed(web)
    assert run("send", "--as-of", "2022-07-30").exit_code == 0
    (issue,) = web.mails()
    plain = issue.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found = re.search(r"https://threat-digest\.example\.org(/p/[a-z0-9.]+)", plain)
    assert found and found.group(1) == preferences_of(web)
    html = issue.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert f'href="https://threat-digest.example.org{found.group(1)}"' in html
    page = web.client.get(found.group(1))
    assert page.status_code == 200 and "Your preferences" in page.text and "ann@example.org" in page.text
    assert 'id="digest-weekly" name="digest" value="weekly" checked' in page.text


def test_a_reader_chooses_digests_and_each_change_is_in_their_history(web: Web) -> None:
    two_digests(web)
    subscribed(web, digests=("weekly",))
    path = preferences_of(web)
    saved = save(web, path, digest=["monthly"])
    assert saved.status_code == 200 and "Your preferences are saved." in saved.text  # type: ignore[attr-defined]
    subscriber = web.store.subscribers.get("ann@example.org")
    assert subscriber is not None and subscriber.digests == ("monthly",) and subscriber.status == "active"
    details = [e.detail for e in web.store.history.of(subscriber.id)]
    assert "subscribed to monthly, on the preferences page" in details
    assert "from weekly, on the preferences page" in details


def test_a_pause_keeps_issues_away_until_its_day_and_is_recorded(web: Web, run: Run) -> None:
    subscribed(web)
    subscribed(web, "bob@example.org")
    path = preferences_of(web)
    until = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    assert save(web, path, digest=["weekly"], pause_until=until).status_code == 200  # type: ignore[attr-defined]
    page = web.client.get(path)
    assert "Paused until" in page.text and f'value="{until}"' in page.text
    assert run("send", "--as-of", "2022-07-30").exit_code == 0
    assert [m["To"].addresses[0].addr_spec for m in web.mails()] == ["bob@example.org"]
    subscriber = web.store.subscribers.get("ann@example.org")
    assert subscriber is not None and any(e.detail.startswith("paused until") for e in web.store.history.of(subscriber.id))

    save(web, path, digest=["weekly"], pause_until="")
    assert web.store.subscribers.get("ann@example.org").paused_until is None  # type: ignore[union-attr]
    assert "pause ended, on the preferences page" in [e.detail for e in web.store.history.of(subscriber.id)]


@pytest.mark.parametrize("day", ["2001-01-01", "yesterday", "9999-12-31"])
def test_a_pause_must_end_after_today_and_within_a_year(web: Web, day: str) -> None:
    subscribed(web)
    answer = save(web, preferences_of(web), digest=["weekly"], pause_until=day)
    assert answer.status_code == 400 and "within a year" in answer.text  # type: ignore[attr-defined]
    assert web.store.subscribers.get("ann@example.org").paused_until is None  # type: ignore[union-attr]


def test_a_reader_who_chose_plain_text_gets_no_html(web: Web, run: Run) -> None:
    subscribed(web)
    save(web, preferences_of(web), digest=["weekly"], plain="on")
    assert web.store.subscribers.get("ann@example.org").plain_text is True  # type: ignore[union-attr]
    assert run("send", "--as-of", "2022-07-30").exit_code == 0
    (mail,) = web.mails()
    assert mail.get_content_type() == "text/plain" and not mail.is_multipart()
    text = mail.get_content()
    assert "LATEST ON THE TIMELINE" in text and "<table" not in text
    assert mail["List-Unsubscribe"] and re.search(r"/p/[a-z0-9.]+", text)


def test_unsubscribe_from_all_ends_every_subscription(web: Web) -> None:
    two_digests(web)
    subscribed(web, digests=("weekly", "monthly"))
    path = preferences_of(web)
    page = web.client.get(path)
    left = web.client.post(path, data={"form_token": form_token_of(page.text), "action": "leave"})
    assert left.status_code == 200 and "unsubscribed from all" in left.text
    subscriber = web.store.subscribers.get("ann@example.org")
    assert subscriber is not None and (subscriber.status, subscriber.digests) == ("unsubscribed", ())


def test_preferences_change_only_through_a_form_we_served(web: Web) -> None:
    subscribed(web)
    path = preferences_of(web)
    web.client.get(path)
    forged = web.client.post(path, data={"form_token": "x.y.z", "action": "leave"})
    assert forged.status_code == 400 or forged.status_code == 403
    assert web.store.subscribers.get("ann@example.org").status == "active"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "token",
    [preferences_token(b"f" * 32, 1), unsubscribe_token(KEY.encode(), 1), "1", preferences_token(KEY.encode(), 4242)],
)
def test_a_bad_preferences_link_changes_nothing(web: Web, token: str) -> None:
    subscribed(web)
    for method in ("GET", "POST"):
        answer = web.client.request(method, f"/p/{token}", data={"action": "leave"})
        assert answer.status_code == 400 and "This link does not work" in answer.text
    assert web.store.subscribers.get("ann@example.org").status == "active"  # type: ignore[union-attr]


def test_a_bounced_address_is_not_signed_up_again_from_its_preferences(web: Web) -> None:
    subscribed(web)
    store = web.store
    subscriber = store.subscribers.get("ann@example.org")
    assert subscriber is not None
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE subscribers SET status = 'bounced'")
        conn.exec_driver_sql("UPDATE subscriptions SET status = 'unsubscribed'")
    path = preferences_of(web)
    assert "came back or were reported as spam" in web.client.get(path).text
    save(web, path, digest=["weekly"])
    after = store.subscribers.get("ann@example.org")
    assert after is not None and (after.status, after.digests) == ("bounced", ())


def test_the_preferences_link_of_a_test_copy_changes_no_one(web: Web) -> None:
    answer = web.client.get("/p/preview")
    assert answer.status_code == 200 and "test copy" in answer.text


def test_a_delivery_queued_before_an_unsubscribe_or_a_pause_is_withdrawn(web: Web, run: Run) -> None:
    for address in ("ann@example.org", "bob@example.org", "cy@example.org"):
        subscribed(web, address)
    assert run("send", "--queue-only", "--as-of", "2022-07-30").exit_code == 0
    web.client.post(subscribed(web, "ann@example.org"))  # unsubscribes Ann after the queue
    save(web, preferences_of(web, "bob@example.org"), digest=["weekly"],
         pause_until=(datetime.now(UTC) + timedelta(days=3)).date().isoformat())
    assert run("send", "--as-of", "2022-07-30").exit_code == 0
    assert [m["To"].addresses[0].addr_spec for m in web.mails()] == ["cy@example.org"]
    store = store_of(web.project)
    (issue,) = store.issues.iter()
    assert store.status.counts(issue.id)["withdrawn"] == 2
