"""The `window` stage, built from YAML: config errors, tumbling/sliding/session windows, aggregates, failed records."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest

import loglake.operators.window  # noqa: F401  (registers `window`)
from loglake.schemas.errors import SpecError
from loglake.schemas.stage import StageOutput
from tests.support import batch_of, build_stage, only_spec_issue

T0 = datetime(2015, 5, 17, 10, 0, 0, tzinfo=timezone.utc)


def _at(*seconds: float | None) -> list[datetime | None]:
    return [None if s is None else T0 + timedelta(seconds=s) for s in seconds]


def _minute(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def _rows(output: StageOutput | None, *columns: str) -> list[tuple[Any, ...]]:
    assert output is not None
    return [tuple(row[c] for c in columns) for row in output.main.to_pylist()]


def _run(snippet: str, *batches: pa.RecordBatch) -> tuple[Any, list[StageOutput]]:
    """Feed batches (one untagged partition), then end it; the stage and every output."""
    stage = build_stage(snippet, name="win")
    outputs = [stage.process(batch) for batch in batches]
    ended = stage.flush("end")
    outputs.append(ended if ended is not None else StageOutput(main=pa.RecordBatch.from_pydict({})))
    return stage, outputs


def _all_rows(outputs: list[StageOutput], *columns: str) -> list[tuple[Any, ...]]:
    return [row for output in outputs for row in _rows(output, *columns)]


# -- configuration ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "snippet, path, message",
    [
        ("{type: window, aggregate: {n: count()}}", (), "give exactly one window kind"),
        ("{type: window, tumbling: 1m, session: {gap: 5m}, aggregate: {n: count()}}", (), "(got tumbling and session)"),
        ("{type: window, sliding: {size: 1m, every: 5m}, aggregate: {n: count()}}", ("sliding",), "every (300s) must not be longer than size (60s)"),
        ("{type: window, sliding: {size: 1d, every: 1s}, aggregate: {n: count()}}", ("sliding",), "counted in that many windows"),
        ("{type: window, tumbling: 0s, aggregate: {n: count()}}", ("tumbling",), "must be longer than 0s"),
        ("{type: window, tumbling: 1m, aggregate: {}}", ("aggregate",), "at least 1 item"),
        ("{type: window, tumbling: 1m, aggregate: {p95: 'qantile(bytes, 0.95)'}}", ("aggregate", "p95"), "unknown aggregate function 'qantile'; did you mean 'quantile'?"),
        ("{type: window, tumbling: 1m, aggregate: {x: 'stddev(bytes)'}}", ("aggregate", "x"), "known: count, sum, avg"),
        ("{type: window, tumbling: 1m, aggregate: {p95: 'quantile(bytes)'}}", ("aggregate", "p95"), "quantile takes 2 arguments (x, q), got 1"),
        ("{type: window, tumbling: 1m, aggregate: {s: 'sum(a, b)'}}", ("aggregate", "s"), "sum takes 1 argument (x), got 2"),
        ("{type: window, tumbling: 1m, aggregate: {n: 'count(a, b)'}}", ("aggregate", "n"), "count takes no argument or one field"),
        ("{type: window, tumbling: 1m, aggregate: {p: 'quantile(bytes, 1.5)'}}", ("aggregate", "p"), "q must be a number between 0 and 1 (exclusive), got '1.5'"),
        ("{type: window, tumbling: 1m, aggregate: {p: 'quantile(bytes, high)'}}", ("aggregate", "p"), "got 'high'"),
        ("{type: window, tumbling: 1m, aggregate: {t: 'top_k(agent, 0)'}}", ("aggregate", "t"), "k must be a whole number from 1 to 1000"),
        ("{type: window, tumbling: 1m, aggregate: {n: 'bytes'}}", ("aggregate", "n"), "'bytes' is not an aggregate"),
        ("{type: window, tumbling: 1m, aggregate: {s: 'sum(bytes + 1)'}}", ("aggregate", "s"), "'bytes + 1' is not a field name"),
        ("{type: window, tumbling: 1m, aggregate: {window_start: 'count()'}}", ("aggregate", "window_start"), "clashes with the window rows' own column"),
        ("{type: window, tumbling: 1m, group_by: [host], aggregate: {host: 'count()'}}", ("aggregate", "host"), "clashes with the group_by field"),
        ("{type: window, tumbling: 1m, group_by: [timestamp], aggregate: {n: 'count()'}}", ("group_by",), "group_by field timestamp clashes"),
        ("{type: window, tumbling: 1m, group_by: [a, a], aggregate: {n: 'count()'}}", ("group_by",), "group_by names repeat: a"),
        ("{type: window, tumbling: 1m, on_error: keep, aggregate: {n: 'count()'}}", ("on_error",), "use 'route' or 'discard'"),
        ("{type: window, tumbling: 1m, time: wall, aggregate: {n: 'count()'}}", ("time",), "'event' or 'processing'"),
    ],
    ids=[
        "no-kind", "two-kinds", "every-longer-than-size", "too-many-sliding-windows", "zero-tumbling", "no-aggregates",
        "unknown-function", "unknown-function-no-close-match", "quantile-arity", "sum-arity", "count-arity", "q-out-of-range",
        "q-not-a-number", "k-zero", "not-a-call", "expression-argument", "name-clashes-window-column", "name-clashes-group",
        "group-clashes-timestamp", "repeated-group", "on-error-keep", "bad-time",
    ],
)
def test_bad_config_is_a_located_spec_error(snippet: str, path: tuple[Any, ...], message: str) -> None:
    issue = only_spec_issue(snippet)
    assert issue.path == path
    assert message in issue.message, issue.message
    assert issue.node_type == "window"


def test_spec_error_names_the_node() -> None:
    with pytest.raises(SpecError) as caught:
        build_stage("{type: window, tumbling: 1m, aggregate: {p: 'quantile(bytes, 0)'}}", name="per_minute")
    [issue] = caught.value.issues
    assert issue.node == "per_minute"
    assert issue.render().startswith("<pipeline>  aggregate.p  quantile: q must be")


# -- window kinds ------------------------------------------------------------------------------------------


def test_tumbling_windows_per_group_in_start_then_group_order() -> None:
    batch = batch_of(
        host=["b", "a", None, "a", "b", "a"],
        bytes=[10, 1, 7, 2, 20, 4],
        timestamp=_at(5, 0, 10, 59.999, 61, 125),
    )
    _, outputs = _run("{type: window, tumbling: 1m, group_by: [host], aggregate: {n: count(), total: sum(bytes)}}", batch)
    rows = _all_rows(outputs, "window_start", "window_end", "timestamp", "host", "n", "total")
    assert rows == [
        (_minute(0), _minute(1), _minute(0), "a", 2, 3),
        (_minute(0), _minute(1), _minute(0), "b", 1, 10),
        (_minute(0), _minute(1), _minute(0), None, 1, 7),
        (_minute(1), _minute(2), _minute(1), "b", 1, 20),
        (_minute(2), _minute(3), _minute(2), "a", 1, 4),
    ]


def _random_batches(seed: int) -> list[pa.RecordBatch]:
    """Batches over four minutes in random order: hosts repeat across batches and windows; bytes has nulls,
    float values in some batches and is missing from others (one host is only in those)."""
    import random

    rng = random.Random(seed)
    batches = []
    for number in range(12):
        size = rng.randint(1, 40)
        hosts = ["a", "b", "c", None] if number % 4 != 3 else ["a", "never-has-bytes"]
        columns: dict[str, Any] = {
            "host": [rng.choice(hosts) for _ in range(size)],
            "timestamp": _at(*(rng.uniform(0, 240) for _ in range(size))),
        }
        if number % 4 != 3:
            draw = (lambda: rng.choice([None, rng.randint(-5, 50)])) if number % 4 else (lambda: rng.choice([None, rng.uniform(0, 9)]))
            columns["bytes"] = [draw() for _ in range(size)]
        batches.append(pa.RecordBatch.from_pydict(columns))
    return batches


@pytest.mark.parametrize("seed", range(5))
def test_counts_and_sums_fold_in_place_like_the_other_aggregates(seed: int) -> None:
    """A window of only counts and sums adds its partials in place (Plan.sums); with a min beside them the
    same values fold one aggregate at a time. Both agree with sums computed here, record by record."""
    batches = _random_batches(seed)
    expected: dict[tuple[Any, Any], list[Any]] = {}
    for batch in batches:
        for record in batch.to_pylist():
            minute = record["timestamp"].replace(second=0, microsecond=0)
            counts = expected.setdefault((minute, record["host"]), [0, 0, None])
            value = record.get("bytes")
            counts[0] += 1
            if value is not None:
                counts[1] += 1
                counts[2] = value if counts[2] is None else counts[2] + value
    adds_up = "{type: window, tumbling: 1m, allowed_lateness: 10m, group_by: [host], aggregate: {n: count(), c: count(bytes), s: sum(bytes)}}"
    _, outputs = _run(adds_up, *batches)
    in_place = _all_rows(outputs, "window_start", "host", "n", "c", "s")
    _, outputs = _run(adds_up.replace("s: sum(bytes)", "s: sum(bytes), lo: min(bytes)"), *batches)
    one_by_one = _all_rows(outputs, "window_start", "host", "n", "c", "s")
    assert set(expected) == {(start, host) for start, host, *_ in in_place}
    assert len(in_place) == len(expected)
    for start, host, *values in in_place:
        assert values[:2] == expected[start, host][:2]
        assert values[2] == pytest.approx(expected[start, host][2])
    assert in_place == one_by_one


def test_window_rows_have_the_documented_schema() -> None:
    batch = batch_of(host=["a"], status=pa.array([200], pa.int16()), bytes=[5], agent=["x"], timestamp=_at(0))
    aggregates = (
        "{n: count(), c: count(bytes), s: sum(bytes), a: avg(bytes), lo: min(status), hi: max(agent), f: first(agent), "
        "l: last(status), p: 'quantile(bytes, 0.5)', d: count_distinct(agent), t: 'top_k(agent, 2)'}"
    )
    _, outputs = _run(f"{{type: window, tumbling: 1m, group_by: [status], aggregate: {aggregates}}}", batch)
    schema = outputs[-1].main.schema
    ts = pa.timestamp("us", tz="UTC")
    assert [(f.name, f.type) for f in schema] == [
        ("window_start", ts), ("window_end", ts), ("timestamp", ts), ("status", pa.int16()),
        ("n", pa.int64()), ("c", pa.int64()), ("s", pa.int64()), ("a", pa.float64()), ("lo", pa.int16()),
        ("hi", pa.string()), ("f", pa.string()), ("l", pa.int16()), ("p", pa.float64()), ("d", pa.int64()),
        ("t", pa.list_(pa.struct([("value", pa.string()), ("count", pa.int64())]))),
    ]
    assert outputs[-1].main.to_pylist()[0]["t"] == [{"value": "x", "count": 1}]


@pytest.mark.parametrize(
    "sliding, seconds, expected",
    [
        ("{size: 10m, every: 5m}", [7 * 60], [(0, 10, 1), (5, 15, 1)]),
        ("{size: 10m, every: 5m}", [0, 299, 300, 600], [(-5, 5, 2), (0, 10, 3), (5, 15, 2), (10, 20, 1)]),
        ("{size: 10m, every: 4m}", [9 * 60, 11 * 60], [(0, 10, 1), (4, 14, 2), (8, 18, 2)]),
    ],
    ids=["record-in-two-windows", "window-edges", "size-not-a-multiple-of-every"],
)
def test_sliding_windows_count_a_record_in_every_window_holding_it(sliding: str, seconds: list[float], expected: list[tuple[int, int, int]]) -> None:
    _, outputs = _run(f"{{type: window, sliding: {sliding}, aggregate: {{n: count()}}}}", batch_of(timestamp=_at(*seconds)))
    assert _all_rows(outputs, "window_start", "window_end", "n") == [(_minute(s), _minute(e), n) for s, e, n in expected]


def test_sessions_split_at_the_gap_per_group() -> None:
    batch = batch_of(user=["u", "u", "v", "u", "u"], timestamp=_at(0, 120, 100, 240, 1200))
    _, outputs = _run("{type: window, session: {gap: 5m}, group_by: [user], aggregate: {n: count()}}", batch)
    assert _all_rows(outputs, "window_start", "window_end", "user", "n") == [
        (_minute(0), _minute(9), "u", 3),
        (T0 + timedelta(seconds=100), T0 + timedelta(seconds=400), "v", 1),
        (_minute(20), _minute(25), "u", 1),
    ]


def test_sessions_bridged_by_a_later_batch_merge_with_their_partials() -> None:
    stage = build_stage("{type: window, session: {gap: 5m}, aggregate: {n: count(), s: sum(bytes), p: 'quantile(bytes, 0.5)', d: count_distinct(bytes)}}")
    stage.state = stage.new_state(["p", "held"])  # a silent partition holds the watermark: nothing closes early
    now = T0 + timedelta(days=1)
    for seconds, size in ((0, 1), (480, 2), (240, 3)):
        out = stage.apply(stage.state, batch_of(bytes=[size], timestamp=_at(seconds)), "p", _at(seconds)[0], now)
        assert out.main.num_rows == 0
    assert len(stage.state.sessions[()]) == 1
    stage.on_flush(stage.state, "held", now)
    final = stage.on_flush(stage.state, "p", now)
    assert _rows(final, "window_start", "window_end", "n", "s", "p", "d") == [(_minute(0), _minute(13), 3, 6, 2.0, 3)]


# -- aggregates --------------------------------------------------------------------------------------------


def test_first_and_last_follow_event_time_not_arrival() -> None:
    first = batch_of(msg=["second", "fourth"], timestamp=_at(20, 40))
    second = batch_of(msg=["first", "third", None], timestamp=_at(10, 30, 50))
    stage = build_stage("{type: window, tumbling: 1m, aggregate: {f: first(msg), l: last(msg), n: count(msg)}}")
    stage.state = stage.new_state(["a", "b"])
    stage.apply(stage.state, first, "a", None, T0)
    stage.apply(stage.state, second, "b", None, T0)
    stage.on_flush(stage.state, "a", T0)
    assert _rows(stage.on_flush(stage.state, "b", T0), "f", "l", "n") == [("first", "fourth", 4)]


def test_non_numeric_values_are_counted_and_read_as_null() -> None:
    batch = batch_of(size=["12", "12a", " 3.5", None, "1e1"], timestamp=_at(0, 1, 2, 3, 4))
    stage, outputs = _run("{type: window, tumbling: 1m, aggregate: {s: sum(size), a: avg(size), p: 'quantile(size, 0.5)', c: count(size), hi: max(size)}}", batch)
    assert _all_rows(outputs, "s", "a", "p", "c", "hi") == [(25.5, 8.5, 10.0, 4, "1e1")]
    assert stage.ctx.counters["aggregate_errors"] == 1
    assert outputs[-1].main.schema.field("s").type == pa.float64()


def test_a_missing_field_reads_as_null_and_is_counted() -> None:
    stage, outputs = _run(
        "{type: window, tumbling: 1m, group_by: [host], aggregate: {n: count(), c: count(bytes), s: sum(bytes), d: count_distinct(bytes), t: 'top_k(bytes, 1)'}}",
        batch_of(timestamp=_at(0, 1)),
        batch_of(bytes=[7], timestamp=_at(2)),
    )
    assert _all_rows(outputs, "host", "n", "c", "s", "d", "t") == [(None, 3, 1, 7, 1, [{"value": "7", "count": 1}])]
    assert stage.ctx.counters["missing:bytes"] == 2
    assert stage.ctx.counters["missing:host"] == 3


def test_dotted_paths_reach_into_structs() -> None:
    ua = pa.array([{"browser": "Chrome", "os": "Mac"}, {"browser": "Chrome", "os": "Linux"}, {"browser": "Firefox", "os": "Mac"}])
    batch = pa.RecordBatch.from_pydict({"ua": ua, "timestamp": pa.array(_at(0, 1, 2), pa.timestamp("us", tz="UTC"))})
    _, outputs = _run("{type: window, tumbling: 1m, group_by: [ua.browser], aggregate: {systems: count_distinct(ua.os), n: count(ua)}}", batch)
    assert _all_rows(outputs, "ua.browser", "systems", "n") == [("Chrome", 2, 2), ("Firefox", 1, 1)]


def test_top_k_lists_the_most_frequent_values_with_counts() -> None:
    codes = [200] * 5 + [404] * 3 + [500] * 3 + [302]
    _, outputs = _run("{type: window, tumbling: 1m, aggregate: {top: 'top_k(code, 3)'}}", batch_of(code=codes, timestamp=_at(*range(len(codes)))))
    assert _all_rows(outputs, "top") == [([{"value": "200", "count": 5}, {"value": "404", "count": 3}, {"value": "500", "count": 3}],)]


def test_a_field_that_changes_type_keeps_its_first_type() -> None:
    stage, outputs = _run(
        "{type: window, tumbling: 1m, aggregate: {lo: min(code), hi: max(code)}}",
        batch_of(code=[404, 200], timestamp=_at(0, 1)),
        batch_of(code=["100", "not a code"], timestamp=_at(2, 3)),
    )
    assert _all_rows(outputs, "lo", "hi") == [(200, 404)]
    assert stage.ctx.counters["aggregate_errors"] == 2
    assert outputs[-1].main.schema.field("lo").type == pa.int64()


# -- failed records ----------------------------------------------------------------------------------------


def test_records_without_event_time_go_to_dropped() -> None:
    stage = build_stage("{type: window, tumbling: 1m, aggregate: {n: count()}}", name="win")
    out = stage.process(batch_of(id=[1, 2, 3], timestamp=_at(0, None, 5)))
    assert out.extra["dropped"].column("id").to_pylist() == [2]
    assert out.extra["dropped"].column("_error").to_pylist() == ["no event time in 'timestamp'"]
    assert out.extra["dropped"].column("_error_node").to_pylist() == ["win"]
    assert _rows(stage.flush("end"), "n") == [(2,)]


@pytest.mark.parametrize(
    "snippet, batch, error",
    [
        ("{type: window, tumbling: 1m, aggregate: {n: count()}}", batch_of(id=[1, 2]), "no event time in 'timestamp'"),
        ("{type: window, tumbling: 1m, time_field: ts, aggregate: {n: count()}}", batch_of(id=[1, 2], ts=["2015-05-17", "x"]),
         "'ts' is string, not a timestamp; parse it with a timestamp stage first"),
        ("{type: window, tumbling: 1m, group_by: [ua], aggregate: {n: count()}}", batch_of(id=[1, 2], ua=[{"os": "a"}, {"os": "b"}], timestamp=_at(0, 1)),
         "group_by field 'ua' holds struct<os: string> values; group by scalar fields"),
    ],
    ids=["no-time-column", "time-not-a-timestamp", "nested-group-field"],
)
def test_a_batch_the_stage_cannot_window_goes_to_dropped(snippet: str, batch: pa.RecordBatch, error: str) -> None:
    out = build_stage(snippet).process(batch)
    assert out.main.num_rows == 0
    assert out.extra["dropped"].column("id").to_pylist() == [1, 2]
    [reason] = set(out.extra["dropped"].column("_error").to_pylist())
    assert reason.startswith(error)


def test_on_error_discard_counts_records_without_time() -> None:
    out = build_stage("{type: window, tumbling: 1m, on_error: discard, aggregate: {n: count()}}").process(batch_of(timestamp=_at(None, None, 1)))
    assert out.discarded == 2 and "dropped" not in out.extra


def test_processing_time_windows_follow_the_wall_clock() -> None:
    stage = build_stage("{type: window, tumbling: 1m, time: processing, aggregate: {n: count()}}")
    batch = batch_of(timestamp=_at(None, 0, 99999))  # event times (even missing ones) do not matter
    assert stage.progress(batch) is None
    first = stage.apply(stage.state, batch, "p", None, T0 + timedelta(seconds=10))
    assert first.main.num_rows == 0 and first.extra == {}
    assert stage.on_flush(stage.state, None, T0 + timedelta(seconds=59)) is None
    assert _rows(stage.on_flush(stage.state, None, T0 + timedelta(seconds=60)), "window_start", "n") == [(T0, 3)]


def test_an_empty_batch_gives_an_empty_window_batch() -> None:
    stage = build_stage("{type: window, tumbling: 1m, group_by: [host], aggregate: {n: count()}}")
    out = stage.process(batch_of(host=pa.array([], pa.string()), timestamp=pa.array([], pa.timestamp("us", tz="UTC"))))
    assert out.main.num_rows == 0 and out.extra == {}
    assert out.main.schema.names == ["window_start", "window_end", "timestamp", "host", "n"]
    assert stage.flush(None) is None
