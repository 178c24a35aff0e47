"""What comes back, read: delivery status notifications, other bounces, complaints, mailto
unsubscribes and auto-replies, each into one `Returned` that says what it is about.

Reading decides nothing and trusts nothing: it only says what a message claims (which
address failed, with what code, answering which of our Message-IDs or VERP addresses). The
inbound use case checks those claims against the store and the signing key before acting.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import logging
import re
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser, HeaderParser
from typing import Literal, TypedDict

from flufl.bounce import all_failures

log = logging.getLogger("newsletter.inbound")
# flufl.bounce logs a traceback for every detector a strange message trips up; such a message is
# ours to report, in one line (usecases/inbound.py), not its.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL + 1)
Kind = Literal["bounce", "complaint", "unsubscribe", "auto-reply", "unknown"]
ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
ADDRESS = re.compile(r"<?([^<>\s;]+@[^<>\s;]+)>?")
# Our Message-IDs: <ISSUE.DELIVERY.NONCE@domain> (delivery/dispatch.py); the nonce is the issue's.
OUR_MESSAGE_ID = re.compile(r"<([A-Za-z0-9-]+)\.(\d+)\.([0-9a-f]{16})@([A-Za-z0-9.-]+)>")
AUTO_SUBJECT = re.compile(r"^(auto(matic)?[ -]?(reply|response)|out of (the )?office|vacation|abwesen|absence)",
                          re.I)
HEURISTIC_LIMIT = 2 * 1024 * 1024  # bytes of a message the older-format detectors are given
COMPLAINTS = frozenset({"abuse", "fraud", "virus"})  # RFC 5965 feedback types that mean "do not mail me"


class About(TypedDict):
    """What any message says of itself."""

    message_id: str
    sender: str
    subject: str


@dataclass(frozen=True)
class Failure:
    """One recipient a report says could not be reached."""

    address: str
    status: str  # "5.1.1"; "5.0.0" or "4.0.0" when the report gave none
    diagnostic: str  # the server's words

    @property
    def hard(self) -> bool:
        """5.x.x, except 5.2.2 (mailbox full), which RFC 3463 and every MTA treat as temporary."""
        return self.status.startswith("5") and self.status != "5.2.2"


@dataclass(frozen=True)
class OurMessage:
    """A Message-ID of ours quoted in a report: which issue, delivery and nonce it claims."""

    issue: str
    delivery_id: int
    nonce: str


@dataclass(frozen=True)
class Returned:
    kind: Kind
    why: str  # one line: what was recognized, for the log and the store
    failures: tuple[Failure, ...] = ()
    ours: tuple[OurMessage, ...] = ()  # our messages the report is about
    verp: str | None = None  # the token of a bounce+TOKEN@ address it was sent to
    unsubscribe: str | None = None  # the token of an unsubscribe+TOKEN@ address, or of a List-Unsubscribe quoted
    feedback_type: str | None = None  # for complaints
    complainant: str | None = None  # the address a complaint is about, when the report says
    message_id: str = ""  # the returned message's own Message-ID
    sender: str = ""
    subject: str = ""
    defects: list[str] = field(default_factory=list)


def read(raw: bytes, domain: str) -> Returned:
    """What `raw`, one message that came back to `domain`, is. Never raises: a message that
    cannot be parsed is `unknown`, with why."""
    try:
        return _read(raw, domain.lower())
    except Exception as exc:  # a message from anyone: nothing in it may stop the run
        headers = _headers_only(raw)
        return Returned("unknown", f"could not be read ({type(exc).__name__}: {exc})", **headers)


def _headers_only(raw: bytes) -> About:
    try:
        head = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw[:65536])
    except Exception:  # noqa: BLE001  not even headers: nothing to say
        return About(message_id="", sender="", subject="")
    return _about(head)


def _about(message: email.message.Message) -> About:
    return About(message_id=_text(message.get("Message-ID")), sender=_text(message.get("From")),
                 subject=_text(message.get("Subject")))


def _text(value: object) -> str:
    return " ".join(str(value or "").split())[:500]


def _read(raw: bytes, domain: str) -> Returned:
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    about = _about(message)
    verp, unsubscribe = _our_addresses(message, domain)
    ours = tuple(_our_ids(message, domain))
    report = (message.get_param("report-type") or "") if message.get_content_type() == "multipart/report" else ""
    if str(report).lower() == "delivery-status":
        failures = tuple(_dsn_failures(message))
        if failures:
            return Returned("bounce", f"a delivery status notification ({summary(failures)})", failures, ours, verp,
                            **about)
    if str(report).lower() == "feedback-report":
        return _complaint(message, ours, domain, about)
    if unsubscribe is not None:
        return Returned("unsubscribe", "a message to the unsubscribe address", unsubscribe=unsubscribe, **about)
    # The heuristic detectors read the whole body: a bounce is small, a 10 MB message is not one.
    temporary, permanent = all_failures(message) if len(raw) <= HEURISTIC_LIMIT else (frozenset(), frozenset())
    if permanent or temporary:
        failures = tuple(
            [Failure(a.decode(errors="replace").lower(), "5.0.0", "reported by a bounce that is not a DSN")
             for a in sorted(permanent)]
            + [Failure(a.decode(errors="replace").lower(), "4.0.0", "reported as temporary by a bounce that is not a DSN")
               for a in sorted(temporary - permanent)]
        )
        return Returned("bounce", f"a bounce in an older format ({summary(failures)})", failures, ours, verp, **about)
    if _auto_reply(message):  # after the bounce detectors: some MTAs mark their bounces auto-replied too
        return Returned("auto-reply", "an automatic reply (RFC 3834 Auto-Submitted, or a vacation notice)", **about)
    return Returned("unknown", "not a bounce, a complaint, an unsubscribe or an automatic reply", ours=ours,
                    verp=verp, **about)


def summary(failures: tuple[Failure, ...]) -> str:
    """`a@example.org 5.1.1, b@example.org 4.2.0`, for a log line."""
    return ", ".join(f"{f.address} {f.status}" for f in failures[:5]) + (" ..." if len(failures) > 5 else "")


def _our_addresses(message: email.message.Message, domain: str) -> tuple[str | None, str | None]:
    """The VERP and unsubscribe tokens of the addresses of ours it was delivered to."""
    verp = unsubscribe = None
    for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To", "Cc"):
        for value in message.get_all(name) or []:
            for local, host in re.findall(r"([A-Za-z0-9.+_-]+)@([A-Za-z0-9.-]+)", str(value)):
                if host.lower() != domain:
                    continue
                kind, _, token = local.lower().partition("+")
                if kind == "bounce" and token and verp is None:
                    verp = token
                elif kind == "unsubscribe" and token and unsubscribe is None:
                    unsubscribe = token
    return verp, unsubscribe


def _our_ids(message: email.message.Message, domain: str) -> list[OurMessage]:
    """Message-IDs of ours that the report quotes: in the returned message or its headers,
    or, for bounces that quote it as text, anywhere in the body."""
    found: dict[tuple[str, int, str], OurMessage] = {}
    texts: list[str] = []
    for part in message.walk():
        if part is message:
            continue
        kind = part.get_content_type()
        if kind == "message/rfc822":
            for original in _messages(part.get_payload()):
                texts.extend(str(v) for v in original.get_all("Message-ID") or [])
        elif kind == "text/rfc822-headers" or kind.startswith("text/"):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                texts.append(payload[:200_000].decode("ascii", "replace"))
    if not message.is_multipart():
        payload = message.get_payload(decode=True)
        if isinstance(payload, bytes):
            texts.append(payload[:200_000].decode("ascii", "replace"))
    for text in texts:
        for issue, delivery, nonce, host in OUR_MESSAGE_ID.findall(text):
            if host.lower() == domain:
                found[(issue, int(delivery), nonce)] = OurMessage(issue, int(delivery), nonce)
    return list(found.values())


def _messages(payload: object) -> list[email.message.Message]:
    """The messages in a message/* part's payload (a list, when the parser understood it)."""
    return [m for m in payload if isinstance(m, email.message.Message)] if isinstance(payload, list) else []


def _dsn_failures(message: email.message.Message) -> list[Failure]:
    """The recipients an RFC 3464 report says failed (Action: failed) or are delayed."""
    failures: list[Failure] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            blocks = _messages(payload)
        else:  # an unparsed report: read it as header blocks
            blocks = [HeaderParser().parsestr(chunk) for chunk in re.split(r"\r?\n\r?\n", str(payload)) if chunk.strip()]
        for block in blocks:  # the first is about the message, the others each about a recipient
            action = str(block.get("Action") or "").strip().lower()
            failed, delayed = action.startswith("fail"), action.startswith("delay")  # "failure" is seen too
            if not (failed or delayed):
                continue
            recipient = _address(block.get("Original-Recipient")) or _address(block.get("Final-Recipient"))
            if recipient is None:
                continue
            code = _status(str(block.get("Status") or ""), "5.0.0" if failed else "4.0.0")
            if delayed and code.startswith("5"):
                code = "4" + code[1:]  # a delay is never final, whatever code it carries
            failures.append(Failure(recipient, code, _text(block.get("Diagnostic-Code")) or action))
    return failures


def _status(text: str, default: str) -> str:
    """The enhanced code in a Status field, or the class of a bare reply code ("553 ..." -> 5.0.0)."""
    enhanced = ENHANCED.search(text)
    if enhanced:
        return ".".join(enhanced.groups())
    basic = re.match(r"\s*([245])\d\d\b", text)
    return f"{basic.group(1)}.0.0" if basic else default


def _address(value: object) -> str | None:
    """The address in `rfc822; someone@example.org`."""
    if value is None:
        return None
    text = str(value).split(";", 1)[-1].strip()
    found = ADDRESS.search(text)
    return found.group(1).lower() if found else None


def _complaint(message: email.message.Message, ours: tuple[OurMessage, ...], domain: str,
               about: About) -> Returned:
    """RFC 5965: a feedback report, and the original (or its headers) it is about."""
    fields: dict[str, str] = {}
    original_headers: list[email.message.Message] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/feedback-report":
            payload = part.get_payload()
            blocks = _messages(payload) if isinstance(payload, list) else [HeaderParser().parsestr(str(payload))]
            for block in blocks:
                for key, value in block.items():
                    fields.setdefault(key.lower(), _text(value))
        elif kind == "message/rfc822":
            original_headers.extend(_messages(part.get_payload()))
        elif kind == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                original_headers.append(HeaderParser().parsestr(payload.decode("ascii", "replace")))
    feedback = fields.get("feedback-type", "").lower()
    token = None
    complainant = _address(fields.get("original-rcpt-to"))
    for original in original_headers:
        link = str(original.get("List-Unsubscribe") or "")
        mailto = re.search(r"mailto:unsubscribe\+([A-Za-z0-9.-]+)@" + re.escape(domain), link, re.I)
        if mailto and token is None:
            token = mailto.group(1).lower()
        if complainant is None:
            complainant = _address(original.get("To"))
    if feedback not in COMPLAINTS:
        return Returned("unknown", f"a feedback report of type '{feedback or 'none'}', not a complaint", ours=ours,
                        feedback_type=feedback or None, **about)
    return Returned("complaint", f"a complaint (RFC 5965 feedback type {feedback})", ours=ours, unsubscribe=token,
                    feedback_type=feedback, complainant=complainant, **about)


def _auto_reply(message: email.message.Message) -> bool:
    """RFC 3834 and the usual vacation markers."""
    submitted = str(message.get("Auto-Submitted") or "no").strip().lower()
    precedence = str(message.get("Precedence") or "").strip().lower()
    return (
        (submitted != "no" and bool(submitted))
        or precedence in ("auto_reply", "auto-reply")
        or message.get("X-Autoreply") is not None
        or message.get("X-Autorespond") is not None
        or bool(AUTO_SUBJECT.match(_text(message.get("Subject"))))
    )
