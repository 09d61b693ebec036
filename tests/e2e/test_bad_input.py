"""Bad input through the CLI: a clear message, the right exit status, nothing lost, no half file visible."""

from __future__ import annotations

import json
import resource
import signal
from pathlib import Path

import duckdb

from loglake.operators.parquet.lock import LOCK_NAME
from tests.e2e.conftest import Runner

PIPELINE = """
pipeline: bad-input
sources:
  logs: {type: file, paths: [logs/*.log]}
stages:
  parse: {type: json}
sinks:
  lake: {type: parquet, dataset: app, partition_by: [date]}
"""


def _lake_rows(tmp_path: Path, dataset: str) -> list[tuple[object, ...]]:
    glob = tmp_path / "lake" / dataset / "**" / "*.parquet"
    return duckdb.sql(f"SELECT * FROM read_parquet('{glob}', union_by_name = true)").fetchall()


def test_non_utf8_bytes_and_a_1mb_line_are_kept(loglake: Runner, tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    big = json.dumps({"level": "info", "payload": "x" * 1_048_576})
    lines = [b'{"level": "warn", "msg": "caf\xe9 au lait"}', big.encode(), b'{"level": "error", "msg": "ok"}', b"\xff\xfe not json"]
    (tmp_path / "logs" / "app.log").write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    done = loglake("run", "pipeline.yaml")
    assert "4 records read" in done.stdout
    con = duckdb.connect()
    app = f"read_parquet('{tmp_path}/lake/app/**/*.parquet', union_by_name = true)"
    rows = con.sql(f"SELECT _line, level, msg, length(payload) FROM {app} ORDER BY _line").fetchall()
    assert rows == [(1, "warn", "caf\ufffd au lait", None), (2, "info", None, 1_048_576), (3, "error", "ok", None)]
    dead = con.sql(f"SELECT _line, message FROM read_parquet('{tmp_path}/lake/dead_letter/**/*.parquet')").fetchall()
    assert dead == [(4, "\ufffd\ufffd not json")]
    assert "replaced with U+FFFD" in done.stderr and "app.log:1" in done.stderr


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_a_full_disk_stops_with_a_message_and_leaves_no_half_file(loglake: Runner, tmp_path: Path, apache_log: Path) -> None:
    (tmp_path / "logs").mkdir()
    records = [json.dumps({"level": "info", "line": line}) for line in apache_log.read_text().splitlines()]
    (tmp_path / "logs" / "app.log").write_text("\n".join(records) + "\n")
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    done = loglake("run", "pipeline.yaml", check=False, preexec_fn=_limit_file_size)
    assert done.returncode == 1
    assert done.stderr.startswith("error: lake: cannot write ") and "File too large" in done.stderr
    assert "Traceback" not in done.stderr
    leftovers = [p.name for p in (tmp_path / "lake").rglob("*") if p.is_file() and "_checkpoints" not in p.parts and p.name != LOCK_NAME]
    assert all(name.endswith(".parquet") for name in leftovers), leftovers
    assert not (tmp_path / "lake" / "_checkpoints" / "bad-input.json").exists(), "a failed run must not advance the checkpoint"


def test_malformed_yaml_is_reported_with_its_line_and_exit_2(loglake: Runner, tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text("pipeline: x\nsources:\n  logs: {type: file, paths: [a.log]\nsinks: {}\n")
    done = loglake("run", "pipeline.yaml", check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("pipeline.yaml:4:") and "malformed YAML" in done.stderr
    assert done.stderr.rstrip().endswith("1 problem in pipeline.yaml; nothing was started.")


def test_an_unreadable_input_is_a_validate_time_error(loglake: Runner, tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "app.log").mkdir()  # a folder where a file should be
    (tmp_path / "pipeline.yaml").write_text(PIPELINE.replace("logs/*.log", "logs/app.log"))
    done = loglake("validate", "pipeline.yaml", check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("pipeline.yaml:4:22  sources.logs.paths  ")
    assert "app.log" in done.stderr and "directory" in done.stderr and "Traceback" not in done.stderr
