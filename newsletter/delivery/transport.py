"""Hand finished message bytes to a Maildir folder or an SMTP server, translating every failure.

A transport takes one message at a time (`send`), or a stream of them (`submit`, then `flush`)
whose outcomes it reports as each becomes known: over SMTP with PIPELINING, the next message
goes out before the previous one's final reply is read, one round trip per message, and a
message's body goes out while the caller records the answers before it: only its final dot,
which the caller's next call sends, lets the server take it.
"""

from __future__ import annotations

import errno
import mailbox
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from ..errors import (
    ConnectionFault, DeliveryError, MessageRejected, NewsletterError, OutOfSpace, PermanentError, PolicyError,
    TransientError, UncertainError, display_path,
)
from ..inputs.config import TransportSettings, plaintext_auth_problem
from ..inputs.endpoint import Endpoint, parse_transport_url
from ..inputs.secrets import SMTP_PASSWORD_ENV
from .smtp import Client, Lost, Phase, Refused, Reply, Unsupported

CONTROL = re.compile("[\x00-\x1f\x7f]")
POLICY_CODES = frozenset({530, 535, 538})  # authentication required, rejected, or needs encryption


@dataclass(frozen=True)
class Envelope:
    """One message for one recipient, named by the caller's `ticket` (a delivery's id)."""

    ticket: int
    sender: str
    recipient: str
    message: bytes
    dot_safe: bool = False  # the caller promises no line of `message` starts with a dot


@dataclass(frozen=True)
class Outcome:
    """What became of a submitted message: accepted (`error` None) or the error that says why not."""

    ticket: int
    error: DeliveryError | None
    unsent: bool = False  # it never left: its commands went out on a connection another message's answer ended


class Transport(Protocol):
    """Delivers messages, one recipient each; `name` identifies it in logs and errors."""

    name: str

    def send(self, sender: str, recipient: str, message: bytes, dot_safe: bool = False) -> None:
        """Deliver one message now, or raise the DeliveryError that says why not."""

    def collect(self) -> list[Outcome]:
        """The answers due for messages submitted earlier, read now. Record them before the next
        submit(): that one may end a message (its final dot), and an answer read and not
        recorded when the process dies would mean a second copy. A message's body may already
        go out here: without its dot the server cannot take it."""

    def submit(self, envelope: Envelope) -> list[Outcome]:
        """Hand over one message; return the outcomes now known, in the order the messages were
        submitted: earlier messages' (when collect() was not called first), and maybe this
        one's. Never raises a DeliveryError."""

    def flush(self, send_waiting: bool = True) -> list[Outcome]:
        """Wait for the outcome of every message submitted and not yet reported: call again
        until it returns nothing, recording each answer in between. With
        `send_waiting` False (a send that stops), a message not yet under way is given up
        instead: it is not reported, and stays the caller's to release."""

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def open_transport(settings: TransportSettings, base: Path, password: str | None = None) -> Transport:
    """The transport `settings.url` names (a relative folder is relative to `base`, the
    config file's folder). SMTP connects on the first send, not here."""
    endpoint = parse_transport_url(settings.url, base)
    if endpoint.folder is not None:
        return FileTransport(endpoint.folder)
    return SmtpTransport(endpoint, settings, password)


class _Closing:
    def close(self) -> None:
        pass

    def send(self, sender: str, recipient: str, message: bytes, dot_safe: bool = False) -> None:
        raise NotImplementedError

    def collect(self) -> list[Outcome]:
        return []

    def submit(self, envelope: Envelope) -> list[Outcome]:
        """One at a time: the message's own outcome, at once."""
        try:
            self.send(envelope.sender, envelope.recipient, envelope.message, envelope.dot_safe)
        except DeliveryError as error:
            return [Outcome(envelope.ticket, error)]
        return [Outcome(envelope.ticket, None)]

    def flush(self, send_waiting: bool = True) -> list[Outcome]:
        return []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _envelope_address(address: str, what: str) -> str:
    if CONTROL.search(address):
        raise PermanentError(f"the {what} address contains a line break or control character: {address!r}")
    return address


class FileTransport(_Closing):
    """Delivers into a Maildir (`mutt -f DIR` reads it), as a local delivery agent would."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = f"file:{display_path(folder)}"
        try:
            for sub in ("tmp", "new", "cur"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PolicyError(f"cannot create the Maildir {display_path(folder)}: {exc.strerror}") from exc
        self._maildir = mailbox.Maildir(folder, create=False)

    def send(self, sender: str, recipient: str, message: bytes, dot_safe: bool = False) -> None:
        trace = (
            f"Return-Path: <{_envelope_address(sender, 'sender')}>\n"
            f"Delivered-To: {_envelope_address(recipient, 'recipient')}\n"
        ).encode()
        try:
            # mailbox writes to tmp/, fsyncs, then links into new/ under a unique Maildir name.
            self._maildir.add(trace + message.replace(b"\r\n", b"\n"))
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OutOfSpace(
                    f"the disk of the Maildir {display_path(self.folder)} is full: nothing more was written; "
                    "make room and run again to go on"
                ) from None
            raise PolicyError(f"cannot write to the Maildir {display_path(self.folder)}: {exc.strerror}") from exc


def classify(phase: Phase, reply: Reply) -> type[DeliveryError]:
    """What a refusal means, by the phase it came in and its enhanced code (RFC 5321, 3463).

    - 4xx, and 5.2.2 (mailbox full) or a 552 to RCPT: soft, try later.
    - Authentication codes (530, 535, 538), and any 5xx before a transaction, to MAIL FROM,
      or a 5.7.x after the data: our own setup (login, relay rights, sender, DKIM, SPF).
    - A 552 or 5.3.4 to MAIL or after the data: the message is too large, for everyone.
    - Any other 5xx to RCPT (5.7.1 included) or to the data: this recipient, for good.
    """
    code, enhanced = reply.code, reply.enhanced
    if code < 500:
        return TransientError
    if enhanced is not None and enhanced[1:] == (2, 2) or (code == 552 and phase == "rcpt"):
        return TransientError
    if code in POLICY_CODES or phase in ("connect", "greeting", "ehlo", "starttls", "auth"):
        return PolicyError
    too_large = code == 552 or (enhanced is not None and enhanced[1:] == (3, 4))
    if phase in ("mail", "data", "end_of_data") and too_large:
        return MessageRejected
    if phase == "mail":
        return PolicyError  # every recipient would fail alike
    if phase in ("data", "end_of_data") and enhanced is not None and enhanced[1] == 7:
        return PolicyError
    return PermanentError


class SmtpTransport(_Closing):
    """Delivers over one reused SMTP connection, opened on the first send and again after a failure.

    Not thread-safe: give each sending thread its own transport, hence its own connection.
    """

    def __init__(self, endpoint: Endpoint, settings: TransportSettings, password: str | None = None) -> None:
        self.endpoint = endpoint
        self.name = endpoint.name
        if settings.username and endpoint.username and settings.username != endpoint.username:
            raise NewsletterError(
                f"transport {self.name}: the URL names user {endpoint.username} but the settings name "
                f"{settings.username}; give the username once"
            )
        self._username = settings.username or endpoint.username
        self._password = password
        problem = plaintext_auth_problem(endpoint, self._username, settings.allow_plaintext_auth)
        if problem is not None:
            raise PolicyError(f"{self.name}: {problem}")
        if self._username and not self._password:
            raise PolicyError(f"{self.name}: no password for user {self._username}; set {SMTP_PASSWORD_ENV}")
        self._timeouts = settings.timeouts
        self._helo = settings.helo
        self._context = _tls_context(settings.cafile) if endpoint.security != "none" else None
        self._client: Client | None = None
        self._unanswered: Envelope | None = None  # its content and final dot went out, its answer not read
        self._commanded: Envelope | None = None  # its MAIL, RCPT and DATA went out, their replies not read
        self._ready: Envelope | None = None  # the server said 354 and has its body: it waits for the final dot

    def send(self, sender: str, recipient: str, message: bytes, dot_safe: bool = False) -> None:
        outcomes = self.submit(Envelope(0, sender, recipient, message, dot_safe)) + self.flush()
        error = next((o.error for o in outcomes if o.ticket == 0), None)
        if error is not None:
            raise error

    def collect(self) -> list[Outcome]:
        """With PIPELINING: the final reply to the message whose content went out last, and the
        replies to the commands that went with it. The body of the message the server now waits
        for goes out at once, so the server reads it while the caller records these answers;
        its final dot goes at the next submit(), with that message's commands, or at flush()."""
        outcomes, ready = self._answers()
        return outcomes + self._begin(ready)

    def submit(self, envelope: Envelope) -> list[Outcome]:
        """With PIPELINING, write the final dot of the message whose body went out at collect()
        together with this one's MAIL, RCPT and DATA, and return without waiting: the server
        works on them while the caller prepares the next message, and collect() reads the
        answers. One round trip per message, and at most one message per connection out and
        unanswered between calls."""
        if self._unanswered is not None or self._commanded is not None:
            # Answers are due, to be recorded before any final dot goes out: this one waits its turn.
            waits = TransientError(f"not sent yet to {envelope.recipient}: answers to earlier messages came first")
            return self.collect() + [Outcome(envelope.ticket, waits, unsent=True)]
        ready, self._ready = self._ready, None
        try:
            client = self._client or self._connect()
            options = _mail_options(self.name, client, envelope)
        except DeliveryError as error:
            self._ready = ready
            return self._deliver() + [Outcome(envelope.ticket, error)]
        if not client.pipelining:
            try:
                client.send(envelope.sender, envelope.recipient, envelope.message, options, envelope.dot_safe)
            except (Refused, Lost) as failure:
                return [Outcome(envelope.ticket, self._failure(failure, envelope, client))]
            return [Outcome(envelope.ticket, None)]
        commands = client.commands(envelope.sender, envelope.recipient, options)
        try:
            if ready is not None:
                client.end(then=commands)
            else:
                client.start(envelope.sender, envelope.recipient, options)
        except Lost as lost:
            # The one waiting is uncertain if its final dot got out; this one never went.
            lost_too = [Outcome(ready.ticket, self._failure(lost, ready, client))] if ready is not None else []
            self._drop()
            return lost_too + [Outcome(envelope.ticket, self._unsent(lost, envelope))]
        self._unanswered, self._commanded = ready, envelope
        return []

    def flush(self, send_waiting: bool = True) -> list[Outcome]:
        """Read the answers still due; once they are all in (and recorded: the caller calls
        again), end the message the server waits for and read its answer. Without
        `send_waiting`, close the connection instead: a server that said 354 reads everything
        up to a final dot as the message, so only a close takes it back."""
        outcomes, ready = self._answers()
        if not send_waiting:
            if ready is not None or self._ready is not None:
                self._drop()
            return outcomes
        outcomes += self._begin(ready)
        if outcomes:
            return outcomes  # the dot of the one waiting goes at the next call, after these are recorded
        return self._deliver()

    def _begin(self, ready: Envelope | None) -> list[Outcome]:
        """Write the body of `ready`, which the server waits for, and keep it for its final dot;
        a connection lost meanwhile delivered nothing."""
        client = self._client
        if ready is None or client is None:
            return []
        try:
            client.body(ready.message, ready.dot_safe)
        except Lost as lost:
            return [Outcome(ready.ticket, self._failure(lost, ready, client))]
        self._ready = ready
        return []

    def _answers(self) -> tuple[list[Outcome], Envelope | None]:
        """The outcome of the message whose dot went out last, then the replies to the commands
        that went with it: the message whose content the server now waits for, if it does."""
        client = self._client
        unanswered, self._unanswered = self._unanswered, None
        commanded, self._commanded = self._commanded, None
        if client is None:
            return [], None
        outcomes = self._finish(unanswered, client) if unanswered is not None else []
        if commanded is None:
            return outcomes, None
        if self._client is not client:  # that answer ended the connection: the next one never went
            return outcomes + [Outcome(commanded.ticket, self._unsent(None, commanded), unsent=True)], None
        try:
            client.accepted()
        except (Refused, Lost) as failure:
            return outcomes + [Outcome(commanded.ticket, self._failure(failure, commanded, client))], None
        return outcomes, commanded

    def _deliver(self) -> list[Outcome]:
        """End the message whose body went out (its final dot), and read its answer."""
        client, ready, self._ready = self._client, self._ready, None
        if ready is None or client is None:
            return []
        try:
            client.end()
        except Lost as lost:
            return [Outcome(ready.ticket, self._failure(lost, ready, client))]
        return self._finish(ready, client)

    def _finish(self, envelope: Envelope, client: Client) -> list[Outcome]:
        """The final reply to `envelope`, whose content went out last."""
        try:
            client.finish()
        except Refused as refused:  # the transaction is over either way: no RSET
            error = self._refused(refused.phase, refused.reply, envelope.sender, envelope.recipient,
                                  len(envelope.message))
            if refused.reply.code == 421:
                self._drop()
            return [Outcome(envelope.ticket, error)]
        except Lost as lost:
            return [Outcome(envelope.ticket, self._failure(lost, envelope, client))]
        return [Outcome(envelope.ticket, None)]

    def _unsent(self, lost: Lost | None, envelope: Envelope) -> DeliveryError:
        """A message whose commands went out on a connection that then ended: it cannot have been
        delivered, and goes again at once on a new connection (unless the server went silent)."""
        if lost is not None and lost.timed_out:
            return ConnectionFault(f"{self.name} stopped answering (at {lost.phase.replace('_', ' ')}): {lost.why}")
        why = lost.why if lost is not None else "the connection ended"
        return TransientError(f"lost the connection to {self.name} before the message to {envelope.recipient} "
                              f"went out: {why}")

    def _failure(self, failure: Refused | Lost, envelope: Envelope, client: Client | None) -> DeliveryError:
        """The error a refusal or a lost connection means for this message, with the connection
        left ready for the next message, or dropped."""
        recipient = envelope.recipient
        if isinstance(failure, Refused):
            error = self._refused(failure.phase, failure.reply, envelope.sender, recipient, len(envelope.message))
            if client is not None:
                self._recover(error, client)
            return error
        self._drop()
        if failure.delivered_maybe:
            return UncertainError(
                f"lost the connection to {self.name} after the whole message to {recipient} went out "
                f"({failure.why}): it may have been delivered"
            )
        if failure.timed_out:  # alive but silent: the next delivery would only wait as long
            return ConnectionFault(f"{self.name} stopped answering (at {failure.phase.replace('_', ' ')}): {failure.why}")
        return TransientError(f"lost the connection to {self.name} while sending to {recipient}: {failure.why}")

    def close(self) -> None:
        """Say QUIT politely; never raises. Flush first: answers still due are lost otherwise
        (and then there is no QUIT, which a server waiting for content would read as content)."""
        client, self._client = self._client, None
        outstanding = self._unanswered or self._commanded or self._ready
        self._unanswered = self._commanded = self._ready = None
        if client is not None and outstanding is None:
            client.quit()
        elif client is not None:
            client.close()

    def _refused(self, phase: Phase, reply: Reply, sender: str, recipient: str, size: int) -> DeliveryError:
        kind = classify(phase, reply)
        line = reply.line
        if reply.code == 421:
            return TransientError(f"{self.name} closed the connection while taking {recipient}: {line}", 421)
        if kind is MessageRejected:
            return MessageRejected(
                f"{self.name} refused the message ({size} bytes) as too large: {line}; nothing more is sent "
                "and nobody is counted as bounced", reply.code,
            )
        if phase == "mail":
            if kind is PolicyError:
                return PolicyError(
                    f"{self.name} refused the sender {sender}: {line} "
                    "(check the digest's sender address and the server's relay rights)", reply.code,
                )
            return TransientError(f"{self.name} deferred the sender {sender}: {line}", reply.code)
        if kind is TransientError:
            return TransientError(f"{self.name} deferred {recipient}: {line}", reply.code)
        if kind is PolicyError:
            return PolicyError(
                f"{self.name} refused {recipient} by policy: {line} "
                "(check the login, relay rights, SPF and DKIM for this server)", reply.code,
            )
        return PermanentError(f"{self.name} refused {recipient}: {line}", reply.code, reply.enhanced)

    def _recover(self, error: DeliveryError, client: Client) -> None:
        """Leave the connection ready for the next message, or closed if it cannot be."""
        if error.code == 421 or not client.reset():
            self._drop()

    def _drop(self) -> None:
        client, self._client = self._client, None
        self._unanswered = self._commanded = self._ready = None
        if client is not None:
            client.close()

    def _connect(self) -> Client:
        endpoint = self.endpoint
        if self._helo is None:
            self._helo = socket.getfqdn()  # once per transport, not per connection: it may ask DNS
        client = Client(endpoint.host, endpoint.port, self._helo, self._timeouts,
                        tls_at_once=endpoint.security == "ssl", context=self._context)
        try:
            client.open()
            if endpoint.security == "starttls":
                client.starttls()
            if self._username:
                client.login(self._username, self._password or "")
        except (Refused, Lost, Unsupported) as exc:
            client.close()
            raise self._setup_error(exc) from None
        self._client = client
        return client

    def _setup_error(self, exc: Refused | Lost | Unsupported) -> DeliveryError:
        if isinstance(exc, Unsupported):
            step = "log in to" if "login" in str(exc) or "AUTH" in str(exc) else "start TLS with"
            where = f"cannot {step} {self.name}"
            if step == "log in to" and self.endpoint.security == "none":
                return PolicyError(f"{where}: {exc} without TLS; use smtps:// or smtp+starttls://, or drop the username")
            if step == "log in to":
                return PolicyError(f"{where}: {exc}; or drop the username")
            return PolicyError(f"{where}: {exc}; use smtps:// or plain smtp://")
        steps = {"connect": "connect to", "greeting": "connect to", "ehlo": "greet", "starttls": "start TLS with",
                 "auth": "log in to"}
        where = f"cannot {steps.get(exc.phase, 'talk to')} {self.name}"
        if isinstance(exc, Refused):
            line = exc.reply.line
            if exc.phase == "auth":
                return PolicyError(
                    f"{where}: the server refused user {self._username}: {line} "
                    f"(check the username and {SMTP_PASSWORD_ENV})", exc.reply.code,
                )
            if exc.reply.code < 500:
                return ConnectionFault(f"{where}: {line}", exc.reply.code)
            return PolicyError(f"{where}: the server refused us: {line}", exc.reply.code)
        error = exc.error
        if isinstance(error, ssl.SSLCertVerificationError):
            return PolicyError(
                f"{where}: its certificate is not trusted ({error.verify_message}); "
                "fix the server's certificate or name its CA in cafile"
            )
        handshake = exc.phase == "starttls" or (exc.phase == "connect" and self.endpoint.security == "ssl")
        if isinstance(error, ssl.SSLError) and handshake:
            return PolicyError(
                f"{where}: the TLS handshake failed ({error.reason or error}); smtps:// expects TLS from the "
                "first byte (usually port 465), smtp+starttls:// upgrades a plain connection (usually 587)"
            )
        if isinstance(error, socket.gaierror) and error.errno == socket.EAI_NONAME:
            return PolicyError(f"{where}: unknown host {self.endpoint.host}; check the transport URL")
        if exc.phase == "greeting" and exc.timed_out and self.endpoint.security != "ssl":
            # A server that wants TLS from the first byte waits for us as silently as we wait for it.
            return ConnectionFault(f"{where}: {exc.why}; if it expects TLS at once, use smtps://")
        return ConnectionFault(f"{where}: {exc.why}")


def _mail_options(name: str, client: Client, envelope: Envelope) -> list[str]:
    """MAIL FROM's parameters for this message, or the DeliveryError that keeps it from the wire."""
    _envelope_address(envelope.sender, "sender")
    _envelope_address(envelope.recipient, "recipient")
    size = len(envelope.message)
    largest = client.max_size
    if largest is not None and size > largest:
        raise MessageRejected(
            f"{name} takes messages of at most {largest} bytes and this one is {size} bytes: "
            "nothing was sent; show fewer entries or key points, or raise the server's limit"
        )
    options: list[str] = []
    if largest is not None:
        options.append(f"SIZE={size}")  # RFC 1870: the server may refuse before the data
    if not (envelope.sender.isascii() and envelope.recipient.isascii()):
        if "smtputf8" not in client.features:
            raise PermanentError(
                f"{name} cannot take mail for {envelope.recipient}: it does not offer SMTPUTF8")
        options.append("SMTPUTF8")
    if not envelope.message.isascii() and "8bitmime" in client.features:
        options.append("BODY=8BITMIME")
    return options


def _tls_context(cafile: str | None) -> ssl.SSLContext:
    """Verify certificates against the system's CAs, plus `cafile` when given."""
    context = ssl.create_default_context()  # with cafile= it would drop the system's CAs
    if cafile is not None:
        try:
            context.load_verify_locations(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise PolicyError(f"cannot read the CA file {cafile}: {why}") from exc
    return context
