"""The `newsletter` command as a user meets it: outputs, one-line errors, exit statuses."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.inputs.addresses import AddressError
from newsletter.inputs.config import Mailbox

from .conftest import Run, add_subscribers, store_of
from .smtp_server import SmtpServer


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line)


def test_build_writes_the_three_files_and_prints_their_paths_and_sizes(project: Path, run: Run) -> None:
    result = run("build", "--as-of", "2022-07-30")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("weekly-2022-W30: [TLP:CLEAR] Iran, Turkey and Israel Weekly 2022-W30: ")
    names = [f"{copy}digest.{kind}" for copy in ("", "tlp-green/", "tlp-amber/") for kind in ("html", "txt", "eml", "stix.json")]
    for line, name in zip(lines[1:], names, strict=True):  # the CLEAR copy, then one per TLP level above
        path = line.split()[0]
        assert path == f"out/weekly-2022-W30/{name}"
        assert line.endswith(f"  {Path(path).stat().st_size / 1024:.1f} KB")
    assert result.stderr == ""


def test_build_out_and_digest_options(project: Path, run: Run, tmp_path: Path) -> None:
    result = run("build", "--digest", "weekly", "--as-of", "2022-06-14", "--out", str(tmp_path / "previews"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "previews" / "weekly-2022-W24").iterdir()) == [
        "digest.eml", "digest.html", "digest.stix.json", "digest.txt", "tlp-green",  # nothing AMBER was out on 14 June
    ]


def test_the_command_imports_the_store_and_the_scheduler_only_for_commands_that_use_them() -> None:
    """`check` and `build` start without SQLAlchemy, APScheduler's scheduler or the sending code."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys, newsletter.faces.cli; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    loaded = done.stdout.split()
    assert [m for m in loaded if m.startswith(("sqlalchemy", "apscheduler.schedulers", "newsletter.store",
                                               "newsletter.delivery", "newsletter.usecases.issues"))] == []


def test_an_unknown_digest_is_one_line_with_a_hint_and_status_2(project: Path, run: Run) -> None:
    result = run("build", "--digest", "wekly")
    line = line_of(project / "config.yaml", "digests:")
    assert result.exit_code == 2
    assert result.stderr == f"config.yaml:{line}: digests: unknown digest 'wekly' (did you mean 'weekly'?)\n"
    assert result.stdout == ""


def test_a_day_with_nothing_to_send_is_an_error_not_an_empty_issue(project: Path, run: Run) -> None:
    result = run("build", "--as-of", "2018-01-01")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: digest 'weekly' has nothing to send as of 2018-01-01")


def test_a_bad_as_of_is_a_usage_error(project: Path, run: Run) -> None:
    result = run("build", "--as-of", "30/07/2022")
    assert result.exit_code == 2
    assert "'30/07/2022' is not a date (YYYY-MM-DD) or an ISO 8601 moment" in result.stderr


def test_a_missing_config_names_the_option_to_use(tmp_path: Path, run: Run, monkeypatch: object) -> None:
    result = run("--config", str(tmp_path / "nope.yaml"), "check")
    assert result.exit_code == 2
    assert result.stdout.strip() == f"error: config file not found: {tmp_path / 'nope.yaml'} (choose one with --config PATH)"


def test_check_passes_on_the_shipped_project(project: Path, run: Run) -> None:
    result = run("check")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "ok"
    assert "warning" not in result.stdout


def test_check_lists_every_problem_with_its_place_and_exits_2(project: Path, run: Run) -> None:
    timeline = next((project / "content" / "timeline").glob("*.yaml"))
    text = timeline.read_text(encoding="utf-8")
    first_date = next(line for line in text.splitlines() if line.lstrip("- ").startswith("date:"))
    broken = text.replace(first_date, first_date.split("date:")[0] + 'date: "2022-02-30"', 1)
    timeline.write_text(broken.replace("  title:", "  titel:", 1), encoding="utf-8")

    result = run("check")

    assert result.exit_code == 2
    rel = f"content/timeline/{timeline.name}"
    date_line, titel_line = line_of(timeline, '"2022-02-30"'), line_of(timeline, "titel:")
    assert result.stdout.splitlines()[-2:] == [
        f"{rel}:{date_line}: [0].date: '2022-02-30' is not a real date: February 2022 has 28 days",
        f"{rel}:{titel_line}: [0].titel: unknown key 'titel' (did you mean 'title'?)",
    ]
    assert result.stderr == "error: 2 problems found\n"


def test_check_reports_a_template_error_at_its_line(project: Path, run: Run) -> None:
    html = project / "templates" / "digest.html"
    html.write_text(html.read_text(encoding="utf-8").replace("{{ labels.date(brief.date) }}</p>", "{{ digest.titel }}</p>"))
    result = run("check")
    assert result.exit_code == 2
    line = line_of(html, "digest.titel")
    assert f"templates/digest.html:{line}: template: 'newsletter.inputs.config.Digest object' has no attribute 'titel'" in result.stdout


def test_check_warns_before_gmail_would_clip_the_html(project: Path, run: Run) -> None:
    config = project / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("entries: 8 ", "entries: 500 "))
    padding = "Long summary text that pads the digest. " * 40
    entries = "".join(
        f"- date: \"2021-01-{day:02d}\"\n  title: Padding entry {day}\n  summary: {padding}\n"
        f"  tags: [iran]\n  sources:\n    - title: T\n      publisher: P\n      url: https://example.org/{day}\n"
        for day in range(1, 29)
    )
    (project / "content" / "timeline" / "padding.yaml").write_text(entries, encoding="utf-8")
    result = run("check")
    assert result.exit_code == 0
    assert "warning: digest weekly: HTML is" in result.stdout
    assert "clipped by Gmail" in result.stdout


def test_the_installed_command_shows_no_traceback(project: Path) -> None:
    (project / "content" / "timeline" / "bad.yaml").write_text("- date: [\n", encoding="utf-8")
    for args in (["check"], ["build"]):
        done = subprocess.run(
            [sys.executable, "-m", "newsletter", *args], capture_output=True, text=True, cwd=project, timeout=60
        )
        assert done.returncode == 2, done
        assert "Traceback" not in done.stderr + done.stdout
        assert "content/timeline/bad.yaml:2: yaml: invalid YAML" in done.stderr + done.stdout


# --- exit statuses: 0 done, 1 failed for good, 2 usage/config/content, 70 a bug, 75 work left, 130 interrupted

KEY = "c" * 40


def newsletter(project: Path, *args: str, **options: object) -> subprocess.CompletedProcess[str]:
    """The installed command in a real process, as a shell or cron runs it."""
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": KEY}
    return subprocess.run([sys.executable, "-m", "newsletter", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=120, **options)  # type: ignore[call-overload]


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_a_malformed_transport_is_a_usage_error_in_one_line(project: Path) -> None:
    add_subscribers(project, 2)
    done = newsletter(project, "send", "--as-of", "2022-07-30", "--transport", "smtp://[::1")
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        "error: transport 'smtp://[::1': invalid host; use file:DIR, smtp://HOST:PORT, smtps://HOST:PORT "
        "or smtp+starttls://HOST:PORT"
    )
    assert store_of(project).issues.latest() is None  # refused before anything was stored


def test_a_send_where_every_recipient_is_refused_exits_1(
    project: Path, run: Run, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    add_subscribers(project, 3)
    smtp_server.reply_for = lambda recipient, attempt: "550 5.1.1 no such user"
    result = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert result.exit_code == 1, result.output
    assert "0 sent, 3 failed, 0 deferred, 0 left" in result.stdout
    assert result.stderr.splitlines()[-1] == (
        "error: 3 deliveries of weekly-2022-W30 failed for good: see `newsletter status weekly-2022-W30`"
    )


def test_deliveries_left_deferred_exit_75(
    project: Path, run: Run, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    config = project / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("retry_after: 60 ", "retry_after: 3600 "))
    add_subscribers(project, 2)
    smtp_server.reply_for = lambda recipient, attempt: "451 4.7.1 greylisted, come back later"
    result = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert result.exit_code == 75, result.output
    assert "0 sent, 0 failed, 2 deferred, 2 left" in result.stdout
    assert "the next try is due at " in result.stderr.splitlines()[-1]
    assert result.stderr.splitlines()[-1].endswith("run `newsletter send` again then (`newsletter run` does on its own)")


@pytest.mark.parametrize("smtp_server", [True], ids=["pipelining"], indirect=True)  # slow: one server mode
def test_ctrl_c_during_a_send_exits_130_and_the_next_send_finishes(project: Path, smtp_server: SmtpServer) -> None:
    addresses = add_subscribers(project, 200)
    smtp_server.data_delay = 0.01
    command = [sys.executable, "-m", "newsletter", "send", "--as-of", "2022-07-30", "--transport", smtp_server.url]
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": KEY}
    process = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    smtp_server.wait_for(10, timeout=60)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1].startswith("error: stopped with ")
    assert stderr.splitlines()[-1].endswith("deliveries left: run `newsletter send` again to finish weekly-2022-W30")
    smtp_server.data_delay = 0
    finished = newsletter(project, "send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert finished.returncode == 0, finished.stderr
    assert sorted(set(smtp_server.recipients())) == addresses


def test_serve_on_a_busy_port_is_one_line_and_status_2(project: Path, run: Run) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("serve", "--port", str(port))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use; stop what uses it or choose "
        "another with --port"
    )


def test_a_moment_the_time_zones_cannot_hold_is_one_line(project: Path) -> None:
    done = newsletter(project, "build", "--as-of", "0001-01-01T00:00+14:00")
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        "error: 0001-01-01T00:00:00+14:00 is outside the dates this tool can handle in Europe/Istanbul "
        "(years 1 to 9999, in UTC and in the digest's time zone)"
    )


def test_an_unexpected_error_in_a_sending_thread_stops_the_send_with_one_line(
    project: Path, run: Run, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.compose.message import PreparedMessage

    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    addresses = add_subscribers(project, 5)
    original = PreparedMessage.for_recipient

    def broken(self: PreparedMessage, recipient: Mailbox, *args: object, **kwargs: object) -> bytes:
        if recipient.address == addresses[2]:
            raise RuntimeError("a bug")
        return original(self, recipient, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(PreparedMessage, "for_recipient", broken)
    result = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert result.exit_code == 70, result.output
    assert result.stderr.splitlines() == [
        f"internal error: sending weekly-2022-W30 to {addresses[2]} (delivery 3): RuntimeError: a bug"
    ]
    # Stopped there, nobody after it. With PIPELINING the 2nd message may only have had its
    # commands out when the bug struck: then it is given back (the connection closes), not sent.
    assert smtp_server.recipients() in (addresses[:1], addresses[:2])
    store = store_of(project)
    issue = store.issues.get("weekly", "2022-W30")
    assert issue is not None
    assert store.status.last_errors(issue.id) == [
        (addresses[2], "queued", f"internal error: sending weekly-2022-W30 to {addresses[2]} (delivery 3): "
                                 "RuntimeError: a bug")
    ]
    monkeypatch.setattr(PreparedMessage, "for_recipient", original)  # the bug fixed: a rerun finishes
    again = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert again.exit_code == 0, again.output
    assert smtp_server.recipients() == addresses


def test_a_stored_name_no_header_can_carry_fails_that_delivery_and_the_others_go_out(
    project: Path, run: Run, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row written before names were checked at the store's door: that delivery fails
    (no bounce counted), the next subscribers get the issue, and the status says 1."""
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    addresses = add_subscribers(project, 3)
    store = store_of(project)
    with pytest.raises(AddressError):
        store.subscribers.add("eve@example.org", "Eve\x1bBcc", ["weekly"])
    with store.db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE subscribers SET name = :name WHERE address = :address"),
                     {"name": "Eve\r\nBcc: x@example.org", "address": addresses[1]})
    result = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert result.exit_code == 1, result.output
    assert "2 sent, 1 failed, 0 deferred, 0 left" in result.stdout
    assert sorted(smtp_server.recipients()) == [addresses[0], addresses[2]]
    subscriber = store.subscribers.get(addresses[1])
    assert subscriber is not None and subscriber.status == "active"  # not the reader's fault
    again = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert again.exit_code == 0 and "(done with failures: sent already)" in again.stdout


def test_dash_h_shows_help(run: Run) -> None:
    for args in (["-h"], ["send", "-h"], ["subscribers", "add", "-h"]):
        result = run(*args)
        assert result.exit_code == 0 and result.stdout.startswith("Usage: "), args


@pytest.mark.parametrize("smtp_server", [True], ids=["pipelining"], indirect=True)  # slow: one server mode
def test_a_send_without_a_terminal_says_how_far_it_is_and_when_it_retries(
    project: Path, run: Run, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.faces.cli import Progress

    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    monkeypatch.setattr(Progress, "EVERY", 0.1)  # every 10 s in real life
    config = project / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("retry_after: 60 ", "retry_after: 1 "))
    addresses = add_subscribers(project, 30)
    smtp_server.data_delay = 0.02
    smtp_server.reply_for = lambda recipient, attempt: "451 4.3.0 busy" if recipient == addresses[-1] and attempt == 1 else None
    result = run("send", "--as-of", "2022-07-30", "--transport", smtp_server.url)
    assert result.exit_code == 0, result.output
    ticks = [line for line in result.stderr.splitlines() if line.startswith("  weekly-2022-W30: ")]
    assert ticks and all(re.fullmatch(r"  weekly-2022-W30: \d+ sent, 0 failed, [01] deferred, 0 uncertain, \d+ left", t)
                         for t in ticks), ticks
    assert re.search(r"^  waiting for a retry: the next try is at \d\d:\d\d:\d\d \(in [01] s\)$", result.stderr, re.M)
    assert "30 sent, 0 failed, 1 deferred, 0 left" in result.stdout
