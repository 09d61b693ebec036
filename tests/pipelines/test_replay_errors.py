"""Replays that cannot run as asked: each refused before anything starts, with a message naming the flag."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest

from loglake.pipelines.broker import LocalBroker
from loglake.pipelines.produce_cli import produce_lines
from loglake.pipelines.replay import OffsetRange, ReplayError, ReplayRequest, plan_replay, run_replay
from loglake.pipelines.runner import run_pipeline
from loglake.schemas.errors import TerminalError
from tests.support import APACHE_LOG

PIPELINE = """\
pipeline: access
sources:
  access: {type: file, paths: [access.log]}
stages:
  parse: {type: apache_combined}
sinks:
  records: {type: parquet, dataset: records}
"""
TWO_SOURCES = """\
pipeline: two
sources:
  web: {type: file, paths: [access.log]}
  other: {type: file, paths: [other.log]}
stages:
  parse: {type: apache_combined, inputs: [web, other]}
  other_only: {type: eval, inputs: [other], fields: {kind: "'other'"}}
sinks:
  records: {type: parquet, inputs: [parse], dataset: records}
  others: {type: parquet, inputs: [other_only], dataset: others}
"""
AWAY = (("records", "records_replay"), ("dead_letter", "dead_letter_replay"))
T1 = datetime(2015, 5, 17, 12, tzinfo=timezone.utc)
T2 = datetime(2015, 5, 17, 13, tzinfo=timezone.utc)


@pytest.fixture
def lake_pipeline(tmp_path: Path) -> Path:
    """A pipeline over 2,000 real lines, run once, so its `records` dataset exists."""
    lines = APACHE_LOG.read_text(encoding="utf-8").splitlines(keepends=True)[:2000]
    (tmp_path / "access.log").write_text("".join(lines), encoding="utf-8")
    (tmp_path / "other.log").write_text("".join(lines[:10]), encoding="utf-8")
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(PIPELINE, encoding="utf-8")
    run_pipeline(pipeline)
    return pipeline


def _refusal(pipeline: Path, request: ReplayRequest) -> str:
    with pytest.raises(ReplayError) as caught:
        plan_replay(pipeline, request, cwd=pipeline.parent)
    return str(caught.value)


@pytest.mark.parametrize(
    "request_, message",
    [
        (ReplayRequest("files", paths=("nothing*.log",), to=AWAY), "--from files: no file matches '{dir}/nothing*.log'"),
        (ReplayRequest("files", paths=("access.log",), since=T2, until=T1, to=AWAY), "--since applies to --from lake and --from kafka only"),
        (ReplayRequest("lake", dataset="records", since=T2, until=T1, to=AWAY), "--since (2015-05-17T13:00:00+00:00) is after --until (2015-05-17T12:00:00+00:00)"),
        (ReplayRequest("files", paths=("access.log",), where="response > 1"), "--where applies to --from lake and --from dead-letter only"),
        (ReplayRequest("kafka", on_corrupt="skip"), "--on-corrupt applies to --from lake and --from dead-letter only"),
        (ReplayRequest("kafka", since=T1, offsets=(OffsetRange("0", 1, 2),)), "--offsets and --since/--until select the same thing two ways; give one of them"),
        (ReplayRequest("lake", dataset="recrods", to=AWAY), "--from lake: no dataset 'recrods' in the lake {dir}/lake; did you mean 'records'?"),
        (ReplayRequest("lake", dataset="records", where="response >", to=AWAY), '--where: invalid SQL expression "response >": syntax error at the end of the expression (is it incomplete?)'),
        (ReplayRequest("lake", dataset="records", where="respnse >= 500", to=AWAY), "--where: the dataset has no column 'respnse'; did you mean 'response'?"),
        (ReplayRequest("lake", dataset="records", where="lenght(agent) > 3", to=AWAY), "--where: invalid SQL expression \"lenght(agent) > 3\": unknown function 'lenght'; did you mean 'length'?"),
        (ReplayRequest("lake", dataset="records", where="response > 'abc'", to=AWAY), "--where: invalid SQL condition \"response > 'abc'\": Conversion Error: Could not convert string 'abc' to INT64"),
        (ReplayRequest("kafka"), "--from kafka replaces a kafka source, and the pipeline has file source 'access'"),
        (ReplayRequest("files", paths=("access.log",), source="acess"), "--source: no source 'acess' in pipeline.yaml; did you mean 'access'?"),
        (ReplayRequest("files", paths=("access.log",), to=(("recrods", "x"),)), "--to recrods=x: no sink 'recrods' gets records from source 'access'; did you mean 'records'?"),
        (ReplayRequest("files", paths=("access.log",), to=(("records", "bad-name"),)), "--to records=bad-name: dataset name 'bad-name' must start with a letter or '_' and hold only letters, digits and '_'"),
        (ReplayRequest("lake", dataset="records", to=(("records", "records"),)), "sink 'records' would write into {dir}/lake/records, the dataset this replay reads; send it elsewhere with --to records=DATASET"),
    ],
    ids=[
        "glob-matches-nothing", "since-with-files", "since-after-until", "where-with-files", "on-corrupt-with-kafka", "offsets-and-times", "unknown-dataset",
        "where-syntax", "where-unknown-column", "where-unknown-function", "where-bad-constant", "kafka-without-kafka-source",
        "unknown-source", "unknown-sink", "bad-dataset-name", "writes-what-it-reads",
    ],
)
def test_a_bad_replay_is_refused_naming_the_flag(lake_pipeline: Path, request_: ReplayRequest, message: str) -> None:
    assert _refusal(lake_pipeline, request_) == message.format(dir=lake_pipeline.parent)


def test_a_range_without_data_reads_nothing_and_is_no_error(lake_pipeline: Path) -> None:
    since = datetime(2030, 1, 1, tzinfo=timezone.utc)
    plan = plan_replay(lake_pipeline, ReplayRequest("lake", dataset="records", since=since, to=AWAY), cwd=lake_pipeline.parent)

    result = run_replay(plan)

    assert result.records_read == 0
    assert plan.description == "dataset 'records' from 2030-01-01T00:00:00+00:00"
    assert not (lake_pipeline.parent / "lake" / "records_replay").exists()


def test_several_sources_need_source_and_the_others_do_not_run(lake_pipeline: Path) -> None:
    pipeline = lake_pipeline.with_name("two.yaml")
    pipeline.write_text(TWO_SOURCES, encoding="utf-8")
    away = (("records", "records_replay"), ("others", "others_replay"), ("dead_letter", "dead_letter_replay"))
    refused = _refusal(pipeline, ReplayRequest("files", paths=("access.log",), to=away))
    assert refused == "the pipeline has 2 sources --from files could replace (web, other); pick one with --source"

    plan = plan_replay(pipeline, ReplayRequest("files", paths=("access.log",), source="web", to=away[::2]), cwd=pipeline.parent)
    result = run_replay(plan)

    assert [node.name for node in result.nodes] == ["web", "parse", "records", "dead_letter"]
    assert result.records_read == 2000
    assert _refusal(pipeline, ReplayRequest("files", paths=("access.log",), source="web", to=away)) == (
        "--to others=others_replay: no sink 'others' gets records from source 'web'; valid sinks: records, dead_letter"
    )


def test_a_dataset_can_be_named_by_its_folder(lake_pipeline: Path) -> None:
    plan = plan_replay(lake_pipeline, ReplayRequest("lake", dataset="./lake/records", where="response = 404", to=AWAY), cwd=lake_pipeline.parent)

    raw = f"SELECT count(*) FROM read_parquet('{lake_pipeline.parent}/lake/records/**/*.parquet') WHERE response = 404"
    assert run_replay(plan).records_read == duckdb.sql(raw).fetchall()[0][0] > 0


@pytest.mark.parametrize(
    "text, parsed",
    [("0:100-199", OffsetRange("0", 100, 199)), ("3:7-", OffsetRange("3", 7)), ("logs.v2/1:0-0", OffsetRange("logs.v2/1", 0, 0))],
    ids=["closed", "to-the-end", "topic-and-partition"],
)
def test_offset_ranges_parse(text: str, parsed: OffsetRange) -> None:
    assert OffsetRange.parse(text) == parsed
    assert str(parsed) == text


@pytest.mark.parametrize(
    "text, message",
    [
        ("0:100", "'0:100' is not PARTITION:FROM-TO (e.g. 0:100-199, or 0:100- to the end)"),
        ("x:1-2", "'x:1-2' is not PARTITION:FROM-TO (e.g. 0:100-199, or 0:100- to the end)"),
        ("0:9-3", "'0:9-3': the last offset is before the first"),
    ],
    ids=["no-dash", "partition-not-a-number", "backwards"],
)
def test_bad_offset_ranges_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        OffsetRange.parse(text)


def test_an_offset_range_for_a_missing_partition_stops_the_replay_naming_the_flag(
    tmp_path: Path, kafka_broker: LocalBroker, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic()
    produce_lines(APACHE_LOG.read_bytes().splitlines()[:20], kafka_broker.bootstrap, topic)
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(
        PIPELINE.replace("{type: file, paths: [access.log]}", f"{{type: kafka, brokers: ['{kafka_broker.bootstrap}'], topics: [{topic}]}}"),
        encoding="utf-8",
    )
    plan = plan_replay(pipeline, ReplayRequest("kafka", offsets=(OffsetRange("3", 0, 5),), to=AWAY))

    with pytest.raises(TerminalError, match=re.escape(f"access: --offsets 3:0-5: the source has no such partition (its partitions: {topic}/0)")):
        run_replay(plan)
