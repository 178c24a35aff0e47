"""The web app's ASGI layers: security headers, one line per crash, a body limit, rate limits.

Generic pieces with no knowledge of the routes; faces/web.py stacks them around the app.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from threading import Lock
from typing import Any

from starlette.responses import PlainTextResponse, Response

from ..errors import InternalError

log = logging.getLogger("newsletter.web")

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
    """At most `limit` events per key in a sliding window (an hour unless told), in this
    process's memory."""

    def __init__(self, limit: int, window: float = 3600.0) -> None:
        self.limit = limit
        self.window = window
        self.events: dict[str, deque[float]] = {}
        self.lock = Lock()

    def allow(self, key: str) -> bool:
        """Count one event for `key` if the limit allows it; whether it did."""
        with self.lock:
            if self._wait(key, time.monotonic()):
                return False
            self._add(key, time.monotonic())
            return True

    def count(self, key: str) -> None:
        """Count one event whatever the limit (a failed login, say)."""
        with self.lock:
            self._add(key, time.monotonic())

    def wait(self, key: str) -> float:
        """Seconds until `key` may have another event (0: now)."""
        with self.lock:
            return self._wait(key, time.monotonic())

    def _wait(self, key: str, now: float) -> float:
        events = self.events.get(key)
        if not events:
            return 0.0
        while events and events[0] <= now - self.window:
            events.popleft()
        if len(events) < self.limit:
            return 0.0
        return events[-self.limit] + self.window - now

    def _add(self, key: str, now: float) -> None:
        # The last `limit` events are all a wait depends on: a key hammered with failures
        # keeps no more than that.
        self.events.setdefault(key, deque(maxlen=self.limit)).append(now)
        if len(self.events) > 100_000:  # forget idle keys rather than grow without bound
            self.events = {k: v for k, v in self.events.items() if v and v[-1] > now - self.window}
