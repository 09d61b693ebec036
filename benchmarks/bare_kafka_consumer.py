"""Baseline (a) of the Kafka benchmark, the transport ceiling: a bare confluent-kafka consumer that only reads.

    python benchmarks/bare_kafka_consumer.py BROKERS TOPIC PARTITIONS MESSAGES

Partitions are assigned by hand from offset 0 (no group join) with large fetch settings and no fetch-queue backoff; it stops after
MESSAGES messages.
"""

from __future__ import annotations

import sys

from confluent_kafka import Consumer, TopicPartition


def main(brokers: str, topic: str, partitions: int, messages: int) -> None:
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": "bare-benchmark",
        "enable.auto.commit": False,
        "fetch.max.bytes": 64 * 1024**2,
        "max.partition.fetch.bytes": 16 * 1024**2,
        "queued.max.messages.kbytes": 256 * 1024,
        "fetch.queue.backoff.ms": 10,  # the default (1 s) idles a consumer whose queue was full
    })
    consumer.assign([TopicPartition(topic, index, 0) for index in range(partitions)])
    seen = 0
    while seen < messages:
        batch = consumer.consume(10_000, 1.0)
        seen += sum(1 for message in batch if message.error() is None)
    consumer.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
