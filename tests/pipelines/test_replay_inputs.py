"""What replays read that runs did not: `.gz` files (the `file` source) and Kafka partitions that stop at a time."""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from loglake.pipelines.broker import LocalBroker
from loglake.schemas.errors import SpecError, TerminalError
from tests.operators.test_file_source import _column, _file_yaml, _open, _poll
from tests.operators.test_kafka_source import EPOCH_MS, LINES, _produce, _source
from tests.support import APACHE_LOG, build_source, drain


@pytest.fixture
def packed(tmp_path: Path) -> Path:
    """The real Apache log, gzip-compressed."""
    path = tmp_path / "access.log.gz"
    path.write_bytes(gzip.compress(APACHE_LOG.read_bytes()))
    return path


def test_a_gz_file_reads_like_the_plain_file_with_positions_in_decompressed_bytes(packed: Path, tmp_path: Path) -> None:
    plain = _open(_file_yaml(APACHE_LOG, "batch_size: 3000"), tmp_path)
    compressed = _open(_file_yaml(packed, "batch_size: 3000"), tmp_path)
    plain_positions, packed_positions = [], []
    for partition, positions in ((plain, plain_positions), (compressed, packed_positions)):
        while partition.read() is not None:
            positions.append({k: v for k, v in partition.position().items() if k != "inode"})
            if len(positions) == 4:
                break

    assert packed_positions == plain_positions
    assert packed_positions[-1] == {"offset": APACHE_LOG.stat().st_size, "line": 10_000}


def test_a_gz_file_resumes_after_the_last_line_returned(packed: Path, tmp_path: Path) -> None:
    first = _open(_file_yaml(packed, "batch_size: 1234"), tmp_path)
    first.read()
    saved = first.position()
    first.close()

    rest = drain(_open(_file_yaml(packed), tmp_path, resume=saved))

    assert _column(rest, "_line")[0] == 1235
    assert _column(rest, "message") == APACHE_LOG.read_text(encoding="utf-8").splitlines()[1234:]


def test_a_gz_position_past_its_end_is_void(packed: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    inode = _open(_file_yaml(packed), tmp_path).position()["inode"]

    batches = drain(_open(_file_yaml(packed), tmp_path, resume={"inode": inode, "offset": 10**9, "line": 5}))

    assert _column(batches, "_line")[:2] == [1, 2] and len(_column(batches, "_line")) == 10_000
    assert f"it shrank to {APACHE_LOG.stat().st_size:,} bytes" in caplog.text


def test_a_follower_reads_a_gz_file_to_its_end_and_waits_without_restarting_it(packed: Path, tmp_path: Path) -> None:
    partition = _open(_file_yaml(packed, "poll_interval: 5ms"), tmp_path, follow=True)

    batches = _poll(partition, 10_000)

    assert all(partition.read() is None for _ in range(20))  # compressed size < bytes read: not a truncation
    assert _column(batches, "_line")[-1] == 10_000


@pytest.mark.parametrize(
    "data, problem",
    [
        (b"plain text, not gzip\n", "not a valid gzip file (Not a gzipped file (b'pl'))"),
        (gzip.compress(APACHE_LOG.read_bytes())[:100_000], "the compressed file ends early (is it still being written?)"),
    ],
    ids=["not-gzip", "cut-short"],
)
def test_a_broken_gz_file_stops_with_its_name_and_the_reason(tmp_path: Path, data: bytes, problem: str) -> None:
    path = tmp_path / "broken.log.gz"
    path.write_bytes(data)

    with pytest.raises(TerminalError, match=re.escape(f"cannot read {path}: {problem}")):
        drain(_open(_file_yaml(path), tmp_path))


def test_stop_at_a_time_ends_at_the_first_message_stamped_after_it(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic()
    stamps = [EPOCH_MS + 1000 * s for s in (0, 5, 3, 10, 4, 2)]  # the first after +6s is at offset 3; offset 4 is not read
    _produce(kafka_broker.bootstrap, topic, LINES[:6], timestamp=stamps)
    source, counters = _source(kafka_broker.bootstrap, topic, "stop_at: '2015-05-17T10:05:09Z'")
    partition = source.open(f"{topic}/0", None)

    batches = drain(partition)

    assert [v for b in batches for v in b.column("kafka_offset").to_pylist()] == [0, 1, 2]
    assert partition.position() == 3
    assert counters["records_in"] == 3


def test_start_and_stop_times_select_a_range_on_a_broker_without_a_time_index(kafka_broker: LocalBroker, kafka_topic: Callable[..., str]) -> None:
    topic = kafka_topic()
    _produce(kafka_broker.bootstrap, topic, LINES[:100], timestamp=[EPOCH_MS + 1000 * i for i in range(100)])
    source, _ = _source(kafka_broker.bootstrap, topic, "start: '2015-05-17T10:05:13Z'", "stop_at: '2015-05-17T10:05:42.500Z'")

    batches = drain(source.open(f"{topic}/0", None))

    assert [v for b in batches for v in b.column("kafka_offset").to_pylist()] == list(range(10, 40))


def test_stop_at_a_time_after_the_last_message_ends_at_the_end_of_the_log(kafka_broker: LocalBroker, kafka_topic: Callable[..., str], caplog: pytest.LogCaptureFixture) -> None:
    topic = kafka_topic()
    _produce(kafka_broker.bootstrap, topic, LINES[:20], timestamp=[EPOCH_MS + i for i in range(20)])
    source, _ = _source(kafka_broker.bootstrap, topic, "stop_at: 2030-01-01T00:00:00Z")
    caplog.set_level(logging.INFO, logger="loglake.operators.kafka.offsets")

    partition = source.open(f"{topic}/0", None)

    assert len([v for b in drain(partition) for v in b.column("kafka_offset").to_pylist()]) == 20
    assert "to offset 20 or its first message after 2030-01-01T00:00:00+00:00" in caplog.text


@pytest.mark.parametrize(
    "option, message",
    [
        ("stop_at: tomorrow", "'tomorrow' is not end, never or an ISO-8601 time (e.g. 2024-05-01T00:00:00Z)"),
        ("start: '2015-05-18T00:00:00Z', stop_at: '2015-05-17T00:00:00Z'", "start (2015-05-18T00:00:00+00:00) is after stop_at (2015-05-17T00:00:00+00:00)"),
    ],
    ids=["not-a-time", "start-after-stop"],
)
def test_a_bad_stop_time_names_the_field(option: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        build_source(f"{{type: kafka, topics: [t], {option}}}")

    assert caught.value.issues[0].message == message
