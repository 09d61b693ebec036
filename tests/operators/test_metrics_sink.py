"""The `metrics` sink: window-shaped rows and real access-log records become Prometheus series, scraped back.

Metrics are process-wide (one definition per name), so every test uses names of its own.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import loglake.operators.metrics_sink  # noqa: F401 (registers the `metrics` type until the registry lists it)
from loglake.operators.metrics_sink import INVALID_VALUE_COUNTER, LOG_METRICS_REGISTRY, MISSING_COLUMN_COUNTER
from loglake.schemas.errors import SpecError, SpecIssue
from tests.support import APACHE_LOG, batch_of, build_sink, build_stage

MINUTE = datetime(2015, 5, 17, 10, 5, tzinfo=timezone.utc)


def _windows(minute: int, rows: dict[int, int]) -> pa.RecordBatch:
    """Rows shaped like a 1-minute tumbling window grouped by `response`: one per status."""
    start = MINUTE + timedelta(minutes=minute)
    return batch_of(
        window_start=[start] * len(rows),
        window_end=[start + timedelta(minutes=1)] * len(rows),
        response=list(rows),
        requests=list(rows.values()),
        p95_bytes=[float(status) * 10.5 for status in rows],
    )


def _scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample the log-metrics registry serves: (sample name, sorted labels) → value."""
    text = generate_latest(LOG_METRICS_REGISTRY).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _series(name: str, label: str | None = None) -> dict[str, float]:
    """The samples of metric `name`, by the value of `label` ("" when unlabelled)."""
    return {dict(labels).get(label or "", ""): value for (sample, labels), value in _scrape().items() if sample == name}


def _sink(metrics: str, name: str = "minutes") -> Any:
    return build_sink(f"{{type: metrics, metrics: {metrics}}}", name=name)


def test_gauge_keeps_the_latest_window_per_label_set() -> None:
    sink = _sink("{requests_per_minute: {type: gauge, value: requests, labels: [response]}}")
    writer = sink.open(0, 1)
    writer.write(_windows(0, {200: 50, 404: 3}))
    assert _series("requests_per_minute", "response") == {"200": 50.0, "404": 3.0}
    writer.write(pa.concat_batches([_windows(1, {200: 70, 500: 1}), _windows(2, {200: 64})]))
    assert _series("requests_per_minute", "response") == {"200": 64.0, "404": 3.0, "500": 1.0}
    assert sink.ctx.counters.snapshot() == {"records_out": 5}


def test_counter_adds_values_across_batches_and_workers() -> None:
    sink = _sink("{window_requests_total: {type: counter, value: requests, labels: [response]}}")
    sink.open(0, 2).write(_windows(0, {200: 50, 404: 3}))
    sink.open(1, 2).write(_windows(1, {200: 70, 500: 1}))
    assert _series("window_requests_total", "response") == {"200": 120.0, "404": 3.0, "500": 1.0}


def test_one_sink_keeps_several_metrics_and_unlabelled_ones() -> None:
    sink = _sink(
        "{p95_bytes_latest: {type: gauge, value: p95_bytes, labels: [response], help: 'p95 response size'},"
        " windows_seen_total: {type: counter}}"
    )
    sink.open(0, 1).write(_windows(0, {200: 50, 404: 3}))
    assert _series("p95_bytes_latest", "response") == {"200": 2100.0, "404": 4242.0}
    assert _series("windows_seen_total") == {"": 2.0}
    assert "# HELP p95_bytes_latest p95 response size" in generate_latest(LOG_METRICS_REGISTRY).decode()


def test_counter_without_value_counts_real_requests_per_status() -> None:
    lines = APACHE_LOG.read_text(encoding="utf-8").splitlines()
    parsed = build_stage("{type: apache_combined}").process(batch_of(message=lines)).main
    expected = Counter(line.split('"')[2].split()[0] for line in lines if line.count('"') == 6)
    sink = _sink("{access_requests_total: {type: counter, labels: [response, verb]}}")
    writer = sink.open(0, 1)
    for offset in range(0, parsed.num_rows, 2_500):
        writer.write(parsed.slice(offset, 2_500))
    per_status: Counter[str] = Counter()
    for (name, labels), value in _scrape().items():
        if name == "access_requests_total":
            per_status[dict(labels)["response"]] += int(value)
    assert per_status == expected
    assert sum(expected.values()) == 9_999


@pytest.mark.parametrize(
    "batch, counter, count, warning",
    [
        (
            batch_of(response=[200, 404], count=[5, 6]),
            MISSING_COLUMN_COUNTER,
            2,
            "metric 'bad_input_a': value column 'requests' is not in the records (they have: response, count)",
        ),
        (
            batch_of(response=[200, 404], requests=["5", "6"]),
            INVALID_VALUE_COUNTER,
            2,
            "metric 'bad_input_a': value column 'requests' holds string, not numbers (convert it with a `cast` stage)",
        ),
        (
            batch_of(response=[200, 404, 500], requests=[5, None, 7]),
            INVALID_VALUE_COUNTER,
            1,
            "metric 'bad_input_a': value 'requests' is null",
        ),
        (
            batch_of(requests=[5, 6]),
            MISSING_COLUMN_COUNTER,
            2,
            "metric 'bad_input_a': label column 'response' is not in the records (they have: requests)",
        ),
    ],
    ids=["missing-value", "string-value", "null-value", "missing-label"],
)
def test_unusable_records_are_counted_and_warned_about(
    batch: pa.RecordBatch, counter: str, count: int, warning: str, caplog: pytest.LogCaptureFixture
) -> None:
    sink = _sink("{bad_input_a: {type: gauge, value: requests, labels: [response]}}", name="bad")
    with caplog.at_level(logging.WARNING, logger="loglake.operators.metrics_sink"):
        sink.open(0, 1).write(batch)
    counts = sink.ctx.counters.snapshot()
    assert counts[counter] == count
    assert counts["records_out"] == batch.num_rows - count
    assert [record.getMessage() for record in caplog.records] == [f"bad: {count} record(s) not counted so far; {warning}"]


def test_counter_refuses_negative_and_nan_increments_but_counts_the_rest() -> None:
    sink = _sink("{bytes_seen_total: {type: counter, value: size, labels: [host]}}")
    sink.open(0, 1).write(batch_of(host=["a", "a", "b", "b", None], size=[10.0, -3.0, float("nan"), 4.0, 1.0]))
    assert _series("bytes_seen_total", "host") == {"a": 10.0, "b": 4.0, "": 1.0}
    assert sink.ctx.counters.snapshot() == {INVALID_VALUE_COUNTER: 2, "records_out": 3}


def test_warnings_are_rate_limited_but_every_record_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    sink = _sink("{bad_input_b: {type: gauge, value: requests}}", name="noisy")
    writer = sink.open(0, 1)
    with caplog.at_level(logging.WARNING, logger="loglake.operators.metrics_sink"):
        for _ in range(5):
            writer.write(batch_of(response=[200, 404, 500]))
    assert len(caplog.records) == 1
    assert sink.ctx.counters[MISSING_COLUMN_COUNTER] == 15


def test_a_metric_serves_only_what_it_was_given() -> None:
    sink = _sink("{quiet_gauge: {type: gauge, value: requests, labels: [response]}}")
    sink.open(0, 1).write(_windows(0, {}))
    assert _series("quiet_gauge", "response") == {}
    assert sink.ctx.counters.snapshot() == {}


def _issue(metrics: str, name: str = "sink") -> SpecIssue:
    with pytest.raises(SpecError) as caught:
        _sink(metrics, name=name)
    [issue] = caught.value.issues
    return issue


@pytest.mark.parametrize(
    "metrics, path, message",
    [
        ("{http-requests: {type: gauge, value: n}}", ("metrics", "http-requests"), "metric name 'http-requests' must start with a letter"),
        ("{2xx: {type: gauge, value: n}}", ("metrics", "2xx"), "metric name '2xx' must start with a letter"),
        ("{loglake_requests: {type: gauge, value: n}}", ("metrics", "loglake_requests"), "prefix 'loglake_' is reserved"),
        ("{requests: {type: counter}}", ("metrics", "requests"), "counter 'requests' must end in '_total', the suffix Prometheus gives counters; call it 'requests_total'"),
        ("{requests_total: {type: gauge, value: n}}", ("metrics", "requests_total"), "gauge 'requests_total' must not end in '_total'"),
        ("{g: {type: gauge, value: n, labels: [ua.family]}}", ("metrics", "g", "labels", 0), "label column 'ua.family' is not a Prometheus label name"),
        ("{g: {type: gauge, value: n, labels: [__name]}}", ("metrics", "g", "labels", 0), "label column '__name' is not a Prometheus label name"),
        ("{g: {type: gauge, value: n, labels: [a, b, a]}}", ("metrics", "g", "labels", 2), "label column 'a' is listed twice"),
        ("{g: {type: gauge, value: n, labels: [n]}}", ("metrics", "g", "labels", 0), "label column 'n' is also the value column"),
        ("{g: {type: gauge}}", ("metrics", "g"), "a gauge needs 'value'"),
        ("{g: {type: histogram, value: n}}", ("metrics", "g", "type"), "'gauge' or 'counter'"),
        ("{g: {type: gauge, value: n, lables: [a]}}", ("metrics", "g", "lables"), "unknown key 'lables'"),
        ("{}", ("metrics",), "at least 1 item"),
    ],
    ids=["dash", "digit-first", "reserved-prefix", "counter-suffix", "gauge-suffix", "dotted-label", "dunder-label",
         "duplicate-label", "label-is-value", "gauge-without-value", "bad-type", "unknown-key", "empty"],
)
def test_bad_definitions_are_located_spec_errors(metrics: str, path: tuple[str | int, ...], message: str) -> None:
    issue = _issue(metrics)
    assert issue.path == path
    assert message in issue.message
    assert issue.node_type == "metrics"


def test_a_name_keeps_one_definition_per_process() -> None:
    first = _sink("{shared_gauge: {type: gauge, value: requests, labels: [response]}}", name="one")
    second = _sink("{shared_gauge: {type: gauge, value: requests, labels: [response]}}", name="two")
    first.open(0, 1).write(_windows(0, {200: 1}))
    second.open(0, 1).write(_windows(0, {404: 2}))
    assert _series("shared_gauge", "response") == {"200": 1.0, "404": 2.0}, "an identical definition is shared"
    issue = _issue("{shared_gauge: {type: gauge, value: requests, labels: [verb]}}", name="three")
    assert issue.path == ("metrics", "shared_gauge")
    assert issue.message == (
        "metric 'shared_gauge' is already defined by node 'one' as a gauge with labels [response]; "
        "use another name, or the same type and labels to share it"
    )
    clash = _issue("{clashing_total: {type: counter}, clashing_created: {type: gauge, value: n}}")
    assert clash.path == ("metrics", "clashing_created")
    assert "cannot be defined" in clash.message
