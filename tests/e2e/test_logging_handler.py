"""examples/producers: the vendorable logging handler and the demo service, against the real broker."""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from types import ModuleType
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from loglake.pipelines.broker import LocalBroker, free_port
from tests.conftest import EXAMPLES

PRODUCERS = EXAMPLES / "producers"
PARTITIONS = 3


def _handler_module() -> ModuleType:
    """examples/producers/loglake_handler.py, imported from its path (a service vendors it; it is no package)."""
    spec = importlib.util.spec_from_file_location("loglake_handler", PRODUCERS / "loglake_handler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LoglakeHandler: Any = _handler_module().LoglakeHandler


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Every record in `topic`, decoded: read until `expected` arrived, then a little longer to catch extras."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-reader", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in range(PARTITIONS)])
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(500, 0.2):
                value = message.value()
                assert message.error() is None and value is not None, message.error()
                records.append(json.loads(value))
            if len(records) >= expected:
                deadline = min(deadline, time.monotonic() + 0.5)
    finally:
        consumer.close()
    return records


@pytest.fixture
def topic(kafka_topic: Callable[..., str]) -> str:
    return kafka_topic(partitions=PARTITIONS)


@pytest.fixture
def test_logger(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    """A logger of its own, not propagating, so records reach only the handler a test attaches."""
    logger = logging.getLogger(f"loglake.test.{request.node.name}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger
    logger.handlers.clear()


def test_every_record_arrives_once_with_its_fields(kafka_broker: LocalBroker, topic: str, test_logger: logging.Logger) -> None:
    count = 300
    handler = LoglakeHandler(kafka_broker.bootstrap, topic, service="checkout", host="web-7", linger_ms=20)
    test_logger.addHandler(handler)
    started = datetime.now(timezone.utc)
    for seq in range(count):
        test_logger.info("request %d took %.1f ms", seq, seq / 10, extra={"seq": seq, "http": {"status": 200}, "when": started, "service": "spoof"})
    try:
        raise ValueError("card declined")
    except ValueError:
        test_logger.exception("payment failed", extra={"seq": count})
    handler.close()

    assert (handler.delivered, handler.dropped, handler.delivery_errors, handler.undelivered) == (count + 1, 0, 0, 0)
    records = consume_all(kafka_broker.bootstrap, topic, count + 1)
    assert sorted(record["seq"] for record in records) == list(range(count + 1))  # each exactly once

    by_seq = {record["seq"]: record for record in records}
    first = dict(by_seq[0])
    stamp = datetime.fromisoformat(first.pop("timestamp"))
    assert stamp.utcoffset() == timedelta(0) and started - timedelta(seconds=1) <= stamp <= datetime.now(timezone.utc)
    assert first == {
        "level": "INFO",
        "logger": test_logger.name,
        "message": "request 0 took 0.0 ms",
        "service": "checkout",
        "host": "web-7",
        "seq": 0,
        "http": {"status": 200},
        "when": started.isoformat(),
        "extra_service": "spoof",  # an extra never overwrites a core field
    }
    assert by_seq[123]["message"] == "request 123 took 12.3 ms"
    assert all(len(record["timestamp"].split(".")[1]) == len("123456+00:00") for record in records)  # microseconds, UTC
    failure = by_seq[count]
    assert (failure["level"], failure["message"]) == ("ERROR", "payment failed")
    assert failure["exception"].startswith("Traceback (most recent call last):") and failure["exception"].endswith("ValueError: card declined")
    assert all("exception" not in record for seq, record in by_seq.items() if seq != count)


def test_a_full_buffer_drops_and_counts_instead_of_blocking(test_logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    handler = LoglakeHandler(f"127.0.0.1:{free_port()}", "nowhere", buffer_records=10, flush_timeout=0.5)  # nothing listens
    test_logger.addHandler(handler)
    slowest = 0.0
    for seq in range(200):
        started = time.perf_counter()
        test_logger.warning("event %d", seq)
        slowest = max(slowest, time.perf_counter() - started)
    assert slowest < 0.25  # no emit waited for the broker that is not there (waiting would take seconds)
    assert handler.dropped == 190

    started = time.monotonic()
    handler.close()
    assert time.monotonic() - started < 0.5 + 2.0  # flush_timeout, plus slack for a busy machine
    assert handler.undelivered == 10 and handler.delivered == 0
    report = capsys.readouterr().err
    assert report.count("loglake_handler:") == 1
    assert "190 log record(s) dropped, 0 failed delivery, 10 unsent at close (topic nowhere; last problem: buffer full)" in report

    test_logger.warning("after close")
    assert handler.dropped == 191


def test_records_are_flushed_at_interpreter_exit_without_close(kafka_broker: LocalBroker, topic: str) -> None:
    script = textwrap.dedent(
        f"""
        import importlib.util, logging
        spec = importlib.util.spec_from_file_location("loglake_handler", {str(PRODUCERS / "loglake_handler.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        logging.basicConfig(level=logging.INFO, handlers=[module.LoglakeHandler({kafka_broker.bootstrap!r}, {topic!r}, linger_ms=1000)])
        for seq in range(50):
            logging.getLogger("exit").info("line", extra={{"seq": seq}})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    assert sorted(record["seq"] for record in consume_all(kafka_broker.bootstrap, topic, 50)) == list(range(50))


def test_demo_app_logs_its_requests_to_the_topic(kafka_broker: LocalBroker, topic: str) -> None:
    count = 200
    done = subprocess.run(
        [sys.executable, str(PRODUCERS / "app.py"), "--brokers", kafka_broker.bootstrap, "--topic", topic, "--count", str(count)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{count} of {count} records sent to {topic}")

    records = consume_all(kafka_broker.bootstrap, topic, count)
    assert len(records) == count and len({record["request_id"] for record in records}) == count
    assert {record["service"] for record in records} == {"shop"}
    assert {record["level"] for record in records} == {"INFO", "WARNING", "ERROR"}
    for record in records:
        assert record["message"] == f"{record['method']} {record['path']} {'failed' if record['level'] == 'ERROR' else 200}"
        assert ("exception" in record) == (record["level"] == "ERROR") == (record["status"] == 502)
    assert any(record["path"] == "/healthz" for record in records)  # what examples/kafka/pipeline.yaml filters out
