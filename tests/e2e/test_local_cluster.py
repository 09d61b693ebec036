"""`loglake run --processes N`: one command starts a local cluster, which writes what one process writes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from tests.e2e.conftest import Runner, loglake_command
from tests.support import APACHE_LOG

pytestmark = pytest.mark.e2e

PIPELINE = """\
pipeline: access-cluster
lake: {lake}
sources:
  access: {{type: file, paths: ["{logs}/*.log"]}}
stages:
  parse: {{type: apache_combined}}
  ua: {{type: user_agent, field: agent, target: ua}}
  split: {{type: route, routes: {{errors: "response >= 500", bots: "ua.is_bot"}}}}
  hourly:
    type: window
    inputs: [ua]
    tumbling: 1h
    allowed_lateness: 5m
    group_by: [response]
    aggregate: {{requests: count(), clients: count_distinct(clientip)}}
sinks:
  per_hour: {{type: parquet, inputs: [hourly], dataset: hourly}}
  records: {{type: parquet, inputs: [split], dataset: records}}
  bots: {{type: parquet, inputs: [split.bots], dataset: bots}}
"""


@pytest.fixture
def two_logs(tmp_path: Path) -> Path:
    """The real log split in two files (two source partitions for two processes to share)."""
    lines = APACHE_LOG.read_text(encoding="utf-8").splitlines(keepends=True)
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a.log").write_text("".join(lines[: len(lines) // 2]), encoding="utf-8")
    (folder / "b.log").write_text("".join(lines[len(lines) // 2 :]), encoding="utf-8")
    return folder


def _pipeline(tmp_path: Path, logs: Path, lake: str) -> str:
    path = tmp_path / f"{lake}.yaml"
    path.write_text(PIPELINE.format(lake=tmp_path / lake, logs=logs), encoding="utf-8")
    return str(path)


def _rows(lake: Path, dataset: str, columns: str) -> list[tuple[object, ...]]:
    return duckdb.sql(f"SELECT {columns} FROM read_parquet('{lake}/{dataset}/**/*.parquet', union_by_name = true) ORDER BY ALL").fetchall()


def test_two_processes_write_what_one_process_writes(tmp_path: Path, two_logs: Path, loglake: Runner) -> None:
    loglake("run", _pipeline(tmp_path, two_logs, "single"))
    done = loglake("run", _pipeline(tmp_path, two_logs, "cluster"), "--processes", "2")

    assert "on 2 processes: 10,000 records read" in done.stdout
    assert "records " in done.stdout and "9,999" in done.stdout  # one summary, the processes' counts summed
    single, cluster = tmp_path / "single", tmp_path / "cluster"
    record_columns = "clientip, timestamp, request, response, bytes, agent, ua.is_bot"
    assert len(_rows(cluster, "records", record_columns)) == 9_999
    assert _rows(cluster, "records", record_columns) == _rows(single, "records", record_columns)
    assert _rows(cluster, "bots", record_columns) == _rows(single, "bots", record_columns)
    assert _rows(cluster, "hourly", "window_start, response, requests, clients") == _rows(single, "hourly", "window_start, response, requests, clients")
    writers = {path.name.split("-")[2] for path in (cluster / "records").rglob("*.parquet")}
    assert len(writers) == 2, f"both processes should have written records: {writers}"


def test_a_failing_process_fails_the_run_and_says_which(tmp_path: Path, two_logs: Path, loglake: Runner) -> None:
    (tmp_path / "blocker").write_text("a file where the lake's folder should be", encoding="utf-8")
    pipeline = tmp_path / "broken.yaml"
    pipeline.write_text(PIPELINE.format(lake=tmp_path / "blocker" / "lake", logs=two_logs), encoding="utf-8")

    done = loglake("run", str(pipeline), "--processes", "2", check=False)

    assert done.returncode == 1
    assert "Not a directory" in done.stderr and "of the 2-process cluster failed" in done.stderr
    assert "Traceback" not in done.stderr and "panic" not in done.stderr


def test_processes_and_addresses_contradict(tmp_path: Path, two_logs: Path, loglake: Runner) -> None:
    done = loglake("run", _pipeline(tmp_path, two_logs, "lake"), "--processes", "2", "-a", "127.0.0.1:5000", check=False)
    assert done.returncode != 0 and "leave out --addresses" in done.stderr


def test_ctrl_c_reaches_every_process_once_and_they_stop_cleanly(tmp_path: Path, two_logs: Path) -> None:
    lake = tmp_path / "following"
    launcher = subprocess.Popen(
        loglake_command("run", _pipeline(tmp_path, two_logs, "following"), "--processes", "2", "--follow"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"},
    )
    time.sleep(10)  # started and tailing: 10k lines take well under a second once running
    launcher.send_signal(signal.SIGINT)
    stdout, stderr = launcher.communicate(timeout=90)

    assert launcher.returncode == 0, stderr
    assert "stopped in" in stdout and "on 2 processes" in stdout
    written = int(re.search(r"^records\s+parquet\s+([0-9,]+)", stdout, re.MULTILINE).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert written > 0 and len(_rows(lake, "records", "clientip, timestamp, request")) == written


def test_a_configuration_error_is_reported_once_with_its_line(tmp_path: Path, two_logs: Path, loglake: Runner) -> None:
    pipeline = tmp_path / "typo.yaml"
    pipeline.write_text(PIPELINE.format(lake=tmp_path / "lake", logs=two_logs).replace("count_distinct(clientip)", "count_distinct(client_ip)"), encoding="utf-8")

    done = loglake("run", str(pipeline), "--processes", "2", check=False)

    assert done.returncode == 2
    assert done.stderr.count("no record reaching this window has a field 'client_ip'") == 1, done.stderr
    assert "typo.yaml:" in done.stderr and "nothing was started" in done.stderr
