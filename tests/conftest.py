"""Fixtures: a copy of the shipped project in a temporary folder, and the CLI run in-process."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.faces.cli import cli
from newsletter.inputs.config import load_config
from newsletter.store import Store

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

Run = Callable[..., Result]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped config, content and templates, copied; the working folder is its root."""
    for name in ("content", "templates"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def rtl_project(project: Path) -> Path:
    """The project with the Arabic content fixture and an Arabic digest in place of the English one."""
    shutil.rmtree(project / "content")
    shutil.copytree(DATA / "rtl" / "content", project / "content")
    config = (project / "config.yaml").read_text(encoding="utf-8")
    config = config.replace("  weekly:", "  arabic:").replace("language: en", "language: ar")
    config = config.replace("title: Iran, Turkey and Israel Weekly", "title: إيران وتركيا وإسرائيل")
    (project / "config.yaml").write_text(config, encoding="utf-8")
    return project


@pytest.fixture
def run() -> Run:
    """Run `newsletter ARGS...` in-process; stderr is kept apart from stdout."""
    runner = CliRunner()

    def invoke(*args: str, input: bytes | str | None = None) -> Result:
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke
SEED = REPO.parent / "shared" / "seeds" / "000_270cdd7c17ee760f.txt"


@pytest.fixture
def seed() -> Path:
    """The seed article (a scraped copy of the July 2022 analysis), kept outside the repository."""
    if not SEED.is_file():
        pytest.skip("the seed article is not at ../shared/seeds/ here")
    return SEED


def store_of(project: Path) -> Store:
    """The store the project's config.yaml names."""
    return Store.open(load_config(project / "config.yaml").store_url)


def add_subscribers(project: Path, count: int, digest: str = "weekly") -> list[str]:
    """`count` active subscribers of `digest`; their addresses, in order."""
    store = store_of(project)
    addresses = [f"reader{n:05d}@example.org" for n in range(count)]
    for address in addresses:
        store.subscribers.add(address, "", [digest])
    return addresses


from .smtp_server import make_smtp_server, smtp_server  # noqa: E402, F401  (fixtures)
from .postgres import postgres  # noqa: E402, F401  (fixtures)
from .postfix import postfix  # noqa: E402, F401  (fixtures)
from .dovecot import dovecot  # noqa: E402, F401  (fixtures)
