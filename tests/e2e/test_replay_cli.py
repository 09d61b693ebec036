"""`loglake replay` as users run it: examples/app-json replayed from its files and its lake, and the refusals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from loglake.pipelines.broker import LocalBroker
from loglake.pipelines.produce_cli import produce_lines
from tests.conftest import EXAMPLES
from tests.e2e.conftest import Runner, loglake_command
from tests.support import APACHE_LOG

_ENV = {name: value for name, value in os.environ.items() if name != "LOGLAKE_LAKE"}
AWAY = ["--to", "lake=app_replay", "--to", "dead_letter=dead_letter_replay"]


def _rows(folder: Path, dataset: str) -> str:
    return f"SELECT * EXCLUDE (date, hour) FROM read_parquet('{folder}/lake/{dataset}/**/*.parquet', hive_partitioning = true)"


@pytest.fixture
def app_json_ran(loglake: Runner, app_json: Path) -> Path:
    """examples/app-json, copied and run once (its `app` and `dead_letter` datasets exist)."""
    loglake("run", str(app_json))
    return app_json


def test_a_replay_from_the_files_writes_the_same_records_and_reports_like_a_run(loglake: Runner, app_json_ran: Path) -> None:
    checkpoint = (app_json_ran.parent / "lake" / "_checkpoints" / "app-json.json").read_bytes()

    done = loglake("replay", str(app_json_ran), "--from", "files", "app-json/data/*.jsonl", *AWAY)

    assert done.stdout.startswith("replay of 2 files: pipeline app-json finished in ")
    assert "records read" in done.stdout and "app_logs" in done.stdout and "dataset app_replay: " in done.stdout
    folder = app_json_ran.parent
    for live, replayed in (("app", "app_replay"), ("dead_letter", "dead_letter_replay")):
        ingest = " EXCLUDE (timestamp)" if live == "dead_letter" else ""  # dead letters are stamped when written
        left, right = f"SELECT *{ingest} FROM ({_rows(folder, live)})", f"SELECT *{ingest} FROM ({_rows(folder, replayed)})"
        assert duckdb.sql(f"SELECT count(*) FROM (({left}) EXCEPT ALL ({right}))").fetchall() == [(0,)]
        assert duckdb.sql(f"SELECT count(*) FROM (({right}) EXCEPT ALL ({left}))").fetchall() == [(0,)]
    assert (folder / "lake" / "_checkpoints" / "app-json.json").read_bytes() == checkpoint


def test_a_replay_into_the_live_datasets_is_refused_until_forced(loglake: Runner, app_json_ran: Path) -> None:
    refused = loglake("replay", str(app_json_ran), "--from", "files", "app-json/data/app-1.jsonl", check=False)

    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "error: a replay would write where the pipeline writes in normal runs: dataset 'app' (sink 'lake'), dataset "
        "'dead_letter' (sink 'dead_letter'); send each elsewhere (--to lake=app_replay --to dead_letter=dead_letter_replay; "
        "SINK=stdout prints) or pass --force to write there anyway"
    )
    before = duckdb.sql(f"SELECT count(*) FROM ({_rows(app_json_ran.parent, 'app')})").fetchall()[0][0]

    loglake("replay", str(app_json_ran), "--from", "files", "app-json/data/app-1.jsonl", "--force")

    after = duckdb.sql(f"SELECT count(*) FROM ({_rows(app_json_ran.parent, 'app')})").fetchall()[0][0]
    from_first_file = duckdb.sql(f"SELECT count(*) FROM ({_rows(app_json_ran.parent, 'app')}) WHERE source LIKE '%app-1.jsonl'").fetchall()[0][0]
    assert after - before == from_first_file // 2 > 0


def test_a_lake_replay_to_stdout_prints_records_and_keeps_the_summary_on_stderr(loglake: Runner, app_json_ran: Path) -> None:
    done = loglake(
        "replay", str(app_json_ran), "--from", "lake", "app", "--where", "status >= 400",
        "--since", "2015-05-17T12:00:00", "--until", "2015-05-17T13:59:59Z", "--to", "lake=stdout", "--to", "dead_letter=stdout",
    )

    printed = [json.loads(line) for line in done.stdout.splitlines()]
    expected = duckdb.sql(
        f"SELECT count(*) FROM ({_rows(app_json_ran.parent, 'app')}) WHERE status >= 400 "
        "AND timestamp BETWEEN '2015-05-17T12:00:00Z' AND '2015-05-17T13:59:59Z'"
    ).fetchall()[0][0]
    assert len(printed) == expected > 0
    assert all(record["status"] >= 400 and "12:00:00" <= record["timestamp"][11:19] <= "13:59:59" for record in printed)
    assert "replay of dataset 'app' where status >= 400 from 2015-05-17T12:00:00+00:00 to 2015-05-17T13:59:59+00:00" in done.stderr


def test_an_empty_range_says_so_and_succeeds(loglake: Runner, app_json_ran: Path) -> None:
    done = loglake("replay", str(app_json_ran), "--from", "lake", "app", "--since", "2030-01-01", *AWAY)

    assert done.stdout.splitlines()[0] == "0 records: nothing to replay in dataset 'app' from 2030-01-01T00:00:00+00:00"
    assert "0 records read" in done.stdout


@pytest.fixture(scope="module")
def shared_app_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of examples/app-json that the bad-input cases share (they write nothing)."""
    folder = tmp_path_factory.mktemp("replay_cli")
    shutil.copytree(EXAMPLES / "app-json", folder / "app-json", ignore=shutil.ignore_patterns("lake", "__pycache__"))
    subprocess.run(loglake_command("run", "app-json/pipeline.yaml"), cwd=folder, check=True, capture_output=True, env=_ENV)
    return folder / "app-json" / "pipeline.yaml"


@pytest.mark.parametrize(
    "arguments, code, message",
    [
        (["--from", "nowhere"], 1, "error: --from nowhere: replay from --from files GLOB... | --from lake DATASET | --from kafka"),
        (["--from", "lake", "app", "dead_letter"], 1, "error: --from lake takes one dataset name, not 2"),
        (["--from", "kafka", "topic"], 1, "error: --from kafka takes no argument (got topic); the pipeline's kafka source says where"),
        (["--from", "lake", "ap"], 1, "error: --from lake: no dataset 'ap' in the lake {pipeline_dir}/lake; did you mean 'app'?"),
        (["--from", "lake", "app", "--where", "status >= 400 AND"], 1, "error: --where: invalid SQL expression \"status >= 400 AND\": syntax error at the end of the expression (is it incomplete?)"),
        (["--from", "lake", "app", "--since", "yesterday-ish"], 2, "argument --since: 'yesterday-ish' is neither an ISO-8601 time (e.g. 2015-05-17T10:00:00Z) nor an age (e.g. 2h)"),
        (["--from", "lake", "app", "--since", "2015-05-18", "--until", "2015-05-17"], 1, "error: --since (2015-05-18T00:00:00+00:00) is after --until (2015-05-17T00:00:00+00:00)"),
        (["--from", "files", "app-json/data/*.log"], 1, "error: --from files: no file matches '{cwd}/app-json/data/*.log'"),
        (["--from", "kafka", "--offsets", "0:5"], 2, "argument --offsets: '0:5' is not PARTITION:FROM-TO (e.g. 0:100-199, or 0:100- to the end)"),
        (["--from", "files", "app-json/data/*.jsonl", "--to", "lake"], 2, "argument --to: 'lake' is not SINK=DATASET or SINK=stdout"),
    ],
    ids=["unknown-origin", "two-datasets", "kafka-argument", "unknown-dataset", "bad-where", "bad-time", "since-after-until", "no-file", "bad-offsets", "bad-to"],
)
def test_bad_input_is_a_clear_message_without_a_traceback(shared_app_json: Path, arguments: list[str], code: int, message: str) -> None:
    cwd = shared_app_json.parent.parent
    done = subprocess.run(loglake_command("replay", str(shared_app_json), *arguments), cwd=cwd, capture_output=True, text=True, timeout=60, env=_ENV)

    assert done.returncode == code
    assert message.format(pipeline_dir=shared_app_json.parent, cwd=cwd) in done.stderr
    assert "Traceback" not in done.stderr


def test_an_age_reads_as_that_long_before_now(shared_app_json: Path) -> None:
    cwd = shared_app_json.parent.parent
    done = subprocess.run(
        loglake_command("replay", str(shared_app_json), "--from", "lake", "app", "--since", "2h", *AWAY), cwd=cwd, capture_output=True, text=True, timeout=60, env=_ENV
    )

    assert done.returncode == 0, done.stderr
    since = datetime.fromisoformat(done.stdout.splitlines()[0].rpartition(" from ")[2])
    assert abs(datetime.now(timezone.utc) - timedelta(hours=2) - since) < timedelta(minutes=1)


def test_a_kafka_offset_range_replays_to_stdout(loglake: Runner, tmp_path: Path, kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic()
    produce_lines(APACHE_LOG.read_bytes().splitlines()[:100], kafka_broker.bootstrap, topic)
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(
        f"pipeline: live\nsources:\n  access: {{type: kafka, brokers: ['{kafka_broker.bootstrap}'], topics: [{topic}], group: live}}\n"
        "stages:\n  parse: {type: apache_combined}\nsinks:\n  records: {type: parquet, dataset: records}\n",
        encoding="utf-8",
    )

    done = loglake("replay", str(pipeline), "--from", "kafka", "--offsets", "0:10-19", "--to", "records=stdout", "--to", "dead_letter=stdout")

    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert [record["kafka_offset"] for record in printed] == list(range(10, 20))
    assert "replay of Kafka source 'access' at offsets 0:10-19: pipeline live finished" in done.stderr
    assert "10 records read" in done.stderr
