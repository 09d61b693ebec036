"""Baseline (b) of the Kafka benchmark: Bytewax's own KafkaSource feeding the naive per-record app-json flow.

    python benchmarks/naive_kafka_app_json.py BROKERS TOPIC OUTPUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSource
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main

from naive_app_json import add_stages  # type: ignore[import-not-found]


def build_flow(brokers: str, topic: str, target: Path) -> Dataflow:
    flow = Dataflow("naive_kafka_app_json")
    messages = op.input("read", flow, KafkaSource([brokers], [topic], tail=False))  # stops at each partition's end
    lines = op.map("value", messages, lambda message: message.value.decode("utf-8"))
    add_stages(lines, target)
    return flow


if __name__ == "__main__":
    run_main(build_flow(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
