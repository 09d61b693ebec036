"""Shared fixtures: real data paths, pipeline files written into a temporary folder."""

from __future__ import annotations

import logging
import re
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loglake.pipelines.broker import LocalBroker, start_broker
from tests.support import APACHE_LOG

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.fixture
def apache_log() -> Path:
    """The 10,000 real Apache access-log lines in ../shared/data."""
    assert APACHE_LOG.exists(), f"shared data missing: {APACHE_LOG}"
    return APACHE_LOG


@pytest.fixture
def write_pipeline(tmp_path: Path) -> Callable[[str], Path]:
    """Write dedented YAML to tmp_path/pipeline.yaml and return its path."""

    def write(text: str, name: str = "pipeline.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[LocalBroker]:
    """A real Kafka-protocol broker (Tansu, in memory) on a free loopback port, stopped by PID at the end."""
    broker = start_broker()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def kafka_topic(kafka_broker: LocalBroker, request: pytest.FixtureRequest) -> Callable[..., str]:
    """Create a uniquely named topic on the session broker: `kafka_topic(partitions=4)` returns its name."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap, "logger": logging.getLogger("tests.kafka_admin")})

    def create(partitions: int = 1, name: str | None = None) -> str:
        stem = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:40]
        topic = name or f"{stem}-{uuid.uuid4().hex[:8]}"
        for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
            future.result(timeout=10)
        return topic

    return create
