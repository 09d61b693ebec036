"""`loglake produce` and `produce_lines` on a real broker, read back with the `kafka` source."""

from __future__ import annotations

import argparse
import gzip
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import loglake.operators.kafka  # noqa: F401  registers the `kafka` type
from loglake.pipelines.broker import LocalBroker
from loglake.pipelines.produce_cli import ProduceError, add_produce_command, produce_lines, run_produce
from tests.support import APACHE_LOG, build_source, drain

LINES = APACHE_LOG.read_bytes().splitlines()


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="loglake")
    add_produce_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["produce", *argv])


def _run(*argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `loglake produce ARGV` run in-process."""
    out, err = io.StringIO(), io.StringIO()
    args = _args(*argv)
    code = args.handler(args, stdin=io.BytesIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _read_back(bootstrap: str, topic: str, *fields: str) -> dict[str, list[Any]]:
    """Every message of partition 0 of `topic`, through the kafka source, as columns."""
    source = build_source(f"{{type: kafka, brokers: ['{bootstrap}'], topics: ['{topic}'], stop_at: end, fields: [{', '.join(fields)}]}}")
    partition = source.open(f"{topic}/0", None)
    columns: dict[str, list[Any]] = {}
    for batch in drain(partition):
        for name in batch.schema.names:
            columns.setdefault(name, []).extend(batch.column(name).to_pylist())
    partition.close()
    return columns


def test_files_and_gzip_files_are_sent_line_by_line_in_order(kafka_broker: LocalBroker, kafka_topic: Callable[..., str], tmp_path: Path) -> None:
    topic = kafka_topic()
    plain, packed = tmp_path / "a.log", tmp_path / "b.log.gz"
    plain.write_bytes(b"\n".join(LINES[:600]) + b"\n")
    packed.write_bytes(gzip.compress(b"\r\n".join(LINES[600:1000])))  # CRLF endings, no final newline
    code, out, err = _run("--brokers", kafka_broker.bootstrap, "--topic", topic, str(plain), str(packed))
    assert (code, err) == (0, "")
    assert out.startswith(f"produced 1,000 messages ({sum(map(len, LINES[:1000])) / 1e6:.1f} MB) to '{topic}' in ")
    assert out.endswith(" messages/s)\n")
    assert _read_back(kafka_broker.bootstrap, topic)["message"] == [line.decode() for line in LINES[:1000]]


def test_stdin_is_read_when_no_file_or_a_dash_is_given(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic()
    code, out, _ = _run("--brokers", kafka_broker.bootstrap, "--topic", topic, "-", stdin=b"one\n\ntwo \r\n")
    assert code == 0 and out.startswith("produced 3 messages")
    assert _read_back(kafka_broker.bootstrap, topic)["message"] == ["one", "", "two "]  # an empty line is a message too


def test_json_format_skips_and_reports_bad_lines_and_keys_by_a_field(kafka_broker: LocalBroker, kafka_topic: Callable[..., str], tmp_path: Path) -> None:
    topic = kafka_topic()
    path = tmp_path / "app.jsonl"
    lines = ['{"user": "ann", "n": 1}', "not json", '{"user": 7, "n": 2}', "[1, 2]", '{"n": 3}']
    path.write_text("\n".join(lines) + "\n")
    code, out, err = _run("--brokers", kafka_broker.bootstrap, "--topic", topic, "--format", "json", "--key-field", "user", str(path))
    assert code == 1
    assert err.splitlines() == [
        f"{path}:2: not JSON: invalid literal, expected 'null': line 1 column 1 (char 0); skipped",
        f"{path}:4: JSON, but not an object; skipped",
    ]
    assert out.startswith("produced 3 messages") and out.rstrip().endswith("; skipped 2 line(s) that are not JSON objects")
    back = _read_back(kafka_broker.bootstrap, topic, "key")
    assert [json.loads(m) for m in back["message"]] == [json.loads(lines[0]), json.loads(lines[2]), json.loads(lines[4])]
    assert back["kafka_key"] == ["ann", "7", None]


def test_rate_spaces_messages_out(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic()
    started = time.monotonic()
    code, out, _ = _run("--brokers", kafka_broker.bootstrap, "--topic", topic, "--rate", "200", stdin=b"\n".join(LINES[:100]))
    elapsed = time.monotonic() - started
    assert code == 0 and out.startswith("produced 100 messages")
    assert elapsed >= 98 / 200  # message i is not sent before i/rate seconds (it goes in chunks of rate/100)
    assert len(_read_back(kafka_broker.bootstrap, topic)["message"]) == 100


def test_partition_option_sends_everything_to_one_partition(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic(partitions=3)
    code, _, _ = _run("--brokers", kafka_broker.bootstrap, "--topic", topic, "--partition", "0", stdin=b"\n".join(LINES[:50]))
    assert code == 0
    assert _read_back(kafka_broker.bootstrap, topic, "partition")["kafka_partition"] == [0] * 50


def test_produce_lines_from_python_returns_what_it_sent(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic()
    result = produce_lines(LINES[:2000], kafka_broker.bootstrap, topic)
    assert (result.topic, result.messages, result.bytes, result.skipped) == (topic, 2000, sum(map(len, LINES[:2000])), 0)
    assert result.rate > 0 and result.summary().startswith("produced 2,000 messages")
    assert len(_read_back(kafka_broker.bootstrap, topic)["message"]) == 2000


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--topic", "t", "missing.log"], "cannot read missing.log: no such file"),
        (["--topic", "t", "--key-field", "user"], "--key-field needs --format json"),
        (["--topic", "t", "--rate", "0"], "--rate must be a positive number of messages per second, not 0"),
    ],
    ids=["missing-file", "key-without-json", "zero-rate"],
)
def test_bad_input_is_refused_before_anything_is_sent(argv: list[str], message: str) -> None:
    with pytest.raises(ProduceError, match=message):
        _run("--brokers", "127.0.0.1:1", *argv)  # nothing listens there: refused before connecting


def test_a_corrupt_gzip_file_is_reported_by_name(kafka_broker: LocalBroker, kafka_topic: Callable[..., str], tmp_path: Path) -> None:
    path = tmp_path / "cut.log.gz"
    path.write_bytes(gzip.compress(b"\n".join(LINES[:2000]))[:5000])  # cut short, as by a full disk
    with pytest.raises(ProduceError, match=rf"cannot read {path}: Compressed file ended before the end-of-stream marker"):
        _run("--brokers", kafka_broker.bootstrap, "--topic", kafka_topic(), str(path))


def test_the_command_function_is_the_parsers_handler() -> None:
    args = _args("--topic", "t")
    assert args.handler is run_produce
    assert (args.brokers, args.format, args.files, args.rate, args.partition) == ("localhost:9092", "lines", [], None, None)
