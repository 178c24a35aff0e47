"""A real SMTP server in-process for tests: records what it accepts and fails on request.

    def test_three_messages(smtp_server: SmtpServer) -> None:
        with open_transport(TransportSettings(smtp_server.url), Path(".")) as transport:
            transport.send("digest@example.org", "a@example.org", MESSAGE)
        assert smtp_server.recipients() == ["a@example.org"]

It is aiosmtpd's threaded `Controller` on 127.0.0.1 at a port the OS picks, so tests can run
in parallel and a subprocess can be pointed at `server.url`. Every accepted message is kept as a
`Received` (one per envelope recipient); faults are injected by setting `reply_for`,
`data_reply_for`, `drop_after()` or `data_delay` at any time, even while a client is sending.
TLS (`tls="starttls"` or `"ssl"`) uses a throwaway `trustme` CA whose certificate is at
`server.cafile`; `login=(user, password)` turns on AUTH.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, AnyStr, Literal

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

# aiosmtpd sets its own deprecated Session.login_data on every successful AUTH, and warns about it.
logging.getLogger("mail.log").addFilter(lambda record: "login_data is deprecated" not in record.getMessage())

Tls = Literal["none", "starttls", "ssl"]
SCHEME: dict[Tls, str] = {"none": "smtp", "starttls": "smtp+starttls", "ssl": "smtps"}

Reply = Callable[[str, int], str | None]
"""`reply(recipient, attempt)`: an SMTP reply line to refuse with, or None to go on as normal.

`attempt` counts how many times the recipient has been offered at RCPT, from 1, over all
connections, so `lambda r, n: "451 4.3.0 try later" if n == 1 else None` defers each address once.
A reply starting with 421 also closes the connection, as a real server does.
"""


@dataclass(frozen=True)
class Received:
    """One accepted message for one envelope recipient."""

    sender: str  # MAIL FROM, without angle brackets
    recipient: str  # RCPT TO
    data: bytes  # exactly what followed DATA, dot-unstuffed: CRLF line ends, final CRLF included
    connection: int  # which connection it came on: 1 for the first since start() or clear()
    tls: bool  # over TLS (SMTPS, or after STARTTLS)
    login: str | None  # the user the client authenticated as, if it did


class SmtpServer:
    """An SMTP server on 127.0.0.1 for one test; a context manager that starts and stops it.

    Thread-safe: aiosmtpd runs in its own thread; the test reads results from its own.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        tls: Tls = "none",
        login: tuple[str, str] | None = None,
        auth_require_tls: bool = True,
        auth_required: bool = False,
        ca: trustme.CA | None = None,
        pipelining: bool = False,
        size_limit: int | None = None,
    ) -> None:
        """`login` is the one (username, password) AUTH accepts; without it no AUTH is offered.

        `auth_require_tls` offers AUTH only once the connection is encrypted (aiosmtpd's default);
        over SMTPS the connection always is. `auth_required` refuses MAIL with 530 until a login.
        `ca` signs the server's certificate (default: a new CA), for tests that want two servers
        trusted by one CA, or a server the client must not trust. `host="::1"` listens on IPv6.
        `pipelining` advertises RFC 2920 PIPELINING (aiosmtpd reads pipelined commands in order).
        `size_limit` advertises RFC 1870 SIZE with that many bytes (aiosmtpd's own default: 32 MB).
        """
        self.pipelining = pipelining
        self.host = host
        self.tls = tls
        self.port = 0
        self.reply_for: Reply | None = None  # consulted at RCPT
        self.data_reply_for: Reply | None = None  # consulted when the message data has arrived
        self.data_delay = 0.0  # seconds to wait before answering the data: a slow server
        self.answer_delay = 0.0  # seconds to wait after keeping a message, before saying so
        self.errors: list[BaseException] = []  # exceptions inside the server (failed TLS handshakes too)
        self._login = login
        self._drop_after: int | None = None
        self._lock = threading.Condition()
        self._received: list[Received] = []
        self._attempts: Counter[str] = Counter()
        self._connections = 0
        self._live: set[_Connection] = set()
        self._folder = tempfile.TemporaryDirectory(prefix="smtp-server-")
        self.ca = ca or trustme.CA()
        self.cafile = str(Path(self._folder.name) / "ca.pem")  # pass as TransportSettings.cafile
        self.ca.cert_pem.write_to_path(self.cafile)
        context = None
        if tls != "none":
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert(host, "localhost").configure_cert(context)
        options: dict[str, Any] = {
            "server_hostname": "smtp.test",  # else aiosmtpd asks DNS for the FQDN
            # Over SMTPS aiosmtpd does not know it is encrypted and would refuse AUTH (its issue #281).
            "auth_require_tls": auth_require_tls and tls != "ssl",
            "auth_required": auth_required,
        }
        if size_limit is not None:
            options["data_size_limit"] = size_limit
        if login is not None:
            options["authenticator"] = self._authenticate
        if tls == "starttls":
            options["tls_context"] = context
        self._controller = _Controller(
            self, _Handler(self), hostname=self.host, port=0, ssl_context=context if tls == "ssl" else None, **options
        )

    @property
    def url(self) -> str:
        """The transport URL for this server, e.g. `smtp://127.0.0.1:40123`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{SCHEME[self.tls]}://{host}:{self.port}"

    def start(self) -> SmtpServer:
        """Listen; returns the server, its `port` and `url` now known."""
        self._controller.start()  # returns once the server has answered a probe connection
        with self._lock:
            self._connections = 0  # the probe is not a client
        return self

    def stop(self) -> None:
        """Close client connections, stop the server thread, delete the certificate files."""
        loop = self._controller.loop
        if loop.is_running():
            with self._lock:
                live = list(self._live)
            for connection in live:  # before the loop stops, so none is left half-open
                loop.call_soon_threadsafe(connection.hang_up)
            self._controller.stop()
        self._folder.cleanup()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def drop_after(self, n: int | None) -> None:
        """Hang up, with no reply, on the message after the `n`th accepted on a connection.

        The drop comes once that message's data has arrived, the moment when a client cannot
        know whether it was kept (it was not: it is not recorded). Every connection counts from
        0, so a client that reconnects gets `n` more. `None` turns this off.
        """
        self._drop_after = n

    @property
    def connections(self) -> int:
        """Client connections accepted since start() or clear()."""
        with self._lock:
            return self._connections

    def messages(self) -> list[Received]:
        """Accepted messages, in the order they arrived."""
        with self._lock:
            return list(self._received)

    def recipients(self) -> list[str]:
        """Recipients of accepted messages, in the order they arrived."""
        return [m.recipient for m in self.messages()]

    def attempts(self, recipient: str) -> int:
        """How many times `recipient` was offered at RCPT, accepted or not."""
        with self._lock:
            return self._attempts[recipient]

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Received]:
        """The accepted messages once there are at least `n`; AssertionError after `timeout` seconds."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._received) >= n, timeout):
                got = [m.recipient for m in self._received]
                raise AssertionError(f"expected {n} messages within {timeout} s, got {len(got)}: {got}")
            return list(self._received)

    def wait_closed(self, timeout: float = 5.0) -> None:
        """Return once no client connection is open (the server has seen each one end)."""
        with self._lock:
            if not self._lock.wait_for(lambda: not self._live, timeout):
                raise AssertionError(f"{len(self._live)} connections still open after {timeout} s")

    def clear(self) -> None:
        """Forget messages, attempts and the connection count; faults stay as set."""
        with self._lock:
            self._received.clear()
            self._attempts.clear()
            self._connections = 0

    # Below: called in the server's thread.

    def _opened(self) -> int:
        with self._lock:
            self._connections += 1
            return self._connections

    def _live_changed(self, connection: _Connection, live: bool) -> None:
        with self._lock:
            (self._live.add if live else self._live.discard)(connection)
            self._lock.notify_all()

    def _offered(self, recipient: str) -> int:
        with self._lock:
            self._attempts[recipient] += 1
            return self._attempts[recipient]

    def _accept(self, messages: list[Received]) -> None:
        with self._lock:
            self._received.extend(messages)
            self._lock.notify_all()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            self._login is not None
            and isinstance(data, LoginPassword)
            and (data.login, data.password) == tuple(s.encode() for s in self._login)
        )
        return AuthResult(success=ok, handled=False, auth_data=data)


class _Connection(SMTP):
    """aiosmtpd's protocol object for one client connection, numbered, hanging up after a 421."""

    def __init__(self, owner: SmtpServer, number: int, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.owner = owner
        self.number = number
        self.accepted = 0  # messages accepted on this connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # called again when STARTTLS swaps the transport
        self.owner._live_changed(self, True)

    def connection_lost(self, error: Exception | None) -> None:
        self.owner._live_changed(self, False)
        super().connection_lost(error)

    async def push(self, status: AnyStr) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # hung up on purpose: say nothing more
        await super().push(status)
        if status[:3] in ("421", b"421"):
            self.transport.close()

    def hang_up(self) -> None:
        """Drop the connection with no reply, as a crashed or overloaded server does."""
        if isinstance(self.transport, asyncio.Transport):
            self.transport.abort()

    @property
    def encrypted(self) -> bool:
        return self.transport is not None and self.transport.get_extra_info("ssl_object") is not None


class _Handler:
    """aiosmtpd's handler hooks, delegating every decision to the SmtpServer."""

    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_EHLO(
        self, server: _Connection, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.owner.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, server: _Connection, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        attempt = self.owner._offered(address)
        reply = self.owner.reply_for(address, attempt) if self.owner.reply_for else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: _Connection, session: Session, envelope: Envelope) -> str:
        owner = self.owner
        if owner.data_delay:
            await asyncio.sleep(owner.data_delay)
        limit = owner._drop_after
        if limit is not None and server.accepted >= limit:
            server.hang_up()
            return "451 4.3.0 never sent: the connection is gone"
        if owner.data_reply_for:
            for recipient in envelope.rcpt_tos:
                reply = owner.data_reply_for(recipient, owner.attempts(recipient))
                if reply:
                    return reply
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        sender, data = envelope.mail_from or "", envelope.original_content or b""
        owner._accept([
            Received(sender, recipient, data, server.number, server.encrypted, login) for recipient in envelope.rcpt_tos
        ])
        server.accepted += 1
        if owner.answer_delay:  # kept, and the client will not hear of it in time
            await asyncio.sleep(owner.answer_delay)
        return "250 2.0.0 OK: queued"

    async def handle_exception(self, error: Exception) -> str:
        self.owner.errors.append(error)
        return f"451 4.3.0 test server error: {error!r}"


class _Controller(Controller):
    """aiosmtpd's Controller, with port 0 working and our per-connection protocol."""

    def __init__(self, owner: SmtpServer, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.owner = owner

    def factory(self) -> _Connection:
        # Numbered here, not in connection_made: start() waits for this call, so the probe
        # connection is counted before start() resets the count.
        return _Connection(self.owner, self.owner._opened(), self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # aiosmtpd probes `self.port`, which is still 0 (aiosmtpd issue #388): learn the real one.
        assert isinstance(self.server, asyncio.Server)
        self.port = self.owner.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelining"])
def smtp_server(request: pytest.FixtureRequest) -> Iterator[SmtpServer]:
    """A plain SMTP server (no TLS, no AUTH), started for the test and stopped after it.

    Each test runs twice: once where the client waits for every reply, and once against a server
    offering PIPELINING (as Postfix does), where MAIL, RCPT and DATA go out together."""
    with SmtpServer(pipelining=request.param) as server:
        yield server


MakeServer = Callable[..., SmtpServer]


@pytest.fixture
def make_smtp_server() -> Iterator[MakeServer]:
    """`make_smtp_server(tls="starttls", login=("user", "pw"))`: a started server with those
    options (see SmtpServer); every server made is stopped after the test."""
    servers: list[SmtpServer] = []

    def make(**options: Any) -> SmtpServer:
        server = SmtpServer(**options).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
