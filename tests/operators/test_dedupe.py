"""The `dedupe` stage, built from YAML: within and across batches, window expiry, eviction, counters."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest

from loglake.schemas.errors import SpecError
from tests.support import batch_of, build_stage

T0 = datetime(2015, 5, 17, 10, 5, 0, tzinfo=timezone.utc)


def _at(*seconds: float | None) -> list[datetime | None]:
    return [None if s is None else T0 + timedelta(seconds=s) for s in seconds]


@pytest.mark.parametrize(
    "snippet, records, kept_ids",
    [
        ("{type: dedupe, key: [host]}",
         batch_of(id=[1, 2, 3, 4, 5], host=["a", "b", "a", "c", "b"], timestamp=_at(0, 1, 2, 3, 4)), [1, 2, 4]),
        ("{type: dedupe, key: [host, status]}",
         batch_of(id=[1, 2, 3, 4], host=["a", "a", "a", "b"], status=[200, 500, 200, 200], timestamp=_at(0, 1, 2, 3)), [1, 2, 4]),
        ("{type: dedupe, key: [host, status, path]}",
         batch_of(id=[1, 2, 3, 4], host=["a", "a", "a", None], status=[200, 200, 404, 200], path=["/"] * 4, timestamp=_at(0, 1, 2, 3)), [1, 3, 4]),
        ("{type: dedupe, key: [host], window: 10s}",
         batch_of(id=[1, 2, 3, 4], host=["a", "a", "a", "a"], timestamp=_at(0, 9, 10, 15)), [1, 3]),
        ("{type: dedupe, key: [host]}",
         batch_of(id=[1, 2, 3], host=["a", "a", "a"], timestamp=_at(30, 0, 10)), [2]),
        ("{type: dedupe, key: [host, status]}",
         batch_of(id=[1, 2, 3, 4], host=["a", "a", None, None], status=[1, None, 1, 1], timestamp=_at(0, 1, 2, 3)), [1, 2, 3, 4]),
        ("{type: dedupe, key: [host]}", batch_of(id=[1, 2, 3], message=["x", "x", "x"]), [1, 2, 3]),
        ("{type: dedupe, key: [host], time: processing}",
         batch_of(id=[1, 2, 3], host=["a", "a", "b"], timestamp=_at(0, 3600, 0)), [1, 3]),
        ("{type: dedupe, key: [host]}", batch_of(id=[1, 2, 3], host=["a", "a", "b"]), [1, 3]),
    ],
    ids=["single-key", "composite-key", "three-field-key", "window-restarts-after-expiry", "earliest-event-wins", "null-key-never-duplicate",
         "missing-key-field-never-duplicate", "processing-time", "no-timestamp-uses-processing-time"],
)
def test_within_one_batch(snippet: str, records: pa.RecordBatch, kept_ids: list[int]) -> None:
    stage = build_stage(snippet)
    out = stage.process(records)
    assert out.main.column("id").to_pylist() == kept_ids
    assert out.main.schema == records.schema
    assert out.extra == {} and out.discarded == 0
    assert stage.ctx.counters["duplicates"] == records.num_rows - len(kept_ids)


@pytest.mark.parametrize(
    "batches, kept",
    [
        ([(["a", "b"], [0, 0]), (["a", "c"], [60, 60]), (["b"], [599])], [["a", "b"], ["c"], []]),
        ([(["a"], [0]), (["a"], [600]), (["a"], [700])], [["a"], ["a"], []]),
        ([(["a"], [0]), (["a"], [-300]), (["a"], [-600])], [["a"], [], ["a"]]),
        ([(["a", "a"], [0, 700]), (["a", "a"], [1000, 1400])], [["a", "a"], ["a"]]),
    ],
    ids=["repeat-across-batches", "expired-key-is-new-again", "late-record-within-window", "long-batch-sequential"],
)
def test_across_batches_by_event_time(batches: list[tuple[list[str], list[float]]], kept: list[list[str]]) -> None:
    stage = build_stage("{type: dedupe, key: [host], window: 10m}")
    outs = [stage.process(batch_of(host=hosts, timestamp=_at(*times))).main.column("host").to_pylist() for hosts, times in batches]
    assert outs == kept


def test_state_expires_keys_older_than_the_window() -> None:
    stage = build_stage("{type: dedupe, key: [host], window: 1m}")
    stage.process(batch_of(host=[f"h{i}" for i in range(100)], timestamp=_at(*[0] * 100)))
    assert len(stage.state.times) == 100
    stage.process(batch_of(host=["new"], timestamp=_at(61)))
    assert list(stage.state.times) != [] and len(stage.state.times) == 1


def test_max_keys_evicts_the_oldest_and_counts_them() -> None:
    stage = build_stage("{type: dedupe, key: [host], max_keys: 3}")
    stage.process(batch_of(host=["a", "b", "c"], timestamp=_at(0, 1, 2)))
    stage.process(batch_of(host=["d", "e"], timestamp=_at(3, 4)))
    assert stage.ctx.counters["dedupe_evicted"] == 2
    out = stage.process(batch_of(host=["a", "b", "c", "d", "e"], timestamp=_at(5, 5, 5, 5, 5)))
    assert out.main.column("host").to_pylist() == ["a", "b"]
    assert stage.ctx.counters["duplicates"] == 3


def test_types_are_part_of_the_key_and_values_are_exact() -> None:
    stage = build_stage("{type: dedupe, key: [code]}")
    stage.process(batch_of(code=["200"], timestamp=_at(0)))
    out = stage.process(batch_of(code=[200, 404], timestamp=_at(1, 2)))
    assert out.main.column("code").to_pylist() == [200, 404]


def test_string_timestamps_are_conformed() -> None:
    stage = build_stage("{type: dedupe, key: [host], window: 5s}")
    out = stage.process(batch_of(host=["a", "a", "a"], timestamp=["2015-05-17T10:05:00Z", "2015-05-17T10:05:04Z", "2015-05-17T10:05:06Z"]))
    assert out.main.column("timestamp").to_pylist() == ["2015-05-17T10:05:00Z", "2015-05-17T10:05:06Z"]


def test_empty_batch_passes() -> None:
    empty = batch_of(host=pa.array([], pa.string()))
    assert build_stage("{type: dedupe, key: [host]}").process(empty).main.num_rows == 0


@pytest.mark.parametrize(
    "snippet, path",
    [
        ("{type: dedupe, key: []}", ("key",)),
        ("{type: dedupe, key: [host, host]}", ("key",)),
        ("{type: dedupe, key: [host], window: soon}", ("window",)),
        ("{type: dedupe, key: [host], max_keys: 0}", ("max_keys",)),
        ("{type: dedupe, key: [host], time: wall}", ("time",)),
    ],
    ids=["empty-key", "repeated-key-field", "bad-window", "zero-max-keys", "bad-time"],
)
def test_bad_config_is_a_located_spec_error(snippet: str, path: tuple[Any, ...]) -> None:
    with pytest.raises(SpecError) as caught:
        build_stage(snippet, name="once")
    [issue] = caught.value.issues
    assert issue.path == path
    assert issue.node == "once"
