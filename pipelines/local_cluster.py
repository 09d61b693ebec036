"""`loglake run --processes N`: a cluster of N processes on this machine, started, watched and reported as one run.

Bytewax's workers are threads of one process, so the stages that hold Python's GIL (grok's regex, user-agent
parsing, Parquet encoding calls) use about one core however many workers a process has; processes use one
core each. The launcher picks N free loopback ports, starts `loglake run … -i K -a <all N>` N times, each in
its own session (a Ctrl-C reaches the launcher once, which passes it on once), passes SIGINT/SIGTERM on,
stops the others when one fails, and merges what the processes report (`--result-json`) into one result.

The processes share the sources' partitions (a Kafka topic's partitions, a glob's files), exchange window
state over TCP, write the lake side by side and merge their checkpoint positions, exactly like a cluster
started by hand with `-i/-a`; `--recovery-dir` keeps one snapshot file per process in the same folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from loglake.pipelines.broker import free_port
from loglake.pipelines.runner import NodeReport, RunResult, on_stop_signals
from loglake.schemas.errors import TerminalError

__all__ = ["ClusterFailed", "run_local_cluster", "process_command", "write_result", "read_result", "merge_results"]

_STOP_GRACE_S = 30.0
"""How long the other processes get to stop cleanly after one failed, before they are killed."""
_POLL_S = 0.2
SPEC_EXIT_STATUS = 2
"""A process's exit status for a configuration error: every process finds it, process 0 alone reports it."""


class ClusterFailed(TerminalError):
    """A process of the cluster failed; the others were stopped. Its own error is on stderr already."""

    def __init__(self, index: int, processes: int, exit_status: int) -> None:
        self.index, self.exit_status = index, exit_status
        super().__init__(f"process {index} of the {processes}-process cluster failed (exit status {exit_status}); the others were stopped")


def process_command(pipeline: str, index: int, addresses: Sequence[str], run_flags: Sequence[str], result: Path,
                    global_flags: Sequence[str] = ()) -> list[str]:
    """The command line of process `index`: the same `loglake run` with its place in the cluster."""
    return [sys.executable, "-m", "loglake.pipelines.cli", *global_flags, "run", pipeline, *run_flags,
            "-i", str(index), "-a", ",".join(addresses), "--result-json", str(result)]


def run_local_cluster(pipeline: str, processes: int, run_flags: Sequence[str], global_flags: Sequence[str] = (),
                      metrics_port: int | None = None) -> RunResult:
    """Run `pipeline` as `processes` local processes; their merged result once all have ended.

    Every process gets `run_flags` (`-w`, `--reset`, …) and `global_flags` (`-v`, `--debug`); process K
    serves metrics on `metrics_port + K`. The launcher itself reads nothing: the processes check the pipeline
    as they start (process 0 alone reports configuration errors), so none waits for the launcher's imports.

    Raises:
        ClusterFailed: a process failed (exit status 2: the configuration; the others are stopped).
    """
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(processes)]
    with tempfile.TemporaryDirectory(prefix="loglake-cluster-") as folder:
        results = [Path(folder) / f"process-{index}.json" for index in range(processes)]
        commands = []
        for index, result in enumerate(results):
            metrics = ["--metrics-port", str(metrics_port + index)] if metrics_port is not None else []
            commands.append(process_command(pipeline, index, addresses, [*run_flags, *metrics], result, global_flags))
        children = [subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True) for command in commands]
        with _passing_signals_on(children):
            failed = _wait_for_all(children)
        if failed is not None:
            index, code = failed
            raise ClusterFailed(index, processes, code)
        return merge_results([read_result(path) for path in results])


@contextmanager
def _passing_signals_on(children: list[subprocess.Popen[bytes]]) -> Iterator[None]:
    """SIGINT and SIGTERM sent to the launcher go to every process still running (each drains and commits)."""

    def pass_on(signum: int, frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    with on_stop_signals(pass_on):
        yield


def _wait_for_all(children: list[subprocess.Popen[bytes]]) -> tuple[int, int] | None:
    """Wait until every process has ended; the first to fail (index, exit status) after stopping the rest, or None."""
    while True:
        codes = [child.poll() for child in children]
        failed = next(((index, code) for index, code in enumerate(codes) if code not in (None, 0)), None)
        if failed is not None:
            if failed[1] == SPEC_EXIT_STATUS:  # let process 0 finish reporting the configuration's problems
                try:
                    children[0].wait(_STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    pass
            _stop(children)
            return failed
        if all(code == 0 for code in codes):
            return None
        time.sleep(_POLL_S)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to the processes still running (a clean stop), then SIGKILL to those not done within the grace time."""
    running = [child for child in children if child.poll() is None]
    for child in running:
        child.terminate()
    deadline = time.monotonic() + _STOP_GRACE_S
    for child in running:
        try:
            child.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def write_result(result: RunResult, path: Path) -> None:
    """One process's result as JSON, for the launcher."""
    data = asdict(result)
    data["lake_dir"], data["checkpoint"] = str(result.lake_dir), str(result.checkpoint)
    data["datasets"] = {name: str(folder) for name, folder in result.datasets.items()}
    path.write_text(json.dumps(data), encoding="utf-8")


def read_result(path: Path) -> RunResult:
    """A result `write_result` wrote."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return RunResult(
        pipeline=data["pipeline"],
        elapsed=data["elapsed"],
        nodes=[NodeReport(**node) for node in data["nodes"]],
        lake_dir=Path(data["lake_dir"]),
        checkpoint=Path(data["checkpoint"]),
        stopped_early=data["stopped_early"],
        resumed=data["resumed"],
        datasets={name: Path(folder) for name, folder in data["datasets"].items()},
        processes=data["processes"],
    )


def merge_results(results: Sequence[RunResult]) -> RunResult:
    """The processes' results as one run: the longest elapsed time, every node's counts summed (busy time too)."""
    first = results[0]
    nodes = []
    for node in first.nodes:
        counts: dict[str, int] = {}
        for result in results:
            for other in result.nodes:
                if other.name == node.name:
                    for key, value in other.counts.items():
                        counts[key] = counts.get(key, 0) + value
        nodes.append(NodeReport(node.name, node.kind, node.type_name, counts))
    return RunResult(
        pipeline=first.pipeline,
        elapsed=max(result.elapsed for result in results),
        nodes=nodes,
        lake_dir=first.lake_dir,
        checkpoint=first.checkpoint,
        stopped_early=any(result.stopped_early for result in results),
        resumed=any(result.resumed for result in results),
        datasets={name: folder for result in results for name, folder in result.datasets.items()},
        processes=sum(result.processes for result in results),
    )
