"""Benchmark: folding pre-aggregated batches into a window's state, counts and sums in place against the general fold.

Input: the nginx benchmark's lines (nginx/data.py, `--lines`, fixed seed; `--distinct` for mostly distinct
clients), cut into 10,000-record batches, grouped by client address, times in one hour. What is timed is
`FixedWindows.add` alone (a 1-hour tumbling window, as the nginx pipeline's `client_hours`): pre-aggregation
in Arrow plus the fold of each (group, window) into the state. Each aggregate set runs both ways in
alternation in this process: in place (`Plan.sums`, what the stage does for counts and sums) and the general
per-aggregate fold (`Plan.sums` switched off). Both must leave the same state, or nothing is recorded.

Reported: seconds per `--lines` records (median of `--runs`, min–max) per way, and their ratio; appended
to benchmarks/results/window_fold.jsonl.

    python benchmarks/window_fold.py [--lines 1000000] [--runs 5] [--distinct]
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loglake.operators.window.aggregates import Plan, Prepared, prepare_inputs
from loglake.operators.window.columns import group_ids
from loglake.operators.window.expressions import parse_aggregates
from loglake.operators.window.state import FixedWindows, GroupKey, WindowState
from nginx.data import make_input  # type: ignore[import-not-found]
from recording import header, record  # type: ignore[import-not-found]

HOUR_US = 3600 * 10**6
BATCH = 10_000
AGGREGATE_SETS = {"count": {"requests": "count()"}, "count_sum": {"requests": "count()", "bytes": "sum(bytes)"}}
_LINE = re.compile(r'(\S+) \S+ \S+ \[([^\]]+)\] "[^"]*" \d+ (\d+|-)')

Batch = tuple[Prepared, list[GroupKey]]


def read_batches(lines: int, distinct: bool) -> list[pa.RecordBatch]:
    """The generated lines as batches of (clientip, timestamp, bytes)."""
    path, _ = make_input(lines, distinct=distinct)
    clients, stamps, sizes = [], [], []
    with path.open(encoding="utf-8") as source:
        for line in source:
            match = _LINE.match(line)
            if match is None:
                continue
            clients.append(match[1])
            stamps.append(match[2])
            sizes.append(None if match[3] == "-" else int(match[3]))
    times = pc.strptime(pa.array(stamps), format="%d/%b/%Y:%H:%M:%S %z", unit="us")
    table = pa.table({"clientip": clients, "timestamp": times, "bytes": pa.array(sizes, pa.int64())})
    return table.to_batches(max_chunksize=BATCH)


def prepared(plan: Plan, batches: list[pa.RecordBatch]) -> list[Batch]:
    """What the window stage hands `FixedWindows.add` for each batch (prepared once, outside the timing)."""
    out = []
    for batch in batches:
        times = batch.column("timestamp").cast(pa.int64()).to_numpy()
        groups = group_ids([batch.column("clientip")], batch.num_rows)
        inputs, _, _ = prepare_inputs(plan, batch, times, {})
        out.append((Prepared(times, groups.ids, inputs), groups.keys))
    return out


def fold_all(plan: Plan, batches: list[Batch]) -> tuple[float, WindowState]:
    """Seconds to fold every batch into a fresh state, and the state."""
    windows, state = FixedWindows(plan, HOUR_US, HOUR_US, 30 * 10**6), WindowState()
    started = time.perf_counter()
    for records, keys in batches:
        windows.add(state, records, keys, 0)
    return time.perf_counter() - started, state


def general(plan: Plan) -> Plan:
    """The same plan with the in-place fold switched off: every aggregate folds on its own."""
    switched: Callable[[Any], None] = lambda batch: None  # noqa: E731
    plan.sums = switched  # type: ignore[method-assign]
    return plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--distinct", action="store_true", help="mostly distinct client addresses")
    args = parser.parse_args()
    batches = read_batches(args.lines, args.distinct)
    result: dict[str, Any] = header(lines=args.lines, runs=args.runs, distinct=args.distinct, batch=BATCH)
    for name, aggregates in AGGREGATE_SETS.items():
        plans = {"in_place": Plan(parse_aggregates(aggregates, ["clientip"])), "general": general(Plan(parse_aggregates(aggregates, ["clientip"])))}
        inputs = {way: prepared(plan, batches) for way, plan in plans.items()}
        seconds: dict[str, list[float]] = {way: [] for way in plans}
        states: dict[str, WindowState] = {}
        for _ in range(args.runs):
            for way, plan in plans.items():
                elapsed, states[way] = fold_all(plan, inputs[way])
                seconds[way].append(elapsed)
        if states["in_place"].windows != states["general"].windows:
            raise SystemExit(f"{name}: the in-place fold left another state than the general one; nothing recorded")
        groups = sum(len(window) for window in states["in_place"].windows.values())
        summary = {way: {"median": round(float(np.median(values)), 4), "min": round(min(values), 4), "max": round(max(values), 4)} for way, values in seconds.items()}
        ratio = float(np.median([g / i for g, i in zip(seconds["general"], seconds["in_place"])]))
        result[name] = {"seconds": summary, "general_over_in_place": round(ratio, 2), "groups": groups}
        print(f"{name}: in place {summary['in_place']['median']:.3f} s, general {summary['general']['median']:.3f} s "
              f"per {args.lines:,} records ({ratio:.2f}x), {groups:,} (client, hour) groups")
    record("window_fold", result)


if __name__ == "__main__":
    main()
