"""The `window` stage's clock and engine hooks: per-partition watermark, idle timeout, max_future, lateness,
end of input, `route`, bucket states and pickled state."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from loglake.operators.window import WindowStage, WindowState  # importing it registers `window`
from loglake.operators.window.sketches import COUNT_DISTINCT_ERROR, QUANTILE_RANK_ERROR
from loglake.schemas.stage import StageOutput, partition_of, tag_partition
from tests.support import batch_of, build_stage

T0 = datetime(2015, 5, 17, 10, 0, 0, tzinfo=timezone.utc)
NOW = datetime(2015, 5, 18, tzinfo=timezone.utc)
"""The wall clock in these tests (a day after the events; passed explicitly)."""
COUNT = "{type: window, tumbling: 1m, group_by: [host], aggregate: {n: count()}}"


def _minute(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def _events(minutes: list[float], hosts: list[str] | None = None, **columns: list[Any]) -> pa.RecordBatch:
    return batch_of(host=hosts or ["h"] * len(minutes), timestamp=[_minute(m) for m in minutes], **columns)


def _feed(stage: WindowStage, state: WindowState, batch: pa.RecordBatch, partition: str, now: datetime = NOW) -> StageOutput:
    return stage.apply(state, batch, partition, stage.progress(batch, now), now)


def _closed(output: StageOutput | None) -> list[tuple[Any, ...]]:
    return [] if output is None else [(row["window_start"], row["host"], row["n"]) for row in output.main.to_pylist()]


def _stage(snippet: str = COUNT, partitions: tuple[str, ...] = ("a", "b")) -> WindowStage:
    stage: WindowStage = build_stage(snippet, name="win")
    stage.state = stage.new_state(partitions, NOW)
    return stage


# -- the watermark -----------------------------------------------------------------------------------------


def test_the_watermark_is_the_minimum_over_partitions() -> None:
    stage = _stage()
    assert _closed(_feed(stage, stage.state, _events([0, 5, 10]), "a")) == []  # b has sent nothing: nothing closes
    out = _feed(stage, stage.state, _events([0.5, 2.5]), "b")
    assert _closed(out) == [(_minute(0), "h", 2)]  # min(10, 2.5) passes [0, 1) only
    out = _feed(stage, stage.state, _events([2.2, 5.5]), "b")  # behind a's progress, but its windows are open
    assert out.extra == {} and _closed(out) == [(_minute(2), "h", 2)]


def test_a_reader_that_starts_late_holds_windows_open_when_its_partition_is_expected() -> None:
    expected, unexpected = _stage(), _stage(partitions=())
    for stage in (expected, unexpected):
        _feed(stage, stage.state, _events([30, 31, 32]), "a")
    out = _feed(expected, expected.state, _events([1, 2]), "b")
    assert out.extra == {} and _closed(out) == [(_minute(1), "h", 1)]
    late = _feed(unexpected, unexpected.state, _events([1, 2]), "b").extra["late"]  # a closed them before b was known
    assert late.num_rows == 2 and unexpected.ctx.counters["late"] == 2


def test_an_idle_partition_stops_holding_the_watermark_back() -> None:
    stage = _stage("{type: window, tumbling: 1m, idle_timeout: 30s, group_by: [host], aggregate: {n: count()}}")
    _feed(stage, stage.state, _events([0, 3]), "a", NOW)
    _feed(stage, stage.state, _events([3.5]), "a", NOW + timedelta(seconds=25))
    assert stage.on_flush(stage.state, None, NOW + timedelta(seconds=29)) is None  # b is only quiet, not idle
    out = stage.on_flush(stage.state, None, NOW + timedelta(seconds=31))  # b has been idle since the state began
    assert _closed(out) == [(_minute(0), "h", 1)]  # a (not idle) now sets the watermark: 3.5


def test_when_every_partition_is_idle_the_newest_progress_counts() -> None:
    stage = _stage("{type: window, tumbling: 1m, idle_timeout: 10s, group_by: [host], aggregate: {n: count()}}")
    _feed(stage, stage.state, _events([0, 1]), "a", NOW)
    assert _closed(_feed(stage, stage.state, _events([0, 4]), "b", NOW)) == [(_minute(0), "h", 2)]  # min(1, 4)
    out = stage.on_flush(stage.state, None, NOW + timedelta(seconds=11))
    assert _closed(out) == [(_minute(1), "h", 1)]  # max(1, 4)


def test_a_far_future_record_does_not_advance_the_watermark_but_is_aggregated() -> None:
    stage = _stage("{type: window, tumbling: 1m, max_future: 1h, group_by: [host], aggregate: {n: count()}}", ("a",))
    wall = _minute(10)
    bad = _events([5, 24 * 60], ["ok", "bad-clock"])
    assert stage.progress(bad, wall) == _minute(5)
    assert _closed(_feed(stage, stage.state, bad, "a", wall)) == []
    out = _feed(stage, stage.state, _events([6.5]), "a", wall)
    assert _closed(out) == [(_minute(5), "ok", 1)]  # the watermark is 6.5, not tomorrow
    assert _closed(stage.on_flush(stage.state, "a", wall)) == [(_minute(6), "h", 1), (_minute(24 * 60), "bad-clock", 1)]


def test_the_end_of_every_partition_closes_every_window() -> None:
    stage = _stage()
    _feed(stage, stage.state, _events([0, 50]), "a")
    assert _closed(stage.on_flush(stage.state, "a", NOW)) == []  # b is expected and has sent nothing yet
    assert _closed(stage.on_flush(stage.state, "b", NOW)) == [(_minute(0), "h", 1), (_minute(50), "h", 1)]
    late = _feed(stage, stage.state, _events([49]), "c").extra["late"]  # the end moved the watermark past them
    assert late.num_rows == 1


def test_the_end_of_an_unknown_partition_ends_untagged_input() -> None:
    stage = build_stage(COUNT)
    stage.process(_events([0]))
    assert _closed(stage.flush("some-source")) == [(_minute(0), "h", 1)]


# -- lateness ----------------------------------------------------------------------------------------------


def test_records_for_closed_windows_go_to_late_unchanged_and_are_counted() -> None:
    stage = _stage(partitions=("a",))
    _feed(stage, stage.state, _events([0, 3]), "a")
    old = _events([0.5, 2.9, 3.5], ["x", "y", "z"], id=[1, 2, 3])
    out = _feed(stage, stage.state, old, "a")
    assert out.extra["late"].to_pylist() == old.slice(0, 2).to_pylist()
    assert stage.ctx.counters["late"] == 2
    assert _closed(stage.on_flush(stage.state, "a", NOW)) == [(_minute(3), "h", 1), (_minute(3), "z", 1)]


def test_allowed_lateness_keeps_windows_open() -> None:
    stage = _stage("{type: window, tumbling: 1m, allowed_lateness: 2m, group_by: [host], aggregate: {n: count()}}", ("a",))
    _feed(stage, stage.state, _events([0, 2.5]), "a")
    out = _feed(stage, stage.state, _events([0.5, 2.8]), "a")  # watermark 2.5 < 1 + 2: [0, 1) still takes records
    assert out.extra == {} and _closed(out) == []
    out = _feed(stage, stage.state, _events([3.1]), "a")
    assert _closed(out) == [(_minute(0), "h", 2)]
    assert _feed(stage, stage.state, _events([0.9]), "a").extra["late"].num_rows == 1


def test_a_record_late_for_one_sliding_window_still_counts_in_the_open_ones() -> None:
    snippet = "{type: window, sliding: {size: 2m, every: 1m}, group_by: [host], aggregate: {n: count()}}"
    stage = _stage(snippet, ("a",))
    _feed(stage, stage.state, _events([0, 2]), "a")  # closes [-1, 1) and [0, 2)
    out = _feed(stage, stage.state, _events([1.5]), "a")  # in [0, 2) (closed) and [1, 3) (open)
    assert out.extra["late"].num_rows == 1
    assert _closed(stage.on_flush(stage.state, "a", NOW)) == [(_minute(1), "h", 2), (_minute(2), "h", 1)]


def test_a_session_is_late_only_when_it_reaches_no_open_session() -> None:
    stage = _stage("{type: window, session: {gap: 2m}, group_by: [host], aggregate: {n: count()}}", ("a",))
    _feed(stage, stage.state, _events([0, 10]), "a")  # closes the session [0, 2); [10, 12) stays open
    out = _feed(stage, stage.state, _events([1, 8.5], ["h", "h"]), "a")
    assert out.extra["late"].column("timestamp").to_pylist() == [_minute(1)]
    assert _closed(stage.on_flush(stage.state, "a", NOW)) == [(_minute(8.5), "h", 2)]


# -- engine hooks: route, bucket states, pickling ------------------------------------------------------------


def test_route_splits_by_group_stably_and_keeps_schema_and_tag() -> None:
    stage = build_stage("{type: window, tumbling: 1m, group_by: [host, code], aggregate: {n: count()}}")
    hosts = [f"h{i % 7}" for i in range(60)]
    codes = [200 if i % 3 else None for i in range(60)]
    batch = tag_partition(batch_of(host=hosts, code=codes, id=list(range(60)), timestamp=[_minute(0)] * 60), "p-3")
    parts = stage.route(batch, 4)
    assert len(parts) == 4 and sum(p.num_rows for p in parts) == 60
    assert all(p.schema == batch.schema and partition_of(p) == "p-3" for p in parts)
    bucket_of = {(row["host"], row["code"]): index for index, part in enumerate(parts) for row in part.to_pylist()}
    assert len(bucket_of) == 14  # each group in exactly one bucket
    assert all(part.column("id").to_pylist() == sorted(part.column("id").to_pylist()) for part in parts)
    again = stage.route(batch_of(host=["h3", "h5"], code=pa.array([None, 200], pa.int64()), id=[0, 1], timestamp=[_minute(9)] * 2), 4)
    assert [index for index, part in enumerate(again) for _ in range(part.num_rows)] == sorted([bucket_of["h3", None], bucket_of["h5", 200]])
    empty = stage.route(batch.slice(0, 0), 3)
    assert [p.num_rows for p in empty] == [0, 0, 0] and all(partition_of(p) == "p-3" for p in empty)


def test_route_ships_only_the_columns_the_window_reads_when_no_node_reads_late() -> None:
    stage = build_stage("{type: window, tumbling: 1m, group_by: [ua.family], aggregate: {n: count(), s: sum(size), c: count_distinct(geo.city)}}")
    ua = [{"family": f"b{i % 3}", "os": "x"} for i in range(6)]
    geo = [{"city": f"c{i % 2}", "country": "y"} for i in range(6)]
    batch = tag_partition(batch_of(ua=ua, geo=geo, size=list(range(6)), message=["m"] * 6, timestamp=[_minute(0)] * 6), "p-1")
    assert all(p.schema == batch.schema for p in stage.route(batch, 2))  # not told which ports are read: every column
    stage.read_ports(frozenset({"late"}))
    assert all(p.schema == batch.schema for p in stage.route(batch, 2))  # late records keep every field
    stage.read_ports(frozenset({"dropped"}))
    parts = stage.route(batch, 2)
    assert [p.schema.names for p in parts] == [["ua", "geo", "size", "timestamp"]] * 2
    assert all(partition_of(p) == "p-1" for p in parts) and sum(p.num_rows for p in parts) == 6
    assert stage.route(batch, 1) == [batch]  # one bucket: nothing is shipped, nothing is cut
    untimed = tag_partition(batch_of(ua=ua[:2], geo=geo[:2], size=[1, 2], message=["m", "n"], timestamp=[_minute(0), None]), "p-1")
    assert all(p.schema == untimed.schema for p in stage.route(untimed, 2))  # its dead letter keeps every field
    failed = [stage.apply(stage.new_state(["p-1"], NOW), part, "p-1", stage.progress(untimed, NOW), NOW) for part in stage.route(untimed, 2)]
    letters = [row for out in failed for rows in out.extra.values() for row in rows.to_pylist()]
    assert [(row["message"], row["size"]) for row in letters] == [("n", 2)]


def test_route_hashes_are_the_same_in_every_process() -> None:
    stage = build_stage("{type: window, tumbling: 1m, group_by: [host], aggregate: {n: count()}}")
    parts = stage.route(batch_of(host=["alpha", "beta", "gamma", "delta"]), 2)
    assert [p.column("host").to_pylist() for p in parts] == [["gamma"], ["alpha", "beta", "delta"]]  # blake2b, not hash()


def test_bucket_states_together_give_the_single_state_output() -> None:
    snippet = "{type: window, tumbling: 1m, group_by: [host], aggregate: {n: count(), s: sum(size), d: count_distinct(size)}}"
    single = _stage(snippet)
    spread = _stage(snippet)
    buckets = [spread.new_state(["a", "b"], NOW) for _ in range(3)]
    batches = [
        ("a", _events([0, 0.5, 1.2, 2], [f"h{i}" for i in range(4)], size=[1, 2, 3, 4])),
        ("b", _events([0.1, 0.7, 1.1], ["h1", "h9", "h1"], size=[5, 6, 7])),
        ("a", _events([3, 3.5], ["h0", "h2"], size=[8, 9])),
        ("b", _events([2.5], ["h9"], size=[1])),
    ]
    expected, got = [], []
    for partition, batch in batches:
        expected.append(_feed(single, single.state, batch, partition).main)
        progress = spread.progress(batch, NOW)  # on the whole batch, before routing
        got.extend(spread.apply(state, part, partition, progress, NOW).main for state, part in zip(buckets, spread.route(batch, 3)))
    for partition in ("a", "b"):
        flushed = [single.on_flush(single.state, partition, NOW), *(spread.on_flush(state, partition, NOW) for state in buckets)]
        expected.extend(out.main for out in flushed[:1] if out is not None)
        got.extend(out.main for out in flushed[1:] if out is not None)

    def ordered(batches: list[pa.RecordBatch]) -> list[dict[str, Any]]:
        return sorted((row for b in batches for row in b.to_pylist()), key=lambda r: (r["window_start"], r["host"]))

    assert ordered(got) == ordered(expected)
    assert len(ordered(expected)) == 9


@pytest.mark.parametrize("kind", ["tumbling: 1m", "session: {gap: 1m}"])
def test_a_pickled_state_continues_with_the_same_results(kind: str) -> None:
    aggregates = "{n: count(), p: 'quantile(size, 0.9)', d: count_distinct(size), t: 'top_k(host, 2)', f: first(size), a: avg(size)}"
    stage = _stage(f"{{type: window, {kind}, group_by: [host], aggregate: {aggregates}}}")
    sizes = {"x": [float(i * 7 % 1000) for i in range(1334)], "y": [float(i * 13 % 500) for i in range(667)]}
    first = pa.concat_batches([_events([i / 3000 for i in range(len(v))], [h] * len(v), size=v) for h, v in sizes.items()])
    _feed(stage, stage.state, first, "a")  # sketches past their exact size, windows open (b has sent nothing)
    copy = pickle.loads(pickle.dumps(stage.state))
    rest = _events([0.7, 0.8, 3], ["x", "y", "x"], size=[1.0, 2.0, 3.0])
    results = []
    for state in (stage.state, copy):
        outputs = [_feed(stage, state, rest, "b"), stage.on_flush(state, "a", NOW), stage.on_flush(state, "b", NOW)]
        results.append([row for out in outputs if out is not None for row in out.main.to_pylist()])
    estimates = [[row.pop("p") for row in rows] for rows in results]  # KLL compaction is randomised: not bit-equal
    assert results[0] == results[1]
    assert [(row["host"], row["n"]) for row in results[0]] == [("x", 1335), ("y", 668), ("x", 1)]
    assert [abs(row["d"] - exact) <= COUNT_DISTINCT_ERROR * exact for row, exact in zip(results[0], [1000, 500, 1])] == [True] * 3
    for row, *pair in zip(results[0], *estimates):
        values = np.array([*sizes[row["host"]], 1.0 if row["host"] == "x" else 2.0]) if row["n"] > 1 else np.array([3.0])
        assert all(abs(np.mean(values <= p) - 0.9) <= QUANTILE_RANK_ERROR + 1 / values.size for p in pair)


def test_an_empty_bucket_part_still_carries_its_partitions_progress() -> None:
    stage = _stage(partitions=("a",))
    state = stage.new_state(["a"], NOW)
    batch = _events([0, 5])
    stage.apply(state, batch.slice(0, 1), "a", stage.progress(batch.slice(0, 1), NOW), NOW)
    out = stage.apply(state, batch.slice(0, 0), "a", stage.progress(batch, NOW), NOW)  # the rows went to another bucket
    assert _closed(out) == [(_minute(0), "h", 1)]
