"""Hand finished message bytes to a Maildir folder or an SMTP server, translating every failure."""

from __future__ import annotations

import mailbox
import re
import smtplib
import socket
import ssl
from pathlib import Path
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

from ..errors import DeliveryError, NewsletterError, PermanentError, PolicyError, TransientError, display_path
from ..inputs.config import TransportSettings
from ..inputs.endpoint import Endpoint, parse_transport_url
from ..inputs.secrets import SMTP_PASSWORD_ENV

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

CONTROL = re.compile("[\x00-\x1f\x7f]")
POLICY_CODES = frozenset({530, 535, 538})  # authentication required, rejected, or needs encryption
POLICY_REPLY = re.compile(r"5\d\d 5\.7\.\d{1,3}(?!\S)")  # RFC 3463 enhanced status 5.7.x: security or policy


class Transport(Protocol):
    """Delivers one message to one recipient; `name` identifies it in logs and errors."""

    name: str

    def send(self, sender: str, recipient: str, message: bytes, dot_safe: bool = False) -> None:
        """`dot_safe`: the caller promises no line of `message` starts with a dot."""

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
            raise PolicyError(f"cannot write to the Maildir {display_path(self.folder)}: {exc.strerror}") from exc


def _reply(code: int, text: bytes | str) -> str:
    """The server's reply on one line: `550 5.1.1 user unknown`."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}".rstrip()


def _kind(code: int, reply: str) -> type[DeliveryError]:
    """RFC 5321 and 3463: 4xx try later; 5.7.x and authentication point at us; other 5xx at the address."""
    if 500 <= code < 600:
        return PolicyError if code in POLICY_CODES or POLICY_REPLY.match(reply) else PermanentError
    return TransientError  # 4xx, or a reply smtplib could not read (-1)


def _dot_stuffed(msg: bytes) -> bytes:
    """RFC 5321 4.5.2, with bytes.replace: smtplib's regex pass costs ~20 times as much on a
    digest, whose inlined HTML has many lines that start with a dot."""
    stuffed = msg.replace(b"\n.", b"\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


class _Client(smtplib.SMTP):
    """smtplib's client with a faster DATA, and RFC 2920 PIPELINING when the server offers it.

    Pipelined, MAIL FROM, RCPT TO and DATA go out in one write and their three replies are read
    together: two round trips a message instead of four. The replies and errors are those of
    smtplib's own `sendmail`, so the transport handles both paths alike.
    """

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        if not isinstance(msg, bytes):
            return super().data(msg)
        self.putcmd("data")
        code, reply = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        return self._content(msg)

    dot_safe = False  # set per message by SmtpTransport.send

    def _content(self, msg: bytes) -> tuple[int, bytes]:
        if not self.dot_safe:
            msg = _dot_stuffed(msg)
        self.send(msg + (b".\r\n" if msg.endswith(b"\r\n") else b"\r\n.\r\n"))
        return self.getreply()

    def sendmail(  # type: ignore[override]
        self, from_addr: str, to_addrs: list[str], msg: bytes, mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> dict[str, tuple[int, bytes]]:
        self.ehlo_or_helo_if_needed()
        plain = len(to_addrs) == 1 and isinstance(msg, bytes) and "SMTPUTF8" not in mail_options
        if not plain or not self.has_extn("pipelining"):
            return super().sendmail(from_addr, to_addrs, msg, mail_options, rcpt_options)
        recipient = to_addrs[0]
        options = "".join(" " + option for option in mail_options)
        self.send(f"MAIL FROM:<{from_addr}>{options}\r\nRCPT TO:<{recipient}>\r\nDATA\r\n")
        mail = self.getreply()
        if mail[0] == 421:  # closing: the other replies will not come
            raise smtplib.SMTPSenderRefused(mail[0], mail[1], from_addr)
        rcpt = self.getreply()
        if rcpt[0] == 421:
            raise smtplib.SMTPRecipientsRefused({recipient: rcpt})
        data = self.getreply()
        if mail[0] != 250:
            self._reset_after(data)
            raise smtplib.SMTPSenderRefused(mail[0], mail[1], from_addr)
        if rcpt[0] not in (250, 251):
            self._reset_after(data)
            raise smtplib.SMTPRecipientsRefused({recipient: rcpt})
        if data[0] != 354:
            self._reset_after(data)
            raise smtplib.SMTPDataError(*data)
        code, reply = self._content(msg)
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)
        return {}

    def _reset_after(self, data: tuple[int, bytes]) -> None:
        """A server that said 354 to DATA despite a refusal waits for a message: end it empty."""
        if data[0] == 354:
            self.send(b".\r\n")
            self.getreply()


class _TlsClient(_Client, smtplib.SMTP_SSL):
    pass


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
        if self._username and not self._password:
            raise PolicyError(f"{self.name}: no password for user {self._username}; set {SMTP_PASSWORD_ENV}")
        self._timeout = settings.timeout
        self._helo = settings.helo
        self._context = _tls_context(settings.cafile) if endpoint.security != "none" else None
        self._smtp: _Client | None = None

    def send(self, sender: str, recipient: str, message: bytes, dot_safe: bool = False) -> None:
        _envelope_address(sender, "sender")
        _envelope_address(recipient, "recipient")
        smtp = self._smtp or self._connect()
        options: list[str] = []
        if not (sender.isascii() and recipient.isascii()):
            options.append("SMTPUTF8")
        if not message.isascii() and smtp.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        try:
            smtp.dot_safe = dot_safe
            refused = smtp.sendmail(sender, [recipient], message, options)
        except smtplib.SMTPSenderRefused as exc:
            error = self._sender_refused(sender, exc.smtp_code, _reply(exc.smtp_code, exc.smtp_error))
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = exc.recipients.get(recipient, (-1, b"(no reply)"))
            error = self._refused(recipient, code, _reply(code, text))
        except smtplib.SMTPResponseException as exc:  # the DATA command or the message itself refused
            error = self._refused(recipient, exc.smtp_code, _reply(exc.smtp_code, exc.smtp_error))
        except smtplib.SMTPNotSupportedError as exc:
            error = PermanentError(f"{self.name} cannot take mail for {recipient}: {exc}")
        except OSError as exc:  # SMTPServerDisconnected, a reset, a timeout, a TLS error mid-stream
            self._drop()
            raise TransientError(
                f"lost the connection to {self.name} while sending to {recipient}: {_why(exc, self._timeout)}"
            ) from exc
        else:
            if recipient not in refused:
                return
            code, text = refused[recipient]
            error = self._refused(recipient, code, _reply(code, text))
        self._recover(error)
        raise error

    def close(self) -> None:
        """Say QUIT politely; never raises."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except OSError:
            pass
        finally:
            smtp.close()

    def _refused(self, whom: str, code: int, reply: str) -> DeliveryError:
        kind = _kind(code, reply)
        if code == 421:
            return TransientError(f"{self.name} closed the connection while taking {whom}: {reply}", code)
        if kind is TransientError:
            return TransientError(f"{self.name} deferred {whom}: {reply}", code)
        if kind is PolicyError:
            return PolicyError(
                f"{self.name} refused {whom} by policy: {reply} "
                "(check the login, relay rights, SPF and DKIM for this server)",
                code,
            )
        return PermanentError(f"{self.name} refused {whom}: {reply}", code)

    def _sender_refused(self, sender: str, code: int, reply: str) -> DeliveryError:
        if _kind(code, reply) is PermanentError:  # every recipient would fail alike: our setup is wrong
            return PolicyError(
                f"{self.name} refused the sender {sender}: {reply} "
                "(check the digest's sender address and the server's relay rights)",
                code,
            )
        return self._refused(f"the sender {sender}", code, reply)

    def _recover(self, error: DeliveryError) -> None:
        """Leave the connection ready for the next message, or closed if it cannot be."""
        smtp = self._smtp
        if error.code == 421 or smtp is None or smtp.sock is None:
            self._drop()
            return
        try:
            code, _ = smtp.rset()
        except OSError:
            code = -1
        if code != 250:
            self._drop()

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def _connect(self) -> _Client:
        endpoint = self.endpoint
        if self._helo is None:
            self._helo = socket.getfqdn()  # once per transport, not per connection: it may ask DNS
        # Host and port go to the constructor, which connects: smtplib only keeps the host name
        # that TLS checks the certificate against when it is given there, not to connect().
        try:
            if endpoint.security == "ssl":
                smtp: _Client = _TlsClient(
                    endpoint.host, endpoint.port, self._helo, timeout=self._timeout, context=self._context
                )
            else:
                smtp = _Client(endpoint.host, endpoint.port, self._helo, timeout=self._timeout)
        except OSError as exc:
            raise self._setup_error("connect to", exc) from exc
        try:
            step = "greet"
            smtp.ehlo_or_helo_if_needed()
            if endpoint.security == "starttls":
                step = "start TLS with"
                smtp.starttls(context=self._context)
                smtp.ehlo_or_helo_if_needed()  # RFC 3207: forget what the server said before TLS
            if self._username:
                step = "log in to"
                smtp.login(self._username, self._password or "")
        except OSError as exc:
            smtp.close()
            raise self._setup_error(step, exc) from exc
        self._smtp = smtp
        return smtp

    def _setup_error(self, step: str, exc: OSError) -> DeliveryError:
        where = f"cannot {step} {self.name}"
        handshake = step == "start TLS with" or (step == "connect to" and self.endpoint.security == "ssl")
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return PolicyError(
                f"{where}: the server refused user {self._username}: {_reply(exc.smtp_code, exc.smtp_error)} "
                f"(check the username and {SMTP_PASSWORD_ENV})",
                exc.smtp_code,
            )
        if isinstance(exc, smtplib.SMTPResponseException):  # a refused greeting, EHLO or STARTTLS
            reply = _reply(exc.smtp_code, exc.smtp_error)
            if _kind(exc.smtp_code, reply) is TransientError:
                return TransientError(f"{where}: {reply}", exc.smtp_code)
            return PolicyError(f"{where}: the server refused us: {reply}", exc.smtp_code)
        if isinstance(exc, smtplib.SMTPNotSupportedError) and step == "log in to":
            before_tls = " without TLS; use smtps:// or smtp+starttls://," if self.endpoint.security == "none" else ";"
            return PolicyError(f"{where}: the server offers no login (AUTH){before_tls} or drop the username")
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return PolicyError(f"{where}: the server does not offer STARTTLS; use smtps:// or plain smtp://")
        if type(exc) is smtplib.SMTPException and step == "log in to":
            return PolicyError(f"{where}: {exc} (the server offers no login method smtplib knows)")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return PolicyError(
                f"{where}: its certificate is not trusted ({exc.verify_message}); "
                "fix the server's certificate or name its CA in cafile"
            )
        if isinstance(exc, ssl.SSLError) and handshake:
            return PolicyError(
                f"{where}: the TLS handshake failed ({exc.reason or exc}); smtps:// expects TLS from the "
                "first byte (usually port 465), smtp+starttls:// upgrades a plain connection (usually 587)"
            )
        if isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_NONAME:
            return PolicyError(f"{where}: unknown host {self.endpoint.host}; check the transport URL")
        if step == "connect to" and self.endpoint.security != "ssl" and _timed_out(exc):
            # A server that wants TLS from the first byte waits for us as silently as we wait for it.
            return TransientError(
                f"{where}: no greeting within {self._timeout:g} s; if it expects TLS at once, use smtps://"
            )
        return TransientError(f"{where}: {_why(exc, self._timeout)}")


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


def _timed_out(exc: BaseException) -> bool:
    # smtplib reports a read timeout as SMTPServerDisconnected raised while handling TimeoutError.
    return isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError)


def _why(exc: OSError, timeout: float) -> str:
    if _timed_out(exc):
        return f"no reply within {timeout:g} s (timed out)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running and listening on that port?)"
    return exc.strerror or str(exc) or type(exc).__name__
