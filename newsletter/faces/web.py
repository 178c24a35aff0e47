"""The web face: the public pages (home, archive, feed), readers' links and the editors' preview.

Starlette, served by uvicorn. Routes are thin: they read the request, call one use case and
pick a page; everything that blocks runs in Starlette's thread pool. Readers' pages are in
faces/readerpages.py, the editors' in faces/editors.py; this module holds what they share
(config, store, key, pages and forms) and the public pages.

What is public never shows what was not sent: the archive and the feed list issues that
went out (usecases/archive.py); the preview of the next issue is for editors.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ..compose.render import Labels, Renderer
from ..delivery.tokens import TokenError, form_token, read_form_token
from ..errors import InternalError
from ..inputs.config import Config, Digest
from ..inputs.secrets import SECRET_KEY_ENV
from ..store import Store
from ..usecases import archive
from .editors import EditorPages, Editors
from .middleware import EMAIL_CSP, BodyLimit, Crashes, RateLimit, SecurityHeaders
from .readerpages import ReaderPages

NONCE_COOKIE = "newsletter_nonce"
FORM_MAX_AGE = 2 * 3600


class Site:
    """The app's state: config, store, key, page templates and limits, loaded once at start."""

    def __init__(self, config: Config, bound_host: str | None = None) -> None:
        self.config = config
        self.key, self.key_warning = web_key(self.config)
        self.store = Store.open(self.config.store_url)
        self.renderer = Renderer(self.config.templates_dir, self.config.site)
        web = self.config.web
        self.per_client = RateLimit(web.subscribe_per_client)
        self.per_address = RateLimit(web.subscribe_per_address)
        self.editors = Editors(self.key, config.secrets.editor_password, bound_host, web.trusted_proxies)

    # --- pages and forms, for every route ---

    def labels(self, digest: Digest | None = None) -> Labels:
        return self.renderer.labels_for(digest.language if digest else "en")

    def render(self, template: str, context: dict[str, Any], digest: Digest | None = None, status: int = 200,
               headers: Mapping[str, str] | None = None) -> HTMLResponse:
        """A page from templates/web/, in the digest's language and direction (English without one)."""
        html = self.renderer.page(template, {
            "labels": self.labels(digest), "lang": digest.language if digest else "en",
            "dir": digest.direction if digest else "ltr", "postal_address": self.config.site.postal_address,
            **context,
        })
        return HTMLResponse(html, status_code=status, headers=headers)

    def page(
        self, title: str, paragraphs: Sequence[str] = (), status: int = 200, digest: Digest | None = None,
        form_action: str | None = None, button: str = "", problems: Sequence[str] = (),
        headers: Mapping[str, str] | None = None, form_token: str = "",
    ) -> HTMLResponse:
        return self.render("web/message.html", {
            "page_title": title, "paragraphs": paragraphs, "form_action": form_action, "button": button,
            "problems": problems, "form_token": form_token,
        }, digest, status, headers)

    def bad_link(self, error: TokenError, digest: Digest | None = None) -> HTMLResponse:
        status = 410 if "expired" in str(error) else 400
        return self.page(self.labels(digest).bad_link_title, [str(error)], status=status, digest=digest)

    def digest(self, name: str) -> Digest:
        for digest in self.config.digests:
            if digest.name == name:
                return digest
        raise HTTPException(404)

    def configured(self, name: str) -> Digest | None:
        return next((d for d in self.config.digests if d.name == name), None)

    def nonce(self, request: Request) -> str:
        """The browser's nonce (its cookie), or a new one: forms we serve are bound to it."""
        nonce = request.cookies.get(NONCE_COOKIE, "")
        return nonce if nonce.isalnum() and 16 <= len(nonce) <= 64 else secrets.token_hex(16)

    def form_token(self, nonce: str) -> str:
        return form_token(self.key, nonce, int(time.time()))

    def with_nonce(self, response: Response, request: Request, nonce: str) -> Response:
        response.set_cookie(
            NONCE_COOKIE, nonce, httponly=True, samesite="strict", secure=request.url.scheme == "https",
            max_age=FORM_MAX_AGE, path="/",
        )
        return response

    def check_form(self, request: Request, form: FormData | Mapping[str, str]) -> None:
        """TokenError unless the form came from a page we served to this browser recently (CSRF)."""
        read_form_token(self.key, str(form.get("form_token", "")), request.cookies.get(NONCE_COOKIE, ""),
                        int(time.time()), FORM_MAX_AGE)

    @staticmethod
    def client(request: Request) -> str:
        """The client's address: the connection's, or a trusted proxy's X-Forwarded-For."""
        return request.client.host if request.client else "unknown"

    # --- public pages ---

    def index(self, request: Request) -> Response:
        nonce = self.nonce(request)
        labels = self.labels()
        response = self.render("web/index.html", {
            "digests": self.config.digests, "label_for": self.labels, "form_token": self.form_token(nonce),
            "page_title": labels.site_name, "editor": self.editors.allowed(request),
        })
        return self.with_nonce(response, request, nonce)

    def archive(self, request: Request) -> Response:
        wanted = request.query_params.get("digest")
        digest = self.digest(wanted) if wanted else None
        issues = archive.published(self.config, self.store, digest.name if digest else None)
        labels = self.labels(digest)
        return self.render("web/archive.html", {
            "issues": issues, "label_for": self.labels, "digest": digest,
            "page_title": f"{labels.issues_title}: {digest.title}" if digest else labels.issues_title,
        }, digest)

    def issue(self, request: Request) -> Response:
        found = archive.find(self.config, self.store, request.path_params["name"])
        if found is None:
            raise HTTPException(404)
        nonce = self.nonce(request)
        response = self.render("web/issue.html", {
            "issue": found, "page_title": found.stored.subject, "form_token": self.form_token(nonce),
            "digest": found.digest,
        }, found.digest)
        return self.with_nonce(response, request, nonce)

    def issue_stix(self, request: Request) -> Response:
        """The issue's CLEAR copy as a STIX 2.1 bundle, as stored when it was made."""
        found = archive.find(self.config, self.store, request.path_params["name"])
        if found is None or not found.stored.stix:
            raise HTTPException(404)
        return Response(found.stored.stix, media_type="application/stix+json;version=2.1",
                        headers={"Content-Disposition": f'inline; filename="{found.stored.name}.stix.json"'})

    def issue_email(self, request: Request) -> Response:
        found = archive.find(self.config, self.store, request.path_params["name"])
        if found is None:
            raise HTTPException(404)
        return HTMLResponse(archive.public_html(self.config, found.stored),
                            headers={"Content-Security-Policy": EMAIL_CSP, "X-Frame-Options": "SAMEORIGIN"})

    def feed(self, request: Request) -> Response:
        digest = self.digest(request.query_params.get("digest") or self.config.digests[0].name)
        issues = archive.published(self.config, self.store, digest.name)
        return Response(archive.atom_feed(self.config, digest, issues), media_type="application/atom+xml; charset=utf-8")

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


def create_app(config: Config, bound_host: str | None = None) -> Starlette:
    """The app; `bound_host` is the address `serve` listens on (the preview needs no login
    only on loopback, see faces/editors.py)."""
    site = Site(config, bound_host)
    readers = ReaderPages(site)
    editors = EditorPages(site)
    routes = [
        Route("/", site.index),
        Route("/subscribe", readers.subscribe, methods=["POST"]),
        Route("/confirm/{token}", readers.confirm, methods=["GET", "POST"]),
        Route("/u/{token}", readers.unsubscribe, methods=["GET", "POST"]),
        Route("/p/{token}", readers.preferences, methods=["GET", "POST"]),
        Route("/editor/login", editors.login, methods=["GET", "POST"]),
        Route("/editor/logout", editors.logout, methods=["POST"]),
        Route("/preview/{digest}", editors.preview),
        Route("/preview/{digest}/email", editors.preview_email),
        Route("/issues/", site.archive),
        Route("/issues/{name}.stix.json", site.issue_stix),
        Route("/issues/{name}", site.issue),
        Route("/issues/{name}/email", site.issue_email),
        Route("/feed.xml", site.feed),
        Route("/static/site.css", site.stylesheet),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: site.error})
    app.add_middleware(BodyLimit, limit=site.config.web.max_body)
    app.add_middleware(Crashes, page=site.crashed)  # inside SecurityHeaders: its page gets them too
    app.add_middleware(SecurityHeaders)
    if config.web.trusted_proxies:  # outermost: every layer sees the client the proxy names
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(config.web.trusted_proxies))
    app.state.site = site
    return app
