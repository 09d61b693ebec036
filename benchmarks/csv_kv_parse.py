"""Benchmark: the `csv` and `kv` stages against the obvious per-line code, on ≥ 1M lines of real access logs.

The input resamples ../shared/data/apache_access_10k.log with a fixed seed, rewrites each timestamp so the
lines spread over one hour (nearly every line is distinct, so the kv stage's once-per-distinct-line parsing
gains nothing), and writes each request three ways: a simple CSV row with no quoted field (client, time,
method, path, status, bytes), the full CSV row as Python's `csv` module writes it (referrer and agent
quoted where they hold commas), and a logfmt line (`ts=… client=… path="…" agent="…"`).
The baselines are what a newcomer writes: `csv.reader` over the batch's lines, and for kv a
`re.findall(r'(\\w+)=("[^"]*"|\\S+)')` per line with the quotes stripped, each followed by one
`pa.RecordBatch.from_pylist`. Everyone gets the same 10,000-line batches, alternating run by run; the
report gives the median of the runs with min–max and the ratios, and appends it to
benchmarks/results/csv_kv_parse.jsonl.

    python benchmarks/csv_kv_parse.py [--lines 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import re
import statistics
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from recording import header, rate, record, spread  # type: ignore[import-not-found]
from loglake.pipelines.nodes import build_node
from loglake.schemas.stage import NodeContext

HERE = Path(__file__).resolve().parent
APACHE_LOG = HERE.parent.parent / "shared" / "data" / "apache_access_10k.log"
"""10,000 real Apache access-log lines (elastic/examples, Apache License 2.0)."""
WORK = HERE / "work"
BATCH = 10_000
START = datetime(2015, 5, 17, 10, 0, tzinfo=timezone.utc)
COMBINED = re.compile(r'(\S+) \S+ \S+ \[[^\]]+\] "(\S+) (\S+) \S+" (\d+) (\S+) "([^"]*)" "([^"]*)"')
NAIVE_PAIR = re.compile(r'(\w+)=("[^"]*"|\S+)')
KINDS = ("simple", "full", "logfmt")


def _row(fields: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


def make_input(lines: int, kind: str, seed: int = 42) -> Path:
    """`lines` requests resampled from the shared log, timestamps over one hour, written as `kind`."""
    target = WORK / f"access-{kind}-{lines}.txt"
    if target.exists():
        return target
    WORK.mkdir(parents=True, exist_ok=True)
    sample = [m.groups() for m in map(COMBINED.fullmatch, APACHE_LOG.read_text(encoding="utf-8").splitlines()) if m]
    rng = random.Random(seed)
    with target.open("w", encoding="utf-8") as out:
        for index in range(lines):
            client, method, path, status, size, referrer, agent = rng.choice(sample)
            when = (START + timedelta(seconds=3600 * index / lines)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            if kind == "simple":
                line = ",".join([client, when, method, path.replace(",", "%2C"), status, size])
            elif kind == "full":
                line = _row([client, when, method, path, status, size, referrer, agent])
            else:
                line = f'ts={when} client={client} method={method} path="{path}" status={status} bytes={size} agent="{agent}"'
            out.write(line + "\n")
    return target


def _batches(path: Path) -> list[pa.RecordBatch]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [pa.RecordBatch.from_pydict({"message": lines[i:i + BATCH]}) for i in range(0, len(lines), BATCH)]


def _csv_reader(batch: pa.RecordBatch) -> pa.RecordBatch:
    rows = list(csv.reader(batch.column("message").to_pylist()))
    return pa.RecordBatch.from_pylist([{f"column{i + 1}": v for i, v in enumerate(row)} for row in rows])


def _naive_kv(batch: pa.RecordBatch) -> pa.RecordBatch:
    records = [{k: v.strip('"') for k, v in NAIVE_PAIR.findall(line)} for line in batch.column("message").to_pylist()]
    return pa.RecordBatch.from_pylist(records)


def _stage(config: dict[str, Any]) -> Any:
    return build_node("stage", "parse", config, NodeContext(node="parse"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    inputs = {kind: _batches(make_input(args.lines, kind)) for kind in KINDS}
    cases: dict[str, tuple[str, Callable[[pa.RecordBatch], object]]] = {
        "csv_simple": ("simple", _stage({"type": "csv"}).process),
        "csv_simple_infer_types": ("simple", _stage({"type": "csv", "infer_types": True}).process),
        "csv_full_quoted": ("full", _stage({"type": "csv"}).process),
        "csv_reader_simple": ("simple", _csv_reader),
        "csv_reader_full": ("full", _csv_reader),
        "kv_logfmt": ("logfmt", _stage({"type": "kv"}).process),
        "naive_findall_logfmt": ("logfmt", _naive_kv),
    }
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, (kind, work) in cases.items():
            rates[name].append(rate(work, inputs[kind], args.lines))
    median = {name: statistics.median(values) for name, values in rates.items()}
    record("csv_kv_parse", {
        **header(lines=args.lines, runs=args.runs),
        **{f"{name}_lines_per_s": spread(values) for name, values in rates.items()},
        "ratio_csv_simple": round(median["csv_simple"] / median["csv_reader_simple"], 1),
        "ratio_csv_full": round(median["csv_full_quoted"] / median["csv_reader_full"], 1),
        "ratio_kv": round(median["kv_logfmt"] / median["naive_findall_logfmt"], 1),
    })


if __name__ == "__main__":
    main()
