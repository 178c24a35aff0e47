"""The life of an issue (usecases/issues.py), as `newsletter send` and the store see it:
nothing new is skipped, nobody subscribed queues nothing, a snapshot is replaced until a
sender begins and frozen after, and a resumed send takes nothing from today's config."""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.inputs.config import load_config
from newsletter.store import IssueState, utcnow

from .conftest import Run, add_subscribers, store_of
from .smtp_server import SmtpServer

KEY = "i" * 40


@pytest.fixture
def sender(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    return project


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{path.name} no longer has {old!r}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def received(project: Path) -> list[email.message.EmailMessage]:
    box = mailbox.Maildir(project / "out" / "maildir", create=False)
    found = [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.keys()]
    return [m for m in found if isinstance(m, email.message.EmailMessage)]


def test_send_writes_the_preview_files_as_the_scheduler_does(sender: Path, run: Run, smtp_server: SmtpServer) -> None:
    add_subscribers(sender, 2)
    result = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert result.exit_code == 0, result.output
    assert "  preview in out/weekly-2022-W30/" in result.stdout
    assert sorted(p.name for p in (sender / "out" / "weekly-2022-W30").iterdir()) == [
        "digest.eml", "digest.html", "digest.txt"
    ]


def test_send_skips_an_issue_with_nothing_new_unless_forced(sender: Path, run: Run, smtp_server: SmtpServer) -> None:
    add_subscribers(sender, 2)
    assert run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url).exit_code == 0
    # A week later the content has not changed: nothing new, so nothing goes out.
    later = run("send", "--as-of", "2022-08-06", "--transport", smtp_server.url)
    assert later.exit_code == 0, later.output
    assert later.stdout == (
        "weekly-2022-W31: skipped: nothing new since weekly-2022-W30 (when_nothing_new: skip); "
        "`--force` sends it anyway\n"
    )
    assert store_of(sender).issues.get("weekly", "2022-W31") is None
    assert len(smtp_server.recipients()) == 2
    forced = run("send", "--as-of", "2022-08-06", "--force", "--transport", smtp_server.url)
    assert forced.exit_code == 0, forced.output
    assert "2 sent, 0 failed, 0 deferred, 0 left" in forced.stdout
    assert len(smtp_server.recipients()) == 4


def test_a_digest_that_sends_when_nothing_is_new_sends(sender: Path, run: Run, smtp_server: SmtpServer) -> None:
    edit(sender / "config.yaml", "when_nothing_new: skip", "when_nothing_new: send")
    add_subscribers(sender, 1)
    for day in ("2022-07-30", "2022-08-06"):
        assert run("send", "--as-of", day, "--transport", smtp_server.url).exit_code == 0
    assert len(smtp_server.recipients()) == 2


def test_no_subscribers_queues_nothing_and_a_later_send_in_the_period_works(
    sender: Path, run: Run, smtp_server: SmtpServer
) -> None:
    empty = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert empty.exit_code == 0, empty.output
    assert "  no active subscribers of weekly: nothing queued" in empty.stdout
    stored = store_of(sender).issues.get("weekly", "2022-W30")
    assert stored is not None and stored.life is IssueState.STORED and stored.finished_at is None

    [address] = add_subscribers(sender, 1)  # an hour later, someone subscribes
    later = run("send", "--as-of", "2022-07-30T12:00", "--transport", smtp_server.url)
    assert later.exit_code == 0, later.output
    assert "1 sent, 0 failed, 0 deferred, 0 left" in later.stdout
    assert smtp_server.recipients() == [address]
    done = store_of(sender).issues.get("weekly", "2022-W30")
    assert done is not None and done.life is IssueState.DONE


def test_a_send_refused_before_any_delivery_does_not_freeze_the_issue(sender: Path, run: Run) -> None:
    """A subject no header can carry is refused with its file and line, stores nothing, and
    once the brief is fixed the fixed subject is the one that goes out."""
    add_subscribers(sender, 1)
    brief = next((sender / "content" / "briefs").glob("*.md"))
    text = brief.read_text(encoding="utf-8")
    title_line = next(row for row in text.splitlines() if row.startswith("title: "))
    brief.write_text(text.replace(title_line, 'title: "=?UTF-8?Q?Hi=0ABcc:_x@y?= Backfire"'), encoding="utf-8")
    line = text.splitlines().index(title_line) + 1

    refused = run("send", "--as-of", "2022-07-30")
    assert refused.exit_code == 2
    assert refused.stderr.splitlines() == [
        f"content/briefs/{brief.name}:{line}: title: contains an encoded header word (=?...?=)"
    ]
    assert store_of(sender).issues.get("weekly", "2022-W30") is None
    checked = run("check")
    assert checked.exit_code == 2 and f"content/briefs/{brief.name}:{line}: title:" in checked.stdout

    brief.write_text(text.replace(title_line, "title: Iran's Plots Backfire"), encoding="utf-8")
    fixed = run("send", "--as-of", "2022-07-30")
    assert fixed.exit_code == 0, fixed.output
    assert [m["Subject"] for m in received(sender)] == ["[TLP:CLEAR] Iran, Turkey and Israel Weekly 2022-W30: Iran's Plots Backfire"]


def test_a_snapshot_is_replaced_until_a_sender_begins_and_frozen_after(sender: Path, run: Run) -> None:
    assert run("send", "--as-of", "2022-07-30").exit_code == 0  # nobody subscribed: stored only
    brief = next((sender / "content" / "briefs").glob("*.md"))
    text = brief.read_text(encoding="utf-8")
    title_line = next(line for line in text.splitlines() if line.startswith("title: "))
    brief.write_text(text.replace(title_line, "title: A Better Title"), encoding="utf-8")
    add_subscribers(sender, 1)
    assert run("send", "--as-of", "2022-07-30").exit_code == 0
    assert [m["Subject"] for m in received(sender)] == ["[TLP:CLEAR] Iran, Turkey and Israel Weekly 2022-W30: A Better Title"]

    brief.write_text(text.replace(title_line, "title: Too Late Now"), encoding="utf-8")
    again = run("send", "--as-of", "2022-07-30")
    assert "(done: sent already); content changed since it was built, the stored version is sent" in again.stdout
    stored = store_of(sender).issues.get("weekly", "2022-W30")
    assert stored is not None and stored.subject.endswith("A Better Title")


def test_a_resumed_send_takes_sender_list_and_language_from_the_stored_issue(
    sender: Path, run: Run, smtp_server: SmtpServer
) -> None:
    edit(sender / "config.yaml", "retry_after: 60 ", "retry_after: 3600 ")  # later than this send stays
    addresses = add_subscribers(sender, 4)
    smtp_server.reply_for = lambda recipient, attempt: (
        "451 4.3.0 try later" if recipient in addresses[2:] and attempt == 1 else None
    )
    first = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert first.exit_code == 75, first.output  # two deferred: work left to resume
    config = sender / "config.yaml"
    edit(config, "      name: Threat Digest", "      name: Someone Else")
    edit(config, "title: Iran, Turkey and Israel Weekly", "title: Renamed Weekly")
    edit(config, "language: en", "language: fr")
    with store_of(sender).db.engine.begin() as conn:  # the retry is due now
        conn.execute(sa.text("UPDATE deliveries SET next_attempt_at = :now"), {"now": utcnow()})
    resumed = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert resumed.exit_code == 0, resumed.output
    messages = [email.message_from_bytes(m.data, policy=email.policy.default) for m in smtp_server.messages()]
    assert len(messages) == 4
    assert {str(m["From"]) for m in messages} == {"Threat Digest <digest@threat-digest.example.org>"}
    assert {m["List-Id"] for m in messages} == {'"Iran, Turkey and Israel Weekly" <weekly.threat-digest.example.org>'}
    assert {m["Content-Language"] for m in messages} == {"en"}


def test_an_issue_stored_before_snapshots_is_resumed_with_the_config(sender: Path, run: Run, smtp_server: SmtpServer) -> None:
    """A database upgraded from schema version 5 keeps its in-flight issue: it resumes, the
    sender and List-Id it never stored filled in from the config."""
    from newsletter.store import migrate

    url = load_config(sender / "config.yaml").store_url
    (sender / ".state").mkdir()
    engine = sa.create_engine(url)
    migrate(engine, target=5)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO subscribers (id, address, name, status, bounces, created_at, updated_at) "
            "VALUES (1, 'old@example.org', 'Old', 'active', 0, :now, :now)"), {"now": now})
        conn.execute(sa.text(
            "INSERT INTO subscriptions (id, subscriber_id, digest, status, created_at, updated_at) "
            "VALUES (1, 1, 'weekly', 'active', :now, :now)"), {"now": now})
        conn.execute(sa.text(
            "INSERT INTO issues (id, digest, period, subject, preheader, html, text, content_hash, nonce, as_of, "
            "created_at, queued_at) VALUES (1, 'weekly', '2022-W30', 'Old subject', 'pre', '<p>old</p>', 'old', "
            "'h', 'n0nce', :now, :now, :now)"), {"now": now})
        conn.execute(sa.text(
            "INSERT INTO deliveries (issue_id, subscriber_id, subscription_id, status, attempts, message_id, "
            "next_attempt_at, created_at, updated_at) VALUES (1, 1, 1, 'deferred', 1, '<old.1@x>', :now, :now, :now)"),
            {"now": now})
    engine.dispose()
    result = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert result.exit_code == 0, result.output
    assert "weekly-2022-W30: Old subject (resuming the stored issue)" in result.stdout
    (message,) = [email.message_from_bytes(m.data, policy=email.policy.default) for m in smtp_server.messages()]
    assert message["Subject"] == "Old subject" and str(message["From"]).startswith("Threat Digest <")
    stored = store_of(sender).issues.get("weekly", "2022-W30")
    assert stored is not None and stored.life is IssueState.DONE


def test_a_reply_to_setting_is_kept_in_the_snapshot(sender: Path, run: Run, smtp_server: SmtpServer) -> None:
    edit(sender / "config.yaml", "    subject: ", "    reply_to:\n      name: Analysts\n      address: desk@threat-digest.example.org\n    subject: ")
    add_subscribers(sender, 1)
    assert run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url).exit_code == 0
    (message,) = [email.message_from_bytes(m.data, policy=email.policy.default) for m in smtp_server.messages()]
    assert str(message["Reply-To"]) == "Analysts <desk@threat-digest.example.org>"
    assert re.search(rb"^Reply-To: ", smtp_server.messages()[0].data, re.M)
