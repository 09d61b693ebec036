"""The `alert` sink: checks its configuration up front; each writer evaluates the condition over window rows,
keeps its groups' alert state and hands notifications to its own delivery thread.

State lives in the writer, that is per worker: every row of one group must reach the same worker (the
engine routes rows by the `group_by` columns), or two workers would each track half of the group. State is
not checkpointed: after a restart every group starts inactive.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from loglake.operators.alert.config import WINDOW_COLUMNS, AlertConfig
from loglake.operators.alert.delivery import Delivery, RetryPolicy, Webhook
from loglake.operators.alert.message import BODIES, Notification, Summary
from loglake.operators.alert.rules import AlertRules, Transition
from loglake.operators.sql import SqlEvaluator, TypeNote, compile_expression, type_problems
from loglake.schemas.json_codec import json_objects
from loglake.schemas.errors import ConfigError, TerminalError
from loglake.schemas.registry import register_sink
from loglake.schemas.stage import NodeContext

__all__ = ["AlertSink", "AlertSinkWriter"]

log = logging.getLogger(__name__)

_UTC_MICROS = pa.timestamp("us", tz="UTC")


class AlertSinkWriter:
    """One worker's alert groups and outbox.

    `write` evaluates the condition over the whole batch, then walks its rows in `window_end` order
    (window rows are few; this loop is not on a per-record path). An empty batch (a tick) only surfaces
    delivery failures. `close` waits for every notification to be delivered.
    """

    def __init__(self, sink: AlertSink) -> None:
        self._sink = sink
        self._ctx = sink.ctx
        config = sink.config
        self._rules = AlertRules(config.for_, config.cooldown)
        policy = RetryPolicy(config.retries, config.backoff.total_seconds(), config.max_backoff.total_seconds())
        body = BODIES[config.format]
        self._delivery = Delivery(sink.webhook, policy, body, config.queue_size, self._ctx.node, self._ctx.counters)
        self._checked: pa.Schema | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        """Evaluate the condition for every row and queue the notifications it causes."""
        self._delivery.check()
        if batch.num_rows == 0:
            return
        self._check_columns(batch.schema)
        config = self._sink.config
        result = self._sink.evaluator.evaluate(batch)
        holds = result.columns["condition"].to_pylist()
        failed = set(result.failed)
        if failed:
            self._ctx.counters.add("condition_errors", len(failed))
            log.warning(
                "%s: condition failed for %d of %d rows, which leave their alerts unchanged: %s",
                self._ctx.node, len(failed), batch.num_rows, result.errors[0],
            )
        starts = _utc(batch.column("window_start"))
        ends = _utc(batch.column("window_end"))
        keys = list(zip(*(batch.column(name).to_pylist() for name in config.group_by))) if config.group_by else None
        late, unwindowed = self._rules.late_rows, 0
        for index in pc.sort_indices(batch.column("window_end")).to_pylist():
            start, end = starts[index], ends[index]
            if start is None or end is None:
                unwindowed += 1
            elif index not in failed:
                transition = self._rules.observe(keys[index] if keys else (), bool(holds[index]), start, end)
                if transition is not None:
                    self._notify(transition, batch, index)
        self._rules.prune()
        self._ctx.counters.add("records_out", batch.num_rows)
        self._ctx.counters.add("records_late", self._rules.late_rows - late)
        if unwindowed:
            self._ctx.counters.add("records_without_window", unwindowed)
            log.warning("%s: %d rows without window_start or window_end were ignored", self._ctx.node, unwindowed)

    def close(self) -> None:
        """Wait until every notification is delivered; raise a TerminalError if one could not be."""
        self._delivery.close()

    def abort(self) -> None:
        """Stop delivery without waiting; queued notifications are not sent."""
        self._delivery.abort()

    def _notify(self, transition: Transition, batch: pa.RecordBatch, index: int) -> None:
        config = self._sink.config
        row: dict[str, Any] = orjson.loads(json_objects(batch.slice(index, 1))[0])
        summary = self._sink.summary.render(row) if self._sink.summary is not None else None
        group = {name: row[name] for name in config.group_by}
        skip = {*config.group_by, *WINDOW_COLUMNS}
        notification = Notification(
            status=transition.status,
            alert=self._ctx.node,
            group=group,
            condition=config.condition,
            summary=summary,
            values={name: value for name, value in row.items() if name not in skip},
            window_start=row["window_start"],
            window_end=row["window_end"],
            since=transition.since,
        )
        log.info("%s: %s for %s since %s", self._ctx.node, transition.status, notification.group_text(), row["window_start"])
        self._ctx.counters.add("notifications")
        self._delivery.send(notification)

    def _check_columns(self, schema: pa.Schema) -> None:
        """Raise a TerminalError when rows lack a column the alert reads (checked once per schema)."""
        if self._checked is not None and schema.equals(self._checked):
            return
        config = self._sink.config
        names = set(schema.names)
        lower = {name.lower() for name in names}
        problems = []
        for name in WINDOW_COLUMNS:
            if name not in names or not pa.types.is_timestamp(schema.field(name).type):
                problems.append(f"'{name}' must be a timestamp column (rows come from a window stage)")
        needed = [("group_by", name) for name in config.group_by]
        needed += [("summary", name) for name in sorted(self._sink.summary.columns if self._sink.summary else ())]
        problems += [f"{key} column '{name}' is not in the rows" for key, name in needed if name not in names]
        problems += [
            f"condition column '{name}' is not in the rows" for name in sorted(self._sink.evaluator.columns) if name not in lower
        ]
        nested = [name for name in config.group_by if name in names and pa.types.is_nested(schema.field(name).type)]
        problems += [f"group_by column '{name}' holds {schema.field(name).type}; group by scalar columns" for name in nested]
        if problems:
            raise TerminalError(f"{'; '.join(problems)} (the rows have: {', '.join(schema.names)})", node=self._ctx.node)
        self._checked = schema


def _utc(column: pa.Array) -> list[datetime | None]:
    """Timestamps as aware UTC datetimes (a zoneless timestamp is read as UTC)."""
    values: list[datetime | None] = column.cast(_UTC_MICROS, safe=False).to_pylist()
    return [value.astimezone(timezone.utc) if value is not None else None for value in values]


@register_sink(AlertConfig)
class AlertSink:
    """A webhook alert on window rows; compiles the condition, the summary and the URL before anything runs.

    Attributes:
        evaluator: The compiled condition (shared by the writers; safe across threads).
        summary: The compiled summary template, or None.
        webhook: The checked webhook URL and headers (shared by the writers).
    """

    def __init__(self, config: AlertConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        condition = compile_expression(config.condition, "condition", cast="BOOLEAN")
        self.evaluator = SqlEvaluator({"condition": condition}, node=ctx.node)
        self.summary = Summary(config.summary, node=ctx.node) if config.summary is not None else None
        headers = {name: value.get_secret_value() for name, value in config.headers.items()}
        self.webhook = Webhook(config.webhook.get_secret_value(), headers, config.timeout.total_seconds())

    def check_types(self, upstream: Mapping[str, pa.DataType], notes: Mapping[str, TypeNote]) -> list[ConfigError]:
        """The condition bound to the known types of the window rows: a ConfigError if it would fail on every row."""
        return type_problems(self.evaluator, upstream, notes)

    def open(self, worker_index: int, worker_count: int) -> AlertSinkWriter:
        """A writer for one worker, with its own alert state and delivery thread (started on first use)."""
        return AlertSinkWriter(self)
