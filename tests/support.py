"""Test helpers: build nodes from YAML snippets through the real config models and registry."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from loglake.pipelines.compile import load_and_compile
from loglake.pipelines.nodes import build_node
from loglake.schemas.connectors import EndOfInput, SourcePartition
from loglake.schemas.errors import SpecError, SpecIssue
from loglake.schemas.stage import NodeContext

__all__ = ["drain", "build_stage", "build_source", "build_sink", "batch_of", "only_spec_issue", "compile_issues", "DATA_DIR", "APACHE_LOG"]

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
"""The project's shared real log data (../shared/data from the repository root)."""
APACHE_LOG = DATA_DIR / "apache_access_10k.log"


def _build(kind: str, snippet: str, name: str, base_dir: Path | None, **context: Any) -> Any:
    raw = yaml.safe_load(snippet)
    ctx = NodeContext(node=name, base_dir=base_dir or Path.cwd(), **context)
    return build_node(kind, name, raw, ctx)  # type: ignore[arg-type]


def build_stage(snippet: str, name: str = "stage", base_dir: Path | None = None) -> Any:
    """A stage built from a YAML snippet such as `{type: filter, condition: "level = 'error'"}`."""
    return _build("stage", snippet, name, base_dir)


def build_source(snippet: str, name: str = "source", base_dir: Path | None = None, follow: bool | None = None) -> Any:
    """A source built from a YAML snippet."""
    return _build("source", snippet, name, base_dir, follow=follow)


def build_sink(snippet: str, name: str = "sink", base_dir: Path | None = None) -> Any:
    """A sink built from a YAML snippet."""
    return _build("sink", snippet, name, base_dir)


def batch_of(**columns: list[Any]) -> pa.RecordBatch:
    """A record batch from column lists: `batch_of(message=["a", "b"], level=["info", None])`."""
    return pa.RecordBatch.from_pydict(columns)


def only_spec_issue(snippet: str, base_dir: Path | None = None) -> SpecIssue:
    """The single problem building a stage from `snippet` reports (fails the test if it builds or reports more)."""
    try:
        build_stage(snippet, base_dir=base_dir)
    except SpecError as exc:
        assert len(exc.issues) == 1, exc.render()
        return exc.issues[0]
    raise AssertionError(f"{snippet} built without a problem")


def compile_issues(path: Path) -> list[tuple[str, int | None, str]]:
    """(dotted path, line, message) of each problem `load_and_compile` reports for a pipeline file; none if it compiles."""
    try:
        load_and_compile(path)
    except SpecError as exc:
        return [(issue.dotted_path, issue.line, issue.message) for issue in exc.issues]
    return []


def drain(partition: SourcePartition, timeout: float = 10.0) -> list[pa.RecordBatch]:
    """Every batch of a bounded source partition, up to `EndOfInput` (fails the test if that takes longer than `timeout`)."""
    batches: list[pa.RecordBatch] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            batch = partition.read()
        except EndOfInput:
            return batches
        if batch is not None:
            batches.append(batch)
    raise AssertionError(f"no end after {sum(b.num_rows for b in batches)} rows")
