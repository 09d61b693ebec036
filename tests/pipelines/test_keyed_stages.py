"""Multiline and dedupe as keyed stages: their state lives per worker bucket in Bytewax state (so it is in the
recovery snapshots), and dedupe routes records by key (so one key meets one state across workers and processes)."""

from __future__ import annotations

import json
import logging
import pickle
import subprocess
import sys
import zlib
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest

from loglake.pipelines.broker import free_port
from loglake.pipelines.runner import RunOptions, run_pipeline
from loglake.schemas.stage import tag_partition
from tests.e2e.conftest import loglake_command
from tests.parsers.test_multiline import DATE_START, JAVA
from tests.support import APACHE_LOG, batch_of, build_stage

LINES = APACHE_LOG.read_text(encoding="utf-8").splitlines()
NOW = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)

DEDUPE_PIPELINE = """\
pipeline: once
lake: lake
sources:
  access: {{type: file, paths: [{paths}], start_at: beginning, batch_size: 250}}
stages:
  parse: {{type: apache_combined}}
  once: {{type: dedupe, key: [message], window: 7d}}
sinks:
  lake: {{type: parquet, dataset: access, partition_by: []}}
"""
"""A 7-day window outlasts the log's 4 days: every repeat is a duplicate however the readers interleave."""

MULTILINE_PIPELINE = f"""\
pipeline: traces
lake: lake
sources:
  logs: {{type: file, paths: [a.log, b.log], start_at: beginning, batch_size: 4}}
stages:
  events: {{type: multiline, pattern: '{DATE_START}', negate: true}}
sinks:
  lake: {{type: parquet, dataset: events, partition_by: []}}
"""


def _parsed(lines: list[str]) -> list[str]:
    """The lines `apache_combined` parses (one real line is cut short and goes to `parse.dropped`)."""
    parsed: list[str] = build_stage("{type: apache_combined}").process(batch_of(message=lines)).main.column("message").to_pylist()
    return parsed


def _write_lines(folder: Path, name: str, lines: list[str]) -> None:
    (folder / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _lake_counts(lake: Path, dataset: str, column: str) -> tuple[int, int]:
    rows = duckdb.sql(f"SELECT count(*), count(DISTINCT {column}) FROM read_parquet('{lake}/{dataset}/**/*.parquet')").fetchall()
    return int(rows[0][0]), int(rows[0][1])


@pytest.fixture
def overlapping_logs(tmp_path: Path) -> Path:
    """The real log in two files that share 2,000 lines (a.log: lines 1–6000, b.log: lines 4001–10000)."""
    _write_lines(tmp_path, "a.log", LINES[:6000])
    _write_lines(tmp_path, "b.log", LINES[4000:])
    (tmp_path / "pipeline.yaml").write_text(DEDUPE_PIPELINE.format(paths="a.log, b.log"))
    return tmp_path / "pipeline.yaml"


# -- dedupe in the engine --------------------------------------------------------------------------------


def test_dedupe_over_two_workers_keeps_each_line_once(overlapping_logs: Path) -> None:
    result = run_pipeline(overlapping_logs, RunOptions(workers=2))

    distinct = len(set(_parsed(LINES)))  # the real log repeats a few lines itself
    assert _lake_counts(overlapping_logs.parent / "lake", "access", "message") == (distinct, distinct)
    once = next(node for node in result.nodes if node.name == "once")
    assert once.counts["duplicates"] == len(_parsed(LINES[:6000])) + len(_parsed(LINES[4000:])) - distinct


@pytest.mark.e2e
def test_dedupe_over_two_processes_keeps_each_line_once(overlapping_logs: Path) -> None:
    """Each process reads its own files; keys still meet one state (DuckDB's hash is the same in both)."""
    addresses = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    processes = [
        subprocess.Popen(
            loglake_command("run", "pipeline.yaml", "--process-id", str(index), "--addresses", addresses),
            cwd=overlapping_logs.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr

    distinct = len(set(_parsed(LINES)))
    assert _lake_counts(overlapping_logs.parent / "lake", "access", "message") == (distinct, distinct)


def test_dedupe_keys_come_back_from_the_snapshot(tmp_path: Path) -> None:
    """A file added after a run only has keys the first run saw: the resumed run drops them (the JSON checkpoint
    holds only source positions; the keys are in the Bytewax snapshot)."""
    (tmp_path / "pipeline.yaml").write_text(DEDUPE_PIPELINE.format(paths="'*.log'"))
    _write_lines(tmp_path, "a.log", LINES[:6000])
    recovery = tmp_path / "recovery"
    run_pipeline(tmp_path / "pipeline.yaml", RunOptions(recovery_dir=recovery))
    _write_lines(tmp_path, "b.log", LINES[4000:6000])

    resumed = run_pipeline(tmp_path / "pipeline.yaml", RunOptions(recovery_dir=recovery))

    once = next(node for node in resumed.nodes if node.name == "once")
    assert (once.counts["records_in"], once.counts.get("records_out", 0)) == (2000, 0)
    distinct = len(set(_parsed(LINES[:6000])))
    assert _lake_counts(tmp_path / "lake", "access", "message") == (distinct, distinct)


# -- multiline in the engine -----------------------------------------------------------------------------


def test_multiline_events_stay_whole_over_two_workers(tmp_path: Path) -> None:
    """Four-line batches cut every trace; each file's lines still meet one state, whichever worker reads them."""
    _write_lines(tmp_path, "a.log", JAVA * 40)
    _write_lines(tmp_path, "b.log", [line.replace("Request failed", "Upload failed") for line in JAVA] * 40)
    (tmp_path / "pipeline.yaml").write_text(MULTILINE_PIPELINE)

    run_pipeline(tmp_path / "pipeline.yaml", RunOptions(workers=2))

    events = duckdb.sql(f"SELECT message, count(*) FROM read_parquet('{tmp_path}/lake/events/*.parquet') GROUP BY 1").fetchall()
    trace = "\n".join(JAVA[:6])
    assert sorted(events) == sorted([(trace, 40), (trace.replace("Request failed", "Upload failed"), 40), (JAVA[6], 80)])


def test_a_recovery_run_no_longer_warns_about_multiline(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write_lines(tmp_path, "a.log", JAVA)
    _write_lines(tmp_path, "b.log", JAVA)
    (tmp_path / "pipeline.yaml").write_text(MULTILINE_PIPELINE)

    with caplog.at_level(logging.WARNING, logger="loglake.pipelines.runner"):
        run_pipeline(tmp_path / "pipeline.yaml", RunOptions(recovery_dir=tmp_path / "recovery"))

    assert [record.getMessage() for record in caplog.records if "outside the recovery snapshots" in record.getMessage()] == []


# -- the hooks -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("partition", ["/logs/a.log", "/logs/b.log", "orders-3"])
def test_multiline_routes_a_batch_whole_to_its_partitions_bucket(partition: str) -> None:
    """The bucket is the one the engine's sinks use for the partition (adler32, the same in every process)."""
    stage = build_stage(f"{{type: multiline, pattern: '{DATE_START}', negate: true}}")
    parts = stage.route(tag_partition(batch_of(message=JAVA, source=[partition] * 7), partition), 4)

    expected = [0, 0, 0, 0]
    expected[zlib.adler32(partition.encode()) % 4] = 7
    assert [part.num_rows for part in parts] == expected


def test_multiline_end_of_another_partition_releases_nothing() -> None:
    """Every bucket hears every end marker; a bucket releases only what came from the partition that ended."""
    stage = build_stage(f"{{type: multiline, pattern: '{DATE_START}', negate: true}}")
    state = stage.new_state()
    stage.apply(state, batch_of(message=JAVA[:3], source=["a.log"] * 3), "a.log", None, NOW)
    stage.apply(state, batch_of(message=JAVA[:2], source=["untagged"] * 2), "", None, NOW)

    released = stage.on_flush(state, "b.log", NOW)
    assert released is not None and released.main.column("source").to_pylist() == ["untagged"]  # untagged: nothing else ends it
    assert stage.on_flush(state, "b.log", NOW) is None
    released = stage.on_flush(state, "a.log", NOW)
    assert released is not None and released.main.column("message").to_pylist() == ["\n".join(JAVA[:3])]


def test_a_pickled_multiline_state_mid_event_resumes_the_event() -> None:
    """Real log lines, then a trace cut after its third line: the snapshot holds only the open event."""
    stage = build_stage(r"{type: multiline, pattern: '^([[:space:]]+(at|\.\.\.) |Caused by:)'}")
    first = batch_of(message=[*LINES[:2000], *JAVA[:4]], source=["app.log"] * 2004)
    assert stage.process(first).main.num_rows == 2001  # the log lines and JAVA[0]; JAVA[1:4] stay open

    snapshot = pickle.dumps(stage.state)
    restored = build_stage(r"{type: multiline, pattern: '^([[:space:]]+(at|\.\.\.) |Caused by:)'}")
    restored.state = pickle.loads(snapshot)

    rest = batch_of(message=JAVA[4:], source=["app.log"] * 3)
    expected = ["\n".join(JAVA[1:6])]
    assert restored.process(rest).main.column("message").to_pylist() == expected
    assert stage.process(rest).main.column("message").to_pylist() == expected
    assert len(snapshot) < len(pickle.dumps(first)) // 50


def test_dedupe_routes_a_key_to_the_same_bucket_in_every_batch_and_process() -> None:
    stage = build_stage("{type: dedupe, key: [host]}")
    halves = [batch_of(host=[line.split()[0] for line in lines]) for lines in (LINES[:5000], LINES[5000:])]
    routed = [[part.column("host").to_pylist() for part in stage.route(half, 3)] for half in halves]

    for half, parts in zip(halves, routed):
        assert sorted(host for hosts in parts for host in hosts) == sorted(half.column("host").to_pylist())
        assert sum(len(set(hosts)) for hosts in parts) == len(set(half.column("host").to_pylist()))  # no host in two buckets
    bucket_of = [{host: index for index, hosts in enumerate(parts) for host in hosts} for parts in routed]
    shared = bucket_of[0].keys() & bucket_of[1].keys()
    assert shared and all(bucket_of[0][host] == bucket_of[1][host] for host in shared)
    assert all(routed[0])  # every bucket gets hosts

    script = (
        "import json, sys; from tests.support import build_stage, batch_of;"
        "hosts = json.load(sys.stdin); stage = build_stage('{type: dedupe, key: [host]}');"
        "print(json.dumps([p.column('host').to_pylist() for p in stage.route(batch_of(host=hosts), 3)]))"
    )
    hosts = halves[0].column("host").to_pylist()
    elsewhere = subprocess.run([sys.executable, "-c", script], input=json.dumps(hosts), capture_output=True, text=True, check=True)
    assert json.loads(elsewhere.stdout) == routed[0]


def test_dedupe_routes_records_without_a_complete_key_to_the_first_bucket() -> None:
    stage = build_stage("{type: dedupe, key: [host, status]}")
    parts = stage.route(batch_of(id=[1, 2, 3, 4], host=["a", None, "c", "d"], status=[200, 200, None, 404]), 3)
    assert {2, 3} <= set(parts[0].column("id").to_pylist())
    assert sorted(row for part in parts for row in part.column("id").to_pylist()) == [1, 2, 3, 4]


def test_a_pickled_dedupe_state_decides_as_the_original() -> None:
    parse = build_stage("{type: apache_combined}")
    first, second = (parse.process(batch_of(message=lines)).main for lines in (LINES[:6000], LINES[4000:]))
    stage = build_stage("{type: dedupe, key: [clientip, request], window: 10m}")
    stage.process(first)

    restored = build_stage("{type: dedupe, key: [clientip, request], window: 10m}")
    restored.state = pickle.loads(pickle.dumps(stage.state))

    assert list(restored.state.times.items()) == list(stage.state.times.items())  # order too: it decides expiry
    assert restored.state.clock == stage.state.clock
    kept = restored.process(second).main
    assert kept.to_pydict() == stage.process(second).main.to_pydict()
    assert 0 < kept.num_rows < second.num_rows

