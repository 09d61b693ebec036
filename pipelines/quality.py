"""Data-quality warnings: a stage's failed records summarised per node, at most once per interval."""

from __future__ import annotations

import logging
import threading
import time

import pyarrow as pa

from loglake.schemas.records import ERROR_COLUMN, LINE_COLUMN

__all__ = ["FailureLog"]

log = logging.getLogger(__name__)

_QUOTE = 80


def _example(dropped: pa.RecordBatch) -> str:
    """`invalid JSON at char 1 … (app.log:1235: 'Traceback (most…')` from the first failed record."""
    row = dropped.slice(0, 1).to_pylist()[0]
    where = ""
    if row.get("source") is not None:
        where = str(row["source"]) + (f":{row[LINE_COLUMN]}" if row.get(LINE_COLUMN) is not None else "")
    error = str(row.get(ERROR_COLUMN))
    message = row.get("message")
    quoted = ""
    if message is not None and str(message)[:20] not in error:  # parsers quote the line themselves
        quoted = repr(str(message)[:_QUOTE] + ("…" if len(str(message)) > _QUOTE else ""))
    detail = ": ".join(part for part in (where, quoted) if part)
    return error + (f" ({detail})" if detail else "")


class FailureLog:
    """Logs a node's first failed record at once, then one WARNING summary per `interval` seconds."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._pending: dict[str, list[int]] = {}

    def record(self, node: str, seen: int, dropped: pa.RecordBatch | None, discarded: int) -> None:
        """Account for one batch: `seen` records in, `dropped` routed away, `discarded` counted and dropped."""
        failed = discarded + (dropped.num_rows if dropped is not None else 0)
        now = time.monotonic()
        with self._lock:
            pending = self._pending.setdefault(node, [0, 0])
            pending[0] += seen
            pending[1] += failed
            due = failed and now - self._last.get(node, -self.interval) >= self.interval
            if not due:
                return
            total, bad = pending
            self._pending[node] = [0, 0]
            first = node not in self._last
            self._last[node] = now
        example = f"; e.g. {_example(dropped)}" if dropped is not None and dropped.num_rows else ""
        span = "so far" if first else f"in the last {self.interval:g}s"
        log.warning("%s: %s of %s records failed %s%s", node, f"{bad:,}", f"{total:,}", span, example)
