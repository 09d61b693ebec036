"""Prometheus metrics of a running pipeline, served on `/metrics` (`--metrics-port`).

Node counters (`NodeCounters`) are read at scrape time, so the server costs nothing between scrapes:

| node counter | metric (labels `pipeline`, `node`, …) |
| --- | --- |
| `records_in` | `loglake_records_in_total{kind, type}` (`kind`: source, stage or sink) |
| `records_out` | `loglake_records_out_total{kind, type}` |
| `records_dropped` | `loglake_records_dropped_total{kind, type}`: routed to `<node>.dropped` or discarded |
| `busy_us` | `loglake_node_busy_seconds_total{kind, type}` |
| `files_written`, `bytes_written` | `loglake_lake_files_written_total{dataset}`, `loglake_lake_bytes_written_total{dataset}` |
| `truncated_lines`, `invalid_utf8_lines`, `metric_missing_columns`, `metric_invalid_values` | `loglake_errors_total{type, kind}`, `kind` the error kind of `ERROR_KINDS` (not the node kind) |
| any other (`duplicates`, `lookup_missed`, …) | `loglake_node_events_total{kind, type, event}`, `event` the counter's name |

Besides: `loglake_batch_seconds{node}`, a histogram the engine feeds per batch through `BatchLatency`;
`loglake_kafka_consumer_lag{source, partition}`, polled at scrape time from every source instance that has
a `lag() -> dict[str, int]` method (partition → messages behind); and the log-derived metrics `metrics`
sinks define in `LOG_METRICS_REGISTRY`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from loglake.operators.metrics_sink import INVALID_VALUE_COUNTER, LOG_METRICS_REGISTRY, MISSING_COLUMN_COUNTER
from loglake.pipelines.compile import CompiledPipeline
from loglake.schemas.errors import TerminalError
from loglake.schemas.stage import BUSY_COUNTER

__all__ = ["ERROR_KINDS", "BATCH_BUCKETS", "BatchLatency", "MetricsServer", "start_metrics_server"]

log = logging.getLogger(__name__)

ERROR_KINDS: dict[str, str] = {
    "truncated_lines": "truncated_line",
    "invalid_utf8_lines": "invalid_utf8",
    MISSING_COLUMN_COUNTER: "metric_missing_column",
    INVALID_VALUE_COUNTER: "metric_invalid_value",
}
"""Node counters that count errors → the `kind` label of `loglake_errors_total`."""
BATCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the `loglake_batch_seconds` buckets: from a cheap filter to a slow enrichment."""

_NODE_FAMILIES: dict[str, tuple[str, str, float]] = {
    "records_in": ("loglake_records_in_total", "Records a node received (sources: read).", 1.0),
    "records_out": ("loglake_records_out_total", "Records a node passed on (sinks: wrote).", 1.0),
    "records_dropped": ("loglake_records_dropped_total", "Records that failed a stage: routed to <node>.dropped or discarded.", 1.0),
    BUSY_COUNTER: ("loglake_node_busy_seconds_total", "Seconds a node spent reading, processing or writing.", 1e-6),
}
"""Node counters with a family of their own: metric name, help, scale (microseconds → seconds)."""
_LAKE_FAMILIES: dict[str, tuple[str, str]] = {
    "files_written": ("loglake_lake_files_written_total", "Parquet files committed to the lake."),
    "bytes_written": ("loglake_lake_bytes_written_total", "Bytes of Parquet files committed to the lake."),
}
_NODE_LABELS = ["pipeline", "node", "kind", "type"]
_LAG_WARN_EVERY = 60.0


class BatchLatency:
    """How long each node takes per batch: the histogram `loglake_batch_seconds{pipeline, node}`.

    The engine calls `observe` once per batch a node handles; safe from several worker threads.
    """

    def __init__(self, pipeline: str, registry: CollectorRegistry) -> None:
        self._pipeline = pipeline
        self._histogram = Histogram(
            "loglake_batch_seconds",
            "Seconds a node spent on one batch.",
            ["pipeline", "node"],
            registry=registry,
            buckets=BATCH_BUCKETS,
        )

    def observe(self, node: str, seconds: float) -> None:
        """Record that `node` spent `seconds` on one batch."""
        self._histogram.labels(self._pipeline, node).observe(seconds)


class _PipelineCollector:
    """Reads a compiled pipeline's node counters and its sources' consumer lag at every scrape."""

    def __init__(self, compiled: CompiledPipeline) -> None:
        self._compiled = compiled
        self._lag_warned: dict[str, float] = {}

    def collect(self) -> Iterator[Metric]:
        pipeline = self._compiled.spec.name
        node_families = {
            counter: CounterMetricFamily(name, text, labels=_NODE_LABELS) for counter, (name, text, _) in _NODE_FAMILIES.items()
        }
        lake = {
            counter: CounterMetricFamily(name, text, labels=["pipeline", "node", "dataset"])
            for counter, (name, text) in _LAKE_FAMILIES.items()
        }
        errors = CounterMetricFamily(
            "loglake_errors_total", "Records a node found faulty, by error kind.", labels=["pipeline", "node", "type", "kind"]
        )
        events = CounterMetricFamily(
            "loglake_node_events_total", "Other things nodes count (duplicates, lookup misses, …).", labels=[*_NODE_LABELS, "event"]
        )
        for node in self._compiled.graph.nodes:
            labels = [pipeline, node.name, node.kind, node.type_name]
            dataset = str(getattr(self._compiled.instances.get(node.name), "dataset_name", node.name))
            for counter, value in sorted(self._compiled.contexts[node.name].counters.snapshot().items()):
                if counter in _NODE_FAMILIES:
                    node_families[counter].add_metric(labels, value * _NODE_FAMILIES[counter][2])
                elif counter in _LAKE_FAMILIES:
                    lake[counter].add_metric([pipeline, node.name, dataset], value)
                elif counter in ERROR_KINDS:
                    errors.add_metric([pipeline, node.name, node.type_name, ERROR_KINDS[counter]], value)
                else:
                    events.add_metric([*labels, counter], value)
        yield from node_families.values()
        yield from lake.values()
        yield errors
        yield events
        yield self._lag(pipeline)

    def _lag(self, pipeline: str) -> GaugeMetricFamily:
        """Messages behind per source partition, from each source that offers `lag()`."""
        family = GaugeMetricFamily(
            "loglake_kafka_consumer_lag", "Messages a source partition is behind the end of its topic.", labels=["pipeline", "source", "partition"]
        )
        for node in self._compiled.spec.of_kind("source"):
            lag = getattr(self._compiled.instances.get(node.name), "lag", None)
            if not callable(lag):
                continue
            try:
                behind = _lag_values(lag())
            except Exception as exc:  # noqa: BLE001 - a failing source hook must not fail the scrape
                self._warn_lag(node.name, exc)
                continue
            for partition, messages in sorted(behind.items()):
                family.add_metric([pipeline, node.name, partition], messages)
        return family

    def _warn_lag(self, source: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._lag_warned.get(source, -_LAG_WARN_EVERY) >= _LAG_WARN_EVERY:
            self._lag_warned[source] = now
            log.warning("%s: cannot read consumer lag for /metrics: %s: %s", source, type(exc).__name__, exc)


def _lag_values(lag: Any) -> dict[str, float]:
    """`lag()`'s answer checked: partition name → messages behind."""
    if not isinstance(lag, Mapping):
        raise TypeError(f"lag() returned {type(lag).__name__}, not a mapping of partition to messages behind")
    return {str(partition): float(messages) for partition, messages in lag.items()}


@dataclass
class MetricsServer:
    """A running `/metrics` endpoint; `stop()` (or leaving a `with` block) shuts it down."""

    host: str
    port: int
    """The port actually bound (the one asked for, or the one picked for port 0)."""
    registry: CollectorRegistry
    """What is served: the pipeline's counters, `latency`, consumer lag and `LOG_METRICS_REGISTRY`."""
    latency: BatchLatency
    _httpd: Any
    _thread: threading.Thread

    @property
    def url(self) -> str:
        """The `/metrics` address, for humans and tests."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        """Stop serving and release the port (a second call does nothing)."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def start_metrics_server(port: int, compiled: CompiledPipeline, host: str = "0.0.0.0") -> MetricsServer:
    """Serve the pipeline's metrics on `http://host:port/metrics` from a daemon thread.

    Each server has its own registry (never prometheus_client's global one), so several servers, or tests,
    do not collide. Raises TerminalError when the address cannot be bound.
    """
    registry = CollectorRegistry()
    registry.register(_PipelineCollector(compiled))
    registry.register(LOG_METRICS_REGISTRY)
    latency = BatchLatency(compiled.spec.name, registry)
    try:
        httpd, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise TerminalError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    bound = int(httpd.server_address[1])
    log.info("%s: serving Prometheus metrics on http://%s:%d/metrics", compiled.spec.name, host, bound)
    return MetricsServer(host, bound, registry, latency, httpd, thread)
