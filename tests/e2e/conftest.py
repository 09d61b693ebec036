"""Running the `loglake` CLI as a subprocess, the way users and CI do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES

Runner = Callable[..., subprocess.CompletedProcess[str]]


def loglake_command(*args: str) -> list[str]:
    """argv that runs the installed CLI with this interpreter."""
    return [sys.executable, "-m", "loglake.pipelines.cli", *args]


@pytest.fixture
def loglake(tmp_path: Path) -> Runner:
    """Run `loglake ARGS…` in tmp_path; returns the completed process (text output)."""

    def run(*args: str, check: bool = True, timeout: float = 120, **kwargs: object) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "COLUMNS": "200"}
        env.pop("LOGLAKE_LAKE", None)
        done = subprocess.run(loglake_command(*args), cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=env, **kwargs)  # type: ignore[call-overload]
        if check and done.returncode != 0:
            raise AssertionError(f"loglake {' '.join(args)} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}")
        return done  # type: ignore[no-any-return]

    return run


@pytest.fixture
def app_json(tmp_path: Path) -> Path:
    """A private copy of examples/app-json (pipeline and data) in tmp_path; returns the pipeline file."""
    target = tmp_path / "app-json"
    shutil.copytree(EXAMPLES / "app-json", target, ignore=shutil.ignore_patterns("lake", "__pycache__"))
    return target / "pipeline.yaml"
