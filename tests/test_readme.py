"""The README stays true: every command and option is documented, and CI runs its test command."""

from __future__ import annotations

import logging
import re
import shlex
from pathlib import Path

import click
import pytest

from newsletter import errors
from newsletter.faces.cli import LOG_DATE_FORMAT, LOG_FORMAT, cli

from .conftest import Run

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")


def code_block_after(heading_text: str) -> list[str]:
    """The lines of the first ```sh block after `heading_text`."""
    rest = README[README.index(heading_text):]
    block = re.search(r"```sh\n(.*?)```", rest, flags=re.S)
    assert block, f"no sh block after {heading_text!r}"
    return block.group(1).strip().splitlines()


def walk(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in sorted(group.commands.items()):
        found.append((prefix + name, command))
        if isinstance(command, click.Group):
            found.extend(walk(command, f"{prefix}{name} "))
    return found


COMMANDS = walk(cli)


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[name for name, _ in COMMANDS])
def test_every_command_and_option_is_in_the_readme(name: str, command: click.Command) -> None:
    assert f"newsletter {name}" in README
    for param in command.params:
        if isinstance(param, click.Option):
            assert any(f"{opt}" in README for opt in param.opts), f"{name} {param.opts} is not in the README"


def test_ci_runs_the_readme_test_command_word_for_word() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = code_block_after("Run the tests")
    assert commands == ["pip install -e '.[test]'", "pytest"]
    position = [ci.index(line) for line in commands]
    assert position == sorted(position)


def test_the_quick_start_installs_and_builds() -> None:
    assert code_block_after("Install and build") == ["pip install -e . && newsletter build"]


def commands_of(block: list[str]) -> list[list[str]]:
    """The `newsletter ...` lines of a README block, as argument lists (comments dropped)."""
    found = []
    for line in block:
        words = shlex.split(line, comments=True)
        if words and words[0] == "newsletter":
            found.append(words[1:])
    return found


def test_the_sending_quick_start_runs_as_written(project: Path, run: Run) -> None:
    for args in commands_of(code_block_after("The shipped config sends into a Maildir")):
        result = run(*args)
        assert result.exit_code == 0, (args, result.output)
    assert len(list((project / "out" / "maildir" / "new").iterdir())) == 4  # a test copy and 3 readers


def test_the_content_quick_start_runs_as_written(project: Path, run: Run) -> None:
    for args in commands_of(code_block_after("Machines do the first pass")):
        result = run(*args)
        assert result.exit_code == 0, (args, result.output)
    assert run("check").exit_code == 0


def test_the_exit_statuses_in_the_readme_are_the_ones_the_code_has() -> None:
    section = README[README.index("### Exit statuses"):README.index("### Shell completion")]
    documented = {int(s) for s in re.findall(r"^\| +(\d+) \|", section, flags=re.M)}
    assert documented == {value for name, value in vars(errors).items() if name.startswith("EXIT_")}


def test_the_log_lines_shown_are_the_format_printed() -> None:
    shown = re.search(r"```\n(.*?)```", README[README.index("A run across a restart"):], flags=re.S)
    assert shown
    block = shown.group(1).splitlines()
    record = logging.LogRecord("newsletter.run", logging.INFO, __file__, 1, "fired weekly", None, None)
    printed = logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT).format(record)
    form = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|WARNING|ERROR) \S.*")
    assert form.fullmatch(printed)
    assert block and all(form.fullmatch(line) for line in block), block
