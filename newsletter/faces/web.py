"""The web face: subscribe, confirm, unsubscribe (one-click too), preview, archive and feed.

Double opt-in subscriptions, a live preview for authors, the archive of issues and an Atom
feed; Starlette, served by uvicorn.

Routes are thin: they read the request, call the core (store, tokens, sending, rendering) and
pick a page. Everything that blocks runs in Starlette's thread pool.
"""

from __future__ import annotations

import logging
import secrets
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from datetime import UTC, datetime
from threading import Lock
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..compose.digest import Issue, moment, parse_as_of
from ..compose.message import build_message, preview_message_id, unsubscribe_url
from ..compose.render import UNSUBSCRIBE_URL, Labels, Rendered, Renderer
from ..errors import DeliveryError, InternalError, NewsletterError
from ..inputs.addresses import AddressError, check_name, normalize_address
from ..inputs.config import Config, Digest, Mailbox
from ..inputs.secrets import SECRET_KEY_ENV
from ..store import Store, StoredIssue
from ..usecases import sending
from ..usecases.build import PREVIEW_TOKEN, Project
from ..usecases.issues import compose_issue
from ..delivery.tokens import (
    TokenError, confirm_token, form_token, read_confirm_token, read_form_token, read_unsubscribe_token,
)

log = logging.getLogger("newsletter.web")
ONE_CLICK = "List-Unsubscribe=One-Click"  # RFC 8058: the body a mail provider POSTs
NONCE_COOKIE = "newsletter_nonce"
FORM_MAX_AGE = 2 * 3600
TEST_SUBSCRIPTION = sending.TEST_SUBSCRIPTION

# Pages: nothing but our own stylesheet, no script at all. Email HTML (preview, archive) needs
# its inline styles; it still gets no script, no form and no plugin.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; frame-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
EMAIL_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; form-action 'none'; "
    "frame-ancestors 'self'; base-uri 'none'"
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SecurityHeaders:
    """Every response: a strict Content-Security-Policy (unless the route set its own),
    nosniff, no referrer, and no framing by other sites."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", PAGE_CSP.encode()))
                    headers.append((b"x-frame-options", b"DENY"))
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"referrer-policy", b"no-referrer"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class Watched:
    """An ASGI `send` that remembers whether the response has begun (then no other can)."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        self.started = self.started or message["type"] == "http.response.start"
        await self.send(message)


class Crashes:
    """An unexpected error in a route becomes one log line and a plain 500 page, inside the
    middleware that adds the security headers (Starlette's own 500 handler sits outside it)."""

    def __init__(self, app: ASGIApp, page: Callable[[InternalError], Response]) -> None:
        self.app = app
        self.page = page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        watched = Watched(send)
        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            error = InternalError(f"{scope.get('method', '')} {scope.get('path', '')}", exc)
            log.error("%s", " ".join(error.lines()))
            log.debug("traceback", exc_info=True)
            if not watched.started:
                await self.page(error)(scope, receive, send)


class TooLarge(Exception):
    pass


class BodyLimit:
    """Refuse a request body over `limit` bytes with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await PlainTextResponse("Request too large", status_code=413)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise TooLarge
            return message

        watched = Watched(send)
        try:
            await self.app(scope, counted, watched)
        except TooLarge:
            if not watched.started:
                await PlainTextResponse("Request too large", status_code=413)(scope, receive, send)


class RateLimit:
    """At most `limit` events per key in a sliding hour, in this process's memory."""

    def __init__(self, limit: int, window: float = 3600.0) -> None:
        self.limit = limit
        self.window = window
        self.events: dict[str, deque[float]] = {}
        self.lock = Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self.lock:
            events = self.events.setdefault(key, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            if len(self.events) > 100_000:  # forget idle keys rather than grow without bound
                self.events = {k: v for k, v in self.events.items() if v}
            return True


class Site:
    """The app's state: config, store, key and page templates, loaded once at start."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.key, self.key_warning = web_key(self.config)
        self.store = Store.open(self.config.store_url)
        self.renderer = Renderer(self.config.templates_dir, self.config.site)
        web = self.config.web
        self.per_client = RateLimit(web.subscribe_per_client)
        self.per_address = RateLimit(web.subscribe_per_address)

    # --- pages ---

    def labels(self, digest: Digest | None = None) -> Labels:
        return self.renderer.labels_for(digest.language if digest else "en")

    def page(
        self, title: str, paragraphs: Sequence[str] = (), status: int = 200, digest: Digest | None = None,
        form_action: str | None = None, button: str = "", problems: Sequence[str] = (),
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        labels = self.labels(digest)
        html = self.renderer.page("web/message.html", {
            "page_title": title, "paragraphs": paragraphs, "labels": labels, "form_action": form_action,
            "button": button, "problems": problems, "lang": digest.language if digest else "en",
            "dir": digest.direction if digest else "ltr",
        })
        return HTMLResponse(html, status_code=status, headers=headers)

    def bad_link(self, error: TokenError) -> HTMLResponse:
        status = 410 if "expired" in str(error) else 400
        return self.page(self.labels().bad_link_title, [str(error)], status=status)

    def digest(self, name: str) -> Digest:
        for digest in self.config.digests:
            if digest.name == name:
                return digest
        raise HTTPException(404)

    # --- routes ---

    def index(self, request: Request) -> Response:
        nonce = request.cookies.get(NONCE_COOKIE) or secrets.token_hex(16)
        if not nonce.isalnum() or len(nonce) > 64:
            nonce = secrets.token_hex(16)
        labels = self.labels()
        html = self.renderer.page("web/index.html", {
            "digests": self.config.digests, "labels": labels, "label_for": self.labels,
            "form_token": form_token(self.key, nonce, int(time.time())), "page_title": labels.site_name,
            "lang": "en", "dir": "ltr",
        })
        response = HTMLResponse(html)
        response.set_cookie(
            NONCE_COOKIE, nonce, httponly=True, samesite="strict", secure=request.url.scheme == "https",
            max_age=FORM_MAX_AGE,
        )
        return response

    async def subscribe(self, request: Request) -> Response:
        form = await request.form()
        return await run_in_threadpool(self._subscribe, request, {k: str(v) for k, v in form.items()})

    def _subscribe(self, request: Request, form: dict[str, str]) -> Response:
        digest = self.digest(form.get("digest", ""))
        labels = self.labels(digest)
        try:
            read_form_token(self.key, form.get("form_token", ""), request.cookies.get(NONCE_COOKIE, ""),
                            int(time.time()), FORM_MAX_AGE)
        except TokenError as exc:
            return self.page(labels.bad_form_title, [str(exc)], status=403, digest=digest)
        client = request.client.host if request.client else "unknown"
        if not self.per_client.allow(f"client:{client}"):
            return self.too_many(digest)
        try:
            address = normalize_address(form.get("email", ""))
            name = check_name(form.get("name", ""))
        except AddressError as exc:
            return self.page(labels.bad_form_title, [str(exc)], status=400, digest=digest)
        if not self.per_address.allow(f"address:{address}"):
            return self.too_many(digest)
        subscription = self.store.subscribers.request(address, name, digest.name)
        if subscription is not None:
            token = confirm_token(self.key, subscription, int(time.time()))
            link = f"{self.config.site.base_url}/confirm/{token}"
            try:
                sending.send_confirmation(self.config, self.renderer, digest, Mailbox(name, address), link,
                                          self.config.web.confirm_hours)
            except DeliveryError:
                return self.page(labels.bad_form_title, ["The confirmation message could not be sent; try again later."],
                                 status=503, digest=digest)
        # The same answer whether the address was known, new or already subscribed.
        text = str(labels.check_inbox_text).format(address=address, title=digest.title)
        return self.page(labels.check_inbox_title, [text], digest=digest)

    def too_many(self, digest: Digest | None) -> HTMLResponse:
        labels = self.labels(digest)
        return self.page(labels.too_many_title, [labels.too_many_text], status=429, digest=digest,
                         headers={"Retry-After": "3600"})

    def confirm(self, request: Request) -> Response:
        try:
            subscription = read_confirm_token(self.key, request.path_params["token"], int(time.time()),
                                              self.config.web.confirm_hours * 3600)
        except TokenError as exc:
            return self.bad_link(exc)
        found = self.store.subscribers.subscription(subscription)
        if found is None:
            return self.bad_link(TokenError("this link is not valid: it was changed or is not one of ours"))
        subscriber, digest_name, _ = found
        digest = self.digest(digest_name)
        labels = self.labels(digest)
        if request.method == "POST":
            self.store.subscribers.confirm(subscription)
            text = str(labels.confirmed_text).format(address=subscriber.address, title=digest.title)
            return self.page(labels.confirmed_title, [text], digest=digest)
        text = str(labels.confirm_text).format(address=subscriber.address, title=digest.title)
        return self.page(labels.confirm_title, [text], digest=digest, form_action=request.url.path,
                         button=labels.confirm_button)

    async def unsubscribe(self, request: Request) -> Response:
        one_click = False
        if request.method == "POST":
            form = await request.form()
            one_click = form.get("List-Unsubscribe") == "One-Click"
        return await run_in_threadpool(self._unsubscribe, request, one_click)

    def _unsubscribe(self, request: Request, one_click: bool) -> Response:
        """GET shows a button and changes nothing (mail scanners fetch links); POST unsubscribes.
        A one-click POST (RFC 8058) gets a plain 200 with nothing to click."""
        try:
            subscription = read_unsubscribe_token(self.key, request.path_params["token"])
        except TokenError as exc:
            return PlainTextResponse(str(exc), status_code=400) if one_click else self.bad_link(exc)
        if subscription == TEST_SUBSCRIPTION:
            text = self.labels().test_copy_text
            return PlainTextResponse(text) if one_click else self.page(self.labels().unsubscribe_title, [text])
        found = self.store.subscribers.subscription(subscription)
        if found is None:
            error = TokenError("this link is not valid: it was changed or is not one of ours")
            return PlainTextResponse(str(error), status_code=400) if one_click else self.bad_link(error)
        subscriber, digest_name, status = found
        digest = next((d for d in self.config.digests if d.name == digest_name), None)
        labels = self.labels(digest)
        title = digest.title if digest else digest_name
        if request.method == "POST":
            self.store.subscribers.unsubscribe(
                subscription, how="by one-click unsubscribe (RFC 8058)" if one_click else "by the unsubscribe page")
            text = str(labels.unsubscribed_text).format(address=subscriber.address, title=title)
            return PlainTextResponse(text) if one_click else self.page(labels.unsubscribed_title, [text], digest=digest)
        if status == "unsubscribed":
            text = str(labels.unsubscribed_text).format(address=subscriber.address, title=title)
            return self.page(labels.unsubscribed_title, [text], digest=digest)
        text = str(labels.unsubscribe_text).format(address=subscriber.address, title=title)
        return self.page(labels.unsubscribe_title, [text], digest=digest, form_action=request.url.path,
                         button=labels.unsubscribe_button)

    def project(self) -> Project:
        """Content and templates as they are now: an author edits, reloads, sees."""
        return Project.of(self.config)

    def preview(self, request: Request) -> Response:
        digest = self.digest(request.path_params["digest"])
        labels = self.labels(digest)
        view = request.query_params.get("view", "html")
        if view not in ("html", "text", "headers"):
            view = "html"
        raw_as_of = request.query_params.get("as_of", "")
        try:
            project, when, issue, rendered = self._preview_issue(digest, raw_as_of)
        except NewsletterError as exc:
            return self.page(labels.content_problems_title, [labels.content_problems_text], status=422,
                             problems=exc.lines())
        link = unsubscribe_url(project.config.site, PREVIEW_TOKEN)
        context = {
            "digest": digest, "labels": labels, "page_title": f"{labels.preview_of} {digest.title}",
            "issue_id": issue.id, "subject": rendered.subject, "view": view, "as_of": raw_as_of,
            "views": [("html", labels.view_html), ("text", labels.view_text), ("headers", labels.view_headers)],
            "text": rendered.text.replace(UNSUBSCRIBE_URL, link), "headers": "", "lang": "en", "dir": "ltr",
        }
        if view == "headers":
            raw = build_message(rendered, project.config.site, project.config.sample_subscriber, PREVIEW_TOKEN,
                                preview_message_id(rendered, project.config.site), when)
            context["headers"] = raw.split(b"\r\n\r\n", 1)[0].decode("ascii").replace("\r\n", "\n")
        return HTMLResponse(self.renderer.page("web/preview.html", context))

    def _preview_issue(self, digest: Digest, raw_as_of: str) -> tuple[Project, datetime, Issue, Rendered]:
        """The issue `digest` would have as of `raw_as_of` (default now), from the files as they are."""
        project = self.project()
        current = project.config.digest(digest.name)
        when = moment(parse_as_of(raw_as_of) if raw_as_of else datetime.now(UTC), current)
        issue, rendered = compose_issue(project, current, when)
        return project, when, issue, rendered

    def preview_email(self, request: Request) -> Response:
        digest = self.digest(request.path_params["digest"])
        try:
            project, _, _, rendered = self._preview_issue(digest, request.query_params.get("as_of", ""))
        except NewsletterError as exc:
            return PlainTextResponse(str(exc), status_code=422)
        html = rendered.html.replace(UNSUBSCRIBE_URL, unsubscribe_url(project.config.site, PREVIEW_TOKEN))
        return HTMLResponse(html, headers={"Content-Security-Policy": EMAIL_CSP, "X-Frame-Options": "SAMEORIGIN"})

    def archive(self, request: Request) -> Response:
        wanted = request.query_params.get("digest")
        issues = [i for i in self.store.issues.iter() if wanted in (None, i.digest)]
        labels = self.labels()
        return HTMLResponse(self.renderer.page("web/archive.html", {
            "issues": issues, "labels": labels, "page_title": labels.issues_title, "lang": "en", "dir": "ltr",
        }))

    def issue(self, request: Request) -> Response:
        stored = self.store.issues.by_name(request.path_params["name"])
        if stored is None:
            raise HTTPException(404)
        html = stored.html.replace(UNSUBSCRIBE_URL, f"{self.config.site.base_url}/")
        return HTMLResponse(html, headers={"Content-Security-Policy": EMAIL_CSP.replace("'self'", "'none'")})

    def feed(self, request: Request) -> Response:
        name = request.query_params.get("digest") or self.config.digests[0].name
        digest = self.digest(name)
        issues = [i for i in self.store.issues.iter() if i.digest == digest.name][:50]
        return Response(atom_feed(self.config, digest, issues), media_type="application/atom+xml; charset=utf-8")

    def stylesheet(self, request: Request) -> Response:
        css = (self.config.templates_dir / "web" / "site.css").read_bytes()
        return Response(css, media_type="text/css; charset=utf-8", headers={"Cache-Control": "max-age=300"})

    def crashed(self, error: InternalError) -> Response:
        labels = self.labels()
        return self.page(labels.bad_form_title, ["Something went wrong on our side; it has been logged."], status=500)

    async def error(self, request: Request, exc: Exception) -> Response:
        labels = self.labels()
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        title, text = {
            404: (labels.not_found_title, labels.not_found_text),
            405: (labels.method_title, labels.method_text),
        }.get(code, (labels.bad_form_title, str(getattr(exc, "detail", ""))))
        headers = getattr(exc, "headers", None)
        return self.page(title, [text], status=code, headers=headers)


def web_key(config: Config) -> tuple[bytes, str | None]:
    if config.secrets.signing_key is not None:
        return config.secrets.signing_key, None
    return secrets.token_bytes(32), (
        f"{SECRET_KEY_ENV} is not set: links signed now (confirmations, the unsubscribe links of "
        "messages sent meanwhile) stop working when this server stops"
    )


def atom_feed(config: Config, digest: Digest, issues: list[StoredIssue]) -> bytes:
    """An Atom 1.0 feed (RFC 4287) of a digest's issues, newest first."""
    atom = "http://www.w3.org/2005/Atom"
    ET.register_namespace("", atom)
    base = config.site.base_url

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{atom}}}{tag}", attributes)
        element.text = text
        return element

    def stamp(moment_: datetime) -> str:
        return moment_.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    feed = ET.Element(f"{{{atom}}}feed", {"xml:lang": digest.language})
    sub(feed, "id", f"tag:{config.site.domain},2022:{digest.name}")
    sub(feed, "title", digest.title)
    if digest.description:
        sub(feed, "subtitle", digest.description)
    sub(feed, "updated", stamp(max((i.created_at for i in issues), default=datetime(2022, 1, 1))))
    sub(feed, "link", rel="self", href=f"{base}/feed.xml?digest={digest.name}")
    sub(feed, "link", rel="alternate", type="text/html", href=f"{base}/issues/?digest={digest.name}")
    author = sub(feed, "author")
    sub(author, "name", digest.sender.name)
    for stored in issues:
        entry = sub(feed, "entry")
        sub(entry, "id", f"tag:{config.site.domain},2022:{stored.name}")
        sub(entry, "title", stored.subject)
        sub(entry, "updated", stamp(stored.created_at))
        sub(entry, "published", stamp(stored.as_of))
        sub(entry, "link", rel="alternate", type="text/html", href=f"{base}/issues/{stored.name}")
        sub(entry, "summary", stored.preheader)
    return bytes(ET.tostring(feed, encoding="utf-8", xml_declaration=True))


def create_app(config: Config) -> Starlette:
    site = Site(config)
    routes = [
        Route("/", site.index),
        Route("/subscribe", site.subscribe, methods=["POST"]),
        Route("/confirm/{token}", site.confirm, methods=["GET", "POST"]),
        Route("/u/{token}", site.unsubscribe, methods=["GET", "POST"]),
        Route("/preview/{digest}", site.preview),
        Route("/preview/{digest}/email", site.preview_email),
        Route("/issues/", site.archive),
        Route("/issues/{name}", site.issue),
        Route("/feed.xml", site.feed),
        Route("/static/site.css", site.stylesheet),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: site.error})
    app.add_middleware(BodyLimit, limit=site.config.web.max_body)
    app.add_middleware(Crashes, page=site.crashed)  # inside SecurityHeaders: its page gets them too
    app.add_middleware(SecurityHeaders)
    app.state.site = site
    return app
