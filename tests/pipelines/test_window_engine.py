"""The window stage in the engine: groups spread over workers, a watermark per source partition, real data."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from loglake.pipelines.runner import RunOptions, run_pipeline
from tests.support import APACHE_LOG

PIPELINE = """\
pipeline: hourly
lake: lake
sources:
  access: {type: file, paths: [early.log, late.log], start_at: beginning}
stages:
  parse: {type: apache_combined}
  hourly:
    type: window
    tumbling: 1h
    group_by: [response]
    aggregate: {requests: "count()", total_bytes: "sum(bytes)", largest: "max(bytes)"}
sinks:
  raw: {type: parquet, inputs: [parse], dataset: raw}
  windows: {type: parquet, inputs: [hourly], dataset: hourly}
  late: {type: parquet, inputs: [hourly.late], dataset: late}
"""

EXPECTED = """
    SELECT time_bucket(INTERVAL 1 HOUR, timestamp) AS window_start, response,
           count(*) AS requests, sum(bytes) AS total_bytes, max(bytes) AS largest
    FROM read_parquet('{lake}/raw/**/*.parquet') GROUP BY ALL
"""
ACTUAL = "SELECT window_start, response, requests, total_bytes, largest FROM read_parquet('{lake}/hourly/**/*.parquet')"


@pytest.fixture
def two_partitions(tmp_path: Path) -> Path:
    """The real log split in two files: the second holds the later days, so its reader runs far ahead."""
    lines = APACHE_LOG.read_text(encoding="utf-8").splitlines(keepends=True)
    half = len(lines) // 2
    (tmp_path / "early.log").write_text("".join(lines[:half]), encoding="utf-8")
    (tmp_path / "late.log").write_text("".join(lines[half:]), encoding="utf-8")
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(PIPELINE, encoding="utf-8")
    return pipeline


def _difference(lake: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    expected, actual = EXPECTED.format(lake=lake), ACTUAL.format(lake=lake)
    missing = duckdb.sql(f"({expected}) EXCEPT ALL ({actual})").fetchall()
    extra = duckdb.sql(f"({actual}) EXCEPT ALL ({expected})").fetchall()
    return missing, extra


@pytest.mark.parametrize("workers", [1, 2])
def test_hourly_windows_equal_duckdb_over_the_raw_records_and_nothing_is_late(two_partitions: Path, workers: int) -> None:
    result = run_pipeline(two_partitions, RunOptions(workers=workers))

    lake = two_partitions.parent / "lake"
    assert _difference(lake) == ([], [])
    counts = {node.name: node.counts for node in result.nodes}
    assert counts["hourly"].get("late", 0) == 0
    assert not (lake / "late").exists() or duckdb.sql(f"SELECT count(*) FROM read_parquet('{lake}/late/**/*.parquet')").fetchall() == [(0,)]
    total = duckdb.sql(f"SELECT sum(requests) FROM read_parquet('{lake}/hourly/**/*.parquet')").fetchall()[0][0]
    assert total == counts["parse"]["records_out"]


def test_a_run_resumed_from_its_snapshots_writes_no_window_twice(two_partitions: Path) -> None:
    """With recovery on, window state comes back from the snapshot: closed windows are not emitted again."""
    recovery = two_partitions.parent / "recovery"
    run_pipeline(two_partitions, RunOptions(recovery_dir=recovery))
    run_pipeline(two_partitions, RunOptions(recovery_dir=recovery))

    assert _difference(two_partitions.parent / "lake") == ([], [])
