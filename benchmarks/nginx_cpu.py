"""Benchmark: where the CPU goes when the nginx pipeline runs as one process or as two (the 1.7× question).

Produces `--lines` generated lines (nginx/data.py) to a 2-partition topic on the local broker, then alternates
`loglake run benchmarks/nginx/pipeline.yaml -w 1` and two processes of one worker (`-i/-a`, what
`--processes 2` starts), `--runs` times each. Per run: wall seconds, the loglake processes' CPU seconds
(user + system, from `wait4`), and the broker's CPU seconds (from /proc), against the CPU seconds the two
cores offered. Appended to benchmarks/results/nginx_cpu.jsonl.

    python benchmarks/nginx_cpu.py [--lines 1000000] [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from nginx.children import BENCHMARKS, loglake_run_commands, run_children  # type: ignore[import-not-found]
from nginx.data import WORK, make_input  # type: ignore[import-not-found]
from recording import compile_sources, header, record  # type: ignore[import-not-found]

from loglake.pipelines.broker import start_broker

PIPELINE = BENCHMARKS / "nginx" / "pipeline.yaml"
TOPIC = "nginx-access"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(processes: int, brokers: str, broker_pid: int, folder: Path) -> dict[str, float]:
    shutil.rmtree(folder, ignore_errors=True)  # a lake left by an earlier invocation would resume from its checkpoint and read nothing
    env = {"NGINX_BROKERS": brokers, "NGINX_TOPIC": TOPIC, "LOGLAKE_LAKE": str(folder / "lake")}
    broker_before = _cpu_seconds(broker_pid)
    run = run_children(loglake_run_commands(PIPELINE, 1, processes), [folder / f"run-{index}.log" for index in range(processes)], env)
    return {"wall_s": round(run.wall_s, 2), "loglake_cpu_s": round(run.cpu_s, 2), "broker_cpu_s": round(_cpu_seconds(broker_pid) - broker_before, 2),
            "cpu_offered_s": round(run.wall_s * (os.cpu_count() or 1), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    compile_sources()
    source, facts = make_input(args.lines, False)
    runs: dict[str, list[dict[str, float]]] = {"1 process": [], "2 processes": []}
    with start_broker(log_file=WORK / "nginx-cpu-broker.log") as broker:
        subprocess.run([sys.executable, "-m", "nginx.produce", broker.bootstrap, TOPIC, "2", str(source)], cwd=BENCHMARKS, check=True, capture_output=True)
        broker_pid = int(subprocess.run(["pgrep", "-n", "-f", f"tansu.*{broker.bootstrap}"], capture_output=True, text=True).stdout.split()[0])
        for index in range(args.runs):
            for name, count in (("1 process", 1), ("2 processes", 2)):
                runs[name].append(_measure(count, broker.bootstrap, broker_pid, WORK / "nginx-cpu" / f"{index}-{count}"))
                print(f"{name}: {runs[name][-1]}", file=sys.stderr)
    result: dict[str, Any] = {**header(lines=args.lines, runs=args.runs, input=facts), "runs": runs,
                              "speedup_per_round": [round(one["wall_s"] / two["wall_s"], 2) for one, two in zip(runs["1 process"], runs["2 processes"])],
                              "cpu_ratio_median": round(statistics.median(two["loglake_cpu_s"] / one["loglake_cpu_s"] for one, two in zip(runs["1 process"], runs["2 processes"])), 2)}
    record("nginx_cpu", result)
    print(f"speed-up per round {result['speedup_per_round']}; CPU seconds of 2 processes ÷ 1: {result['cpu_ratio_median']}", file=sys.stderr)


if __name__ == "__main__":
    main()
