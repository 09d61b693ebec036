"""Benchmark: file → json → eval → filter → Parquet on ≥ 1M lines, loglake against the naive Bytewax flow.

Both run in the same invocation, alternating, each as its own process so peak RSS is its own; the report
gives the median of the runs with min–max, the peak RSS, and the ratio. Results are appended to
benchmarks/results/file_json_parquet.jsonl.

    python benchmarks/file_json_parquet.py [--lines 1000000] [--runs 3] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from recording import compile_sources, header, record, spread  # type: ignore[import-not-found]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SAMPLE = REPO / "examples" / "app-json" / "data"
WORK = HERE / "work"
START = datetime(2015, 5, 17, 10, 0, tzinfo=timezone.utc)


def make_input(lines: int, seed: int = 42) -> Path:
    """Resample the app-json sample (real requests) to `lines` lines over one hour, deterministically."""
    target = WORK / f"app-{lines}.jsonl"
    if target.exists():
        return target
    WORK.mkdir(parents=True, exist_ok=True)
    records = []
    for path in sorted(SAMPLE.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    rng = random.Random(seed)
    with target.open("w", encoding="utf-8") as out:
        for index in range(lines):
            record = dict(rng.choice(records))
            when = START + timedelta(seconds=3600 * index / lines)
            record["ts"] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
    return target


def _pipeline_yaml(source: Path, lake: Path) -> str:
    text = (REPO / "examples" / "app-json" / "pipeline.yaml").read_text(encoding="utf-8")
    return text.replace("paths: [data/*.jsonl]", f"paths: [{source}]").replace("${LOGLAKE_LAKE:-lake}", str(lake))


def _timed(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB) of a child process."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{process.stderr.read().decode() if process.stderr else ''}")
    return elapsed, usage.ru_maxrss // 1024


def _rows(folder: Path) -> int:
    """Rows in a Parquet folder, counted in a child process.

    The launcher stays small: a child's peak RSS as wait4 reports it starts from its parent's peak at fork.
    """
    count = f"import duckdb; print(duckdb.sql(\"SELECT count(*) FROM read_parquet('{folder}/**/*.parquet')\").fetchall()[0][0])"
    return int(subprocess.run([sys.executable, "-c", count], check=True, capture_output=True, text=True).stdout.split()[0])


def run_loglake(source: Path, workers: int) -> tuple[float, int, int]:
    out = WORK / "loglake"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    pipeline = out / "pipeline.yaml"
    pipeline.write_text(_pipeline_yaml(source, out / "lake"), encoding="utf-8")
    elapsed, rss = _timed([sys.executable, "-m", "loglake.pipelines.cli", "run", str(pipeline), "--workers", str(workers)])
    return elapsed, rss, _rows(out / "lake" / "app")


def run_naive(source: Path) -> tuple[float, int, int]:
    out = WORK / "naive"
    shutil.rmtree(out, ignore_errors=True)
    elapsed, rss = _timed([sys.executable, str(HERE / "naive_app_json.py"), str(source), str(out)])
    return elapsed, rss, _rows(out)


def _summary(runs: list[tuple[float, int, int]], lines: int) -> dict[str, Any]:
    return {
        "records_per_s": spread([lines / elapsed for elapsed, _, _ in runs]),
        "peak_rss_mib": max(rss for _, rss, _ in runs),
        "rows_written": runs[0][2],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    compile_sources()
    source = make_input(args.lines)
    loglake_runs, naive_runs = [], []
    for index in range(args.runs):
        loglake_runs.append(run_loglake(source, args.workers))
        naive_runs.append(run_naive(source))
        print(f"run {index + 1}: loglake {loglake_runs[-1][0]:.2f} s, naive {naive_runs[-1][0]:.2f} s", file=sys.stderr)
    ours, naive = _summary(loglake_runs, args.lines), _summary(naive_runs, args.lines)
    if ours["rows_written"] != naive["rows_written"]:
        raise SystemExit(f"outputs differ: loglake wrote {ours['rows_written']} rows, naive {naive['rows_written']}")
    record("file_json_parquet", {
        **header(lines=args.lines, workers=args.workers, runs=args.runs),
        "loglake": ours,
        "naive_bytewax": naive,
        "launcher_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "speedup_median": round(ours["records_per_s"]["median"] / naive["records_per_s"]["median"], 1),
    })


if __name__ == "__main__":
    main()
