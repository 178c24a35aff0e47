"""Readers' pages: subscribe, confirm, unsubscribe (one-click too) and their preferences.

A GET never changes anything (mail scanners fetch every link in a message); a change takes a
POST, from a form we served to that browser (CSRF), except the one-click unsubscribe of
RFC 8058, which mail providers POST without a cookie.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from ..compose.message import SAMPLE_TOKEN
from ..delivery.tokens import TokenError, read_unsubscribe_token
from ..errors import DeliveryError
from ..inputs.addresses import AddressError, check_name, normalize_address
from ..inputs.config import Digest, Mailbox
from ..store import Outcome
from ..usecases import readers
from ..usecases.sending import TEST_SUBSCRIPTION

if TYPE_CHECKING:
    from .web import Site

ONE_CLICK = "List-Unsubscribe=One-Click"  # RFC 8058: the body a mail provider POSTs


class ReaderPages:
    def __init__(self, site: Site) -> None:
        self.site = site

    async def subscribe(self, request: Request) -> Response:
        form = await request.form()
        return await run_in_threadpool(self._subscribe, request, {k: str(v) for k, v in form.items()})

    def _subscribe(self, request: Request, form: dict[str, str]) -> Response:
        site = self.site
        digest = site.digest(form.get("digest", ""))
        labels = site.labels(digest)
        try:
            site.check_form(request, form)
        except TokenError as exc:
            return site.page(labels.bad_form_title, [str(exc)], status=403, digest=digest)
        if not site.per_client.allow(f"client:{site.client(request)}"):
            return self.too_many(digest)
        try:
            address = normalize_address(form.get("email", ""))
            name = check_name(form.get("name", ""))
        except AddressError as exc:
            return site.page(labels.bad_form_title, [str(exc)], status=400, digest=digest)
        if not site.per_address.allow(f"address:{address}"):
            return self.too_many(digest)
        try:
            readers.ask(site.config, site.renderer, site.store, site.key, digest, Mailbox(name, address),
                        int(time.time()))
        except DeliveryError:
            return site.page(labels.bad_form_title, ["The confirmation message could not be sent; try again later."],
                             status=503, digest=digest)
        # The same answer whether the address was known, new or already subscribed.
        text = str(labels.check_inbox_text).format(address=address, title=digest.title)
        return site.page(labels.check_inbox_title, [text], digest=digest)

    def too_many(self, digest: Digest | None) -> Response:
        labels = self.site.labels(digest)
        return self.site.page(labels.too_many_title, [labels.too_many_text], status=429, digest=digest,
                              headers={"Retry-After": "3600"})

    async def confirm(self, request: Request) -> Response:
        if request.method == "POST":
            await request.form()
        return await run_in_threadpool(self._confirm, request)

    def _confirm(self, request: Request) -> Response:
        """GET tells what the link would do and shows the button; POST confirms, once."""
        site = self.site
        follow = request.method == "POST"
        try:
            result = readers.confirm(site.config, site.renderer, site.store, site.key, request.path_params["token"],
                                     int(time.time()), follow)
        except TokenError as exc:
            return site.bad_link(exc)
        digest = site.configured(result.digest)
        labels = site.labels(digest)
        title = digest.title if digest else result.digest
        address = result.subscriber.address
        if result.outcome is Outcome.CONFIRMED:
            return site.page(labels.confirmed_title, [str(labels.confirmed_text).format(address=address, title=title)],
                             digest=digest)
        if result.outcome is Outcome.ALREADY:
            text = str(labels.already_confirmed_text).format(address=address, title=title)
            return site.page(labels.already_confirmed_title, [text], digest=digest)
        if result.outcome is Outcome.STALE:
            return site.page(labels.bad_link_title, [labels.stale_confirm_text], status=410, digest=digest)
        text = str(labels.confirm_text).format(address=address, title=title)
        return site.page(labels.confirm_title, [text], digest=digest, form_action=request.url.path,
                         button=labels.confirm_button)

    async def unsubscribe(self, request: Request) -> Response:
        one_click = False
        if request.method == "POST":
            form = await request.form()
            one_click = form.get("List-Unsubscribe") == "One-Click"
        return await run_in_threadpool(self._unsubscribe, request, one_click)

    def _unsubscribe(self, request: Request, one_click: bool) -> Response:
        """GET shows a button and changes nothing; POST unsubscribes. A one-click POST
        (RFC 8058) gets a plain 200 with nothing to click."""
        site = self.site
        try:
            subscription = read_unsubscribe_token(site.key, request.path_params["token"])
        except TokenError as exc:
            return PlainTextResponse(str(exc), status_code=400) if one_click else site.bad_link(exc)
        if subscription == TEST_SUBSCRIPTION:
            text = site.labels().test_copy_text
            return PlainTextResponse(text) if one_click else site.page(site.labels().unsubscribe_title, [text])
        found = site.store.subscribers.subscription(subscription)
        if found is None:
            error = TokenError(readers.NOT_OURS)
            return PlainTextResponse(str(error), status_code=400) if one_click else site.bad_link(error)
        subscriber, digest_name, status = found
        digest = site.configured(digest_name)
        labels = site.labels(digest)
        title = digest.title if digest else digest_name
        if request.method == "POST":
            site.store.subscribers.unsubscribe(
                subscription, how="by one-click unsubscribe (RFC 8058)" if one_click else "by the unsubscribe page")
            text = str(labels.unsubscribed_text).format(address=subscriber.address, title=title)
            return PlainTextResponse(text) if one_click else site.page(labels.unsubscribed_title, [text], digest=digest)
        if status == "unsubscribed":
            text = str(labels.unsubscribed_text).format(address=subscriber.address, title=title)
            return site.page(labels.unsubscribed_title, [text], digest=digest)
        text = str(labels.unsubscribe_text).format(address=subscriber.address, title=title)
        return site.page(labels.unsubscribe_title, [text], digest=digest, form_action=request.url.path,
                         button=labels.unsubscribe_button)

    async def preferences(self, request: Request) -> Response:
        form = await request.form() if request.method == "POST" else None
        fields: dict[str, object] | None = None
        if form is not None:
            fields = {
                "form_token": str(form.get("form_token", "")), "action": str(form.get("action", "")),
                "pause_until": str(form.get("pause_until", "")), "plain": str(form.get("plain", "")),
                "digests": [str(d) for d in form.getlist("digest")],
            }
        return await run_in_threadpool(self._preferences, request, fields)

    def _preferences(self, request: Request, form: dict[str, object] | None) -> Response:
        site = self.site
        token = request.path_params["token"]
        if token == SAMPLE_TOKEN:
            return site.page(site.labels().preferences_title, [site.labels().test_copy_text])
        try:
            if form is None:
                page = readers.preferences(site.config, site.store, site.key, token)
                return self._preferences_page(request, page, saved=request.query_params.get("saved") == "1")
            site.check_form(request, {"form_token": str(form["form_token"])})
            if form["action"] == "leave":
                page = readers.leave(site.config, site.store, site.key, token)
                labels = site.labels(page.zone_digest)
                text = str(labels.left_text).format(address=page.subscriber.address)
                return site.page(labels.left_title, [text], digest=page.zone_digest)
            digests = form["digests"]
            assert isinstance(digests, list)
            today = datetime.now(UTC).astimezone(site.config.digests[0].zone).date()
            try:
                readers.choose(site.config, site.store, site.key, token, digests, str(form["pause_until"]),
                               form["plain"] == "on", today)
            except readers.PauseError as exc:
                page = readers.preferences(site.config, site.store, site.key, token)
                problem = str(site.labels(page.zone_digest).bad_pause_text).format(value=str(exc))
                return self._preferences_page(request, page, problem=problem, status=400)
        except TokenError as exc:
            return site.bad_link(exc)
        return RedirectResponse(f"{request.url.path}?saved=1", status_code=303)

    def _preferences_page(self, request: Request, page: readers.Preferences, saved: bool = False,
                          problem: str = "", status: int = 200) -> Response:
        site = self.site
        nonce = site.nonce(request)
        digest = page.zone_digest
        labels = site.labels(digest)
        response = site.render("web/preferences.html", {
            "prefs": page, "page_title": labels.preferences_title, "form_token": site.form_token(nonce),
            "saved": saved, "problem": problem, "action": request.url.path,
            "paused": labels.date(page.paused_until) if page.paused_until else "",
            "today": datetime.now(UTC).astimezone(digest.zone).date().isoformat(),
        }, digest, status)
        return site.with_nonce(response, request, nonce)
