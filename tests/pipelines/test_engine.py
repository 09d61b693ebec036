"""The engine in-process: counts per node, a buggy stage does not lose records, DuckDB connections are reused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from loglake.operators.sql import session
from loglake.pipelines.runner import RunOptions, run_pipeline

PIPELINE = """
pipeline: engine
sources:
  logs: {{type: file, paths: [{log}], batch_size: 500}}
stages:
  errors: {{type: filter, condition: "message LIKE '% 404 %' OR message LIKE '% 500 %'"}}
  boom: {{type: python, function: "buggy:explode"}}
sinks:
  out: {{type: parquet, dataset: out}}
"""

BUGGY = '''
import pyarrow as pa

def explode(batch: pa.RecordBatch) -> pa.RecordBatch:
    if batch.num_rows and batch.column("_line")[0].as_py() % 2 == 0:
        raise KeyError("batch starts on an even line")
    return batch
'''


def test_counts_add_up_and_a_raising_function_loses_nothing(
    write_pipeline: Callable[[str], Path], tmp_path: Path, apache_log: Path
) -> None:
    (tmp_path / "buggy.py").write_text(BUGGY)
    result = run_pipeline(write_pipeline(PIPELINE.format(log=apache_log)), RunOptions(workers=2))
    counts = {node.name: node.counts for node in result.nodes}
    lines = apache_log.read_text().splitlines()
    matching = [line for line in lines if " 404 " in line or " 500 " in line]
    assert counts["logs"]["records_in"] == len(lines) == 10_000
    assert counts["errors"]["records_in"] == 10_000 and counts["errors"]["records_out"] == len(matching)
    boom = counts["boom"]
    assert boom["records_in"] == len(matching) == boom["records_out"] + boom.get("records_dropped", 0)
    assert 0 < boom.get("records_dropped", 0) < len(matching), "some batches start on an even line, some do not"
    written = pq.read_table(tmp_path / "lake" / "out").num_rows
    dead = pq.read_table(tmp_path / "lake" / "dead_letter")
    assert written + dead.num_rows == len(matching)
    assert set(dead.column("_error").to_pylist()) == {"KeyError: 'batch starts on an even line'"}
    assert all(node.counts.get("busy_us", 0) > 0 for node in result.nodes if node.name != "dead_letter")


def test_sql_stages_reuse_one_duckdb_connection_per_worker_thread(
    write_pipeline: Callable[[str], Path], tmp_path: Path, apache_log: Path
) -> None:
    (tmp_path / "buggy.py").write_text(BUGGY.replace("% 2 == 0", "< 0"))
    session._connections.clear()
    run_pipeline(write_pipeline(PIPELINE.format(log=apache_log)), RunOptions(workers=2))
    # 20 batches of 500 lines went through the filter; one connection per worker thread, not one per batch.
    assert 1 <= len(session._connections) <= 2
