"""The `kafka` source and sink (confluent-kafka, librdkafka).

`config` holds both YAML models; `client` what every client shares (settings, librdkafka's logs through
Python logging, waiting for the cluster with backoff); `offsets` where a partition starts and ends;
`decode` messages to batches; `prefetch` the fetch settings that hold a reader's memory to `prefetch_bytes`;
`source` the partitions and their readers; `producer` delivery that never loses a failure (also used by
`loglake produce`); `encode` records to message values; `sink` the writers.
"""

from loglake.operators.kafka.config import KafkaSinkConfig, KafkaSourceConfig
from loglake.operators.kafka.sink import KafkaSink, KafkaSinkWriter
from loglake.operators.kafka.source import KafkaPartition, KafkaSource

__all__ = ["KafkaSourceConfig", "KafkaSinkConfig", "KafkaSource", "KafkaPartition", "KafkaSink", "KafkaSinkWriter"]
