"""examples/app-json end to end: the CLI as a subprocess, the lake checked with DuckDB against the input."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from loglake.pipelines.lake import open_lake
from tests.e2e.conftest import Runner, loglake_command

LEVELS = {"INFO": "info", "WARNING": "warn", "ERROR": "error"}


def _expected(data_dir: Path) -> tuple[list[dict[str, object]], list[tuple[str, int]]]:
    """What the pipeline should keep (parsed, humans only) and drop (file, line) — computed without loglake."""
    kept: list[dict[str, object]] = []
    bad: list[tuple[str, int]] = []
    for path in sorted(data_dir.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            try:
                record = json.loads(line)
            except ValueError:
                bad.append((path.name, number))
                continue
            agent = str(record["user_agent"]).lower()
            if "bot" not in agent and "spider" not in agent:
                kept.append(record)
    return kept, bad


def test_run_writes_a_partitioned_lake_that_matches_the_input(loglake: Runner, app_json: Path) -> None:
    done = loglake("run", str(app_json))
    kept, bad = _expected(app_json.parent / "data")

    con = open_lake(pipeline=app_json)
    assert con.sql("SELECT count(*) FROM app").fetchall() == [(len(kept),)]
    levels = dict(con.sql("SELECT level, count(*) FROM app GROUP BY 1").fetchall())
    assert levels == dict(Counter(LEVELS[str(r["level"])] for r in kept))
    hours = {(str(d), int(h)) for d, h in con.sql("SELECT DISTINCT date, hour FROM app").fetchall()}
    assert hours == {(r["ts"][:10], int(r["ts"][11:13])) for r in kept}  # type: ignore[index]
    (sample,) = con.sql("SELECT timestamp, message, status, path, slow FROM app ORDER BY timestamp, message LIMIT 1").fetchall()
    first = min(kept, key=lambda r: (r["ts"], r["msg"]))
    assert sample == (
        datetime.fromisoformat(str(first["ts"]).replace("Z", "+00:00")),
        first["msg"],
        first["http"]["status"],  # type: ignore[index]
        first["http"]["path"],  # type: ignore[index]
        float(first["duration_ms"]) >= 500,  # type: ignore[arg-type]
    )
    dead = con.sql("SELECT source, _line, _error_node, _error FROM dead_letter ORDER BY source, _line").fetchall()
    assert [(Path(s).name, n, node) for s, n, node, _ in dead] == [(name, n, "parse") for name, n in bad]
    assert all("JSON" in error for *_, error in dead)
    assert "/**/" not in done.stdout and "pipeline app-json finished" in done.stdout
    total = sum(len(p.read_text().splitlines()) for p in (app_json.parent / "data").glob("*.jsonl"))
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if line.split()}
    assert rows["parse"][:5] == ["json", f"{total:,}", f"{total - len(bad):,}", f"{len(bad)}", "0"]
    assert rows["humans"][4] == f"{total - len(bad) - len(kept):,}"  # filtered


def test_two_workers_write_the_same_lake_as_one(loglake: Runner, app_json: Path, tmp_path: Path) -> None:
    loglake("run", str(app_json))
    other = app_json.parent / "two-workers.yaml"
    other.write_text(app_json.read_text().replace("${LOGLAKE_LAKE:-lake}", "lake2"))
    loglake("run", str(other), "--workers", "2")
    con = duckdb.connect()
    one = f"read_parquet('{app_json.parent}/lake/app/**/*.parquet', hive_partitioning=true)"
    two = f"read_parquet('{app_json.parent}/lake2/app/**/*.parquet', hive_partitioning=true)"
    columns = "timestamp, message, level, service, host, status, path, slow, source, _line"
    assert con.sql(f"SELECT count(*) FROM {two}").fetchall()[0][0] > 3000
    assert con.sql(f"SELECT {columns} FROM {one} EXCEPT ALL SELECT {columns} FROM {two}").fetchall() == []
    assert con.sql(f"SELECT {columns} FROM {two} EXCEPT ALL SELECT {columns} FROM {one}").fetchall() == []


def test_a_second_run_resumes_from_the_checkpoint(loglake: Runner, app_json: Path) -> None:
    loglake("run", str(app_json))
    again = loglake("run", str(app_json))
    assert "resumed from checkpoint): 0 records read" in again.stdout
    data = app_json.parent / "data" / "app-2.jsonl"
    extra = data.read_text().splitlines()[:5]
    with data.open("a") as handle:
        handle.write("\n".join(extra) + "\n")
    third = loglake("run", str(app_json))
    assert "resumed from checkpoint): 5 records read" in third.stdout
    kept, _ = _expected(app_json.parent / "data")
    assert open_lake(pipeline=app_json).sql("SELECT count(*) FROM app").fetchall() == [(len(kept),)]


def test_follow_mode_tails_files_and_finds_new_ones_until_sigint(app_json: Path, tmp_path: Path) -> None:
    process = subprocess.Popen(loglake_command("run", str(app_json), "--follow"), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)
        data = app_json.parent / "data" / "app-1.jsonl"
        line = data.read_text().splitlines()[0].replace('"level":"INFO"', '"level":"Fatal"')
        with data.open("a") as handle:
            handle.write(line + "\n")
        (app_json.parent / "data" / "app-3.jsonl").write_text(line.replace("web-", "new-") + "\n")  # a file that appears
        time.sleep(3.5)
        assert process.poll() is None, "follow mode ended by itself"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "pipeline app-json stopped" in stdout
    kept, _ = _expected(app_json.parent / "data")
    con = open_lake(pipeline=app_json)
    assert con.sql("SELECT count(*) FROM app").fetchall() == [(len(kept),)]
    assert con.sql("SELECT count(*) FROM app WHERE level = 'fatal'").fetchall() == [(2,)]
    assert con.sql("SELECT count(*) FROM app WHERE source LIKE '%app-3.jsonl'").fetchall() == [(1,)]


@pytest.mark.parametrize("workers", ["1"])
def test_validate_graph_and_query_commands(loglake: Runner, app_json: Path, workers: str) -> None:
    assert "ok — pipeline app-json, 1 source(s), 3 stage(s), 1 sink(s)" in loglake("validate", str(app_json)).stdout
    assert "n_parse -. dropped .-> n_dead_letter" in loglake("graph", str(app_json)).stdout
    loglake("run", str(app_json), "--workers", workers)
    csv_out = loglake("query", "-p", str(app_json), "SELECT level, count(*) AS n FROM app GROUP BY 1 ORDER BY 1", "--format", "csv").stdout
    kept, _ = _expected(app_json.parent / "data")
    counts = Counter(LEVELS[str(r["level"])] for r in kept)
    assert csv_out.splitlines() == ["level,n", *(f"{level},{counts[level]}" for level in sorted(counts))]
    rows = json.loads(loglake("query", "--lake", str(app_json.parent / "lake"), "SELECT count(*) AS n FROM app", "--format", "json").stdout)
    assert rows == [{"n": len(kept)}]
    table = loglake("query", "-p", str(app_json), "SELECT level, count(*) AS n FROM app GROUP BY 1 ORDER BY 1").stdout
    assert "level" in table.splitlines()[0] and f"({len(counts)} rows)" in table
    bad = loglake("query", "-p", str(app_json), "SELECT nope FROM app", check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "datasets you can query: app, dead_letter" in bad.stderr
