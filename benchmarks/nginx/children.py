"""Running one measured child process, and reading what `loglake run` prints about its run.

Every measured run is its own process: the wall time includes start-up (imports, connecting, assigning
partitions) and teardown, and the peak RSS is the child's own as `wait4` reports it. On Linux that figure
starts from the launcher's peak at fork, so the launcher imports nothing heavy (no pyarrow, DuckDB,
confluent-kafka) and records its own peak next to the results.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Run", "BENCHMARKS", "run_child", "run_children", "loglake_run_commands", "loglake_summary", "merge_summaries"]

BENCHMARKS = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    """One measured child (or cluster of children): wall seconds, peak RSS in MiB, CPU seconds, its output, and
    what was read off that output."""

    wall_s: float
    rss_mib: int
    output: str
    cpu_s: float = 0.0
    """User + system CPU seconds of the child processes (not of their own children)."""
    facts: dict[str, Any] = field(default_factory=dict)


def run_child(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Run:
    """Run `argv` from benchmarks/ (so `-m nginx.…` resolves), its stdout and stderr into `log`; stop on failure."""
    return run_children([argv], [log], env)


def run_children(argvs: list[list[str]], logs: list[Path], env: dict[str, str] | None = None) -> Run:
    """Run processes side by side (a cluster, or just one); wall time until the last exits, RSS the sum of their peaks.

    The processes run side by side for the whole run, so the sum of their peaks bounds what they held at
    once. With several, the outputs are joined in process order, each after a `=== <log>` line. The first
    failure stops the others and the benchmark.
    """
    started = time.perf_counter()
    files = []
    processes = []
    for argv, log in zip(argvs, logs):
        log.parent.mkdir(parents=True, exist_ok=True)
        files.append(log.open("w+b"))
        processes.append(subprocess.Popen(argv, stdout=files[-1], stderr=subprocess.STDOUT, cwd=BENCHMARKS, env={**os.environ, **(env or {})}))
    failed: list[str] = []
    peak_kib = 0
    cpu_s = 0.0
    texts = []
    try:
        for argv, process, out, log in zip(argvs, processes, files, logs):
            _, status, usage = os.wait4(process.pid, 0)
            peak_kib += usage.ru_maxrss
            cpu_s += usage.ru_utime + usage.ru_stime
            out.seek(0)
            texts.append(out.read().decode("utf-8", "replace"))
            if os.waitstatus_to_exitcode(status) != 0:
                failed.append(f"{' '.join(argv)} failed (log: {log}):\n{texts[-1][-4000:]}")
                for other in processes:
                    if other.poll() is None:
                        other.kill()
    finally:
        for out in files:
            out.close()
    if failed:
        raise SystemExit("\n".join(failed))
    output = texts[0] if len(texts) == 1 else "\n".join(f"=== {log}\n{text}" for log, text in zip(logs, texts))
    return Run(time.perf_counter() - started, peak_kib // 1024, output, cpu_s)


def loglake_run_commands(pipeline: Path, workers: int = 1, processes: int = 1) -> list[list[str]]:
    """`loglake run pipeline -w workers`, or one such command per process of a loopback cluster (`-i K -a …`,
    what `loglake run --processes` starts, without its launcher, so each process's peak RSS is measured)."""
    from loglake.pipelines.broker import free_port  # the launcher imports nothing heavy (see the module docs)

    command = [sys.executable, "-m", "loglake.pipelines.cli", "run", str(pipeline), "-w", str(workers)]
    if processes == 1:
        return [command]
    addresses = ",".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    return [[*command, "-i", str(index), "-a", addresses] for index in range(processes)]


_HEADLINE = re.compile(r"finished in ([0-9.]+) s: ([0-9,]+) records read")
_NUMBER = re.compile(r"^[0-9][0-9,]*$")


def loglake_summary(text: str) -> dict[str, Any]:
    """From `loglake run`'s summary table: the dataflow's seconds, and per node its type, counts and busy seconds.

    The table's columns are `node type in out dropped filtered files busy s`, with empty cells left out, so
    cells are read by position only where that is unambiguous: the busy seconds last, `late` after its count.
    """
    found = _HEADLINE.search(text)
    nodes: dict[str, dict[str, Any]] = {}
    in_table = False
    for line in text.splitlines():
        if line.startswith("node ") and line.rstrip().endswith("busy s"):
            in_table = True
            continue
        if in_table and (not line.strip() or line.startswith(("dataset ", "query it"))):
            in_table = False
        if not in_table:
            continue
        cells = line.split()
        if len(cells) < 3 or not re.fullmatch(r"[0-9.]+", cells[-1]):
            continue
        numbers = [int(cell.replace(",", "")) for cell in cells[2:-1] if _NUMBER.match(cell)]
        node: dict[str, Any] = {"type": cells[1], "busy_s": float(cells[-1]), "counts": numbers}
        if "late" in cells:
            node["late"] = int(cells[cells.index("late") - 1].replace(",", ""))
        nodes[cells[0]] = node
    return {
        "dataflow_s": float(found.group(1)) if found else None,
        "records_read": int(found.group(2).replace(",", "")) if found else None,
        "nodes": nodes,
    }


def merge_summaries(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The summaries of a cluster's processes as one: the longest dataflow, records, busy seconds and late summed."""
    nodes: dict[str, dict[str, Any]] = {}
    for summary in summaries:
        for name, node in summary["nodes"].items():
            merged = nodes.setdefault(name, {"type": node["type"], "busy_s": 0.0, "counts": []})
            merged["busy_s"] = round(merged["busy_s"] + node["busy_s"], 2)
            if "late" in node:
                merged["late"] = merged.get("late", 0) + node["late"]
    durations = [summary["dataflow_s"] for summary in summaries if summary["dataflow_s"] is not None]
    records = [summary["records_read"] for summary in summaries if summary["records_read"] is not None]
    return {
        "dataflow_s": max(durations) if durations else None,
        "records_read": sum(records) if records else None,
        "nodes": nodes,
        "processes": len(summaries),
    }
