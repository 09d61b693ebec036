"""Shared fixtures: real data paths, pipeline files written into a temporary folder."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import APACHE_LOG

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.fixture
def apache_log() -> Path:
    """The 10,000 real Apache access-log lines in ../shared/data."""
    assert APACHE_LOG.exists(), f"shared data missing: {APACHE_LOG}"
    return APACHE_LOG


@pytest.fixture
def write_pipeline(tmp_path: Path) -> Callable[[str], Path]:
    """Write dedented YAML to tmp_path/pipeline.yaml and return its path."""

    def write(text: str, name: str = "pipeline.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write
