"""Benchmark: the `json` stage against the obvious per-line code, on ≥ 1M app log lines, in one process.

The baseline is what a newcomer writes: `json.loads` per line, a list of dicts, then one Arrow batch
from them (`pa.RecordBatch.from_pylist`) so both produce the same columns. Both get the same 10,000-line
batches; the report gives the median of the runs with min–max and the ratio, and appends it to
benchmarks/results/json_parse.jsonl.

    python benchmarks/json_parse.py [--lines 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import pyarrow as pa

from file_json_parquet import make_input  # type: ignore[import-not-found]
from recording import header, rate, record, spread  # type: ignore[import-not-found]
from loglake.pipelines.nodes import build_node
from loglake.schemas.stage import NodeContext

BATCH = 10_000


def _batches(path: Path) -> list[pa.RecordBatch]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [pa.RecordBatch.from_pydict({"message": lines[i:i + BATCH]}) for i in range(0, len(lines), BATCH)]


def _baseline(batch: pa.RecordBatch) -> pa.RecordBatch:
    records = []
    for line in batch.column("message").to_pylist():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return pa.RecordBatch.from_pylist(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    batches = _batches(make_input(args.lines))
    stage = build_node("stage", "parse", {"type": "json"}, NodeContext(node="parse"))
    ours, naive = [], []
    for _ in range(args.runs):
        ours.append(rate(stage.process, batches, args.lines))
        naive.append(rate(_baseline, batches, args.lines))
    record("json_parse", {
        **header(lines=args.lines, runs=args.runs),
        "json_stage_lines_per_s": spread(ours),
        "per_line_json_loads_lines_per_s": spread(naive),
        "ratio_median": round(statistics.median(ours) / statistics.median(naive), 1),
    })


if __name__ == "__main__":
    main()
