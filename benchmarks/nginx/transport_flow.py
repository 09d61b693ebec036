"""Baseline (c), the transport ceiling in Bytewax: `KafkaSource` into a sink that only counts.

    python -m nginx.transport_flow BROKERS TOPIC      (from benchmarks/)

The same `KafkaSource` and librdkafka settings as the other baselines (`bytewax_flow.KAFKA_SETTINGS`,
`batch_size=10_000`), no decoding, no processing: what reading the topic through Bytewax costs at best.
Prints the number of messages seen, so the launcher can check the whole topic was read.
"""

from __future__ import annotations

import sys
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSource
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main

from nginx.bytewax_flow import BATCH, KAFKA_SETTINGS

SEEN = [0]


class _Counting(StatelessSinkPartition[Any]):
    def write_batch(self, items: list[Any]) -> None:
        SEEN[0] += len(items)


class CountingSink(DynamicSink[Any]):
    """Drops every item; counts them in `SEEN`."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Counting:
        return _Counting()


def build_flow(brokers: str, topic: str) -> Dataflow:
    flow = Dataflow("nginx_transport")
    messages = op.input("read", flow, KafkaSource([brokers], [topic], tail=False, add_config=dict(KAFKA_SETTINGS), batch_size=BATCH))
    op.output("count", messages, CountingSink())
    return flow


if __name__ == "__main__":
    run_main(build_flow(sys.argv[1], sys.argv[2]))  # type: ignore[no-untyped-call]
    print(f"messages: {SEEN[0]}")
