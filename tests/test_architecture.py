"""ARCHITECTURE.md stays true: its module table is the package, its layers are the imports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from newsletter import errors

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "newsletter"
DOCUMENT = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
MODULES = sorted(PACKAGE.rglob("*.py"))


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def first_paragraph(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return " ".join(doc.split("\n\n")[0].split())


def documented_modules() -> dict[str, str]:
    """`newsletter/x.py` -> its job, from every module table of ARCHITECTURE.md."""
    rows = re.findall(r"^\| `(newsletter/[^`]+\.py)` \| (.*) \|$", DOCUMENT, flags=re.M)
    return {module: job.replace("\\|", "|") for module, job in rows}


def layers() -> dict[str, set[str]]:
    """Folder -> the folders it may import, from the layers table."""
    rows = re.findall(r"^\| [^|]+ \| `(\w+)/` \|([^|]*)\| [^|]+ \|$", DOCUMENT, flags=re.M)
    return {folder: {name.strip() for name in allowed.split(",") if name.strip()} for folder, allowed in rows}


def imported(path: Path) -> set[str]:
    """Dotted names of the package's modules (or packages) that `path` imports."""
    here = ["newsletter", *path.relative_to(PACKAGE).with_suffix("").parts]
    package = here[:-1]  # a module's package; for an __init__.py, the package it opens
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("newsletter"):
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("newsletter"))
    return found


def folder_of(dotted: str) -> str | None:
    """The layer folder of `newsletter.x.y`, or None for a top-level module (errors)."""
    parts = dotted.split(".")
    if len(parts) < 2 or parts[1] in ("errors", "__main__"):
        return None
    return parts[1] if (PACKAGE / parts[1]).is_dir() else None


def test_every_module_is_in_the_table_with_its_docstrings_job() -> None:
    documented = documented_modules()
    assert sorted(documented) == [rel(p) for p in MODULES]
    for path in MODULES:
        assert documented[rel(path)] == first_paragraph(path), f"{rel(path)}: the table and the docstring differ"


def test_the_layers_table_names_every_folder() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert set(layers()) == folders
    for allowed in layers().values():
        assert allowed <= folders


@pytest.mark.parametrize("path", MODULES, ids=rel)
def test_each_module_imports_only_what_its_layer_may(path: Path) -> None:
    own = folder_of("newsletter." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    allowed = layers()
    if own is None:  # errors.py and the package itself: errors imports nothing of ours
        if path.name == "errors.py":
            assert imported(path) == set()
        return
    for target in imported(path):
        layer = folder_of(target)
        assert layer is None or layer == own or layer in allowed[own], (
            f"{rel(path)} imports {target}: {own}/ may import only {', '.join(sorted(allowed[own])) or 'nothing'}"
        )


def test_no_class_grows_past_300_lines() -> None:
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                assert length <= 300, f"{rel(path)}: class {node.name} is {length} lines"


def test_the_config_is_loaded_by_the_faces_only() -> None:
    """Faces load config.yaml once and pass the Config down; `check` alone reads the file
    itself, since reporting its problems is its job."""
    loaders = sorted(rel(p) for p in MODULES if "load_config(" in p.read_text(encoding="utf-8"))
    assert loaders == ["newsletter/faces/cli.py", "newsletter/inputs/config.py", "newsletter/usecases/check.py"]


def test_the_exit_status_table_is_the_one_in_errors() -> None:
    table = dict(re.findall(r"^\| (\d+) \|[^|]*\| ([^|]+) \|$", DOCUMENT, flags=re.M))
    statuses = {value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    assert {int(s) for s in table} == statuses
