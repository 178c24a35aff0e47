"""config.yaml: the shipped file loads, and every bad field is named with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.inputs.config import Mailbox, load_config
from newsletter.errors import ConfigError, Invalid, NewsletterError, UsageError


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def problems_after(project: Path, old: str, new: str) -> tuple[list[str], str]:
    path = project / "config.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text, f"the shipped config.yaml no longer has {old!r}"
    text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except Invalid as exc:
        return [str(p) for p in exc.problems], text
    return [], text


def test_the_shipped_config_needs_no_server_and_no_secret(project: Path) -> None:
    config = load_config(project / "config.yaml")
    assert config.content_dir == project / "content"
    assert config.out_dir == project / "out"
    weekly = config.digest("weekly")
    assert (weekly.language, weekly.direction, weekly.period) == ("en", "ltr", "weekly")
    assert weekly.sender.address == "digest@threat-digest.example.org"
    assert config.site.base_url.startswith("https://")


BAD_CONFIG = [
    pytest.param(
        "    entries: 8", "    entires: 8", "entires",
        "digests.weekly.entires: unknown key 'entires' (did you mean 'entries'?)", id="unknown key",
    ),
    pytest.param(
        "    entries: 8", "    entries: eight", "entries",
        "digests.weekly.entries: expected a whole number, found 'eight'", id="not a number",
    ),
    pytest.param(
        "timezone: Europe/Istanbul", "timezone: Europe/Ankara", "timezone",
        "digests.weekly.timezone: 'Europe/Ankara' is not an IANA time zone such as Europe/Istanbul",
        id="bad timezone",
    ),
    pytest.param(
        "period: weekly ", "period: fortnightly ", "period:",
        "digests.weekly.period: 'fortnightly' is not one of monthly, weekly, daily, hourly, minutely, secondly",
        id="bad period",
    ),
    pytest.param(
        'subject: "{title} {period}: {brief}"', 'subject: "{title}: {headline}"', "subject:",
        "digests.weekly.subject: unknown field {headline} in the subject "
        "(known: {title}, {brief}, {period}, {date}, {entries})",
        id="unknown subject field",
    ),
    pytest.param(
        "address: digest@threat-digest.example.org", "address: digest@", "address: digest@",
        "digests.weekly.sender.address: 'digest@' is not a valid address: "
        "There must be something after the @-sign.",
        id="bad sender address",
    ),
    pytest.param(
        "title: Iran, Turkey and Israel Weekly", 'title: "Weekly\\r\\nBcc: victim@example.org"', "Bcc",
        "digests.weekly.title: contains a line break or control character", id="header injection",
    ),
    pytest.param(
        "language: en", "language: English", "language:",
        "digests.weekly.language: 'English' is not a language code such as en, ar or pt-BR", id="bad language",
    ),
    pytest.param(
        "base_url: https://threat-digest.example.org", "base_url: threat-digest.example.org", "base_url",
        "site.base_url: 'threat-digest.example.org' is not an http(s) address", id="base url without scheme",
    ),
    pytest.param(
        "content: content", "content: contents", "content: contents",
        "content: folder not found: ", id="missing content folder",
    ),
    pytest.param(
        "  weekly:", "  Weekly:", "Weekly:",
        "digests.Weekly: digest name 'Weekly' must be lowercase letters, digits and '-'", id="digest name",
    ),
    # Every value that ends up in a mail header, against what would break out of it.
    pytest.param(
        "title: Iran, Turkey and Israel Weekly", 'title: "Weekly\\0"', "title: \"Weekly",
        "digests.weekly.title: contains a line break or control character", id="digest title with NUL",
    ),
    pytest.param(
        "title: Iran, Turkey and Israel Weekly", 'title: "Weekly \\e[31m"', "title: \"Weekly",
        "digests.weekly.title: contains a line break or control character", id="digest title with ESC",
    ),
    pytest.param(
        "      name: Threat Digest", '      name: "Threat\\u2028Digest"', "Threat\\u2028",
        "digests.weekly.sender.name: contains a line break or control character", id="sender name with U+2028",
    ),
    pytest.param(
        "      name: Threat Digest", "      name: =?UTF-8?Q?Eve=0ABcc:_x@y?=", "=?UTF-8",
        "digests.weekly.sender.name: contains an encoded header word (=?...?=)", id="sender name as encoded word",
    ),
    pytest.param(
        'subject: "{title} {period}: {brief}"', 'subject: "{title} =?utf-8?b?RXZlCg==?= {brief}"', "subject:",
        "digests.weekly.subject: contains an encoded header word (=?...?=)", id="subject template encoded word",
    ),
    pytest.param(
        "transport: file:out/maildir", "transport: smtp://mail.example.org:99999", "transport: smtp",
        "delivery.transport: transport 'smtp://mail.example.org:99999': the port must be a number from 1 to 65535",
        id="bad transport port",
    ),
    pytest.param(
        "transport: file:out/maildir", "transport: smtp://user:secret@mail.example.org:25", "transport: smtp",
        "delivery.transport: transport 'smtp://user:***@mail.example.org:25': a password does not belong in the URL",
        id="password in the transport",
    ),
    pytest.param(
        "rate: 0 ", "rate: 0\n  reply_to: {name: Analysts}\n  #", "reply_to:",
        "delivery.reply_to.address: is required but missing", id="reply_to without an address",
    ),
    pytest.param(
        "store: .state/newsletter.db", "store: .state/newsletter.db\nweb:\n  trusted_proxies: [10.0.0.0/8, nginx]",
        "trusted_proxies", "web.trusted_proxies: 'nginx' is not an IP address or network", id="a proxy by name",
    ),
    pytest.param(
        "transport: file:out/maildir", "transport: carrier-pigeon://loft", "transport: carrier",
        "delivery.transport: transport 'carrier-pigeon://loft': unknown kind of transport", id="unknown transport",
    ),
]


@pytest.mark.parametrize(("old", "new", "line_text", "expected"), BAD_CONFIG)
def test_a_bad_field_is_named_with_its_line(
    project: Path, old: str, new: str, line_text: str, expected: str
) -> None:
    problems, text = problems_after(project, old, new)
    prefix = f"config.yaml:{line_of(text, line_text)}: "
    assert any(p.startswith(prefix + expected) for p in problems), problems


def test_broken_yaml_names_the_line(project: Path) -> None:
    problems, text = problems_after(project, "  weekly:", "  weekly: [")
    opened = line_of(text, "weekly: [")
    assert problems[0].startswith(f"config.yaml:{opened + 2}: yaml: invalid YAML: ")
    assert problems[0].endswith(f"(while parsing a flow sequence that starts on line {opened})")


def test_a_missing_config_file_says_how_to_choose_one(tmp_path: Path) -> None:
    with pytest.raises(NewsletterError, match=r"config file not found: .*--config PATH"):
        load_config(tmp_path / "config.yaml")


def test_an_unknown_digest_gets_a_hint_at_the_digests_line(project: Path) -> None:
    config = load_config(project / "config.yaml")
    line = line_of((project / "config.yaml").read_text(encoding="utf-8"), "digests:")
    with pytest.raises(ConfigError) as raised:
        config.digest("wekly")
    assert str(raised.value) == f"config.yaml:{line}: digests: unknown digest 'wekly' (did you mean 'weekly'?)"


def test_an_arabic_digest_reads_right_to_left(project: Path) -> None:
    problems, _ = problems_after(project, "language: en", "language: ar")
    assert problems == []
    assert load_config(project / "config.yaml").digest("weekly").direction == "rtl"


def test_delivery_reply_to_is_the_default_for_digests_and_the_postal_address_is_one_line(project: Path) -> None:
    path = project / "config.yaml"
    text = path.read_text(encoding="utf-8").replace(
        "  rate: 0 ", "  reply_to: {name: Analysts, address: analysts@threat-digest.example.org}\n  rate: 0 ").replace(
        "  postal_address: Threat Digest, 100 Example Street, 06000 Ankara, Türkiye\n",
        "  postal_address: |\n    Threat Digest\n    PO Box 12, Brussels\n")
    path.write_text(text, encoding="utf-8")
    config = load_config(path, {})
    assert config.digest("weekly").reply_to == Mailbox("Analysts", "analysts@threat-digest.example.org")
    assert config.site.postal_address == "Threat Digest PO Box 12, Brussels"


def test_a_short_editor_password_is_refused(project: Path) -> None:
    with pytest.raises(UsageError, match="NEWSLETTER_EDITOR_PASSWORD is too short"):
        load_config(project / "config.yaml", {"NEWSLETTER_EDITOR_PASSWORD": "hunter2"})
