"""The `metrics` sink: records (typically a window's rows) become labelled Prometheus gauges and counters.

The metrics live in `LOG_METRICS_REGISTRY`, which the engine's metrics server (`--metrics-port`) serves on
`/metrics` beside its own `loglake_*` metrics. A metric is defined once per process: a sink that declares a
name already defined with the same type and labels shares it (a re-run in the same process keeps counting),
a different definition is a config error.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, ConfigDict, Field, model_validator

from loglake.schemas.config import SinkConfig
from loglake.schemas.errors import ConfigError
from loglake.schemas.registry import register_sink
from loglake.schemas.stage import NodeContext

__all__ = [
    "LOG_METRICS_REGISTRY",
    "MISSING_COLUMN_COUNTER",
    "INVALID_VALUE_COUNTER",
    "MetricDefinition",
    "MetricsConfig",
    "MetricsSink",
    "MetricsSinkWriter",
]

log = logging.getLogger(__name__)

LOG_METRICS_REGISTRY = CollectorRegistry()
"""Where `metrics` sinks define their metrics; the metrics server serves it on `/metrics`."""
MISSING_COLUMN_COUNTER = "metric_missing_columns"
"""Counter of record × metric updates skipped because the value or a label column is not in the record."""
INVALID_VALUE_COUNTER = "metric_invalid_values"
"""Counter of record × metric updates skipped because the value is not a usable number (or a label has no text form)."""

_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
"""Metric and label names (Prometheus' own rule, without the colons it keeps for recording rules)."""
_RESERVED_PREFIX = "loglake_"
_VALUE = "__value"
"""The value's column in the per-batch grouping (label names cannot start with `__`, so it never clashes)."""
_WARN_EVERY = 10.0


class MetricDefinition(BaseModel):
    """One metric a `metrics` sink maintains, one series per distinct combination of label values."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    type: Literal["gauge", "counter"]
    """`gauge`: set to the record's value (the latest record wins per label set); `counter`: incremented by it."""
    value: str | None = None
    """Numeric column holding the value; a counter without one counts records (adds 1 per record)."""
    labels: list[str] = Field(default_factory=list)
    """Columns whose values label the series (label name = column name); nulls become empty labels."""
    help: str | None = None
    """The metric's description (`# HELP`); default: where it comes from."""

    @model_validator(mode="after")
    def _gauge_has_value(self) -> MetricDefinition:
        if self.type == "gauge" and self.value is None:
            raise ValueError("a gauge needs 'value': the column it is set from")
        return self


class MetricsConfig(SinkConfig):
    """Turn records into labelled Prometheus metrics, served with the pipeline's own on `--metrics-port`:
    a gauge is set to each record's `value` (the latest record wins per label set), a counter adds it up.

    Feed it a window's rows for log-derived metrics such as requests per status per minute, or raw records
    to count them. Records a metric cannot use (a missing column, a value that is not a number) are
    counted per node as errors and reported in rate-limited warnings; they never stop the run.

    Example:
        per_status: {type: metrics, inputs: [per_minute], metrics: {http_requests: {type: gauge, value: requests, labels: [response]}}}
    """

    type: Literal["metrics"]
    metrics: dict[str, MetricDefinition] = Field(min_length=1)
    """Metric name (letters, digits, `_`; counters end in `_total`) → `{type: gauge|counter, value: <column>, labels: [<columns>], help: <text>}`."""


@dataclass(frozen=True)
class _Skipped:
    """Records of a batch a metric could not use: how many, the error counter they go to, and why."""

    count: int
    counter: str
    problem: str


class _Unusable(Exception):
    """A batch whose records cannot update a metric at all: `counter` names why, `problem` says it to the user."""

    def __init__(self, counter: str, problem: str) -> None:
        self.counter = counter
        self.problem = problem
        super().__init__(problem)


@dataclass(frozen=True)
class _Defined:
    """A metric defined in this process, and by which node."""

    kind: str
    labels: tuple[str, ...]
    node: str
    metric: Gauge | Counter


_defined: dict[str, _Defined] = {}
"""Every metric `metrics` sinks defined in this process, by name."""
_defined_lock = threading.Lock()


def _define(name: str, definition: MetricDefinition, node: str) -> Gauge | Counter:
    """The process-wide metric `name`, created now or shared with the sink that defined it identically."""
    labels = tuple(definition.labels)
    with _defined_lock:
        found = _defined.get(name)
        if found is not None:
            if (found.kind, found.labels) != (definition.type, labels):
                raise ConfigError(
                    f"metric '{name}' is already defined by node '{found.node}' as a {found.kind} with labels "
                    f"[{', '.join(found.labels)}]; use another name, or the same type and labels to share it",
                    field=f"metrics.{name}",
                )
            return found.metric
        source = f"column '{definition.value}'" if definition.value else "record counts"
        text = definition.help or f"{definition.type.capitalize()} of {source}, from loglake node '{node}'."
        cls = Gauge if definition.type == "gauge" else Counter
        try:
            metric = cls(name, text, labelnames=labels, registry=LOG_METRICS_REGISTRY)
        except ValueError as exc:  # its series clash with another metric's (gauge `x_created` vs counter `x_total`)
            raise ConfigError(f"metric '{name}' cannot be defined: {exc}", field=f"metrics.{name}") from None
        _defined[name] = _Defined(definition.type, labels, node, metric)
        return metric


def _check(name: str, definition: MetricDefinition) -> None:
    """Prometheus naming rules, and label columns that are usable label names and distinct."""
    field = f"metrics.{name}"
    if not _NAME.match(name):
        raise ConfigError(f"metric name '{name}' must start with a letter or '_' and hold only letters, digits and '_'", field=field)
    if name.startswith(_RESERVED_PREFIX):
        raise ConfigError(f"metric name '{name}': the prefix '{_RESERVED_PREFIX}' is reserved for loglake's own metrics", field=field)
    if definition.type == "counter" and not name.endswith("_total"):
        raise ConfigError(f"counter '{name}' must end in '_total', the suffix Prometheus gives counters; call it '{name}_total'", field=field)
    if definition.type == "gauge" and name.endswith("_total"):
        raise ConfigError(f"gauge '{name}' must not end in '_total' (that suffix marks counters)", field=field)
    seen: set[str] = set()
    for index, label in enumerate(definition.labels):
        where = f"{field}.labels.{index}"
        if not _NAME.match(label) or label.startswith("__"):
            raise ConfigError(
                f"label column '{label}' is not a Prometheus label name (letters, digits and '_', not starting with "
                "'__'); rename the column with a `rename` stage first",
                field=where,
            )
        if label in seen:
            raise ConfigError(f"label column '{label}' is listed twice", field=where)
        if label == definition.value:
            raise ConfigError(f"label column '{label}' is also the value column", field=where)
        seen.add(label)


class _LogMetric:
    """One configured metric: checks a batch's columns and applies its records, aggregated per label set."""

    def __init__(self, name: str, definition: MetricDefinition, node: str) -> None:
        self.name = name
        self.definition = definition
        self.metric = _define(name, definition, node)

    def update(self, batch: pa.RecordBatch) -> tuple[pa.BooleanArray, _Skipped | None]:
        """Apply `batch`; the rows applied, and what was skipped, if anything."""
        try:
            values = self._values(batch)
            labels = [self._label(batch, name) for name in self.definition.labels]
        except _Unusable as unusable:
            return pa.repeat(pa.scalar(False), batch.num_rows), _Skipped(batch.num_rows, unusable.counter, unusable.problem)
        if self.definition.type == "gauge":
            usable = pc.is_valid(values)
            problem = f"value '{self.definition.value}' is null"
        else:  # a counter only goes up: null, negative and NaN increments are refused
            usable = pc.fill_null(pc.greater_equal(values, 0.0), False)
            problem = f"value '{self.definition.value}' is null, negative or NaN (a counter only goes up)"
        table = pa.Table.from_arrays([*labels, values], names=[*self.definition.labels, _VALUE]).filter(usable)
        self._apply(table)
        bad = batch.num_rows - table.num_rows
        return usable, _Skipped(bad, INVALID_VALUE_COUNTER, problem) if bad else None

    def _apply(self, table: pa.Table) -> None:
        """One metric update per label set: the batch's sum (counters) or its last value (gauges)."""
        if not table.num_rows:
            return
        how = "last" if self.definition.type == "gauge" else "sum"
        grouped = table.group_by(self.definition.labels, use_threads=False).aggregate([(_VALUE, how)])
        keys = [grouped.column(name).to_pylist() for name in self.definition.labels]
        for row, amount in enumerate(grouped.column(f"{_VALUE}_{how}").to_pylist()):
            child = self.metric.labels(*(column[row] for column in keys)) if keys else self.metric
            if isinstance(child, Gauge):
                child.set(amount)
            else:
                child.inc(amount)

    def _column(self, batch: pa.RecordBatch, name: str, role: str) -> pa.Array:
        index = batch.schema.get_field_index(name)
        if index < 0:
            shown = ", ".join(batch.schema.names[:8]) + (", …" if batch.num_columns > 8 else "")
            raise _Unusable(MISSING_COLUMN_COUNTER, f"{role} column '{name}' is not in the records (they have: {shown})")
        column: pa.Array = batch.column(index)
        return column

    def _values(self, batch: pa.RecordBatch) -> pa.Array:
        if self.definition.value is None:
            return pa.repeat(pa.scalar(1.0), batch.num_rows)
        column = self._column(batch, self.definition.value, "value")
        kind = column.type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind) or pa.types.is_boolean(kind) or pa.types.is_null(kind)):
            raise _Unusable(
                INVALID_VALUE_COUNTER,
                f"value column '{self.definition.value}' holds {kind}, not numbers (convert it with a `cast` stage)",
            )
        return pc.cast(column, pa.float64())

    def _label(self, batch: pa.RecordBatch, name: str) -> pa.Array:
        column = self._column(batch, name, "label")
        try:
            return pc.fill_null(pc.cast(column, pa.string()), "")
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise _Unusable(INVALID_VALUE_COUNTER, f"label column '{name}' holds {column.type}, which has no text form") from None


class _Complaints:
    """WARNINGs about records a metric could not use: the first at once, then one summary per interval."""

    def __init__(self, node: str, interval: float = _WARN_EVERY) -> None:
        self._node = node
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._pending: dict[str, int] = {}

    def add(self, metric: str, skipped: _Skipped) -> None:
        key = f"metric '{metric}': {skipped.problem}"
        now = time.monotonic()
        with self._lock:
            self._pending[key] = self._pending.get(key, 0) + skipped.count
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                return
            total = self._pending.pop(key)
            self._last[key] = now
        span = "so far" if last is None else f"in the last {self._interval:g}s"
        log.warning("%s: %s record(s) not counted %s; %s", self._node, f"{total:,}", span, key)


class MetricsSinkWriter:
    """Applies whole batches to the sink's metrics; safe to use from several workers at once."""

    def __init__(self, sink: MetricsSink) -> None:
        self._sink = sink

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Update every metric from the batch's records; records a metric cannot use are counted and warned about."""
        if not batch.num_rows:
            return
        if isinstance(batch, pa.Table):
            batch = batch.combine_chunks().to_batches()[0]
        self._sink.apply(batch)

    def close(self) -> None:
        """Nothing to flush: metrics are updated as batches arrive."""

    def abort(self) -> None:
        """Nothing to undo: a scraped value cannot be taken back."""


@register_sink(MetricsConfig)
class MetricsSink:
    """Defines its metrics in `LOG_METRICS_REGISTRY` when built, so bad names fail before the run starts."""

    def __init__(self, config: MetricsConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        for name, definition in config.metrics.items():
            _check(name, definition)  # all of them before any is defined process-wide
        self._metrics = [_LogMetric(name, definition, ctx.node) for name, definition in config.metrics.items()]
        self._complaints = _Complaints(ctx.node)

    def open(self, worker_index: int, worker_count: int) -> MetricsSinkWriter:
        """A writer for one worker; all writers update the same metrics."""
        return MetricsSinkWriter(self)

    def apply(self, batch: pa.RecordBatch) -> None:
        """Update every metric from one batch; count as `records_out` the records that updated at least one.

        Records a metric cannot use are counted per metric (`metric_missing_columns`, `metric_invalid_values`)
        and reported in rate-limited WARNINGs naming the node, the metric and the column.
        """
        applied = pa.repeat(pa.scalar(False), batch.num_rows)
        for metric in self._metrics:
            used, skipped = metric.update(batch)
            applied = pc.or_(applied, used)
            if skipped is not None:
                self.ctx.counters.add(skipped.counter, skipped.count)
                self._complaints.add(metric.name, skipped)
        self.ctx.counters.add("records_out", applied.true_count)
