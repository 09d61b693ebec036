"""The house rules DESIGN.md sets: nothing imports upward, only pipelines/ imports Bytewax."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FLOORS = {"schemas": 0, "operators": 1, "parsers": 1, "pipelines": 2}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", ["schemas", "operators", "parsers"])
def test_only_pipelines_imports_bytewax(folder: str) -> None:
    offenders = [str(p.relative_to(REPO)) for p in _modules(folder) if any(n.split(".")[0] == "bytewax" for n in _imports(p))]
    assert offenders == []


@pytest.mark.parametrize("folder", list(FLOORS))
def test_nothing_imports_upward_or_sideways(folder: str) -> None:
    problems = []
    for path in _modules(folder):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "loglake" or len(parts) < 2 or parts[1] not in FLOORS or parts[1] == folder:
                continue
            if FLOORS[parts[1]] >= FLOORS[folder]:
                problems.append(f"{path.relative_to(REPO)} imports {name}")
    assert problems == []


def test_every_code_folder_is_mapped_into_the_loglake_namespace() -> None:
    import loglake.operators
    import loglake.parsers
    import loglake.pipelines
    import loglake.schemas

    for package, folder in [(loglake.operators, "operators"), (loglake.parsers, "parsers"), (loglake.pipelines, "pipelines"), (loglake.schemas, "schemas")]:
        assert Path(package.__file__).resolve().parent == REPO / folder


def test_pyproject_lists_every_package_so_wheels_are_complete() -> None:
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        "loglake." + ".".join(init.parent.relative_to(REPO).parts)
        for folder in FLOORS
        for init in (REPO / folder).rglob("__init__.py")
    }
    assert listed == found
