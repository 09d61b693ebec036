"""Baseline (a): the nginx pipeline the way a newcomer writes it in plain Bytewax, one `op.map` per stage over dicts.

    python -m nginx.naive_flow BROKERS TOPIC OUTPUT_DIR      (from benchmarks/)

KafkaSource (settings in `bytewax_flow`) → `op.filter_map` pygrok `Grok("%{COMBINEDAPACHELOG}").match(line)`
(compiled once; lines it does not match are dropped) with `int()` for response and bytes → `op.map`
`datetime.strptime(…, "%d/%b/%Y:%H:%M:%S %z")` → `op.map` geoip2 `Reader.city()` per record (the reader opened
once, in its default mode) → `op.map` `user_agents.parse()` per record → the route, the `fold_window` and the
Parquet sinks of `bytewax_flow`. The raw line is kept as `message`, as loglake keeps it.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main
from pygrok import Grok  # type: ignore[import-untyped]

from nginx.bytewax_flow import add_outputs, agent_fields, city_fields, kafka_source

GROK = Grok("%{COMBINEDAPACHELOG}")


def parse(line: str) -> dict[str, Any] | None:
    record: dict[str, Any] | None = GROK.match(line)
    if record is None:
        return None
    record["message"] = line
    record["response"] = int(record["response"])
    record["bytes"] = None if record["bytes"] is None else int(record["bytes"])
    return record


def when(record: dict[str, Any]) -> dict[str, Any]:
    record["timestamp"] = datetime.strptime(record["timestamp"], "%d/%b/%Y:%H:%M:%S %z")
    return record


def geo(record: dict[str, Any]) -> dict[str, Any]:
    record["geo"] = city_fields(record["clientip"])
    return record


def ua(record: dict[str, Any]) -> dict[str, Any]:
    record["ua"] = agent_fields(record["agent"])
    return record


def build_flow(brokers: str, topic: str, target: Path) -> Dataflow:
    flow = Dataflow("nginx_naive")
    lines = kafka_source(flow, brokers, topic)
    records = op.filter_map("parse", lines, parse)
    records = op.map("when", records, when)
    records = op.map("geo", records, geo)
    records = op.map("ua", records, ua)
    add_outputs(records, target)
    return flow


if __name__ == "__main__":
    run_main(build_flow(sys.argv[1], sys.argv[2], Path(sys.argv[3])))  # type: ignore[no-untyped-call]
