"""Read config.yaml once, check every field, and hand typed settings to the rest."""

from __future__ import annotations

import ipaddress
import os
import string
from collections.abc import Mapping as EnvironMapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from ..errors import ConfigError, Invalid, NewsletterError, UsageError
from .content import LANGUAGE, TAG
from .cron import trigger
from .endpoint import Endpoint, parse_transport_url
from .headers import header_problem
from .marking import label, parse_tlp, rank
from .secrets import DATABASE_URL_ENV, LOG_LEVEL_ENV, Secrets, read_secrets
from .yamlsource import Mapping, Problems, Value, hint, parse

PERIODS = ("monthly", "weekly", "daily", "hourly", "minutely", "secondly")
ON_SCHEDULE = ("write", "send", "queue")
WHEN_NOTHING_NEW = ("skip", "send")
INCLUDE_DRAFTS = ("none", "trusted")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SUBJECT_FIELDS = ("title", "brief", "period", "date", "entries")
RTL_LANGUAGES = frozenset({"ar", "arc", "ckb", "dv", "fa", "he", "ks", "ps", "sd", "ug", "ur", "yi"})


@dataclass(frozen=True)
class Mailbox:
    name: str
    address: str


@dataclass(frozen=True)
class Site:
    base_url: str  # public address of the web app, for links in messages
    domain: str  # for Message-ID, List-Id and the mailto unsubscribe
    postal_address: str = ""  # the sender's postal address, in every footer (CAN-SPAM asks for it)


@dataclass(frozen=True)
class Digest:
    """A named newsletter: what it covers, for whom, and how its messages look."""

    name: str
    title: str
    description: str
    tags: tuple[str, ...]
    language: str
    period: str
    timezone: str
    max_entries: int
    lookback_days: int | None
    sender: Mailbox
    subject: str
    reply_to: Mailbox | None = None  # where replies go, when not to the sender
    schedule: str | None = None  # a crontab expression, read in `timezone`
    on_schedule: str = "write"  # write the issue out; or write and send it; or write and queue it for workers
    when_nothing_new: str = "skip"  # a scheduled issue with no new entry and no new brief
    include_drafts: str = "none"  # "trusted": timeline drafts marked trusted go out too
    tlp_default: str = "clear"  # the TLP level of content that sets none
    max_tlp: str = "amber"  # the highest TLP level this digest may carry (`check` refuses more)

    @property
    def direction(self) -> str:
        return "rtl" if self.language.split("-")[0] in RTL_LANGUAGES else "ltr"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Dkim:
    selector: str
    domain: str


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait, per phase of an SMTP session: RFC 5321 section 4.5.3.2's minimums.

    Each is a deadline for the whole reply, not for each byte, so a server cannot hold a
    connection by trickling its answer."""

    connect: float = 30.0  # the TCP (and TLS) connection
    greeting: float = 300.0
    command: float = 300.0  # EHLO, STARTTLS, AUTH, MAIL, RCPT, RSET
    data: float = 120.0  # the reply to DATA
    block: float = 180.0  # each block of the message going out
    end_of_data: float = 600.0  # the reply to the final dot: the server may be delivering

    @classmethod
    def all(cls, seconds: float) -> Timeouts:
        """The same limit everywhere (tests, and relays on loopback)."""
        return cls(seconds, seconds, seconds, seconds, seconds, seconds)


@dataclass(frozen=True)
class TransportSettings:
    """Where messages go and how to reach it; the password comes from Secrets, never a file."""

    url: str  # file:DIR, smtp://HOST:PORT, smtps://HOST:PORT or smtp+starttls://HOST:PORT
    username: str | None = None
    timeouts: Timeouts = Timeouts()
    cafile: str | None = None  # an extra CA to trust for the server's certificate
    helo: str | None = None  # the EHLO name; default the local FQDN
    allow_plaintext_auth: bool = False  # a password over smtp:// in clear (a relay on loopback only)


@dataclass(frozen=True)
class Policy:
    """How hard to try: pace, parallel connections, retries, bounces and leases."""

    rate: float = 0.0  # messages per second over all connections; 0 means no limit
    connections: int = 1
    retry_after: float = 60.0  # seconds before the first retry of a deferred delivery; doubles
    retry_max: float = 3600.0  # the longest wait between two tries
    max_age: float = 3 * 86400.0  # seconds after its first try a deferred delivery is given up
    max_attempts: int | None = None  # an optional cap on tries, besides max_age
    bounce_limit: int = 3  # permanent failures in a row before an address is marked bounced
    lease_seconds: float = 300.0  # how long a sender holds the deliveries it took
    verp: bool = False  # envelope sender bounce+ID@domain, to match late bounces to deliveries
    batch: int = 50  # deliveries a connection claims at a time; the lease covers them all
    # A send stays to retry a deferred delivery itself when the retry is due within this many
    # seconds; later ones are left to the next run (it ends with "work left", status 75).
    wait_for_retries: float = 120.0


@dataclass(frozen=True)
class Delivery:
    """How messages leave: the transport, the sending policy around it, and DKIM."""

    transport: TransportSettings
    policy: Policy = Policy()
    dkim: Dkim | None = None
    reply_to: Mailbox | None = None  # where replies go for digests that name none of their own


@dataclass(frozen=True)
class Run:
    """The scheduler (`newsletter run`)."""

    misfire_grace: float = 3600.0  # seconds a missed fire may be late and still run
    log_level: str = "INFO"
    retry_every: float = 60.0  # seconds between looks for deferred deliveries that are due


@dataclass(frozen=True)
class Web:
    """The web app (`newsletter serve`)."""

    confirm_hours: int = 48  # how long a confirmation link works
    subscribe_per_client: int = 10  # subscribe requests an hour from one client address
    subscribe_per_address: int = 3  # subscribe requests an hour for one email address
    max_body: int = 16384  # bytes a request may carry
    # Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (IPs or networks);
    # from anyone else those headers are ignored, so a client cannot choose its own address.
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Feed:
    """A news feed `newsletter ingest` reads, and the rule an item must pass to be drafted."""

    name: str
    url: str  # http(s), or file: for a feed on disk
    publisher: str | None  # shown as the source's publisher (default: the feed's own title)
    all_of: tuple[str, ...]  # every one of these words or phrases, in title or summary
    any_of: tuple[str, ...]  # at least one of these (when given)
    none_of: tuple[str, ...]  # none of these
    tags: tuple[str, ...]
    trusted: bool  # its drafts may go out in digests that include trusted drafts
    kind: str = "rss"  # rss (RSS or Atom), stix (a STIX 2.1 bundle) or misp (a MISP feed folder)
    # Seconds without a new item (since the last one, or the first good run) before the feed
    # is reported as quiet: a feed that stops publishing, or whose rule stops matching.
    quiet_after: float = 7 * 86400.0


@dataclass(frozen=True)
class Ingest:
    timeout: float = 20.0
    feeds: tuple[Feed, ...] = ()
    every: float | None = None  # seconds between ingests in `newsletter run`; None: the runner does not ingest


@dataclass(frozen=True)
class Inbound:
    """Where returned mail (bounces, complaints, mailto unsubscribes) waits for `newsletter run`."""

    maildir: Path | None = None
    imap: str | None = None  # imaps://USER@HOST[:PORT]/FOLDER; the password from NEWSLETTER_IMAP_PASSWORD
    every: float = 300.0  # seconds between looks
    processed_folder: str = "Processed"  # IMAP: where handled messages go
    cafile: str | None = None  # IMAP: an extra CA to trust

    @property
    def configured(self) -> bool:
        return self.maildir is not None or self.imap is not None


@dataclass(frozen=True)
class Config:
    path: Path
    content_dir: Path
    templates_dir: Path
    out_dir: Path
    site: Site
    sample_subscriber: Mailbox
    digests: tuple[Digest, ...]
    digests_line: int  # where `digests:` is, for errors about a digest name
    store_url: str
    delivery: Delivery
    secrets: Secrets
    run: Run = Run()
    web: Web = Web()
    ingest: Ingest = Ingest()
    inbound: Inbound = Inbound()

    def digest(self, name: str) -> Digest:
        for digest in self.digests:
            if digest.name == name:
                return digest
        names = [d.name for d in self.digests]
        raise ConfigError(self.path, self.digests_line, "digests", hint(name, names, noun="digest"))

    def selected(self, name: str | None) -> tuple[Digest, ...]:
        return self.digests if name is None else (self.digest(name),)

    def endpoint(self, url: str | None = None) -> Endpoint:
        """Where `url` (default: delivery.transport) sends; a relative folder is relative to
        this config file. UsageError for a URL that is not one we can use."""
        return parse_transport_url(url or self.delivery.transport.url, self.path.parent)

    def with_transport(self, url: str | None) -> Config:
        """This config with `--transport URL` in place of delivery.transport, checked."""
        if url is None:
            return self
        settings = self.delivery.transport
        problem = plaintext_auth_problem(self.endpoint(url), settings.username, settings.allow_plaintext_auth)
        if problem is not None:
            raise UsageError(f"--transport {url}: {problem}")
        return replace(self, delivery=replace(self.delivery, transport=replace(settings, url=url)))


TOP_KEYS = (
    "content", "templates", "out", "site", "sample_subscriber", "digests", "store", "delivery", "run", "web",
    "ingest", "inbound",
)
DELIVERY_KEYS = (
    "transport", "username", "allow_plaintext_auth", "timeouts", "rate", "connections", "retry_after",
    "retry_max", "max_age", "max_attempts", "bounce_limit", "lease_seconds", "verp", "dkim", "reply_to",
)
TIMEOUT_KEYS = ("connect", "greeting", "command", "data", "block", "end_of_data")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DIGEST_KEYS = (
    "title", "description", "tags", "language", "period", "timezone",
    "entries", "lookback_days", "sender", "reply_to", "subject", "schedule", "on_schedule", "when_nothing_new",
    "include_drafts", "tlp_default", "max_tlp",
)


def load_config(path: Path, environ: EnvironMapping[str, str] | None = None) -> Config:
    """Read and check `path` and the secrets in `environ` (default: the process environment).

    Raise Invalid listing every problem in the file, or NewsletterError for a bad secret.
    """
    environ = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NewsletterError(f"config file not found: {path} (choose one with --config PATH)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NewsletterError(f"cannot read config file {path}: {exc}") from None
    problems = Problems(ConfigError)
    root = parse(text, path, problems)
    fields = root.mapping(TOP_KEYS, ("site", "digests")) if root else None
    if fields is None:
        raise Invalid(problems.items)
    base = path.parent
    content_dir = _folder(fields, "content", base)
    templates_dir = _folder(fields, "templates", base)
    out_dir = base / (fields.text("out", "out") or "out")
    site = _site(fields.get("site"))
    sample = _mailbox(fields.get("sample_subscriber"), Mailbox("Sample Reader", "reader@example.org"))
    digests = _digests(fields.get("digests"))
    store_url = environ.get(DATABASE_URL_ENV) or _store_url(fields.get("store"), base)
    delivery = _delivery(fields.get("delivery"), site, base)
    run = _run(fields.get("run"), environ)
    web = _web(fields.get("web"))
    ingest = _ingest(fields.get("ingest"), base)
    inbound = _inbound(fields.get("inbound"), base)
    if problems or not fields.ok:
        raise Invalid(problems.items)
    assert content_dir and templates_dir and site and sample and digests and store_url and delivery and run and web
    assert ingest and inbound
    if delivery.reply_to is not None:
        digests = tuple(d if d.reply_to else replace(d, reply_to=delivery.reply_to) for d in digests)
    return Config(
        path, content_dir, templates_dir, out_dir, site, sample, digests, fields.key_lines["digests"],
        store_url, delivery, read_secrets(environ), run, web, ingest, inbound,
    )


def _inbound(value: Value | None, base: Path) -> Inbound | None:
    if value is None:
        return Inbound()
    fields = value.mapping(("maildir", "imap", "every", "processed_folder", "cafile"))
    if fields is None:
        return None
    maildir = fields.text("maildir")
    imap = _header_text(fields.get("imap"))
    if maildir and imap:
        _error(fields, "imap", "give maildir or imap, not both")
        return None
    if imap and not imap.startswith("imaps://"):
        _error(fields, "imap", f"'{imap}' is not imaps://USER@HOST[:PORT]/FOLDER (TLS only)")
        return None
    every = _duration(fields, "every", Inbound.every, 1)
    folder = _header_text(fields.get("processed_folder"), Inbound.processed_folder)
    cafile = fields.text("cafile")
    if every is None or folder is None or not fields.ok:
        return None
    return Inbound(base / maildir if maildir else None, imap, every, folder, str(base / cafile) if cafile else None)


FEED_KEYS = ("name", "url", "publisher", "all", "any", "none", "tags", "trusted", "kind", "quiet_after")
FEED_KINDS = ("rss", "stix", "misp")


def _ingest(value: Value | None, base: Path) -> Ingest | None:
    if value is None:
        return Ingest()
    fields = value.mapping(("timeout", "feeds", "every"))
    if fields is None:
        return None
    timeout = _decimal(fields, "timeout", Ingest.timeout, 0.1)
    every = _duration(fields, "every", 0, 1)  # 0: not given, so off
    listed = fields.get("feeds")
    items = listed.items() if listed else []
    if items is None:
        return None
    feeds = [_feed(item, base) for item in items]
    names = [f.name for f in feeds if f]
    for item, feed in zip(items, feeds, strict=True):
        if feed and names.count(feed.name) > 1:
            item.error(f"another feed is also named '{feed.name}'")
            return None
    if timeout is None or every is None or not fields.ok or None in feeds:
        return None
    return Ingest(timeout, tuple(f for f in feeds if f), every or None)


def _feed(value: Value, base: Path) -> Feed | None:
    fields = value.mapping(FEED_KEYS, ("name", "url"))
    if fields is None:
        return None
    name = fields.text("name")
    if name and not TAG.match(name):
        _error(fields, "name", f"feed name '{name}' must be lowercase letters, digits and '-'")
        name = None
    url = fields.text("url")
    if url:
        scheme = urlsplit(url).scheme
        if scheme == "file":
            url = "file:" + str((base / url.removeprefix("file:").removeprefix("//")).resolve())
        elif scheme not in ("http", "https") or not urlsplit(url).netloc:
            _error(fields, "url", f"'{url}' is not an http(s) address or a file: path")
            url = None
    words = {key: fields.texts(key) for key in ("all", "any", "none")}
    tags_value = fields.get("tags")
    tags = tags_value.texts() if tags_value else ()
    if tags and any(not TAG.match(t) for t in tags):
        _error(fields, "tags", f"tags are lowercase words joined by '-': {', '.join(tags)}")
        tags = None
    trusted_value = fields.get("trusted")
    trusted = trusted_value.boolean() if trusted_value else False
    publisher = _header_text(fields.get("publisher"))
    kind = _choice(fields, "kind", FEED_KINDS)
    quiet_after = _duration(fields, "quiet_after", Feed.quiet_after, 1)
    if quiet_after is None:
        return None
    if not (name and url and kind) or tags is None or trusted is None or None in words.values() or not fields.ok:
        return None
    return Feed(
        name, url, publisher, tuple(words["all"] or ()), tuple(words["any"] or ()), tuple(words["none"] or ()),
        tuple(tags), trusted, kind, quiet_after,
    )


def _web(value: Value | None) -> Web | None:
    if value is None:
        return Web()
    keys = ("confirm_hours", "subscribe_per_client", "subscribe_per_address", "max_body")
    fields = value.mapping((*keys, "trusted_proxies"))
    if fields is None:
        return None
    numbers = {key: _number(fields, key, getattr(Web, key), 1) for key in keys}
    proxies_value = fields.get("trusted_proxies")
    proxies = proxies_value.texts() if proxies_value else ()
    for proxy in proxies or ():
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            _error(fields, "trusted_proxies", f"'{proxy}' is not an IP address or network such as 10.0.0.0/8")
            proxies = None
            break
    if None in numbers.values() or proxies is None or not fields.ok:
        return None
    return Web(**{key: int(number or 0) for key, number in numbers.items()}, trusted_proxies=tuple(proxies))


def _run(value: Value | None, environ: EnvironMapping[str, str]) -> Run | None:
    fields = value.mapping(("misfire_grace", "log_level", "retry_every")) if value else None
    if value is not None and fields is None:
        return None
    grace = _decimal(fields, "misfire_grace", Run.misfire_grace, 0) if fields else Run.misfire_grace
    every = _duration(fields, "retry_every", Run.retry_every, 1) if fields else Run.retry_every
    level = (fields.text("log_level", Run.log_level) if fields else Run.log_level) or ""
    if fields and level.upper() not in LOG_LEVELS:
        _error(fields, "log_level", f"'{level}' is not one of {', '.join(LOG_LEVELS)}")
        return None
    override = environ.get(LOG_LEVEL_ENV)
    if override and override.upper() not in LOG_LEVELS:
        raise UsageError(f"{LOG_LEVEL_ENV}={override} is not one of {', '.join(LOG_LEVELS)}")
    if grace is None or every is None or (fields is not None and not fields.ok):
        return None
    return Run(misfire_grace=grace, log_level=(override or level).upper(), retry_every=every)


def _store_url(value: Value | None, base: Path) -> str | None:
    """A database URL as given, or a SQLite file path relative to the config file."""
    raw = ".state/newsletter.db" if value is None else value.text()
    if raw is None:
        return None
    if "://" in raw:
        return raw
    return f"sqlite:///{(base / raw).resolve()}"


def _delivery(value: Value | None, site: Site | None, base: Path) -> Delivery | None:
    default_url = "file:out/maildir"
    if value is None:
        return Delivery(TransportSettings(default_url))
    fields = value.mapping(DELIVERY_KEYS)
    if fields is None:
        return None
    transport = _transport_url(fields.get("transport"), default_url, base)
    username = _header_text(fields.get("username"))
    plaintext_value = fields.get("allow_plaintext_auth")
    plaintext = plaintext_value.boolean() if plaintext_value else False
    timeouts = _timeouts(fields.get("timeouts"))
    dkim = _dkim(fields.get("dkim"), site)
    reply_to = _mailbox(fields.get("reply_to"))
    if "reply_to" in fields and reply_to is None:
        return None
    defaults = Policy()
    numbers = {
        "rate": _decimal(fields, "rate", defaults.rate, 0),
        "retry_after": _duration(fields, "retry_after", defaults.retry_after),
        "retry_max": _duration(fields, "retry_max", defaults.retry_max),
        "max_age": _duration(fields, "max_age", defaults.max_age),
        "lease_seconds": _duration(fields, "lease_seconds", defaults.lease_seconds, 1),
    }
    counts = {
        "connections": _number(fields, "connections", defaults.connections, 1),
        "bounce_limit": _number(fields, "bounce_limit", defaults.bounce_limit, 1),
    }
    max_attempts = _number(fields, "max_attempts", None, 1)
    verp_value = fields.get("verp")
    verp = verp_value.boolean() if verp_value else False
    if transport is None or verp is None or plaintext is None or timeouts is None:
        return None
    if None in numbers.values() or None in counts.values() or ("max_attempts" in fields and max_attempts is None):
        return None
    if not fields.ok or ("dkim" in fields and dkim is None):
        return None
    problem = plaintext_auth_problem(parse_transport_url(transport, base), username, plaintext)
    if problem is not None:
        _error(fields, "username", problem)
        return None
    policy = Policy(
        rate=float(numbers["rate"] or 0), retry_after=float(numbers["retry_after"] or 0),
        retry_max=float(numbers["retry_max"] or 0), max_age=float(numbers["max_age"] or 0),
        lease_seconds=float(numbers["lease_seconds"] or 0), connections=int(counts["connections"] or 0),
        max_attempts=max_attempts, bounce_limit=int(counts["bounce_limit"] or 0), verp=verp,
    )
    settings = TransportSettings(transport, username=username, timeouts=timeouts, allow_plaintext_auth=plaintext)
    return Delivery(settings, policy, dkim, reply_to)


def plaintext_auth_problem(endpoint: Endpoint, username: str | None, allowed: bool) -> str | None:
    """Why these settings would send a password in clear, or None. The one home of the rule:
    config, `--transport` and the SMTP transport itself all ask here."""
    username = username or endpoint.username
    if endpoint.kind != "smtp" or endpoint.security != "none" or not username or allowed:
        return None
    return (
        f"a login over {endpoint.name} would send the password in clear: use smtps:// or smtp+starttls://, "
        "or set delivery.allow_plaintext_auth: true for a relay on this machine's loopback"
    )


def _timeouts(value: Value | None) -> Timeouts | None:
    if value is None:
        return Timeouts()
    fields = value.mapping(TIMEOUT_KEYS)
    if fields is None:
        return None
    defaults = Timeouts()
    found = {key: _duration(fields, key, getattr(defaults, key), 0.01) for key in TIMEOUT_KEYS}
    if None in found.values() or not fields.ok:
        return None
    return Timeouts(**{key: float(seconds or 0) for key, seconds in found.items()})


def _duration(fields: Mapping, key: str, default: float, minimum: float = 0) -> float | None:
    """Seconds, written as a number or with a unit: `90`, `90s`, `15m`, `4h`, `3d`."""
    value = fields.get(key)
    if value is None:
        return default
    raw = value.text()
    if raw is None:
        return None
    number, unit = (raw[:-1], raw[-1]) if raw[-1:] in DURATION_UNITS else (raw, "s")
    try:
        seconds = float(number) * DURATION_UNITS[unit]
    except ValueError:
        value.error(f"expected seconds or a duration such as 90, 15m, 4h or 3d, found '{raw}'")
        return None
    if seconds < minimum or seconds != seconds:
        value.error(f"must be at least {minimum:g} seconds, found {raw}")
        return None
    return seconds


def _transport_url(value: Value | None, default: str, base: Path) -> str | None:
    """delivery.transport, parsed now so that `check` names its line."""
    if value is None:
        return default
    url = _header_text(value)
    if url is None:
        return None
    try:
        parse_transport_url(url, base)
    except NewsletterError as exc:
        value.error(str(exc))
        return None
    return url


def _dkim(value: Value | None, site: Site | None) -> Dkim | None:
    fields = value.mapping(("selector", "domain"), ("selector",)) if value else None
    if fields is None:
        return None
    selector = _header_text(fields.get("selector"))
    domain = _header_text(fields.get("domain")) if "domain" in fields else (site.domain if site else None)
    if not selector or not domain or not fields.ok:
        return None
    return Dkim(selector, domain)


def _folder(fields: Mapping, key: str, base: Path) -> Path | None:
    value = fields.get(key)
    name = key if value is None else value.text()
    if name is None:
        return None
    folder = base / name
    if not folder.is_dir():
        if value is None:
            fields.value.error(f"no '{key}' folder beside the config file; set '{key}: PATH'")
        else:
            value.error(f"folder not found: {folder}")
        return None
    return folder


def _header_text(value: Value | None, default: str | None = None) -> str | None:
    """Text that may end up in a mail header (see headers.py)."""
    if value is None:
        return default
    text = value.text()
    problem = header_problem(text) if text is not None else None
    if problem is not None:
        value.error(problem)
        return None
    return text


def _site(value: Value | None) -> Site | None:
    fields = value.mapping(("base_url", "domain", "postal_address"), ("base_url", "domain")) if value else None
    if fields is None:
        return None
    base_url = _header_text(fields.get("base_url"))
    postal_address = fields.text("postal_address", "")
    domain = _header_text(fields.get("domain"))
    if base_url:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            fields.entries["base_url"].error(f"'{base_url}' is not an http(s) address")
            base_url = None
    if domain and (not all(p.isalnum() or p == "-" for p in domain.replace(".", "")) or "." not in domain):
        fields.entries["domain"].error(f"'{domain}' is not a domain name such as news.example.org")
        domain = None
    if not (base_url and domain and fields.ok) or postal_address is None:
        return None
    return Site(base_url.rstrip("/"), domain.lower(), " ".join(postal_address.split()))


def _mailbox(value: Value | None, default: Mailbox | None = None) -> Mailbox | None:
    if value is None:
        return default
    fields = value.mapping(("name", "address"), ("name", "address"))
    if fields is None:
        return None
    name = _header_text(fields.get("name"))
    address_value = fields.get("address")
    raw = _header_text(address_value)
    if raw is None or name is None or address_value is None or not fields.ok:
        return None
    try:
        address = validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        address_value.error(f"'{raw}' is not a valid address: {exc}")
        return None
    return Mailbox(name, address)


def _digests(value: Value | None) -> tuple[Digest, ...] | None:
    if value is None:
        return None
    if not isinstance(value.node.value, list) or not value.node.value:
        value.error("define at least one digest under 'digests'")
        return None
    names = [str(key.value) for key, _ in value.node.value]
    fields = value.mapping(names)
    if fields is None:
        return None
    digests = []
    for key_node, _ in value.node.value:
        name = str(key_node.value)
        entry = fields.entries.get(name)
        if entry is None:
            continue
        if not TAG.match(name):
            line = int(key_node.start_mark.line) + value.doc.first_line
            entry.error(f"digest name '{name}' must be lowercase letters, digits and '-'", line)
            continue
        digest = _digest(name, entry)
        if digest is not None:
            digests.append(digest)
    return tuple(digests)


def _digest(name: str, value: Value) -> Digest | None:
    fields = value.mapping(DIGEST_KEYS, ("title", "sender"))
    if fields is None:
        return None
    title = _header_text(fields.get("title"))
    description = fields.text("description", "")
    tags_value = fields.get("tags")
    tags = tags_value.texts() if tags_value else ()
    language = fields.text("language", "en")
    if language and not LANGUAGE.match(language):
        _error(fields, "language", f"'{language}' is not a language code such as en, ar or pt-BR")
        language = None
    period = fields.text("period", "weekly")
    if period not in PERIODS:
        _error(fields, "period", f"'{period}' is not one of {', '.join(PERIODS)}")
        period = None
    timezone = fields.text("timezone", "UTC")
    try:
        ZoneInfo(timezone or "")
    except (ZoneInfoNotFoundError, ValueError):
        _error(fields, "timezone", f"'{timezone}' is not an IANA time zone such as Europe/Istanbul")
        timezone = None
    max_entries = _number(fields, "entries", 8, minimum=0)
    lookback = _number(fields, "lookback_days", None, minimum=1)
    sender = _mailbox(fields.get("sender"))
    reply_to = _mailbox(fields.get("reply_to")) if "reply_to" in fields else None
    subject = _subject(fields.get("subject"))
    schedule = _schedule(fields.get("schedule"), timezone)
    on_schedule = _choice(fields, "on_schedule", ON_SCHEDULE)
    when_nothing_new = _choice(fields, "when_nothing_new", WHEN_NOTHING_NEW)
    include_drafts = _choice(fields, "include_drafts", INCLUDE_DRAFTS)
    tlp_default = _tlp(fields, "tlp_default", "clear")
    max_tlp = _tlp(fields, "max_tlp", "amber")
    if tlp_default and max_tlp and rank(tlp_default) > rank(max_tlp):
        _error(fields, "tlp_default", f"{label(tlp_default)} is above the digest's max_tlp, {label(max_tlp)}")
        tlp_default = None
    if not (title and language and period and timezone and sender and subject) or not fields.ok:
        return None
    if tags is None or max_entries is None or description is None or not on_schedule or not when_nothing_new:
        return None
    if not include_drafts or not tlp_default or not max_tlp:
        return None
    if ("schedule" in fields and schedule is None) or ("reply_to" in fields and reply_to is None):
        return None
    return Digest(
        name, title, description, tags, language, period, timezone, max_entries, lookback, sender, subject,
        reply_to, schedule, on_schedule, when_nothing_new, include_drafts, tlp_default, max_tlp,
    )


def _tlp(fields: Mapping, key: str, default: str) -> str | None:
    raw = fields.text(key, default)
    if raw is None:
        return None
    try:
        return parse_tlp(raw)
    except ValueError as exc:
        _error(fields, key, str(exc))
        return None


def _choice(fields: Mapping, key: str, choices: tuple[str, ...]) -> str | None:
    chosen = fields.text(key, choices[0])
    if chosen is not None and chosen not in choices:
        _error(fields, key, f"'{chosen}' is not one of {', '.join(choices)}")
        return None
    return chosen


def _schedule(value: Value | None, timezone: str | None) -> str | None:
    if value is None:
        return None
    expression = value.text()
    if expression is None or timezone is None:
        return None
    try:
        trigger(expression, timezone)
    except ValueError as exc:
        value.error(str(exc))
        return None
    return " ".join(expression.split())


def _error(fields: Mapping, key: str, message: str) -> None:
    value = fields.get(key)
    (value or fields.value).error(message)


def _number(fields: Mapping, key: str, default: int | None, minimum: int) -> int | None:
    value = fields.get(key)
    return default if value is None else value.integer(minimum)


def _decimal(fields: Mapping, key: str, default: float, minimum: float) -> float | None:
    value = fields.get(key)
    return default if value is None else value.decimal(minimum)


def _subject(value: Value | None) -> str | None:
    pattern = _header_text(value, "{title}: {brief}")
    if pattern is None or value is None:
        return pattern
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None]
    except ValueError as exc:
        value.error(f"bad subject pattern: {exc}")
        return None
    for name in names:
        if name not in SUBJECT_FIELDS:
            known = ", ".join("{" + field + "}" for field in SUBJECT_FIELDS)
            value.error(f"unknown field {{{name}}} in the subject (known: {known})")
            return None
    return pattern
