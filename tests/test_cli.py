"""The `newsletter` command as a user meets it: outputs, one-line errors, exit statuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import Run


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line)


def test_build_writes_the_three_files_and_prints_their_paths_and_sizes(project: Path, run: Run) -> None:
    result = run("build", "--as-of", "2022-07-30")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("weekly-2022-W30: Iran, Turkey and Israel Weekly 2022-W30: ")
    for line, name in zip(lines[1:], ("digest.html", "digest.txt", "digest.eml"), strict=True):
        path = line.split()[0]
        assert path == f"out/weekly-2022-W30/{name}"
        assert line.endswith(f"  {Path(path).stat().st_size / 1024:.1f} KB")
    assert result.stderr == ""


def test_build_out_and_digest_options(project: Path, run: Run, tmp_path: Path) -> None:
    result = run("build", "--digest", "weekly", "--as-of", "2022-06-14", "--out", str(tmp_path / "previews"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "previews" / "weekly-2022-W24").iterdir()) == [
        "digest.eml", "digest.html", "digest.txt"
    ]


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
    html.write_text(html.read_text(encoding="utf-8").replace("{{ digest.title }}</h1>", "{{ digest.titel }}</h1>"))
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
