"""Create a topic on the local broker and produce a file's lines to it, round-robin over its partitions (a child process).

    python -m nginx.produce BROKERS TOPIC PARTITIONS FILE      (from benchmarks/)

A plain confluent-kafka producer with loglake's bulk settings (`BULK_TUNING`: 100 ms linger, 1 MB batches),
lz4, acks=all and idempotence, as `loglake produce` uses; line i (without its line ending) goes to partition
i mod PARTITIONS. Round-robin because without keys librdkafka's sticky partitioner put all 20,000 messages of
a quick trial into one partition (each batch goes to one partition, and a fast producer fills few batches),
which leaves a second worker nothing to read. Prints one JSON object: messages, bytes, seconds, and the
messages per partition as sent and as the broker's high watermarks say.
Run in its own process so that the launcher's peak RSS, which every later child inherits at fork, stays small.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from loglake.operators.kafka.producer import BULK_TUNING


def main(brokers: str, topic: str, partitions: int, source: Path) -> None:
    admin = AdminClient({"bootstrap.servers": brokers})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(timeout=30)
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer({"bootstrap.servers": brokers, **BULK_TUNING, "compression.type": "lz4", "acks": "all",
                         "enable.idempotence": True, "delivery.report.only.error": True})
    sent = [0] * partitions
    size = 0
    started = time.perf_counter()
    with source.open("rb") as lines:
        for index, line in enumerate(lines):
            value = line.rstrip(b"\r\n")
            partition = index % partitions
            while True:
                try:
                    producer.produce(topic, value, partition=partition, on_delivery=delivered)
                    break
                except BufferError:  # the local queue is full: let deliveries make room
                    producer.poll(0.05)
            sent[partition] += 1
            size += len(value)
            if index % 10_000 == 0:
                producer.poll(0)
    if producer.flush(120) or failures:
        raise KafkaException(f"not every message was delivered: {failures[:3]}")
    seconds = time.perf_counter() - started
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "nginx-bench-produce"})
    high = [consumer.get_watermark_offsets(TopicPartition(topic, index), timeout=10)[1] for index in range(partitions)]
    consumer.close()
    print(json.dumps({"messages": sum(sent), "bytes": size, "seconds": round(seconds, 2), "per_partition": sent, "high_watermarks": high}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
