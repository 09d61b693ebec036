"""What the plain-Bytewax baselines share: the Kafka source and its settings, the route, the window and the sinks.

Each baseline is a Bytewax 0.21 dataflow of Python dicts, one item per record, built the way the Bytewax docs
show; only the parse and enrich steps differ between the naive (a) and the hand-tuned (b) flow. Everything
after them is the same code:

- source: `bytewax.connectors.kafka.KafkaSource(brokers, topics, tail=False)` (stops at each partition's end),
  `batch_size=10_000` (loglake's batch size; Bytewax's default is 1,000) and, in `add_config`, the same
  librdkafka fetch settings loglake's `kafka` source uses with its default `prefetch_bytes: 16MiB`
  (`KAFKA_SETTINGS`; above all `fetch.queue.backoff.ms: 10`, where librdkafka's default of 1 s idles a consumer
  whose queue filled up). So transport is tuned equally for every variant. With two partitions and one
  worker, KafkaSource hands over 10,000 messages of one partition, then of the other: with round-robin
  input that is 20,000 lines (72 s of event time at 1M lines per hour) per batch, so the two alternate that far
  apart in event time, and the per-key EventClock below drops what is more than 30 s behind (see the results);
- route, as loglake's `mode: first`: `op.filter` records with response >= 500 into the `errors` dataset, and
  bots that are not errors into `bots`; every record goes to `access`;
- window: `op.key_on` the response, Bytewax's own `fold_window` with an `EventClock` (waiting 30 s for late
  records, as `allowed_lateness: 30s`) and a 1-minute `TumblingWindower` aligned to the epoch, folding a count,
  the list of byte sizes (exact p95 with numpy at the end) and the set of client addresses (exact distinct
  count). Late records are dropped silently, as a flow that never reads `WindowOut.late` gets them;
- sinks: rows collected per worker and written with `pyarrow.Table.from_pylist` + `pq.write_table` (zstd) into
  `date=…/hour=…` folders every 100,000 rows and at the end.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import bytewax.operators as op
import geoip2.database
import geoip2.errors
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import user_agents
from _maxminddb_geolite2 import geolite2_database  # the file loglake's `database: geolite2-demo` names
from bytewax.connectors.kafka import KafkaSource
from bytewax.dataflow import Dataflow, Stream
from bytewax.operators.windowing import EventClock, TumblingWindower, fold_window
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from loglake.operators.kafka.config import KafkaSourceConfig
from loglake.operators.kafka.prefetch import consumer_tuning
from loglake.schemas.units import parse_size

__all__ = ["KAFKA_SETTINGS", "BATCH", "kafka_source", "add_outputs", "city_fields", "agent_fields", "GEO_FIELDS", "UA_FIELDS"]

KAFKA_SETTINGS: dict[str, str] = {
    key: str(value) for key, value in consumer_tuning(parse_size(KafkaSourceConfig.model_fields["prefetch_bytes"].default)).items()
}
"""loglake's own fetch settings (`consumer_tuning`) for its default `prefetch_bytes`, as strings (Bytewax's `add_config`)."""
BATCH = int(os.environ.get("NGINX_BYTEWAX_BATCH", "10000"))
"""Messages per `KafkaSource` poll: loglake's `batch_size` (Bytewax's default is 1,000; $NGINX_BYTEWAX_BATCH overrides)."""
GEO_FIELDS = ("country_code", "country_name", "city", "region", "latitude", "longitude", "time_zone")
"""The keys of a record's `geo` dict: the fields loglake's `geoip` stage writes from a City database."""
UA_FIELDS = ("browser_family", "browser_version", "os_family", "os_version", "device_family", "device_brand",
             "device_model", "is_mobile", "is_tablet", "is_pc", "is_bot")
"""The keys of a record's `ua` dict: the fields loglake's `user_agent` stage writes."""
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)
WINDOW_SCHEMA = pa.schema([
    ("window_start", pa.timestamp("us", tz="UTC")),
    ("window_end", pa.timestamp("us", tz="UTC")),
    ("response", pa.int64()),
    ("requests", pa.int64()),
    ("p95_bytes", pa.float64()),
    ("clients", pa.int64()),
])


_READER = geoip2.database.Reader(geolite2_database())


def city_fields(address: str) -> dict[str, Any] | None:
    """One `reader.city()` lookup as the `geo` dict (None for an address the database lacks or a bad one)."""
    try:
        city = _READER.city(address)
    except (geoip2.errors.AddressNotFoundError, ValueError):
        return None
    return {
        "country_code": city.country.iso_code,
        "country_name": city.country.name,
        "city": city.city.name,
        "region": city.subdivisions.most_specific.name,
        "latitude": city.location.latitude,
        "longitude": city.location.longitude,
        "time_zone": city.location.time_zone,
    }


def agent_fields(text: str) -> dict[str, Any]:
    """One `user_agents.parse()` as the `ua` dict."""
    agent = user_agents.parse(text)
    return {
        "browser_family": agent.browser.family,
        "browser_version": agent.browser.version_string or None,
        "os_family": agent.os.family,
        "os_version": agent.os.version_string or None,
        "device_family": agent.device.family,
        "device_brand": agent.device.brand,
        "device_model": agent.device.model,
        "is_mobile": agent.is_mobile,
        "is_tablet": agent.is_tablet,
        "is_pc": agent.is_pc,
        "is_bot": agent.is_bot,
    }


def kafka_source(flow: Dataflow, brokers: str, topic: str) -> Stream[str]:
    """The topic's messages as text lines, read to each partition's end."""
    source = KafkaSource([brokers], [topic], tail=False, add_config=dict(KAFKA_SETTINGS), batch_size=BATCH)
    messages = op.input("read", flow, source)  # raise_on_errors (the default): an error stops the flow, no KafkaError items
    return op.map("value", messages, lambda message: bytes(message.value).decode("utf-8"))  # type: ignore[union-attr, arg-type]


def add_outputs(records: Stream[dict[str, Any]], target: Path) -> None:
    """The route, the window and the Parquet sinks after the enriched records, writing datasets under `target`."""
    op.output("access", records, PartitionedParquetSink(target / "access"))
    errors = op.filter("errors", records, lambda record: record["response"] >= 500)
    op.output("errors_lake", errors, PartitionedParquetSink(target / "errors"))
    bots = op.filter("bots", records, lambda record: record["response"] < 500 and bool(record["ua"] and record["ua"]["is_bot"]))
    op.output("bots_lake", bots, PartitionedParquetSink(target / "bots"))
    keyed = op.key_on("by_response", records, lambda record: str(record["response"]))
    clock: EventClock[dict[str, Any]] = EventClock(ts_getter=lambda record: record["timestamp"], wait_for_system_duration=timedelta(seconds=30))
    windower = TumblingWindower(length=MINUTE, align_to=EPOCH)
    windows = fold_window("per_minute", keyed, clock, windower, builder=_new_window, folder=_add, merger=_merge)
    op.output("minutes", op.map("row", windows.down, _row), WindowParquetSink(target / "per_minute"))


def _new_window() -> dict[str, Any]:
    return {"response": None, "requests": 0, "bytes": [], "clients": set()}


def _add(window: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    window["response"] = record["response"]
    window["requests"] += 1
    if record["bytes"] is not None:
        window["bytes"].append(record["bytes"])
    window["clients"].add(record["clientip"])
    return window


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:  # tumbling windows never merge
    a["requests"] += b["requests"]
    a["bytes"].extend(b["bytes"])
    a["clients"] |= b["clients"]
    return a


def _row(key_and_window: tuple[str, tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    _, (window_id, window) = key_and_window
    start = EPOCH + MINUTE * window_id
    return {
        "window_start": start,
        "window_end": start + MINUTE,
        "response": window["response"],
        "requests": window["requests"],
        "p95_bytes": float(np.percentile(window["bytes"], 95)) if window["bytes"] else None,
        "clients": len(window["clients"]),
    }


class _RecordsPartition(StatelessSinkPartition[dict[str, Any]]):
    def __init__(self, folder: Path, worker: int) -> None:
        self.folder, self.worker, self.count = folder, worker, 0
        self.rows: list[dict[str, Any]] = []

    def write_batch(self, items: list[dict[str, Any]]) -> None:
        self.rows.extend(items)
        if len(self.rows) >= 100_000:
            self._flush()

    def _flush(self) -> None:
        by_hour: dict[str, list[dict[str, Any]]] = {}
        for row in self.rows:
            by_hour.setdefault(row["timestamp"].strftime("date=%Y-%m-%d/hour=%H"), []).append(row)
        for key, rows in by_hour.items():
            target = self.folder / key
            target.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(rows), target / f"part-{self.worker}-{self.count}.parquet", compression="zstd")
            self.count += 1
        self.rows = []

    def close(self) -> None:
        self._flush()


class PartitionedParquetSink(DynamicSink[dict[str, Any]]):
    """Record dicts into `date=…/hour=…` Parquet files (by the record's `timestamp`), 100,000 rows at a time."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RecordsPartition:
        return _RecordsPartition(self.folder, worker_index)


class _WindowPartition(StatelessSinkPartition[dict[str, Any]]):
    def __init__(self, folder: Path, worker: int) -> None:
        self.folder, self.worker = folder, worker
        self.rows: list[dict[str, Any]] = []

    def write_batch(self, items: list[dict[str, Any]]) -> None:
        self.rows.extend(items)

    def close(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.rows, schema=WINDOW_SCHEMA), self.folder / f"part-{self.worker}.parquet", compression="zstd")


class WindowParquetSink(DynamicSink[dict[str, Any]]):
    """Window rows into one Parquet file per worker, written at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _WindowPartition:
        return _WindowPartition(self.folder, worker_index)
