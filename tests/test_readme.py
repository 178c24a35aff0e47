"""The README stays true: every command and option is documented, and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from newsletter.faces.cli import cli

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
