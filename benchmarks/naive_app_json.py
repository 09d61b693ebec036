"""The baseline: the app-json workload written the way a newcomer writes it in plain Bytewax.

One `op.map`/`op.filter` per stage over Python dicts, `json.loads` per line, a sink that collects dicts and
writes Parquet with pyarrow. Same input, same filter and computed fields as examples/app-json.

    python benchmarks/naive_app_json.py INPUT.jsonl OUTPUT_DIR
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import bytewax.operators as op
import pyarrow as pa
import pyarrow.parquet as pq
from bytewax.connectors.files import FileSource
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main


def parse(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def is_human(record: dict[str, Any]) -> bool:
    agent = str(record.get("user_agent", "")).lower()
    return "bot" not in agent and "spider" not in agent


def shape(record: dict[str, Any]) -> dict[str, Any]:
    http = record.get("http") or {}
    out = {k: v for k, v in record.items() if k not in ("ts", "msg")}
    out["timestamp"] = datetime.fromisoformat(record["ts"].replace("Z", "+00:00"))
    out["message"] = record.get("msg")
    out["status"] = http.get("status")
    out["path"] = http.get("path")
    out["slow"] = record.get("duration_ms", 0) >= 500
    out["level"] = str(record.get("level", "")).lower()
    return out


class _Partition(StatelessSinkPartition[dict[str, Any]]):
    def __init__(self, folder: Path, worker: int) -> None:
        self.folder, self.worker, self.rows, self.count = folder, worker, [], 0

    def write_batch(self, items: list[dict[str, Any]]) -> None:
        self.rows.extend(items)
        if len(self.rows) >= 100_000:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            by_hour: dict[str, list[dict[str, Any]]] = {}
            for row in self.rows:
                by_hour.setdefault(row["timestamp"].strftime("date=%Y-%m-%d/hour=%H"), []).append(row)
            for key, rows in by_hour.items():
                target = self.folder / key
                target.mkdir(parents=True, exist_ok=True)
                pq.write_table(pa.Table.from_pylist(rows), target / f"part-{self.worker}-{self.count}.parquet", compression="zstd")
                self.count += 1
            self.rows = []

    def close(self) -> None:
        self._flush()


class DictParquetSink(DynamicSink[dict[str, Any]]):
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(self.folder, worker_index)


def build_flow(source: Path, target: Path) -> Dataflow:
    flow = Dataflow("naive_app_json")
    lines = op.input("read", flow, FileSource(source, batch_size=1000))
    add_stages(lines, target)
    return flow


def add_stages(lines: Any, target: Path) -> None:
    """The per-record stages and the dict-collecting Parquet sink, after any source of text lines."""
    parsed = op.filter_map("parse", lines, parse)
    humans = op.filter("humans", parsed, is_human)
    shaped = op.map("shape", humans, shape)
    op.output("lake", shaped, DictParquetSink(target))


if __name__ == "__main__":
    run_main(build_flow(Path(sys.argv[1]), Path(sys.argv[2])))
