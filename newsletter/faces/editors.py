"""Editors apart from readers: who may see what is not published yet (the preview).

With NEWSLETTER_EDITOR_PASSWORD set, an editor logs in and holds a signed session cookie
(HttpOnly, SameSite=Strict, 12 hours; a new password ends every session). Failed logins lock
out their client for a while, and a flood of them from everywhere locks out every client
(both logged). Without a password the preview is open only when `serve` listens on loopback,
trusts no proxy, and the request comes straight from this machine: a reverse proxy in front
makes the app public, and the headers it adds (X-Forwarded-For, Forwarded, Via) close it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from ..compose.digest import moment, parse_as_of
from ..compose.message import SAMPLE_TOKEN, build_message, for_sample, preview_message_id
from ..delivery.tokens import TokenError, editor_token, read_editor_token
from ..errors import NewsletterError
from ..inputs.config import Digest
from ..inputs.marking import label as tlp_label, parse_tlp
from ..usecases.previews import Previews
from .middleware import EMAIL_CSP, RateLimit

if TYPE_CHECKING:
    from .web import Site

log = logging.getLogger("newsletter.web")
SESSION_COOKIE = "newsletter_editor"
SESSION_SECONDS = 12 * 3600
LOCKOUT_SECONDS = 15 * 60
FAILURES_PER_CLIENT = 5  # failed logins within LOCKOUT_SECONDS before a client must wait
FAILURES_OVERALL = 50  # from all clients together, before every client must wait
PROXY_HEADERS = (b"x-forwarded-for", b"forwarded", b"x-real-ip", b"via", b"x-forwarded-host")


class Access(StrEnum):
    PASSWORD = "password"  # editors log in
    LOOPBACK = "loopback"  # no password: open to requests from this machine only
    CLOSED = "closed"  # no password and reachable from elsewhere: no preview at all


@dataclass(frozen=True)
class Login:
    """What a login attempt came to: a session token, or why not."""

    session: str | None = None
    wait: float = 0.0  # seconds the client is locked out for


def is_loopback(host: str | None) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address((host or "").strip("[]")).is_loopback
    except ValueError:
        return False


class Editors:
    """The editor login and the rule for who may see unpublished content."""

    def __init__(self, key: bytes, password: str | None, bound_host: str | None,
                 trusted_proxies: tuple[str, ...]) -> None:
        self.key = key
        self.password = password
        if password:
            self.access = Access.PASSWORD
        elif is_loopback(bound_host) and not trusted_proxies:
            self.access = Access.LOOPBACK
        else:
            self.access = Access.CLOSED
        self.per_client = RateLimit(FAILURES_PER_CLIENT, LOCKOUT_SECONDS)
        self.overall = RateLimit(FAILURES_OVERALL, LOCKOUT_SECONDS)

    def notice(self) -> str:
        """What `serve` says at start about the preview."""
        return {
            Access.PASSWORD: "preview: editors log in with NEWSLETTER_EDITOR_PASSWORD",
            Access.LOOPBACK: "preview: open without login to this machine only (listening on loopback, "
                             "NEWSLETTER_EDITOR_PASSWORD not set); behind a proxy it closes",
            Access.CLOSED: "preview: off (NEWSLETTER_EDITOR_PASSWORD not set and the server is reachable "
                           "beyond this machine); set it to let editors log in",
        }[self.access]

    def allowed(self, request: Request) -> bool:
        """Whether this request may see unpublished content."""
        if self.access is Access.PASSWORD:
            return self._valid_session(request.cookies.get(SESSION_COOKIE, ""))
        if self.access is Access.LOOPBACK:
            client = request.client.host if request.client else None
            proxied = any(name in PROXY_HEADERS for name, _ in request.scope.get("headers", []))
            return is_loopback(client) and not proxied
        return False

    def login(self, client: str, attempt: str) -> Login:
        """Check a password from `client`; a session token when it is right. A locked-out client
        is not even checked, so guessing on during a lock-out learns nothing."""
        if self.password is None:
            return Login()
        wait = max(self.per_client.wait(client), self.overall.wait("*"))
        if wait:
            return Login(wait=wait)
        given = hashlib.sha256(attempt.encode()).digest()
        if hmac.compare_digest(given, hashlib.sha256(self.password.encode()).digest()):
            log.info("editor login from %s", client)
            return Login(session=editor_token(self.key, self.password, int(time.time()), secrets.token_hex(8)))
        self.per_client.count(client)
        self.overall.count("*")
        log.warning("failed editor login from %s", client)
        wait = max(self.per_client.wait(client), self.overall.wait("*"))
        if self.overall.wait("*"):
            log.error("editor logins locked for everyone: %d failures within %d minutes", FAILURES_OVERALL,
                      LOCKOUT_SECONDS // 60)
        return Login(wait=wait)

    def _valid_session(self, token: str) -> bool:
        if not token or self.password is None:
            return False
        try:
            read_editor_token(self.key, self.password, token, int(time.time()), SESSION_SECONDS)
        except TokenError:
            return False
        return True


class EditorPages:
    """The editor's routes: log in and out, and the preview of the next issue."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.editors = site.editors
        self.previews = Previews(site.config)

    def closed(self, request: Request) -> Response | None:
        """None when the request may see unpublished content; else the page that says why not."""
        if self.editors.allowed(request):
            return None
        labels = self.site.labels()
        if self.editors.access is Access.PASSWORD:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/editor/login?next={quote(target)}", status_code=303)
        return self.site.page(labels.previews_closed_title, [labels.previews_closed_text], status=403)

    async def login(self, request: Request) -> Response:
        form = await request.form() if request.method == "POST" else None
        fields = {k: str(v) for k, v in form.items()} if form is not None else None
        return await run_in_threadpool(self._login, request, fields)

    def _login(self, request: Request, form: dict[str, str] | None) -> Response:
        site = self.site
        labels = site.labels()
        target = _local_path(form.get("next", "") if form else request.query_params.get("next", ""))
        if self.editors.access is not Access.PASSWORD:
            if self.editors.access is Access.LOOPBACK:
                return RedirectResponse(target, status_code=303)
            return site.page(labels.previews_closed_title, [labels.previews_closed_text], status=403)
        problem, status = "", 200
        if form is not None:
            try:
                site.check_form(request, form)
            except TokenError as exc:
                problem, status = str(exc), 403
            else:
                result = self.editors.login(site.client(request), form.get("password", ""))
                if result.session:
                    redirect = RedirectResponse(target, status_code=303)
                    redirect.set_cookie(SESSION_COOKIE, result.session, max_age=SESSION_SECONDS, httponly=True,
                                        samesite="strict", secure=request.url.scheme == "https", path="/")
                    return redirect
                if result.wait:
                    minutes = max(1, math.ceil(result.wait / 60))
                    problem, status = str(labels.locked_text).format(minutes=minutes), 429
                else:
                    problem, status = labels.login_failed, 401
        nonce = site.nonce(request)
        response = site.render("web/login.html", {
            "page_title": labels.login_title, "form_token": site.form_token(nonce), "next": target,
            "problem": problem,
        }, status=status, headers={"Retry-After": "900"} if status == 429 else None)
        return site.with_nonce(response, request, nonce)

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        try:
            self.site.check_form(request, {"form_token": str(form.get("form_token", ""))})
        except TokenError as exc:
            return self.site.page(self.site.labels().bad_form_title, [str(exc)], status=403)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
        return response

    def preview(self, request: Request) -> Response:
        closed = self.closed(request)
        if closed is not None:
            return closed
        site = self.site
        digest = site.digest(request.path_params["digest"])
        labels = site.labels(digest)
        view = request.query_params.get("view", "html")
        if view not in ("html", "text", "headers"):
            view = "html"
        raw_as_of = request.query_params.get("as_of", "")
        try:
            when = self._when(digest, raw_as_of)
            found = self.previews.issue(digest, when)
        except NewsletterError as exc:
            return site.page(labels.content_problems_title, [labels.content_problems_text], status=422,
                             problems=exc.lines())
        config = found.project.config
        tlp = _tlp(request)
        rendered = found.copy(tlp)
        nonce = site.nonce(request)
        context = {
            "digest": digest, "page_title": f"{labels.preview_of} {digest.title}",
            "issue_id": found.issue.id, "subject": rendered.subject, "view": view, "as_of": raw_as_of,
            "tlp": tlp, "tiers": [(c.tlp, tlp_label(c.tlp)) for c in found.copies],
            "views": [("html", labels.view_html), ("text", labels.view_text), ("headers", labels.view_headers)],
            "text": for_sample(rendered.text, config.site, config.sample_subscriber), "headers": "",
            "logout": self.editors.access is Access.PASSWORD, "form_token": site.form_token(nonce),
        }
        if view == "headers":
            raw = build_message(rendered, config.site, config.sample_subscriber, SAMPLE_TOKEN,
                                preview_message_id(rendered, config.site), when)
            context["headers"] = raw.split(b"\r\n\r\n", 1)[0].decode("ascii").replace("\r\n", "\n")
        response = site.render("web/preview.html", context, headers={"Cache-Control": "no-store"})
        return site.with_nonce(response, request, nonce)

    def preview_email(self, request: Request) -> Response:
        closed = self.closed(request)
        if closed is not None:
            return closed
        digest = self.site.digest(request.path_params["digest"])
        try:
            found = self.previews.issue(digest, self._when(digest, request.query_params.get("as_of", "")))
        except NewsletterError as exc:
            return PlainTextResponse(str(exc), status_code=422)
        config = found.project.config
        html = for_sample(found.copy(_tlp(request)).html, config.site, config.sample_subscriber, is_html=True)
        return HTMLResponse(html, headers={
            "Content-Security-Policy": EMAIL_CSP, "X-Frame-Options": "SAMEORIGIN", "Cache-Control": "no-store",
        })

    @staticmethod
    def _when(digest: Digest, raw_as_of: str) -> datetime:
        return moment(parse_as_of(raw_as_of) if raw_as_of else datetime.now(UTC), digest)


def _tlp(request: Request) -> str:
    """The TLP copy an editor asked to see (`?tlp=amber`); CLEAR for anything else."""
    try:
        return parse_tlp(request.query_params.get("tlp", "clear"))
    except ValueError:
        return "clear"


def _local_path(raw: str) -> str:
    """Where to go after logging in: a path on this site only (never //host or a URL)."""
    if not raw.startswith("/") or raw.startswith("//") or "\\" in raw or any(c in raw for c in "\r\n"):
        return "/"
    return raw
