"""Benchmark: a 1-minute tumbling window, three aggregates, grouped by two fields, on ≥ 1M Apache lines.

Input: `--lines` lines resampled with a fixed seed from ../shared/data/apache_access_10k.log (real combined
lines), timestamps rewritten to span one hour in order, except ~1% moved back by 1–30 s (so
`allowed_lateness: 30s` matters), written once to benchmarks/work/apache-window-<lines>.log.

In the same invocation, alternating run by run, each in its own process (the time includes start-up, the
peak RSS is its own):

- loglake: `loglake run` on a generated pipeline: file → `apache_combined` → `window` {tumbling: 1m,
  allowed_lateness: 30s, group_by: [response, verb], aggregate: {requests: count(), total_bytes: sum(bytes),
  p95_bytes: quantile(bytes, 0.95)}} → `parquet`;
- the baseline: plain Bytewax 0.21, a regex per line into a dict, `key_on` (response, verb) and Bytewax's
  own `fold_window` with `EventClock` (30 s wait) and `TumblingWindower` (benchmarks/naive_fold_window.py);
- loglake without the window (file → `apache_combined` → `parquet`, every parsed record written), to see
  what the window adds; its lake is also the ground truth for the checks.

After each round the outputs are compared with DuckDB, in a child process: per (minute, response, verb)
`requests` and `total_bytes` of loglake and of Bytewax against each other (`EXCEPT ALL` both ways) and
against a `GROUP BY` over the parsed records. loglake must equal that truth both ways (else nothing is
recorded); Bytewax may only fall short of it, by the records its EventClock dropped as late (silently),
counted from the totals. Every loglake `p95_bytes` must have a true rank within 0.95 ± the KLL sketch's stated
rank error (a warning otherwise: the bound holds with 99% confidence per estimate).
The report gives records/s (input lines / wall seconds) as median with min–max, peak RSS, the ratio, each
loglake node's busy seconds and the start-up, and is appended to benchmarks/results/window_bench.jsonl.

    python benchmarks/window_bench.py [--lines 1000000] [--runs 3] [--no-parse-only]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from recording import compile_sources, header, record, spread  # type: ignore[import-not-found]

# This process only generates the input, starts the runs and records: on Linux a child's ru_maxrss is at least
# the parent's own peak RSS at the time it was started, so everything heavy (DuckDB, pyarrow, the checks)
# runs in child processes and the launcher stays small (its peak is recorded as `launcher_peak_rss_mib`).

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
APACHE_LOG = REPO.parent / "shared" / "data" / "apache_access_10k.log"
"""10,000 real Apache access-log lines (elastic/examples, Apache License 2.0)."""
WORK = HERE / "work"
START = datetime(2015, 5, 17, 10, 0, tzinfo=timezone.utc)
OUT_OF_ORDER = 0.01
MAX_DELAY_S = 30

WINDOW_STAGE = """\
  per_minute:
    type: window
    tumbling: 1m
    allowed_lateness: 30s
    group_by: [response, verb]
    aggregate: {requests: count(), total_bytes: sum(bytes), p95_bytes: "quantile(bytes, 0.95)"}
"""


# -- input ---------------------------------------------------------------------------------------------

def make_input(lines: int, seed: int = 42) -> tuple[Path, dict[str, int]]:
    """The input file and what was done to it (`out_of_order` lines), generated once per line count."""
    target = WORK / f"apache-window-{lines}.log"
    about = target.with_suffix(".json")
    if target.exists() and about.exists():
        return target, json.loads(about.read_text(encoding="utf-8"))
    WORK.mkdir(parents=True, exist_ok=True)
    moved = [0]
    with target.open("w", encoding="utf-8") as out:
        out.writelines(_resampled(lines, random.Random(seed), moved))
    facts = {"lines": lines, "seed": seed, "out_of_order": moved[0], "max_delay_s": MAX_DELAY_S}
    about.write_text(json.dumps(facts), encoding="utf-8")
    return target, facts


def _resampled(lines: int, rng: random.Random, moved: list[int]) -> Iterator[str]:
    """Random lines of the sample, times stepping evenly through one hour; ~1% moved back by 1–30 s."""
    sample = APACHE_LOG.read_text(encoding="utf-8").splitlines()
    for index in range(lines):
        head, _, rest = rng.choice(sample).partition(" [")
        when = START + timedelta(seconds=3600 * index / lines)
        if rng.random() < OUT_OF_ORDER:
            when -= timedelta(seconds=rng.randint(1, MAX_DELAY_S))
            moved[0] += 1
        yield f"{head} [{when:%d/%b/%Y:%H:%M:%S +0000}{rest[rest.index(']'):]}\n"


def _regex_parsed(source: Path) -> int:
    """Lines the baseline's regex parses (so a Bytewax shortfall is late records, not parse failures)."""
    from naive_fold_window import LINE  # type: ignore[import-not-found]

    match = LINE.match
    with source.open(encoding="utf-8") as lines:
        return sum(1 for line in lines if match(line.rstrip("\n")) is not None)


# -- runs ----------------------------------------------------------------------------------------------

def _pipeline(source: Path, lake: Path, window: bool) -> str:
    stages = "  parse: {type: apache_combined}\n" + (WINDOW_STAGE if window else "")
    sink = "  lake: {type: parquet, dataset: per_minute}" if window else "  lake: {type: parquet, dataset: access}"
    return (
        f"pipeline: window-bench{'' if window else '-parse'}\nlake: {lake}\n"
        f"sources:\n  access: {{type: file, paths: [{source}]}}\n"
        f"stages:\n{stages}sinks:\n{sink}\n"
    )


def _timed(argv: list[str], log: Path) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (MiB) and output (stdout + stderr) of a child process."""
    with log.open("w+b") as out:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{text}")
    return elapsed, usage.ru_maxrss // 1024, text


_HEADLINE = re.compile(r"finished in ([0-9.]+) s")


def _summary(text: str) -> dict[str, Any]:
    """From `loglake run`'s summary: the dataflow's own seconds, busy seconds per node, the window's late count."""
    found = _HEADLINE.search(text)
    busy: dict[str, float] = {}
    late = None
    for line in text.splitlines():
        cells = line.split()
        if len(cells) >= 3 and cells[0] in ("access", "parse", "per_minute", "lake", "dead_letter") and re.fullmatch(r"[0-9.]+", cells[-1]):
            busy[cells[0]] = float(cells[-1])
            if cells[0] == "per_minute" and "late" in cells:
                late = int(cells[cells.index("late") - 1].replace(",", ""))
    return {"dataflow_s": float(found.group(1)) if found else None, "busy_s": busy, "late": late}


def run_loglake(source: Path, window: bool) -> dict[str, Any]:
    out = WORK / ("window-loglake" if window else "window-parse-only")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    pipeline = out / "pipeline.yaml"
    pipeline.write_text(_pipeline(source, out / "lake", window), encoding="utf-8")
    argv = [sys.executable, "-m", "loglake.pipelines.cli", "run", str(pipeline)]
    elapsed, rss, text = _timed(argv, out / "run.log")
    return {"wall_s": elapsed, "rss_mib": rss, **_summary(text)}


def run_naive(source: Path) -> dict[str, Any]:
    out = WORK / "window-naive"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    elapsed, rss, _ = _timed([sys.executable, str(HERE / "naive_fold_window.py"), str(source), str(out / "rows")], out / "run.log")
    return {"wall_s": elapsed, "rss_mib": rss}


# -- checks --------------------------------------------------------------------------------------------

def _scalar(con: Any, sql: str) -> Any:
    rows = con.sql(sql).fetchall()
    return rows[0][0] if rows else None


def check(source: Path, with_truth: bool) -> dict[str, Any]:
    """Compare the last round's window outputs with each other and (with the parse-only lake) with the truth.

    Run in a child process (`--check-only`), so that DuckDB's memory does not count in later runs' peak RSS.
    """
    import duckdb

    from loglake.operators.window.sketches import QUANTILE_RANK_ERROR

    regex_parsed = _regex_parsed(source)
    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    key = "window_start, response, verb, requests, total_bytes"
    con.sql(f"CREATE VIEW ours AS SELECT {key}, p95_bytes FROM read_parquet('{WORK}/window-loglake/lake/per_minute/**/*.parquet', hive_partitioning = false)")
    con.sql(f"CREATE VIEW naive AS SELECT {key}, p95_bytes FROM read_parquet('{WORK}/window-naive/rows/*.parquet')")

    def except_all(a: str, b: str) -> int:
        return int(_scalar(con, f"SELECT count(*) FROM (SELECT {key} FROM {a} EXCEPT ALL SELECT {key} FROM {b})"))

    ours_total = int(_scalar(con, "SELECT sum(requests) FROM ours"))
    naive_total = int(_scalar(con, "SELECT sum(requests) FROM naive"))
    result: dict[str, Any] = {
        "window_rows": {"loglake": int(_scalar(con, "SELECT count(*) FROM ours")), "bytewax": int(_scalar(con, "SELECT count(*) FROM naive"))},
        "records_in_windows": {"loglake": ours_total, "bytewax": naive_total},
        "regex_parsed": regex_parsed,
        "bytewax_lost_late": regex_parsed - naive_total,
        "loglake_except_bytewax": except_all("ours", "naive"),
        "bytewax_except_loglake": except_all("naive", "ours"),
    }
    if not with_truth:
        return result
    parsed = f"read_parquet('{WORK}/window-parse-only/lake/access/**/*.parquet', hive_partitioning = false)"
    con.sql(f"CREATE TABLE raw AS SELECT date_trunc('minute', timestamp) AS window_start, response, verb, bytes FROM {parsed}")
    con.sql("CREATE VIEW truth AS SELECT window_start, response, verb, count(*) AS requests, sum(bytes)::BIGINT AS total_bytes FROM raw GROUP BY ALL")
    over = _scalar(con, f"""
        SELECT count(*) FROM naive n JOIN truth t ON n.window_start = t.window_start AND n.response = t.response
            AND n.verb IS NOT DISTINCT FROM t.verb WHERE n.requests > t.requests""")
    ranks = con.sql("""
        SELECT o.p95_bytes, count(r.bytes) AS n, count(*) FILTER (WHERE r.bytes < o.p95_bytes) AS below,
               count(*) FILTER (WHERE r.bytes <= o.p95_bytes) AS upto
        FROM ours o JOIN raw r ON r.window_start = o.window_start AND r.response = o.response AND r.verb IS NOT DISTINCT FROM o.verb
        GROUP BY o.window_start, o.response, o.verb, o.p95_bytes""").fetchall()
    misses, worst = 0, 0.0
    for p95, n, below, upto in ranks:
        if not n:
            misses += p95 is not None
            continue
        if p95 is None:
            misses += 1
            continue
        off = max(below / n - 0.95, 0.95 - upto / n, 0.0)  # distance of the value's rank interval from 0.95
        worst = max(worst, off)
        misses += off > QUANTILE_RANK_ERROR
    result.update({
        "parsed_records": int(_scalar(con, "SELECT count(*) FROM raw")),
        "loglake_except_truth": except_all("ours", "truth"),
        "truth_except_loglake": except_all("truth", "ours"),
        "bytewax_except_truth": except_all("naive", "truth"),
        "truth_except_bytewax": except_all("truth", "naive"),
        "bytewax_rows_over_truth": int(over),
        "p95_checked": len(ranks),
        "p95_outside_rank_error": misses,
        "p95_worst_rank_error": round(worst, 5),
        "kll_rank_error": round(QUANTILE_RANK_ERROR, 5),
        "p95_median_rel_diff_to_numpy": _scalar(con, """
            SELECT round(median(abs(o.p95_bytes - n.p95_bytes) / nullif(n.p95_bytes, 0)), 4) FROM ours o JOIN naive n
            ON o.window_start = n.window_start AND o.response = n.response AND o.verb IS NOT DISTINCT FROM n.verb"""),
    })
    return result


def _check_in_child(lines: int, with_truth: bool) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--check-only", "--lines", str(lines)] + ([] if with_truth else ["--no-parse-only"])
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the check failed:\n{done.stderr}")
    checked: dict[str, Any] = json.loads(done.stdout)
    return checked


def _stats(runs: list[dict[str, Any]], lines: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "records_per_s": spread([lines / r["wall_s"] for r in runs]),
        "wall_s": [round(r["wall_s"], 2) for r in runs],
        "peak_rss_mib": max(r["rss_mib"] for r in runs),
        "rss_mib": [r["rss_mib"] for r in runs],
    }
    if runs and runs[0].get("dataflow_s") is not None:
        out["dataflow_s_median"] = round(statistics.median(r["dataflow_s"] for r in runs), 2)
        out["startup_and_teardown_s_median"] = round(statistics.median(r["wall_s"] - r["dataflow_s"] for r in runs), 2)
        nodes = runs[0]["busy_s"].keys()
        out["busy_s_median"] = {node: round(statistics.median(r["busy_s"].get(node, 0.0) for r in runs), 2) for node in nodes}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-parse-only", action="store_true", help="skip the loglake run without the window (and the checks against it)")
    parser.add_argument("--check-only", action="store_true", help=argparse.SUPPRESS)  # the comparison, in its own process
    args = parser.parse_args()
    compile_sources()
    source, facts = make_input(args.lines)
    if args.check_only:
        print(json.dumps(check(source, with_truth=not args.no_parse_only)))
        return
    runs: dict[str, list[dict[str, Any]]] = {"loglake": [], "bytewax": [], "parse_only": []}
    checks: list[dict[str, Any]] = []
    for index in range(args.runs):
        runs["loglake"].append(run_loglake(source, window=True))
        runs["bytewax"].append(run_naive(source))
        if not args.no_parse_only:
            runs["parse_only"].append(run_loglake(source, window=False))
        checks.append(_check_in_child(args.lines, with_truth=not args.no_parse_only))
        print(f"run {index + 1}: " + ", ".join(f"{name} {r[-1]['wall_s']:.2f} s" for name, r in runs.items() if r)
              + f"; Bytewax lost {checks[-1]['bytewax_lost_late']} late, loglake late {runs['loglake'][-1]['late']}", file=sys.stderr)
    ours, naive = _stats(runs["loglake"], args.lines), _stats(runs["bytewax"], args.lines)
    last = checks[-1]
    for checked in checks:
        wrong = {name: checked.get(name) for name in ("loglake_except_truth", "truth_except_loglake", "bytewax_rows_over_truth") if checked.get(name)}
        if wrong or checked["bytewax_lost_late"] < 0:
            raise SystemExit(f"outputs disagree: {wrong or checked}")
        if checked.get("p95_outside_rank_error"):
            print(f"warning: {checked['p95_outside_rank_error']} p95 values outside the KLL rank error", file=sys.stderr)
    if last["records_in_windows"]["loglake"] + (runs["loglake"][-1]["late"] or 0) != last["regex_parsed"]:
        print(f"warning: loglake counted {last['records_in_windows']['loglake']} records in windows, the regex parses {last['regex_parsed']}", file=sys.stderr)
    result: dict[str, Any] = {
        **header(lines=args.lines, runs=args.runs, workers=1, input={**facts, "file": source.name}),
        "loglake": {**ours, "late": [r["late"] for r in runs["loglake"]]},
        "bytewax_fold_window": {**naive, "lost_late": [c["bytewax_lost_late"] for c in checks]},
        "speedup_median": round(ours["records_per_s"]["median"] / naive["records_per_s"]["median"], 1),
        "check": last,
        "launcher_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }
    if runs["parse_only"]:
        only = _stats(runs["parse_only"], args.lines)
        result["loglake_parse_only"] = only
    record("window_bench", result)


if __name__ == "__main__":
    main()
