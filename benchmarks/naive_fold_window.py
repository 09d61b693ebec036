"""The baseline: a 1-minute tumbling window over Apache lines, written the way a newcomer writes it in plain Bytewax.

FileSource → `op.filter_map` parsing each line with one Python regex into a dict (`datetime.strptime` for
the time) → `op.key_on` (response, verb) → Bytewax 0.21's own `bytewax.operators.windowing.fold_window`
with an `EventClock` (30 s wait) and a `TumblingWindower` of 1 minute aligned to the Unix epoch, folding a
count, a sum and a list of the byte sizes per window → one row per (window, key) with the exact p95
(`numpy.percentile`) → a sink that collects the rows and writes Parquet with pyarrow. Everything as the
Bytewax docs show it (defaults: `ordered=True`, `to_system_utc` the identity); late items are dropped
silently, as a newcomer who does not read `WindowOut.late` gets them.

    python benchmarks/naive_fold_window.py INPUT.log OUTPUT_DIR
"""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import bytewax.operators as op
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from bytewax.connectors.files import FileSource
from bytewax.dataflow import Dataflow
from bytewax.operators.windowing import EventClock, TumblingWindower, fold_window
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main

# Apache combined: the same fields as grok's COMBINEDAPACHELOG (a raw request such as "-" has no verb). Quoted
# fields are `[^"]*`, as one writes it; no line of the sample has an escaped quote, and on all 10,000 lines this
# gives exactly the fields loglake's `apache_combined` gives (checked when the benchmark was written).
LINE = re.compile(
    r'^(?P<clientip>\S+) (?P<ident>\S+) (?P<auth>\S+) \[(?P<timestamp>[^\]]+)\] '
    r'"(?:(?P<verb>\w+) (?P<request>\S+)(?: HTTP/(?P<httpversion>[0-9.]+))?|(?P<rawrequest>[^"]*))" '
    r'(?P<response>\d+) (?P<bytes>\d+|-) "(?P<referrer>[^"]*)" "(?P<agent>[^"]*)"'
)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)

SCHEMA = pa.schema([
    ("window_start", pa.timestamp("us", tz="UTC")),
    ("window_end", pa.timestamp("us", tz="UTC")),
    ("response", pa.int64()),
    ("verb", pa.string()),
    ("requests", pa.int64()),
    ("total_bytes", pa.int64()),
    ("p95_bytes", pa.float64()),
])


def parse(line: str) -> dict[str, Any] | None:
    found = LINE.match(line)
    if found is None:
        return None
    record = found.groupdict()
    record["timestamp"] = datetime.strptime(record["timestamp"], "%d/%b/%Y:%H:%M:%S %z")
    record["response"] = int(record["response"])
    record["bytes"] = None if record["bytes"] == "-" else int(record["bytes"])
    return record


def key(record: dict[str, Any]) -> str:
    return f"{record['response']}|{record['verb']}"


def new_window() -> dict[str, Any]:
    return {"response": None, "verb": None, "requests": 0, "total_bytes": None, "bytes": []}


def add(window: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    window["response"], window["verb"] = record["response"], record["verb"]
    window["requests"] += 1
    if record["bytes"] is not None:
        window["total_bytes"] = (window["total_bytes"] or 0) + record["bytes"]
        window["bytes"].append(record["bytes"])
    return window


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:  # tumbling windows never merge
    a["requests"] += b["requests"]
    if b["total_bytes"] is not None:
        a["total_bytes"] = (a["total_bytes"] or 0) + b["total_bytes"]
    a["bytes"].extend(b["bytes"])
    return a


def row(key_and_window: tuple[str, tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    _, (window_id, window) = key_and_window
    start = EPOCH + MINUTE * window_id
    return {
        "window_start": start,
        "window_end": start + MINUTE,
        "response": window["response"],
        "verb": window["verb"],
        "requests": window["requests"],
        "total_bytes": window["total_bytes"],
        "p95_bytes": float(np.percentile(window["bytes"], 95)) if window["bytes"] else None,
    }


class _Partition(StatelessSinkPartition[dict[str, Any]]):
    def __init__(self, folder: Path, worker: int) -> None:
        self.folder, self.worker = folder, worker
        self.rows: list[dict[str, Any]] = []

    def write_batch(self, items: list[dict[str, Any]]) -> None:
        self.rows.extend(items)

    def close(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.rows, schema=SCHEMA), self.folder / f"part-{self.worker}.parquet", compression="zstd")


class RowParquetSink(DynamicSink[dict[str, Any]]):
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(self.folder, worker_index)


def build_flow(source: Path, target: Path) -> Dataflow:
    flow = Dataflow("naive_fold_window")
    lines = op.input("read", flow, FileSource(source, batch_size=1000))
    records = op.filter_map("parse", lines, parse)
    keyed = op.key_on("key", records, key)
    clock: EventClock[dict[str, Any]] = EventClock(ts_getter=lambda record: record["timestamp"], wait_for_system_duration=timedelta(seconds=30))
    windower = TumblingWindower(length=MINUTE, align_to=EPOCH)
    windows = fold_window("per_minute", keyed, clock, windower, builder=new_window, folder=add, merger=merge)
    op.output("lake", op.map("row", windows.down, row), RowParquetSink(target))
    return flow


if __name__ == "__main__":
    run_main(build_flow(Path(sys.argv[1]), Path(sys.argv[2])))  # type: ignore[no-untyped-call]
