"""The `window` stage on the real Apache log, checked against the same aggregation in DuckDB SQL.

Two source partitions (alternate lines), each shuffled within the allowed lateness on top of the log's own
disorder (up to a minute), fed interleaved in batches after `a` has sent about a day of event time before
`b`'s first batch: no record is late, the exact aggregates equal DuckDB's, the sketches are within their
stated error.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from itertools import zip_longest
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from loglake.operators.window import WindowStage  # importing it registers `window`
from loglake.operators.window.sketches import COUNT_DISTINCT_ERROR, QUANTILE_RANK_ERROR
from loglake.schemas.records import lines_batch
from loglake.schemas.stage import StageOutput, partition_of, tag_partition
from tests.support import APACHE_LOG, build_stage

EVERY = 6 * 3_600_000_000
COPIES = 4
"""Sliding windows of a day every 6 hours: each record is in 4 windows."""
LATENESS_MINUTES = 5
SNIPPET = f"""
type: window
sliding: {{size: 1d, every: 6h}}
allowed_lateness: {LATENESS_MINUTES}m
idle_timeout: 1h
group_by: [response]
aggregate:
  requests: count()
  sized: count(bytes)
  total: sum(bytes)
  mean: avg(bytes)
  smallest: min(bytes)
  largest: max(bytes)
  p50: quantile(bytes, 0.5)
  p95: quantile(bytes, 0.95)
  clients: count_distinct(clientip)
  verbs: top_k(verb, 3)
  first_request: first(request)
  last_request: last(request)
"""
EXACT = ["requests", "sized", "total", "mean", "smallest", "largest", "verbs"]
NOW = datetime(2015, 5, 21, tzinfo=timezone.utc)
"""Wall clock for the engine-hook runs: after the log's last record."""


@pytest.fixture(scope="module")
def access() -> pa.RecordBatch:
    """The 10k real log lines parsed by the apache_combined preset (timestamp, response, bytes, clientip, …)."""
    parsed = build_stage("{type: apache_combined}").process(lines_batch(APACHE_LOG.read_text(encoding="utf-8").splitlines())).main
    assert parsed.num_rows > 9_900
    return parsed


def _feeds(access: pa.RecordBatch, size: int = 250, head_start: int = 6) -> Iterator[pa.RecordBatch]:
    """Partition batches: alternate lines per partition, each reordered by up to 4 minutes; `b` starts behind."""
    rng = np.random.default_rng(7)
    times = pc.cast(access.column("timestamp"), pa.int64()).to_numpy()
    parts = []
    for name, rows in (("a", np.arange(0, access.num_rows, 2)), ("b", np.arange(1, access.num_rows, 2))):
        jitter = rng.integers(0, (LATENESS_MINUTES - 1) * 60_000_000, rows.size)
        ordered = access.take(pa.array(rows[np.argsort(times[rows] + jitter, kind="stable")]))
        parts.append([tag_partition(ordered.slice(i, size), name) for i in range(0, ordered.num_rows, size)])
    a, b = parts
    yield from a[:head_start]
    for pair in zip_longest(a[head_start:], b):
        yield from (batch for batch in pair if batch is not None)


def _run_single(access: pa.RecordBatch) -> tuple[WindowStage, list[StageOutput]]:
    """Through `process`/`flush` (one state, wall clock), both partitions expected."""
    stage: WindowStage = build_stage(SNIPPET, name="daily")
    stage.state = stage.new_state(["a", "b"])
    outputs = [stage.process(batch) for batch in _feeds(access)]
    outputs += [out for out in (stage.flush("a"), stage.flush("b")) if out is not None]
    return stage, outputs


def _run_buckets(access: pa.RecordBatch, buckets: int, read_ports: frozenset[str] | None = None) -> tuple[WindowStage, list[StageOutput]]:
    """Through the engine hooks: progress on the whole batch, route, one state per bucket (`read_ports` told first)."""
    stage: WindowStage = build_stage(SNIPPET, name="daily")
    if read_ports is not None:
        stage.read_ports(read_ports)
    states = [stage.new_state(["a", "b"], NOW) for _ in range(buckets)]
    outputs = []
    for batch in _feeds(access):
        progress = stage.progress(batch, NOW)
        outputs += [stage.apply(state, part, _partition(batch), progress, NOW) for state, part in zip(states, stage.route(batch, buckets))]
    for partition in ("a", "b"):
        outputs += [out for out in (stage.on_flush(state, partition, NOW) for state in states) if out is not None]
    return stage, outputs


def _windows(outputs: list[StageOutput]) -> list[dict[str, Any]]:
    rows = [row for out in outputs for row in out.main.to_pylist()]
    for row in rows:
        row["w"] = int(row["window_start"].timestamp()) * 1_000_000
    return rows


def _sql(access: pa.RecordBatch, query: str, **tables: pa.Table) -> list[dict[str, Any]]:
    """Run `query` in DuckDB over the raw records (`raw`; `bucketed`: one row per record and window start `w`) and `tables`."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name, table in {"raw": pa.Table.from_batches([access]), **tables}.items():
        con.register(name, table)
    bucketed = f"(SELECT raw.*, epoch_us(timestamp) // {EVERY} * {EVERY} - copy * {EVERY} AS w FROM raw, range({COPIES}) AS copies(copy))"
    rows: list[dict[str, Any]] = con.sql(query.replace("bucketed", bucketed)).to_arrow_table().to_pylist()
    return rows


def _expected(access: pa.RecordBatch) -> dict[tuple[int, Any], dict[str, Any]]:
    rows = _sql(access, """
        SELECT w, response, count(*) AS requests, count(bytes) AS sized, sum(bytes)::BIGINT AS total, avg(bytes) AS mean,
               min(bytes) AS smallest, max(bytes) AS largest, count(DISTINCT clientip) AS clients
        FROM bucketed GROUP BY ALL""")
    verbs = _sql(access, "SELECT w, response, verb AS value, count(*) AS count FROM bucketed GROUP BY ALL ORDER BY count DESC, value")
    edges = _sql(access, """
        WITH named AS (SELECT * FROM bucketed WHERE request IS NOT NULL),
             span AS (SELECT w, response, min(timestamp) AS lo, max(timestamp) AS hi FROM named GROUP BY ALL)
        SELECT w, response, list(request) FILTER (WHERE timestamp = lo) AS firsts, list(request) FILTER (WHERE timestamp = hi) AS lasts
        FROM span JOIN named USING (w, response) GROUP BY ALL""")
    expected = {(row["w"], row["response"]): {**row, "verbs": []} for row in rows}
    for row in verbs:
        top = expected[row["w"], row["response"]]["verbs"]
        if len(top) < 3:
            top.append({"value": row["value"], "count": row["count"]})
    for row in edges:
        expected[row["w"], row["response"]].update(firsts=row["firsts"], lasts=row["lasts"])
    return expected


def _check_against_duckdb(access: pa.RecordBatch, windows: list[dict[str, Any]]) -> None:
    expected = _expected(access)
    assert sorted((row["w"], row["response"]) for row in windows) == sorted(expected)
    assert [(row["w"], row["response"]) for row in windows] == sorted(((row["w"], row["response"]) for row in windows), key=lambda k: (k[0], k[1]))
    for row in windows:
        want = expected[row["w"], row["response"]]
        assert {name: row[name] for name in EXACT if name != "mean"} == {name: want[name] for name in EXACT if name != "mean"}
        assert row["mean"] == (None if want["mean"] is None else pytest.approx(want["mean"], rel=1e-12))
        assert abs(row["clients"] - want["clients"]) <= COUNT_DISTINCT_ERROR * want["clients"]
        assert row["first_request"] in want["firsts"] and row["last_request"] in want["lasts"]
    _check_quantile_ranks(access, windows)


def _check_quantile_ranks(access: pa.RecordBatch, windows: list[dict[str, Any]]) -> None:
    """Each estimate's true rank among its window's values, computed by DuckDB, is within q ± the rank error."""
    estimates = pa.Table.from_pylist(
        [{"w": row["w"], "response": row["response"], "q": q, "estimate": row[name]} for row in windows for q, name in ((0.5, "p50"), (0.95, "p95")) if row[name] is not None]
    )
    ranks = _sql(access, """
        SELECT e.w, e.response, e.q, avg((b.bytes < e.estimate)::DOUBLE) AS below, avg((b.bytes <= e.estimate)::DOUBLE) AS upto, count(*) AS n
        FROM estimates e JOIN bucketed b ON b.w = e.w AND b.response IS NOT DISTINCT FROM e.response AND b.bytes IS NOT NULL
        GROUP BY ALL""", estimates=estimates)
    assert len(ranks) == sum(1 for row in windows for name in ("p50", "p95") if row[name] is not None) > 50
    misses = [r for r in ranks if not r["below"] - QUANTILE_RANK_ERROR <= r["q"] <= r["upto"] + QUANTILE_RANK_ERROR]
    assert misses == []
    assert any(r["n"] > 1000 for r in ranks)  # some windows are past the sketch's exact size


def test_interleaved_partitions_match_duckdb_with_no_late_record(access: pa.RecordBatch) -> None:
    stage, outputs = _run_single(access)
    assert [out.extra for out in outputs if out.extra] == []
    assert stage.ctx.counters["late"] == 0
    assert sum(out.main.num_rows for out in outputs[:-2]) > 0  # windows closed while the stream ran, not only at its end
    _check_against_duckdb(access, _windows(outputs))


@pytest.mark.parametrize("read_ports", [None, frozenset({"late"}), frozenset()], ids=["untold", "late-read", "only-read-columns-shipped"])
def test_bucket_states_match_duckdb_and_the_single_state(access: pa.RecordBatch, read_ports: frozenset[str] | None) -> None:
    _, single = _run_single(access)
    stage, spread = _run_buckets(access, 3, read_ports)
    assert stage.ctx.counters["late"] == 0
    rows = sorted(_windows(spread), key=lambda row: (row["w"], row["response"]))
    _check_against_duckdb(access, rows)
    exact = [*EXACT, "clients", "first_request", "last_request"]
    assert [{k: row[k] for k in exact} for row in rows] == [{k: row[k] for k in exact} for row in _windows(single)]


def test_records_older_than_a_closed_window_go_to_late(access: pa.RecordBatch) -> None:
    stage: WindowStage = build_stage(SNIPPET, name="daily")
    stage.state = stage.new_state(["a", "b"], NOW)
    outputs = [stage.apply(stage.state, b, _partition(b), stage.progress(b, NOW), NOW) for b in _feeds(access)]
    first_hour = access.filter(pc.less(access.column("timestamp"), pa.scalar(datetime(2015, 5, 17, 11, tzinfo=timezone.utc))))  # 4 windows, all closed
    replayed = tag_partition(first_hour, "a")  # a reader re-sending records whose window closed long ago
    outputs.append(stage.apply(stage.state, replayed, "a", stage.progress(replayed, NOW), NOW))
    assert outputs[-1].extra["late"].to_pylist() == replayed.to_pylist()
    assert stage.ctx.counters["late"] == first_hour.num_rows > 50
    outputs += [out for out in (stage.on_flush(stage.state, p, NOW) for p in ("a", "b")) if out is not None]
    _check_against_duckdb(access, _windows(outputs))  # the late copies were not counted again


def _partition(batch: pa.RecordBatch) -> str:
    found = partition_of(batch)
    assert found is not None
    return found
