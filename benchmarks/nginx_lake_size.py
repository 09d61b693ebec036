"""Benchmark: how large the nginx pipeline's lake is against the raw text, column by column, and what it costs.

The input is nginx_pipeline.py's (nginx/data.py: `--lines` Apache combined lines resampled with a fixed seed
from the real 10k-line log, one hour of timestamps); the pipeline is benchmarks/nginx/pipeline.yaml reading
it from a file (nginx/file_copy.py: the file source's `_line` stands in for `kafka_offset`). Variants, each
run `--runs` times in its own process, the order rotating each round:

- `before`: the pipeline without what this benchmark was written for: the raw `message` kept (no `slim`),
  files unsorted with default encodings (no `sort_by`, `column_encoding`), no `client_hours` rollup;
- `keep_message`: the pipeline as written but keeping `message`;
- `unsorted`: the pipeline as written but with unsorted files and default encodings;
- `no_rollup`: the pipeline as written without the `client_hours` window and dataset (what the rollup costs);
- `pipeline`: the pipeline as written.

After each run a child process reads the lake with DuckDB (nginx/check.py: rows, bytes per dataset, compressed
bytes per column of `access` from the Parquet footers). Reported per variant: the `access` dataset's bytes and
the whole lake's against the raw input, bytes per column, and records/s (input lines / wall seconds, start-up
included), peak RSS and the `records` sink's busy seconds as medians with min–max; speed ratios are against
`before` in the same invocation. Appended to benchmarks/results/nginx_lake_size.jsonl.

    python benchmarks/nginx_lake_size.py [--lines 1000000] [--runs 3] [--variants before,keep_message,unsorted,no_rollup,pipeline]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from nginx.children import loglake_summary, run_child  # type: ignore[import-not-found]
from nginx.data import WORK, make_input  # type: ignore[import-not-found]
from nginx.file_copy import ACCESS_SINK, file_pipeline  # type: ignore[import-not-found]
from recording import compile_sources, header, record, spread  # type: ignore[import-not-found]

VARIANTS: dict[str, dict[str, tuple[str, ...]]] = {
    "before": {"without": ("slim", "hours", "client_hours"), "without_options": ("sort_by", "column_encoding")},
    "keep_message": {"without": ("slim",)},
    "unsorted": {"without_options": ("sort_by", "column_encoding")},
    "no_rollup": {"without": ("hours", "client_hours")},
    "pipeline": {},
}
RUNS_DIR = WORK / "nginx-lake-size" / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"


def folder_bytes(folder: Path) -> int:
    """Bytes of the committed Parquet files under `folder`."""
    return sum(path.stat().st_size for path in folder.rglob("*.parquet") if not path.name.startswith("."))


def run_variant(name: str, source: Path, round_no: int) -> dict[str, Any]:
    """One run of a variant in its own process, and what its lake holds."""
    folder = RUNS_DIR / f"{name}-{round_no}"
    folder.mkdir(parents=True)
    pipeline = folder / "pipeline.yaml"
    pipeline.write_text(file_pipeline(source, **VARIANTS[name]), encoding="utf-8")
    lake = folder / "lake"
    run = run_child([sys.executable, "-m", "loglake.pipelines.cli", "run", str(pipeline), "-w", "1"], folder / "run.log",
                    {"LOGLAKE_LAKE": str(lake)})
    summary = loglake_summary(run.output)
    checked = json.loads(run_child([sys.executable, "-m", "nginx.check", f"loglake={lake}"], folder / "check.log").output.strip().splitlines()[-1])["loglake"]
    datasets = {child.name: folder_bytes(child) for child in sorted(lake.iterdir()) if child.is_dir() and not child.name.startswith("_")}
    shutil.rmtree(lake)
    return {
        "wall_s": run.wall_s, "rss_mib": run.rss_mib, "sink_busy_s": summary["nodes"][ACCESS_SINK]["busy_s"],
        "access_rows": checked["access_rows"], "access_files": checked["access_files"],
        "access_column_bytes": checked["access_column_bytes"], "dataset_bytes": datasets,
    }


def summarise(name: str, runs: list[dict[str, Any]], facts: dict[str, Any]) -> dict[str, Any]:
    """One variant's sizes and speed and memory spreads.

    `access` is the same every run (else every run's is listed); the small window and dead-letter datasets
    vary by some bytes (sketches, ingest times), so the first run's are reported.
    """
    first = runs[0]
    sizes = {key: first[key] for key in ("access_rows", "access_files", "access_column_bytes", "dataset_bytes")}
    access = ("access_rows", "access_files", "access_column_bytes")
    if any([run[key] for key in access] + [run["dataset_bytes"]["access"]] != [first[key] for key in access] + [first["dataset_bytes"]["access"]]
           for run in runs[1:]):
        sizes["access_differs_by_run"] = [{key: run[key] for key in access} for run in runs]
    access, lake = first["dataset_bytes"].get("access", 0), sum(first["dataset_bytes"].values())
    return {
        **sizes, "access_over_raw": round(access / facts["bytes"], 4), "lake_over_raw": round(lake / facts["bytes"], 4),
        "records_per_s": spread([facts["lines"] / run["wall_s"] for run in runs]),
        "rss_mib": spread([run["rss_mib"] for run in runs]), "sink_busy_s": {"median": sorted(run["sink_busy_s"] for run in runs)[len(runs) // 2],
                                                                            "all": [run["sink_busy_s"] for run in runs]},
        "about": VARIANTS[name],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"variants to run, of {','.join(VARIANTS)}")
    args = parser.parse_args()
    compile_sources()
    names = [name for name in args.variants.split(",") if name]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants: {', '.join(unknown)}")
    source, facts = make_input(args.lines)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_no in range(args.runs):
        for name in names[round_no % len(names):] + names[:round_no % len(names)]:
            runs[name].append(run_variant(name, source, round_no))
            print(f"round {round_no + 1}: {name} {args.lines / runs[name][-1]['wall_s']:,.0f} records/s", file=sys.stderr)
    results = {name: summarise(name, runs[name], facts) for name in names}
    if "before" in results:
        base = results["before"]["records_per_s"]["median"]
        for result in results.values():
            result["speed_vs_before"] = round(result["records_per_s"]["median"] / base, 3)
    launcher_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    record("nginx_lake_size", {**header(lines=args.lines, runs=args.runs, source="file (nginx/file_copy.py)"), "input": facts,
                               "launcher_peak_rss_mib": launcher_rss, "variants": results})
    print(f"{'variant':<14} {'access MB':>9} {'access/raw':>10} {'lake/raw':>8} {'records/s':>22} {'RSS MiB':>8} {'sink s':>6}", file=sys.stderr)
    for name, result in results.items():
        speed = result["records_per_s"]
        print(f"{name:<14} {result['dataset_bytes'].get('access', 0) / 1e6:>9.2f} {result['access_over_raw']:>10.4f} {result['lake_over_raw']:>8.4f} "
              f"{speed['median']:>8,} ({speed['min']:,}–{speed['max']:,}) {result['rss_mib']['median']:>8} {result['sink_busy_s']['median']:>6}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
